//! Whether bake runs inside a user namespace (rootless mode, see the cli's
//! `rootless` module). There "root" cannot set `trusted.*` xattrs, so overlay
//! metadata goes in `user.overlay.*` (the kernel's `userxattr` mount option, which
//! the runner sets in the same case), and the store's default home is the user's.

use std::sync::OnceLock;

/// True unless `/proc/self/uid_map` is the initial namespace's identity map of every
/// id. Read once: a process never changes user namespace after bake's start.
pub fn in_user_namespace() -> bool {
    static IN: OnceLock<bool> = OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| !is_initial_map(&map))
    })
}

/// Whether a `uid_map` is the initial user namespace's: `0 0 4294967295` (pure).
pub fn is_initial_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_initial_map() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("         0       1000          1\n"));
        assert!(!is_initial_map(
            "         0       1000          1\n         1     100000      65536\n"
        ));
    }
}
