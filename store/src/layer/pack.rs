//! Directory → deterministic tar.
//!
//! Determinism is what makes a rebuild produce the same diff id: entries are
//! emitted depth-first with each directory's children sorted by name bytes
//! (a directory before its contents, like docker's walk), headers carry only
//! numeric owners, permission bits and the mtime (clamped to
//! `SOURCE_DATE_EPOCH` when given), never atime/ctime, user or group names.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::hash_pipe::HashPipe;
use super::{Error, Tarball, CAPABILITY_XATTR, OPAQUE_MARKER, PAX_XATTR_PREFIX, WHITEOUT_PREFIX};

/// Writes the tree under `dir` (not `dir` itself) as a tar stream to `out`,
/// streaming file contents, and returns the stream's sha256 and length.
///
/// Overlay-format input is converted to OCI form: a char device 0/0 `x`
/// becomes an empty `.wh.x`, a directory with `trusted.overlay.opaque=y`
/// gets a `.wh..wh..opq` entry right after it. Files sharing an inode become
/// hard links to the first path in walk order. Sockets are skipped, as
/// docker does.
///
/// # Errors
/// [`Error::Read`] for an unreadable file, [`Error::Changed`] for a file that
/// shrank meanwhile, [`Error::Write`] when `out` fails.
pub fn pack(dir: &Path, epoch: Option<i64>, out: impl Write) -> Result<Tarball, Error> {
    // The sha256 runs on a second thread while this one walks and reads.
    std::thread::scope(|scope| {
        let mut packer = Packer {
            builder: tar::Builder::new(HashPipe::new(scope, out)),
            epoch,
            inodes: HashMap::new(),
        };
        packer.dir(dir, &mut Vec::new())?;
        let end_err = |source| Error::Write {
            entry: "(end of archive)".into(),
            source,
        };
        let writer = packer.builder.into_inner().map_err(end_err)?;
        let (diff_id, size) = writer.finish().map_err(end_err)?;
        Ok(Tarball { diff_id, size })
    })
}

struct Packer<W: Write> {
    builder: tar::Builder<W>,
    epoch: Option<i64>,
    /// (dev, ino) → tar name of the first path seen, for hard links.
    inodes: HashMap<(u64, u64), Vec<u8>>,
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

impl<W: Write> Packer<W> {
    /// Emits the children of `dir`, whose tar name prefix is `prefix`
    /// (empty or ending in `/`).
    fn dir(&mut self, dir: &Path, prefix: &mut Vec<u8>) -> Result<(), Error> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_err(dir))? {
            names.push(entry.map_err(read_err(dir))?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
            let base = prefix.len();
            prefix.extend_from_slice(name.as_bytes());
            self.entry(&path, &meta, prefix, name.as_bytes())?;
            prefix.truncate(base);
        }
        Ok(())
    }

    fn header(&self, kind: EntryType, meta: &Metadata) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        let mtime = match self.epoch {
            Some(epoch) => meta.mtime().min(epoch),
            None => meta.mtime(),
        };
        // Headers cannot hold times before 1970; nothing real needs them.
        h.set_mtime(mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    fn append(&mut self, h: &mut Header, name: &[u8], data: impl Read) -> Result<(), Error> {
        self.builder
            .append_data(h, Path::new(OsStr::from_bytes(name)), data)
            .map_err(|source| Error::Write {
                entry: String::from_utf8_lossy(name).into_owned(),
                source,
            })
    }

    fn append_link(&mut self, h: &mut Header, name: &[u8], target: &[u8]) -> Result<(), Error> {
        self.builder
            .append_link(
                h,
                Path::new(OsStr::from_bytes(name)),
                Path::new(OsStr::from_bytes(target)),
            )
            .map_err(|source| Error::Write {
                entry: String::from_utf8_lossy(name).into_owned(),
                source,
            })
    }

    /// Emits one entry; `name` is its tar path (without a trailing `/`) and
    /// `file_name` the last component.
    fn entry(
        &mut self,
        path: &Path,
        meta: &Metadata,
        name: &mut Vec<u8>,
        file_name: &[u8],
    ) -> Result<(), Error> {
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = self.header(EntryType::Directory, meta);
            name.push(b'/');
            self.append(&mut h, name, io::empty())?;
            if xattr::get(path, super::opaque_xattr())
                .map_err(read_err(path))?
                .is_some_and(|v| v == b"y")
            {
                // Like docker: a regular file inheriting the dir's owner,
                // permission bits and (clamped) mtime.
                let mut h = self.header(EntryType::Regular, meta);
                h.set_mode(meta.mode() & 0o777);
                let marker = [name.as_slice(), OPAQUE_MARKER.as_bytes()].concat();
                self.append(&mut h, &marker, io::empty())?;
            }
            return self.dir(path, name);
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.inodes.get(&key).cloned() {
                    let mut h = self.header(EntryType::Link, meta);
                    return self.append_link(&mut h, name, &first);
                }
                self.inodes.insert(key, name.clone());
            }
            let mut h = self.header(EntryType::Regular, meta);
            h.set_size(meta.len());
            if let Some(cap) = xattr::get(path, CAPABILITY_XATTR).map_err(read_err(path))? {
                let key = format!("{PAX_XATTR_PREFIX}{CAPABILITY_XATTR}");
                self.builder
                    .append_pax_extensions([(key.as_str(), cap.as_slice())])
                    .map_err(|source| Error::Write {
                        entry: String::from_utf8_lossy(name).into_owned(),
                        source,
                    })?;
            }
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(read_err(path))?;
            let data = Exact {
                file: file.take(meta.len()),
                path: path.to_path_buf(),
            };
            return self.append(&mut h, name, data);
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(read_err(path))?;
            let mut h = self.header(EntryType::Symlink, meta);
            return self.append_link(&mut h, name, target.as_os_str().as_bytes());
        }
        let (kind, rdev) = if ft.is_char_device() {
            (EntryType::Char, meta.rdev())
        } else if ft.is_block_device() {
            (EntryType::Block, meta.rdev())
        } else if ft.is_fifo() {
            (EntryType::Fifo, 0)
        } else {
            // Sockets belong to a running process, not to an image.
            return Ok(());
        };
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        if kind == EntryType::Char && major == 0 && minor == 0 {
            let mut h = self.header(EntryType::Regular, meta);
            h.set_mode(0o600);
            name.truncate(name.len() - file_name.len());
            name.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
            name.extend_from_slice(file_name);
            return self.append(&mut h, name, io::empty());
        }
        let mut h = self.header(kind, meta);
        if kind != EntryType::Fifo {
            let dev_err = |source| Error::Write {
                entry: String::from_utf8_lossy(name).into_owned(),
                source,
            };
            h.set_device_major(major).map_err(dev_err)?;
            h.set_device_minor(minor).map_err(|source| Error::Write {
                entry: String::from_utf8_lossy(name).into_owned(),
                source,
            })?;
        }
        self.append(&mut h, name, io::empty())
    }
}

