//! `--chmod`: octal (`0755`) or symbolic (`u+x,g-w,o=r`, `a+X`) modes.

use crate::ir::Chmod;

/// Why a mode is malformed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not `[ugoa]*[+-=][rwxXst]*` clauses separated by commas.
    #[error("invalid --chmod value `{0}`")]
    Invalid(String),
    /// Octal out of range.
    #[error("invalid --chmod value {0:o}: more than 12 bits")]
    TooLarge(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    who: u32,
    op: char,
    perms: String,
}

/// A parsed `--chmod`, applied per file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mode {
    octal: Option<u32>,
    clauses: Vec<Clause>,
}

impl Mode {
    /// Parses and validates.
    ///
    /// # Errors
    /// [`Error::Invalid`], [`Error::TooLarge`].
    pub fn new(chmod: &Chmod) -> Result<Mode, Error> {
        match chmod {
            Chmod::Octal(m) if *m > 0o7777 => Err(Error::TooLarge(*m)),
            Chmod::Octal(m) => Ok(Mode {
                octal: Some(*m),
                clauses: vec![],
            }),
            Chmod::Symbolic(s) => {
                let invalid = || Error::Invalid(s.clone());
                let mut clauses = Vec::new();
                for part in s.split(',') {
                    let op_at = part.find(['+', '-', '=']).ok_or_else(invalid)?;
                    let (who_s, rest) = part.split_at(op_at);
                    let mut who = 0;
                    for c in who_s.chars() {
                        who |= match c {
                            'u' => 0o4700,
                            'g' => 0o2070,
                            'o' => 0o1007,
                            'a' => 0o7777,
                            _ => return Err(invalid()),
                        };
                    }
                    if who == 0 {
                        who = 0o7777;
                    }
                    let op = rest.chars().next().ok_or_else(invalid)?;
                    let perms = rest[1..].to_string();
                    if !perms.chars().all(|c| "rwxXst".contains(c)) {
                        return Err(invalid());
                    }
                    clauses.push(Clause { who, op, perms });
                }
                Ok(Mode {
                    octal: None,
                    clauses,
                })
            }
        }
    }

    /// The permission bits (incl. setuid/setgid/sticky) for a file that
    /// had `old` (permission bits only).
    pub fn apply(&self, old: u32, is_dir: bool) -> u32 {
        if let Some(m) = self.octal {
            return m;
        }
        let mut mode = old & 0o7777;
        for c in &self.clauses {
            let mut bits = 0;
            for p in c.perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    'X' => 0,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            let bits = bits & c.who;
            match c.op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !(c.who & 0o777)) | bits,
            }
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Mode {
        Mode::new(&Chmod::Symbolic(s.to_string())).unwrap()
    }

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(
            Mode::new(&Chmod::Octal(0o640)).unwrap().apply(0o777, false),
            0o640
        );
        assert!(Mode::new(&Chmod::Octal(0o17777)).is_err());
        assert_eq!(sym("u+x").apply(0o644, false), 0o744);
        assert_eq!(sym("u+x,g-w").apply(0o664, false), 0o744);
        assert_eq!(sym("a=r").apply(0o755, false), 0o444);
        assert_eq!(sym("go=").apply(0o755, false), 0o700);
        assert_eq!(sym("+x").apply(0o644, false), 0o755);
        assert_eq!(sym("a+X").apply(0o644, false), 0o644);
        assert_eq!(sym("a+X").apply(0o644, true), 0o755);
        assert_eq!(sym("a+X").apply(0o744, false), 0o755);
        assert_eq!(sym("u+s").apply(0o755, false), 0o4755);
        assert_eq!(sym("o-rwx").apply(0o777, false), 0o770);
        assert!(Mode::new(&Chmod::Symbolic("z+x".into())).is_err());
        assert!(Mode::new(&Chmod::Symbolic("u".into())).is_err());
        assert!(Mode::new(&Chmod::Symbolic("u+q".into())).is_err());
    }
}
