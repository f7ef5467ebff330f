//! COPY, ADD and WORKDIR → File vertices (one layer each).

use bake_solver::ir::{self, Chmod, FileAction, FileOp, Op, Owner, Source as IrSource, VertexId};

use super::path;
use super::stage::{display, Stage};
use super::Lowerer;
use crate::ast::{self, Flag, Instruction, Paths, Word};
use crate::error::{Error, ErrorKind, Span};
use crate::{expand, heredoc};

/// `user[:group]` → an owner (`None` for an empty value).
pub(crate) fn owner(value: &str) -> Option<Owner> {
    if value.is_empty() {
        return None;
    }
    Some(match value.split_once(':') {
        Some((u, g)) => Owner {
            user: u.to_string(),
            group: Some(g.to_string()),
        },
        None => Owner {
            user: value.to_string(),
            group: None,
        },
    })
}

/// `--chmod`: octal (`0755`, `600`) or symbolic (`u+x,g-w`, `a=rX`).
pub(crate) fn chmod(value: &str) -> Option<Chmod> {
    if !value.is_empty() && value.chars().all(|c| c.is_digit(8)) {
        return u32::from_str_radix(value, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Chmod::Octal);
    }
    let clause_ok = |clause: &str| {
        let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        let mut chars = ops.chars().peekable();
        let mut any = false;
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return false;
            }
            any = true;
            while let Some(&c) = chars.peek() {
                if !"rwxXstugo".contains(c) {
                    break;
                }
                chars.next();
            }
        }
        any
    };
    (!value.is_empty() && value.split(',').all(clause_ok))
        .then(|| Chmod::Symbolic(value.to_string()))
}

/// What kind of thing an ADD source is.
enum AddSource {
    Local,
    Http,
    Git {
        remote: String,
        reference: Option<String>,
        subdir: Option<String>,
    },
}

fn classify(src: &str) -> AddSource {
    let (base, fragment) = match src.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (src, None),
    };
    let git = src.starts_with("git@")
        || src.starts_with("git://")
        || src.starts_with("ssh://")
        || ((src.starts_with("https://") || src.starts_with("http://")) && base.ends_with(".git"));
    if git {
        let (reference, subdir) = match fragment {
            Some(f) => match f.split_once(':') {
                Some((r, s)) => (
                    Some(r.to_string()).filter(|r| !r.is_empty()),
                    Some(s.to_string()),
                ),
                None => (Some(f.to_string()).filter(|r| !r.is_empty()), None),
            },
            None => (None, None),
        };
        return AddSource::Git {
            remote: base.to_string(),
            reference,
            subdir,
        };
    }
    if src.starts_with("http://") || src.starts_with("https://") {
        return AddSource::Http;
    }
    AddSource::Local
}

