//! ADD of local tar archives: detection by content and a safe extractor.
//!
//! Never `tar::Archive::unpack`: every entry is placed beneath the
//! destination with [`crate::beneath`], `..` and absolute names cannot
//! leave it, hard link targets are resolved the same way, and an existing
//! destination directory keeps its own metadata (the archive's `.` entry is
//! skipped, as Docker does).
//!
//! A file's `security.capability` (PAX `SCHILY.xattr.security.capability`,
//! what `tar --xattrs` and Go's archive/tar write) is applied after its
//! owner, as moby's `archive.Untar` (which BuildKit's ADD uses) does:
//! chown(2) would clear it. Other xattrs are not carried, like layers
//! (`bake_store::layer` keeps only capabilities).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bake_store::layer::{CAPABILITY_XATTR, PAX_XATTR_PREFIX};

use crate::beneath;

/// Why an archive cannot be extracted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the archive failed.
    #[error("reading archive {path:?}")]
    Read {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing an entry failed.
    #[error("extracting {entry:?} into {dest:?}")]
    Write {
        /// The entry name.
        entry: String,
        /// The destination.
        dest: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Resolving an entry beneath the destination failed.
    #[error(transparent)]
    Resolve(#[from] beneath::Error),
}

/// A compression detected by magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

/// Whether `path` is a tar archive (possibly compressed), by content.
///
/// # Errors
/// When the file cannot be read.
pub fn detect(path: &Path) -> Result<Option<Compression>, Error> {
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read)?;
    let mut head = [0u8; 512];
    let n = read_full(&mut f, &mut head).map_err(read)?;
    let head = &head[..n];
    let c = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if is_tar_header(head) {
        return Ok(Some(Compression::None));
    } else {
        return Ok(None);
    };
    // A compressed file is an archive only if it holds a tar.
    let mut r = decompress(File::open(path).map_err(read)?, c).map_err(read)?;
    let mut inner = [0u8; 512];
    let n = read_full(&mut r, &mut inner).unwrap_or(0);
    Ok(is_tar_header(&inner[..n]).then_some(c))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn is_tar_header(h: &[u8]) -> bool {
    if h.len() < 512 {
        return false;
    }
    if &h[257..262] == b"ustar" {
        return true;
    }
    // Old v7 tar: the checksum must add up.
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    let field = std::str::from_utf8(&h[148..156]).unwrap_or("");
    let field = field.trim_matches(|c: char| c == '\0' || c == ' ');
    u32::from_str_radix(field, 8).is_ok_and(|v| v == sum && sum != 256)
}

fn decompress(f: File, c: Compression) -> io::Result<Box<dyn Read>> {
    let f = BufReader::new(f);
    Ok(match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(f)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(f, true)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(f)?),
    })
}

/// Extracts the archive at `path` into the existing directory `dest`.
///
/// # Errors
/// Unreadable or corrupt archives, write failures.
pub fn extract(path: &Path, dest: &Path) -> Result<(), Error> {
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let c = detect(path)?.unwrap_or(Compression::None);
    let r = decompress(File::open(path).map_err(read)?, c).map_err(read)?;
    let mut ar = tar::Archive::new(r);
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    for entry in ar.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let werr = |source| Error::Write {
            entry: name.clone(),
            dest: dest.to_path_buf(),
            source,
        };
        let rel = beneath::resolve_beneath(dest, &name, false)?;
        if rel.is_empty() {
            continue; // `.`: the destination keeps its metadata
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            if !parent.exists() {
                fs::create_dir_all(parent).map_err(werr)?;
            }
        }
        let h = entry.header().clone();
        let kind = h.entry_type();
        let mode = h.mode().map_err(read)? & 0o7777;
        let (uid, gid) = (h.uid().map_err(read)? as u32, h.gid().map_err(read)? as u32);
        let mtime = h.mtime().unwrap_or(0);
        let existing = fs::symlink_metadata(&target).ok();
        if kind.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&target).map_err(werr)?;
                    fs::create_dir(&target).map_err(werr)?;
                }
                None => fs::create_dir(&target).map_err(werr)?,
            }
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(werr)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(werr)?;
            dirs.push((target, mtime));
            continue;
        }
        if let Some(m) = existing {
            if m.is_dir() {
                fs::remove_dir_all(&target).map_err(werr)?;
            } else {
                fs::remove_file(&target).map_err(werr)?;
            }
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let src = beneath::host_path(dest, &link, false)?;
            fs::hard_link(&src, &target).map_err(werr)?;
            continue;
        }
        if kind.is_symlink() {
            let link = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            std::os::unix::fs::symlink(&link, &target).map_err(werr)?;
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(werr)?;
            set_mtime(&target, mtime).map_err(werr)?;
            continue;
        }
        if kind.is_file() || kind.is_contiguous() {
            let cap = file_capability(&mut entry).map_err(read)?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&target)
                .map_err(werr)?;
            io::copy(&mut entry, &mut f).map_err(werr)?;
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(werr)?;
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(werr)?;
            if let Some(cap) = cap {
                // Best effort like moby's `BestEffortXattrs` (EPERM, ENOTSUP).
                match rustix::fs::fsetxattr(
                    &f,
                    CAPABILITY_XATTR,
                    &cap,
                    rustix::fs::XattrFlags::empty(),
                ) {
                    Ok(()) | Err(rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP) => {}
                    Err(e) => return Err(werr(e.into())),
                }
            }
            drop(f);
            set_mtime(&target, mtime).map_err(werr)?;
            continue;
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let fmt = if kind.is_character_special() {
                libc::S_IFCHR
            } else if kind.is_block_special() {
                libc::S_IFBLK
            } else {
                libc::S_IFIFO
            };
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            let dev = libc::makedev(major, minor);
            let p = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
                .map_err(|e| werr(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
            // SAFETY: a valid NUL-terminated path; no memory effects.
            if unsafe { libc::mknod(p.as_ptr(), fmt | mode, dev) } != 0 {
                return Err(werr(io::Error::last_os_error()));
            }
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(werr)?;
            continue;
        }
        // pax/GNU metadata entries are consumed by `entries()`; others
        // (sockets, unknown types) are skipped like Docker does.
    }
    for (d, mtime) in dirs.iter().rev() {
        set_mtime(d, *mtime).map_err(|source| Error::Write {
            entry: d.display().to_string(),
            dest: dest.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// The `security.capability` value an entry's PAX records carry, if any.
fn file_capability<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<Vec<u8>>> {
    let Some(records) = entry.pax_extensions()? else {
        return Ok(None);
    };
    for record in records {
        let record = record?;
        let key = record.key_bytes();
        if key.strip_prefix(PAX_XATTR_PREFIX.as_bytes()) == Some(CAPABILITY_XATTR.as_bytes()) {
            return Ok(Some(record.value_bytes().to_vec()));
        }
    }
    Ok(None)
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let t = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}
