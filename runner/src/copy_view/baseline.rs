//! The baseline: what each path of a copied tree was when it was last synced, so that a
//! sync writes into the upper dir only what the container changed.
//!
//! Kept next to the tree as `<tree>.baseline`, one line per path (`ino btime ctime size
//! mode uid gid in_lower path`, the path with bytes outside printable ASCII escaped), so
//! a second process (`bake commit` of a running container) can sync the same tree.
//!
//! Why a change always shows: ctime moves on every write, chmod, chown, link, rename,
//! xattr change and `touch -d`, and it is taken from the coarse clock. So a baseline is
//! only trusted for entries whose ctime is older than the coarse clock when they were
//! read: a writable tree's baseline is saved only once the clock has passed the tree's
//! newest ctime ([`wait_past`]); a sync of a running container, which cannot wait for the container,
//! marks the entries it read in the current tick *racy* ([`Baseline::mark_racy`]), so
//! that the next sync copies them again (git's "racily clean" index entries).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rustix::fs::Statx;

use crate::Error;

/// One path as last seen. A change of `ino`/`btime`/type is a new node; of `ctime`,
/// `size`, `mode`, `uid` or `gid` a changed one (ctime moves on every write, chmod,
/// chown, link, rename).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    ino: u64,
    btime: (i64, u32),
    ctime: (i64, u32),
    size: u64,
    /// `st_mode`, type included; 0 for a hidden path (see [`Entry::hidden`]).
    mode: u32,
    uid: u32,
    gid: u32,
    /// The lowers have this path: deleting it needs a whiteout, a new directory here is
    /// opaque.
    pub in_lower: bool,
}

impl Entry {
    /// The entry for a node as `st` shows it.
    pub(crate) fn of(st: &Statx, in_lower: bool) -> Entry {
        Entry {
            ino: st.stx_ino,
            btime: (st.stx_btime.tv_sec, st.stx_btime.tv_nsec),
            ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
            size: st.stx_size,
            mode: st.stx_mode.into(),
            uid: st.stx_uid,
            gid: st.stx_gid,
            in_lower,
        }
    }

    /// A path of the lowers that the upper dir whites out: not in the tree, but
    /// something new there must hide the lowers' node.
    pub(crate) fn hidden() -> Entry {
        Entry {
            ino: 0,
            btime: (0, 0),
            ctime: (0, 0),
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            in_lower: true,
        }
    }

    /// See [`Entry::hidden`].
    pub(crate) fn is_hidden(&self) -> bool {
        self.mode == 0
    }

    /// The same inode of the same type (not a new node that reused the number).
    pub(crate) fn same_node(&self, st: &Statx) -> bool {
        !self.is_hidden()
            && self.ino == st.stx_ino
            && self.btime == (st.stx_btime.tv_sec, st.stx_btime.tv_nsec)
            && self.mode & libc::S_IFMT == u32::from(st.stx_mode) & libc::S_IFMT
    }

    /// The same node, untouched since.
    pub(crate) fn unchanged(&self, st: &Statx) -> bool {
        self.same_node(st) && *self == Entry::of(st, self.in_lower)
    }

    /// The ctime, for waiting until the clock has passed it.
    pub(crate) fn ctime(&self) -> (i64, u32) {
        self.ctime
    }
}

/// The ctime a racy entry is given: no node has it, so the entry never reads as
/// unchanged, while its inode, birth time and type still say which node it is.
const RACY_CTIME: (i64, u32) = (i64::MIN, 0);

/// `CLOCK_REALTIME_COARSE` as (seconds, nanoseconds): what ctime updates read.
pub(crate) fn coarse_now() -> (i64, u32) {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    (now.tv_sec, now.tv_nsec as u32)
}

