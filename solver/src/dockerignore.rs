//! The `.dockerignore` / `COPY --exclude` matcher, with Docker's semantics
//! (moby/patternmatcher).
//!
//! Patterns are cleaned (surrounding whitespace trimmed, `filepath.Clean`,
//! a leading `/` dropped), use Go's `filepath.Match` syntax plus `**`, and
//! a leading `!` makes an exception. A pattern matches a path if it matches
//! the path or any of its parent directories; the last matching pattern
//! wins. A directory that is excluded is still walked into when an
//! exception could match something inside it.

use crate::glob::{self, Glob};

/// Why a pattern list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed pattern.
    #[error("invalid exclude pattern `{pattern}`")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        #[source]
        source: glob::Error,
    },
}

/// How Docker's compiler classified a pattern; it matches each class its
/// own way (the differences show only at the edges, e.g. `**foo` matching
/// `afoo`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Glob,
}

/// One pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
    glob: Glob,
}

impl Pattern {
    /// Parses one pattern (`!` prefix = exception). `None` for a blank one.
    ///
    /// # Errors
    /// [`Error::BadPattern`].
    pub fn new(raw: &str) -> Result<Option<Pattern>, Error> {
        let mut p = raw.trim();
        if p.is_empty() {
            return Ok(None);
        }
        let exclusion = p.starts_with('!');
        if exclusion {
            p = p[1..].trim();
        }
        let mut cleaned = clean(p);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        let bad = |source| Error::BadPattern {
            pattern: raw.to_string(),
            source,
        };
        // Go validates with filepath.Match(pattern, "") first.
        Glob::new(&cleaned, false).map_err(bad)?;
        let glob = Glob::new(&cleaned, true).map_err(bad)?;
        let kind = classify(&cleaned);
        Ok(Some(Pattern {
            cleaned,
            exclusion,
            kind,
            glob,
        }))
    }

    /// Whether this is an exception (`!pattern`).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// The cleaned pattern, without `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    fn matches(&self, path: &str) -> bool {
        match self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            Kind::Glob => self.glob.matches(path),
        }
    }
}

/// Docker's compile(): which fast path a pattern takes.
fn classify(p: &str) -> Kind {
    let chars: Vec<char> = p.chars().collect();
    let mut kind = Kind::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    kind = if kind == Kind::Exact {
                        Kind::Prefix
                    } else {
                        Kind::Glob
                    };
                } else {
                    kind = Kind::Glob;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' | '?' | '[' | ']' => kind = Kind::Glob,
            '\\' => {
                i += 1;
                kind = Kind::Glob;
            }
            _ => {}
        }
        first = false;
    }
    kind
}