/// A git `--checksum`: a commit id, full or abbreviated to at least 7
/// hex digits (`sha1:` allowed in front).
fn is_commit_checksum(value: &str) -> bool {
    let v = value.strip_prefix("sha1:").unwrap_or(value);
    (7..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The file name an `ADD <url>` produces (the URL path's last element).
fn url_filename(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split_once('/')
        .map_or("", |(_, p)| p);
    let name = path::base(&format!("/{path}"));
    if name == "/" || name == "." {
        "__unnamed__".to_string()
    } else {
        name
    }
}

/// COPY/ADD arguments common to both, expanded.
struct Prepared {
    dest: String,
    owner: Option<Owner>,
    mode: Option<Chmod>,
    exclude: Vec<String>,
    /// Mkdir/Mkfile actions for heredoc sources.
    heredoc_actions: Vec<FileAction>,
    /// Other sources, expanded, with their spans.
    sources: Vec<(String, Span)>,
}

impl Lowerer<'_> {
    fn flag_value(&self, st: &Stage, flag: &Option<Flag>) -> Result<Option<(String, Span)>, Error> {
        match flag {
            Some(f) => {
                let raw = f.value.clone().unwrap_or_default();
                Ok(Some((self.expand(st, &raw, &f.span)?, f.span.clone())))
            }
            None => Ok(None),
        }
    }

    /// The value of `COPY --from`, which BuildKit never expands: a stage
    /// graph must not depend on a stage's variables, so a value that
    /// expansion would change is an error, as in BuildKit.
    fn copy_from_value(&self, flag: &Option<Flag>) -> Result<Option<(String, Span)>, Error> {
        let Some(f) = flag else { return Ok(None) };
        let raw = f.value.clone().unwrap_or_default();
        let unchanged =
            crate::expand::word(&raw, self.df.directives.escape, &|_| None).is_ok_and(|v| v == raw);
        if !unchanged {
            return Err(self.src.error(
                ErrorKind::InvalidValue,
                f.span.clone(),
                "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround".to_string(),
            ));
        }
        Ok(Some((raw, f.span.clone())))
    }

    fn prepare(
        &self,
        st: &Stage,
        paths: &Paths,
        chown: &Option<Flag>,
        chmod_flag: &Option<Flag>,
        exclude: &[Flag],
    ) -> Result<Prepared, Error> {
        let owner = self.flag_value(st, chown)?.and_then(|(v, _)| owner(&v));
        let mode = match self.flag_value(st, chmod_flag)? {
            Some((v, span)) => Some(chmod(&v).ok_or_else(|| {
                self.src.error(
                    ErrorKind::InvalidValue,
                    span,
                    format!("invalid chmod parameter: {v}"),
                )
            })?),
            None => None,
        };
        let mut excludes = Vec::new();
        for f in exclude {
            excludes.push(self.expand(st, f.value.as_deref().unwrap_or(""), &f.span)?);
        }
        let dest_raw = self.expand(st, &paths.dest.text, &paths.dest.span)?;
        let dest = path::destination(&st.workdir(), &dest_raw);
        let mut heredoc_actions = Vec::new();
        let mut sources = Vec::new();
        for w in &paths.sources {
            if let Some(h) = heredoc_source(w, &paths.heredocs) {
                heredoc_actions.extend(self.heredoc_file(st, h, &dest, &owner, &mode)?);
                continue;
            }
            sources.push((self.expand(st, &w.text, &w.span)?, w.span.clone()));
        }
        Ok(Prepared {
            dest,
            owner,
            mode,
            exclude: excludes,
            heredoc_actions,
            sources,
        })
    }

    /// `COPY <<EOF /path`: mkdir of the parent, then the file.
    fn heredoc_file(
        &self,
        st: &Stage,
        h: &ast::Heredoc,
        dest: &str,
        owner: &Option<Owner>,
        mode: &Option<Chmod>,
    ) -> Result<Vec<FileAction>, Error> {
        let mut data = h.content();
        if h.expand {
            data = expand::heredoc(&data, self.df.directives.escape, &|n| st.lookup(n)).map_err(
                |e| {
                    self.src
                        .error(ErrorKind::Expansion, h.span.clone(), e.to_string())
                },
            )?;
        }
        let file = if dest.ends_with('/') {
            format!("{dest}{}", h.name)
        } else {
            dest.to_string()
        };
        // An inline file is created 0644; a symbolic --chmod applies to
        // that, here, so the IR's Mkfile keeps a plain mode.
        let mode = match mode {
            Some(Chmod::Octal(m)) => *m,
            Some(Chmod::Symbolic(s)) => super::chmod::symbolic_mode(s, 0o644),
            None => 0o644,
        };
        Ok(vec![
            FileAction::Mkdir {
                path: path::dir(&file),
                mode: 0o755,
                parents: true,
                owner: owner.clone(),
            },
            FileAction::Mkfile {
                path: file,
                mode,
                data,
                owner: owner.clone(),
            },
        ])
    }

    /// CopyIgnoredFile (experimental in BuildKit): a context source that
    /// `.dockerignore` excludes, so the copy will not find it.
    fn copy_ignored_file(&mut self, keyword: &str, sources: &[(String, Span)]) {
        if self.opts.dockerignore.is_empty() {
            return;
        }
        let Ok(matcher) = bake_solver::dockerignore::Matcher::new(&self.opts.dockerignore) else {
            return;
        };
        for (src, span) in sources {
            let path = bake_solver::dockerignore::clean(src);
            if matcher.is_excluded(&path) {
                self.warnings.push(self.src.warning(
                    "CopyIgnoredFile",
                    Some(span.start),
                    format!(
                        "Attempting to {keyword} file {src:?} that is excluded by .dockerignore"
                    ),
                ));
            }
        }
    }

    fn root(&mut self, st: &Stage) -> VertexId {
        match st.vertex {
            Some(v) => v,
            None => self.scratch(),
        }
    }

    /// Pushes the File vertex and its history entry.
    fn file_vertex(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
        inputs: Vec<VertexId>,
        actions: Vec<FileAction>,
    ) {
        let name = st.vertex_name(&display(ins));
        let v = self.push(Op::File(FileOp { actions }), inputs, name, Some(ins));
        st.vertex = Some(v);
        st.history(format!("{} # buildkit", display(ins)), false);
    }

    pub(super) fn copy(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
        c: &ast::Copy,
    ) -> Result<(), Error> {
        let p = self.prepare(st, &c.paths, &c.chown, &c.chmod, &c.exclude)?;
        let root = self.root(st);
        let mut inputs = vec![root];
        let mut actions = p.heredoc_actions;
        if !p.sources.is_empty() {
            let source = match self.copy_from_value(&c.from)? {
                Some((from, span)) => self.named_source(st.index, &from, span, &st.platform)?,
                None => {
                    self.copy_ignored_file("COPY", &p.sources);
                    self.context()
                }
            };
            inputs.push(source);
            actions.push(FileAction::Copy(ir::Copy {
                source: 1,
                src: p.sources.into_iter().map(|(s, _)| s).collect(),
                dest: p.dest,
                owner: p.owner,
                mode: p.mode,
                allow_wildcard: true,
                unpack_archives: false,
                exclude: p.exclude,
                parents: c.parents,
                link: c.link,
            }));
        }
        self.file_vertex(st, ins, inputs, actions);
        Ok(())
    }

    pub(super) fn add(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
        a: &ast::Add,
    ) -> Result<(), Error> {
        let p = self.prepare(st, &a.paths, &a.chown, &a.chmod, &a.exclude)?;
        let checksum = self.flag_value(st, &a.checksum)?;
        let root = self.root(st);
        let mut inputs = vec![root];
        let mut actions = p.heredoc_actions;
        let mut local = Vec::new();
        let copy = |source: usize, src: Vec<String>, unpack: bool, wildcard: bool| {
            FileAction::Copy(ir::Copy {
                source,
                src,
                dest: p.dest.clone(),
                owner: p.owner.clone(),
                mode: p.mode.clone(),
                allow_wildcard: wildcard,
                unpack_archives: unpack,
                exclude: p.exclude.clone(),
                parents: false,
                link: a.link,
            })
        };
        for (src, _) in &p.sources {
            match classify(src) {
                AddSource::Local => {
                    if let Some((_, cspan)) = &checksum {
                        return Err(self.src.error(
                            ErrorKind::InvalidValue,
                            cspan.clone(),
                            "checksum can't be specified for non-HTTP(S) sources",
                        ));
                    }
                    local.push(src.clone());
                }
                AddSource::Http => {
                    let filename = url_filename(src);
                    let op = Op::Source(IrSource::Http {
                        url: src.clone(),
                        checksum: checksum.as_ref().map(|(c, _)| c.clone()),
                        filename: filename.clone(),
                    });
                    let v = self.push(op, Vec::new(), src.clone(), Some(ins));
                    inputs.push(v);
                    actions.push(copy(
                        inputs.len() - 1,
                        vec![format!("/{filename}")],
                        a.unpack.unwrap_or(false),
                        false,
                    ));
                }
                AddSource::Git {
                    remote,
                    reference,
                    subdir,
                } => {
                    // BuildKit: a git source's checksum is the commit id
                    // the ref must resolve to (checked by the solver).
                    if let Some((c, cspan)) = &checksum {
                        if !is_commit_checksum(c) {
                            return Err(self.src.error(
                                ErrorKind::InvalidValue,
                                cspan.clone(),
                                format!("invalid checksum {c:?} for a git source: expected a commit id (7 to 64 hex digits)"),
                            ));
                        }
                    }
                    let op = Op::Source(IrSource::Git {
                        remote,
                        reference,
                        subdir,
                        keep_git_dir: a.keep_git_dir,
                        checksum: checksum.as_ref().map(|(c, _)| c.clone()),
                    });
                    let v = self.push(op, Vec::new(), src.clone(), Some(ins));
                    inputs.push(v);
                    let dest_dir = if p.dest.ends_with('/') {
                        p.dest.clone()
                    } else {
                        format!("{}/", p.dest)
                    };
                    let mut action = copy(inputs.len() - 1, vec!["/".to_string()], false, false);
                    if let FileAction::Copy(c) = &mut action {
                        c.dest = dest_dir;
                    }
                    actions.push(action);
                }
            }
        }
        if !local.is_empty() {
            let local_sources: Vec<(String, Span)> = p
                .sources
                .iter()
                .filter(|(s, _)| local.contains(s))
                .cloned()
                .collect();
            self.copy_ignored_file("ADD", &local_sources);
            let ctx = self.context();
            inputs.push(ctx);
            actions.push(copy(
                inputs.len() - 1,
                local,
                a.unpack.unwrap_or(true),
                true,
            ));
        }
        self.file_vertex(st, ins, inputs, actions);
        Ok(())
    }

    /// WORKDIR: sets the config and creates the directory (owned by the
    /// current USER, as BuildKit does), except for `/`.
    pub(super) fn workdir(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
        w: &Word,
    ) -> Result<(), Error> {
        let value = self.expand(st, &w.text, &w.span)?;
        let wd = path::absolute(&st.workdir(), &value);
        st.cc().working_dir = Some(wd.clone());
        if wd == "/" {
            st.history(format!("WORKDIR {wd}"), true);
            return Ok(());
        }
        let root = self.root(st);
        let action = FileAction::Mkdir {
            path: wd.clone(),
            mode: 0o755,
            parents: true,
            owner: owner(&st.user()),
        };
        let name = st.vertex_name(&display(ins));
        let v = self.push(
            Op::File(FileOp {
                actions: vec![action],
            }),
            vec![root],
            name,
            Some(ins),
        );
        st.vertex = Some(v);
        st.history(format!("WORKDIR {wd}"), false);
        Ok(())
    }
}

/// The heredoc a `<<NAME` source refers to, if it is one.
fn heredoc_source<'h>(w: &Word, heredocs: &'h [ast::Heredoc]) -> Option<&'h ast::Heredoc> {
    let (name, _, _) = heredoc::parse_marker(&w.text)?;
    heredocs.iter().find(|h| h.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_table() {
        let cases: &[(&str, Option<Chmod>)] = &[
            ("0755", Some(Chmod::Octal(0o755))),
            ("600", Some(Chmod::Octal(0o600))),
            ("7777", Some(Chmod::Octal(0o7777))),
            ("17777", None),
            ("u+x", Some(Chmod::Symbolic("u+x".into()))),
            ("u+x,g-w", Some(Chmod::Symbolic("u+x,g-w".into()))),
            ("a=rX", Some(Chmod::Symbolic("a=rX".into()))),
            ("+x", Some(Chmod::Symbolic("+x".into()))),
            ("9", None),
            ("", None),
            ("u", None),
            ("u+q", None),
        ];
        for (v, want) in cases {
            assert_eq!(chmod(v), *want, "{v}");
        }
    }

    #[test]
    fn owners() {
        assert_eq!(owner(""), None);
        assert_eq!(owner("app").unwrap().group, None);
        assert_eq!(owner("1:2").unwrap().group.as_deref(), Some("2"));
    }

    #[test]
    fn git_checksums() {
        for ok in [
            "c75964d",
            "C75964DE554C9D9BB869F34B28DE8D91F0196EB6",
            "sha1:abcdef0",
        ] {
            assert!(is_commit_checksum(ok), "{ok}");
        }
        for bad in ["c7596", "sha256:abcdef0", "main", "", &"a".repeat(65)] {
            assert!(!is_commit_checksum(bad), "{bad}");
        }
    }

    #[test]
    fn url_names() {
        assert_eq!(url_filename("http://127.0.0.1:5000/v2/"), "v2");
        assert_eq!(url_filename("https://x.org/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_filename("https://x.org"), "__unnamed__");
    }

    #[test]
    fn classify_sources() {
        assert!(matches!(classify("a.txt"), AddSource::Local));
        assert!(matches!(classify("https://x.org/f"), AddSource::Http));
        match classify("https://github.com/a/b.git#v1:sub") {
            AddSource::Git {
                remote,
                reference,
                subdir,
            } => {
                assert_eq!(remote, "https://github.com/a/b.git");
                assert_eq!(reference.as_deref(), Some("v1"));
                assert_eq!(subdir.as_deref(), Some("sub"));
            }
            _ => panic!("git expected"),
        }
        assert!(matches!(
            classify("git@github.com:a/b.git"),
            AddSource::Git { .. }
        ));
    }
}