/// Sleeps until the coarse clock is past `ctime` (at most about a second: a ctime in
/// the future, from a clock set back, is not waited for).
pub(crate) fn wait_past(ctime: Option<(i64, u32)>) {
    let Some(ctime) = ctime else { return };
    for _ in 0..1000 {
        if coarse_now() > ctime {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Every path of a tree (relative, no leading `/`; the root itself is not recorded).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Baseline {
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

/// `dir/name`, or `name` at the root.
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + name.len() + 1);
    p.extend_from_slice(dir);
    if !dir.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Where the baseline of `tree` lives.
pub(crate) fn path_of(tree: &Path) -> PathBuf {
    let mut name = tree.file_name().unwrap_or_default().to_os_string();
    name.push(".baseline");
    tree.with_file_name(name)
}

/// The lock file that serialises syncs of `tree`.
pub(crate) fn lock_path_of(tree: &Path) -> PathBuf {
    let mut name = tree.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    tree.with_file_name(name)
}

fn escape(path: &[u8], out: &mut String) {
    for &b in path {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hex = text.get(i + 2..i + 4)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

impl Baseline {
    /// The direct children of `dir` (`""`: the root) with their paths.
    pub(crate) fn children(&self, dir: &[u8]) -> Vec<(Vec<u8>, Entry)> {
        let prefix = if dir.is_empty() {
            Vec::new()
        } else {
            join(dir, b"")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains(&b'/'))
            .map(|(k, e)| (k.clone(), *e))
            .collect()
    }

    /// The text form.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        for (path, e) in &self.entries {
            let _ = write!(
                out,
                "{} {} {} {} {} {} {} {:o} {} {} {} ",
                e.ino,
                e.btime.0,
                e.btime.1,
                e.ctime.0,
                e.ctime.1,
                e.size,
                e.uid,
                e.mode,
                e.gid,
                u8::from(e.in_lower),
                path.len()
            );
            escape(path, &mut out);
            out.push('\n');
        }
        out
    }

    /// Marks every entry whose ctime is not older than `start` (the coarse clock before
    /// the entries were read) racy: the node may change again within the same clock tick
    /// without its ctime moving, so the next sync must not take it for unchanged.
    pub(crate) fn mark_racy(&mut self, start: (i64, u32)) {
        for e in self.entries.values_mut() {
            if !e.is_hidden() && e.ctime >= start {
                e.ctime = RACY_CTIME;
            }
        }
    }

    /// The newest ctime of the entries.
    pub(crate) fn newest_ctime(&self) -> Option<(i64, u32)> {
        self.entries.values().map(Entry::ctime).max()
    }

    /// Writes the text form to `path` (through a temporary name, renamed into place).
    ///
    /// # Errors
    /// [`Error::CopyView`] naming the file.
    pub(crate) fn save(&self, path: &Path) -> Result<(), Error> {
        let tmp = path.with_extension("baseline-new");
        let fail = super::io_err("writing", path);
        std::fs::write(&tmp, self.encode()).map_err(&fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }

    /// Reads the text form; `None` for anything it did not write.
    pub(crate) fn decode(text: &str) -> Option<Baseline> {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(12, ' ').collect();
            if f.len() != 12 {
                return None;
            }
            let n = |i: usize| f[i].parse::<u64>().ok();
            let s = |i: usize| f[i].parse::<i64>().ok();
            let path = unescape(f[11])?;
            if n(10)? != path.len() as u64 {
                return None;
            }
            // Relative, one name per component: a sync joins these to directory fds.
            if path
                .split(|b| *b == b'/')
                .any(|c| c.is_empty() || c == b"." || c == b"..")
            {
                return None;
            }
            let entry = Entry {
                ino: n(0)?,
                btime: (s(1)?, f[2].parse().ok()?),
                ctime: (s(3)?, f[4].parse().ok()?),
                size: n(5)?,
                uid: f[6].parse().ok()?,
                mode: u32::from_str_radix(f[7], 8).ok()?,
                gid: f[8].parse().ok()?,
                in_lower: f[9] == "1",
            };
            entries.insert(path, entry);
        }
        Some(Baseline { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_odd_names() {
        let mut b = Baseline::default();
        let mut e = Entry::hidden();
        e.in_lower = true;
        b.entries.insert(b"a b/\\x\n\xff".to_vec(), e);
        let mut f = Entry::hidden();
        f.mode = 0o100644;
        f.ino = 7;
        f.ctime = (-3, 999_999_999);
        b.entries.insert(b"etc".to_vec(), f);
        assert_eq!(Baseline::decode(&b.encode()), Some(b));
        assert_eq!(Baseline::decode("garbage"), None);
        for bad in ["..", "a/../b", "/etc", "a//b", "."] {
            let mut b = Baseline::default();
            b.entries.insert(bad.as_bytes().to_vec(), Entry::hidden());
            assert_eq!(Baseline::decode(&b.encode()), None, "{bad}");
        }
    }

    #[test]
    fn children_are_direct_only() {
        let mut b = Baseline::default();
        for p in ["a", "a/b", "a/b/c", "a/d", "ab", "e"] {
            b.entries.insert(p.as_bytes().to_vec(), Entry::hidden());
        }
        let names = |d: &str| -> Vec<String> {
            b.children(d.as_bytes())
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect()
        };
        assert_eq!(names(""), ["a", "ab", "e"]);
        assert_eq!(names("a"), ["a/b", "a/d"]);
        assert_eq!(names("a/b"), ["a/b/c"]);
        assert_eq!(path_of(Path::new("/x/tree")), Path::new("/x/tree.baseline"));
    }
}
