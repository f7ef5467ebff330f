//! Symbolic `--chmod` values applied in the frontend: an inline
//! (`COPY <<EOF`) file has a known starting mode, so its final mode is
//! computed here and the IR's `Mkfile` keeps a plain number.

/// Applies a (validated, see [`super::copy::chmod`]) symbolic mode such as `u+x,go-w`
/// or `a=rX` to the permission bits `old` of a regular file, as chmod(1)
/// does with no umask: no `who` means all.
pub(crate) fn symbolic_mode(value: &str, old: u32) -> u32 {
    let mut mode = old & 0o7777;
    for clause in value.split(',') {
        let Some(op_at) = clause.find(['+', '-', '=']) else {
            continue;
        };
        let mut who = 0;
        for c in clause[..op_at].chars() {
            who |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                _ => 0o7777,
            };
        }
        if who == 0 {
            who = 0o7777;
        }
        // Several operations may follow one `who` (`u+x-w`).
        let ops = &clause[op_at..];
        let mut chars = ops.chars().peekable();
        while let Some(op) = chars.next() {
            let mut bits = 0;
            while let Some(&p) = chars.peek() {
                if matches!(p, '+' | '-' | '=') {
                    break;
                }
                chars.next();
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if mode & 0o111 != 0 => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    'u' => ((mode >> 6) & 7) * 0o111,
                    'g' => ((mode >> 3) & 7) * 0o111,
                    'o' => (mode & 7) * 0o111,
                    _ => 0,
                };
            }
            let bits = bits & who;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !(who & 0o777)) | bits,
            }
        }
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::copy::chmod;

    #[test]
    fn symbolic_modes_apply_to_an_inline_file() {
        let cases: &[(&str, u32)] = &[
            ("u+x", 0o744),
            ("+x", 0o755),
            ("a=rX", 0o444),
            ("go-r", 0o600),
            ("u=rwx,g=rx,o=", 0o750),
            ("u+x-w", 0o544),
            ("g=u", 0o664),
            ("u+s", 0o4644),
        ];
        for (value, want) in cases {
            assert!(chmod(value).is_some(), "{value} should be valid");
            assert_eq!(symbolic_mode(value, 0o644), *want, "{value}");
        }
    }
}