/// A file's content limited to the size in its header; a file that shrank
/// since `stat` is an error rather than a corrupt archive.
struct Exact {
    file: io::Take<File>,
    path: PathBuf,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && !buf.is_empty() && self.file.limit() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while packing", self.path.display()),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn entries(tar: &[u8]) -> Vec<(String, EntryType, u64)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                (
                    name,
                    e.header().entry_type(),
                    e.header().mode().unwrap() as u64,
                )
            })
            .collect()
    }

    #[test]
    fn order_names_and_modes_are_docker_like() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/b/f"), b"x").unwrap();
        fs::write(r.join("a-b"), b"y").unwrap();
        fs::write(r.join("Z"), b"z").unwrap();
        fs::set_permissions(r.join("Z"), fs::Permissions::from_mode(0o4755)).unwrap();
        symlink("/etc/passwd", r.join("link")).unwrap();
        fs::hard_link(r.join("a-b"), r.join("hard")).unwrap();
        let mut out = Vec::new();
        let t = pack(r, Some(0), &mut out).unwrap();
        assert_eq!(t.size, out.len() as u64);
        assert_eq!(t.diff_id, crate::oci::Digest::of(&out));
        let names: Vec<_> = entries(&out).into_iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(
            names,
            vec![
                ("Z".into(), EntryType::Regular),
                ("a/".into(), EntryType::Directory),
                ("a/b/".into(), EntryType::Directory),
                ("a/b/f".into(), EntryType::Regular),
                ("a-b".into(), EntryType::Regular),
                ("hard".into(), EntryType::Link),
                ("link".into(), EntryType::Symlink),
            ]
        );
        assert_eq!(entries(&out)[0].2, 0o4755);
        let mut a = tar::Archive::new(&out[..]);
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0, "epoch clamps mtimes");
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
        }
    }

    #[test]
    fn same_tree_same_digest_and_epoch_only_clamps() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), b"x").unwrap();
        let a = pack(d.path(), None, io::sink()).unwrap();
        let b = pack(d.path(), None, io::sink()).unwrap();
        assert_eq!(a, b);
        // An epoch in the future changes nothing.
        let c = pack(d.path(), Some(i64::MAX), io::sink()).unwrap();
        assert_eq!(a, c);
        let e = pack(d.path(), Some(1), io::sink()).unwrap();
        assert_ne!(a, e);
    }

    #[test]
    fn long_names_survive() {
        let d = tempfile::tempdir().unwrap();
        let deep = "d".repeat(90) + "/" + &"e".repeat(90) + "/" + &"f".repeat(150);
        fs::create_dir_all(d.path().join(&deep).parent().unwrap()).unwrap();
        fs::write(d.path().join(&deep), b"x").unwrap();
        symlink("t".repeat(200), d.path().join("l")).unwrap();
        let mut out = Vec::new();
        pack(d.path(), None, &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let found: Vec<_> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    e.link_name_bytes().map(|l| l.len()),
                )
            })
            .collect();
        assert!(found.contains(&(deep.clone(), None)), "{found:?}");
        assert!(found.contains(&("l".into(), Some(200))));
    }
}