/// Go's `filepath.Clean` for slash-separated paths.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Parses a `.dockerignore` file into patterns, as Docker's `ReadAll`
/// does: `#` comment lines and blank lines dropped, whitespace trimmed.
pub fn parse_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A compiled pattern list.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Compiles patterns (in order; `!` marks exceptions).
    ///
    /// # Errors
    /// [`Error::BadPattern`] for the first malformed pattern.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, Error> {
        let mut out = Vec::new();
        for p in patterns {
            if let Some(p) = Pattern::new(p.as_ref())? {
                out.push(p);
            }
        }
        Ok(Matcher { patterns: out })
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is excluded: Docker's
    /// `MatchesOrParentMatches`.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./");
        let parent_dirs: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(path);
            if !m {
                for i in 0..parent_dirs.len() {
                    if p.matches(&parent_dirs[..=i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether the walk must enter the excluded directory `dir` because an
    /// exception might re-include something below it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.patterns
            .iter()
            .any(|p| p.exclusion && p.glob.could_match_below(&prefix))
    }

    /// The decision for a walk: `(excluded, descend)` for a directory.
    pub fn dir_decision(&self, dir: &str) -> (bool, bool) {
        if !self.is_excluded(dir) {
            return (false, true);
        }
        (true, self.may_include_below(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[&str]) -> Matcher {
        Matcher::new(p).unwrap()
    }

    #[test]
    fn docker_docs_examples() {
        // https://docs.docker.com/build/building/context/#dockerignore-files
        let ig = m(&["# comment", "*/temp*", "*/*/temp*", "temp?"]);
        assert!(ig.is_excluded("somedir/temporary.txt"));
        assert!(ig.is_excluded("somedir/temp"));
        assert!(ig.is_excluded("somedir/subdir/temporary.txt"));
        assert!(ig.is_excluded("tempa"));
        assert!(ig.is_excluded("tempb"));
        assert!(!ig.is_excluded("temporary.txt"));
        assert!(!ig.is_excluded("temp"));

        let ig = m(&["*.md", "!README.md"]);
        assert!(ig.is_excluded("CHANGES.md"));
        assert!(!ig.is_excluded("README.md"));

        let ig = m(&["*.md", "!README*.md", "README-secret.md"]);
        assert!(ig.is_excluded("README-secret.md"));
        assert!(!ig.is_excluded("README-public.md"));
        assert!(ig.is_excluded("other.md"));

        let ig = m(&["*.md", "README-secret.md", "!README*.md"]);
        assert!(!ig.is_excluded("README-secret.md"));

        let ig = m(&["**/*.go"]);
        assert!(ig.is_excluded("a.go"));
        assert!(ig.is_excluded("x/y/z.go"));
    }

    #[test]
    fn pattern_table() {
        // (patterns, path, excluded) — moby/patternmatcher's TestMatches
        // and friends.
        let table: &[(&[&str], &str, bool)] = &[
            (&["fileutils.go"], "fileutils.go", true),
            (&["/fileutils.go"], "fileutils.go", true),
            (&["./fileutils.go"], "fileutils.go", true),
            (&["*.go"], "fileutils.go", true),
            (&["*.go"], "dir/fileutils.go", false),
            (&["**"], "file", true),
            (&["**"], "file/", true),
            (&["**/"], "file", true),
            (&["**/"], "dir/file", true),
            (&["**/*"], "dir/file", true),
            (&["dir/**"], "dir/file", true),
            (&["dir/**"], "dir/dir2/file", true),
            (&["dir/**"], "dir", false),
            (&["**/file"], "file", true),
            (&["**/file"], "dir/file", true),
            (&["**/file"], "dir/dir/file", true),
            (&["**/file*"], "dir/dir/file.txt", true),
            (&["**/file*txt"], "dir/dir/file.txt", true),
            (&["**/file*.txt"], "dir/dir/file.txt", true),
            (&["**/**/*.txt"], "dir/dir/file.txt", true),
            (&["**/**/*.txt2"], "dir/dir/file.txt", false),
            (&["**/*.txt"], "file.txt", true),
            (&["**/**/*.txt"], "file.txt", true),
            (&["a**/*.txt"], "a/file.txt", true),
            (&["a**/*.txt"], "a/dir/file.txt", true),
            (&["a**/*.txt"], "a/dir/dir/file.txt", true),
            (&["a/*.txt"], "a/dir/file.txt", false),
            (&["a/*.txt"], "a/file.txt", true),
            (&["a/*.txt**"], "a/file.txt", true),
            (&["a[b-d]e"], "ae", false),
            (&["a[b-d]e"], "ace", true),
            (&["a[b-d]e"], "aae", false),
            (&["a[^b-d]e"], "aze", true),
            (&[".*"], ".foo", true),
            (&[".*"], "foo", false),
            (&["abc.def"], "abcdef", false),
            (&["abc.def"], "abc.def", true),
            (&["abc.def"], "abcZdef", false),
            (&["abc?def"], "abcZdef", true),
            (&["abc?def"], "abcdef", false),
            (&["a\\\\"], "a\\", true),
            (&["**/foo/bar"], "foo/bar", true),
            (&["**/foo/bar"], "dir/foo/bar", true),
            (&["**/foo/bar"], "dir/dir2/foo/bar", true),
            (&["abc/**"], "abc", false),
            (&["abc/**"], "abc/def", true),
            (&["abc/**"], "abc/def/ghi", true),
            (&["**/.foo"], ".foo", true),
            (&["**/.foo"], "bar.foo", false),
            (&["a(b)c/def"], "a(b)c/def", true),
            (&["a(b)c/def"], "a(b)c/xyz", false),
            (&["a.|)$(}+{bc"], "a.|)$(}+{bc", true),
            (
                &["dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            // parents
            (&["dir"], "dir/file", true),
            (&["dir"], "dir/sub/file", true),
            (&["dir/"], "dir/file", true),
            (&["dir", "!dir/keep"], "dir/keep", false),
            (&["dir", "!dir/keep"], "dir/other", true),
            (&["dir", "!dir/keep"], "dir/keep/inner", false),
            (&["*", "!keep"], "keep", false),
            (&["*", "!keep"], "other", true),
            (&["!keep"], "other", false),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["../x"], "x", false),
        ];
        for (patterns, path, want) in table {
            assert_eq!(
                m(patterns).is_excluded(path),
                *want,
                "patterns {patterns:?} on {path:?}"
            );
        }
    }

    #[test]
    fn walking_into_excluded_dirs_only_when_an_exception_could_match() {
        let ig = m(&["dir", "!dir/keep"]);
        assert_eq!(ig.dir_decision("dir"), (true, true));
        assert_eq!(ig.dir_decision("other"), (false, true));
        let ig = m(&["dir", "!other/keep"]);
        assert_eq!(ig.dir_decision("dir"), (true, false));
        let ig = m(&["*", "!**/*.rs"]);
        assert_eq!(ig.dir_decision("src"), (true, true));
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("./a/../b/"), "b");
        assert_eq!(clean("/a//b/."), "/a/b");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean(""), ".");
        assert!(Matcher::new(&["[a"]).is_err());
        assert_eq!(parse_file("# c\n\n a \n!b\n"), vec!["a", "!b"]);
    }
}
