//! POSIX path arithmetic for paths inside the image (never host paths), with
//! Go's `path.Clean`/`path.Join` semantics that BuildKit relies on.

/// `path.Clean`: no `.`, no `..` that can be resolved, no double or
/// trailing slashes. An absolute path stays absolute; `..` never climbs
/// above `/`.
pub(crate) fn clean(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// `p` made absolute against `dir` (already absolute), cleaned.
pub(crate) fn absolute(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean(p)
    } else {
        clean(&format!("{dir}/{p}"))
    }
}

/// The last element of a path (`path.Base`).
pub(crate) fn base(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// The directory of a path (`path.Dir`).
pub(crate) fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean(&p[..=i]),
        None => ".".to_string(),
    }
}

/// A COPY/ADD destination: absolute against WORKDIR; a trailing `/` (or a
/// destination of `.` or nothing) means "into this directory" and is kept.
pub(crate) fn destination(workdir: &str, dest: &str) -> String {
    let into_dir = dest.is_empty() || dest == "." || dest.ends_with('/');
    let mut out = if dest.starts_with('/') {
        dest.to_string()
    } else {
        absolute(workdir, dest)
    };
    if into_dir && !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_table() {
        let cases = [
            ("/", "/"),
            ("/a/b/", "/a/b"),
            ("/a/./b/../c", "/a/c"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("", "."),
            ("//a//b", "/a/b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input}");
        }
    }

    #[test]
    fn destinations() {
        let cases = [
            ("/second", ".", "/second/"),
            ("/second", "./", "/second/"),
            ("/", "x", "/x"),
            ("/w", "sub/", "/w/sub/"),
            ("/w", "/abs/", "/abs/"),
            ("/w", "/abs", "/abs"),
            ("/w", "../up", "/up"),
        ];
        for (wd, dest, want) in cases {
            assert_eq!(destination(wd, dest), want, "{wd} {dest}");
        }
    }

    #[test]
    fn base_and_dir() {
        assert_eq!(base("/v2/"), "v2");
        assert_eq!(base("/"), "/");
        assert_eq!(base("a.txt"), "a.txt");
        assert_eq!(dir("/etc/foo"), "/etc");
        assert_eq!(dir("/foo"), "/");
    }
}
