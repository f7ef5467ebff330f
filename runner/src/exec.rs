//! The last step inside the sandbox: complete the environment, find argv\[0\] in the
//! container's `PATH`, execve.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::Error;

/// Docker's default `PATH`, used when the plan's environment has none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `env` plus `PATH` and `HOME` when they are absent (as Docker does).
pub(crate) fn complete_env(env: &[String], home: &str) -> Vec<String> {
    let has = |key: &str| {
        env.iter()
            .any(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == key)
    };
    let mut out = env.to_vec();
    if !has("PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

/// The value of `key` in a `K=V` list (the last one wins, like a shell).
fn get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Where argv\[0\] is: itself if it contains a `/`, else the first executable regular file
/// named so in the `PATH` of `env` (an empty `PATH` entry means the working directory,
/// like Go's `exec.LookPath`, which Docker uses).
pub(crate) fn lookup(
    arg0: &str,
    env: &[String],
    is_executable: impl Fn(&Path) -> bool,
) -> Result<PathBuf, Error> {
    if arg0.is_empty() {
        return Err(Error::NotFound(arg0.to_string()));
    }
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = get(env, "PATH").unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| Error::NotFound(arg0.to_string()))
}

/// A regular file with an execute bit that `access(X_OK)` accepts for the current user.
pub(crate) fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    meta.is_file()
        && meta.permissions().mode() & 0o111 != 0
        && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

fn cstring(s: &[u8]) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::InvalidPlan {
        message: format!("{:?} contains a NUL byte", String::from_utf8_lossy(s)),
    })
}

/// Replaces the process with `args` (resolved with [`lookup`]) and `env`.
/// Only returns on failure: ENOENT → [`Error::NotFound`], EACCES/ENOEXEC/EISDIR →
/// [`Error::NotExecutable`] (Docker's 127 and 126).
pub(crate) fn execve(args: &[String], env: &[String]) -> Error {
    let Some(arg0) = args.first() else {
        return Error::InvalidPlan {
            message: "empty argv".into(),
        };
    };
    let result = (|| {
        let path = lookup(arg0, env, is_executable)?;
        let path = cstring(path.as_os_str().as_bytes())?;
        let argv = args
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .iter()
            .map(|e| cstring(e.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let errno = nix::unistd::execve(&path, &argv, &envp).unwrap_err();
        Err(match errno {
            Errno::ENOENT | Errno::ENOTDIR => Error::NotFound(arg0.clone()),
            Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => {
                Error::NotExecutable(arg0.clone())
            }
            source => Error::Exec {
                arg: arg0.clone(),
                source,
            },
        })
    })();
    match result {
        Ok(()) => unreachable!("execve returned without an error"),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_path_and_home_only_when_absent() {
        let out = complete_env(&env(&["A=1"]), "/root");
        assert_eq!(
            out,
            env(&["A=1", &format!("PATH={DEFAULT_PATH}"), "HOME=/root"])
        );
        let out = complete_env(&env(&["PATH=/x", "HOME=/h"]), "/root");
        assert_eq!(out, env(&["PATH=/x", "HOME=/h"]));
        // A key that merely starts with PATH is not PATH.
        assert_eq!(complete_env(&env(&["PATHX=1"]), "/").len(), 3);
    }

    #[test]
    fn lookup_walks_path_in_order() {
        let e = env(&["PATH=/a:/b:/c"]);
        let found = lookup("sh", &e, |p| {
            p == Path::new("/b/sh") || p == Path::new("/c/sh")
        });
        assert_eq!(found.unwrap(), PathBuf::from("/b/sh"));
    }

    #[test]
    fn lookup_keeps_paths_with_a_slash_and_uses_default_path() {
        assert_eq!(lookup("./x", &[], |_| false).unwrap(), PathBuf::from("./x"));
        let found = lookup("ls", &[], |p| p == Path::new("/bin/ls")).unwrap();
        assert_eq!(found, PathBuf::from("/bin/ls"));
    }

    #[test]
    fn lookup_empty_entry_is_cwd_and_missing_is_not_found() {
        let e = env(&["PATH=:/a"]);
        assert_eq!(
            lookup("x", &e, |p| p == Path::new("./x")).unwrap(),
            PathBuf::from("./x")
        );
        assert!(matches!(lookup("nope", &e, |_| false), Err(Error::NotFound(n)) if n == "nope"));
        assert!(matches!(lookup("", &e, |_| true), Err(Error::NotFound(_))));
    }
}
