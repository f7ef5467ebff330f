//! Content keys for local sources: a hash of exactly the files a COPY
//! selects, and the persistent stat cache that makes re-hashing an
//! unchanged tree a walk of `stat` calls.
//!
//! Each selected entry contributes its path, type, permission bits (left
//! out when `--chmod` overrides them), size, content blake3 and symlink
//! target — never mtimes, owners or unselected files. File contents are
//! hashed in parallel on rayon.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::digest::Key;
use crate::ops::select::Item;

/// Why a content key cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file or link failed.
    #[error("hashing {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the stat cache failed.
    #[error("saving the stat cache {path:?}")]
    Save {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What identifies an unchanged file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }
}

/// path + (dev, ino, size, mtime, ctime) → content blake3, kept in the
/// store at `cache/stat-cache`.
///
/// File format: magic line, then per record: path length (u32 LE), path
/// bytes, dev, ino, size (u64 LE), mtime_ns, ctime_ns (i128 LE), hash (32
/// bytes). A corrupt or foreign file is ignored (it is only a cache).
#[derive(Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    map: Mutex<Map>,
    dirty: Mutex<bool>,
}

/// Path bytes → stamp and hash. Keyed by bytes with a fast non-keyed
/// hash: `Path`'s own `Hash` walks components, and SipHash buys nothing
/// against the caller's own file names; on a 30,000-file context this
/// map is half the cost of a no-op rebuild.
type Map = HashMap<Vec<u8>, (Stamp, [u8; 32]), std::hash::BuildHasherDefault<FastHash>>;

/// FxHash-style: a rotate, xor and multiply per 8 bytes.
#[derive(Default)]
struct FastHash(u64);

impl std::hash::Hasher for FastHash {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

const MAGIC: &[u8] = b"bake-stat-cache-v1\n";

impl StatCache {
    /// An in-memory cache that is never saved.
    pub fn in_memory() -> StatCache {
        StatCache::default()
    }

    /// Loads the cache file (missing or corrupt: starts empty).
    pub fn load(path: &Path) -> StatCache {
        let map = fs::read(path)
            .ok()
            .and_then(|b| decode(&b))
            .unwrap_or_default();
        StatCache {
            path: Some(path.to_path_buf()),
            map: Mutex::new(map),
            dirty: Mutex::new(false),
        }
    }

    /// Writes the cache back if it changed (temp file + rename).
    ///
    /// # Errors
    /// [`Error::Save`].
    pub fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !*self.dirty.lock().expect("stat cache lock") {
            return Ok(());
        }
        let save = |source| Error::Save {
            path: path.clone(),
            source,
        };
        let map = self.map.lock().expect("stat cache lock");
        let mut out = Vec::with_capacity(MAGIC.len() + map.len() * 128);
        out.extend_from_slice(MAGIC);
        for (pb, (s, h)) in map.iter() {
            out.extend_from_slice(&(pb.len() as u32).to_le_bytes());
            out.extend_from_slice(pb);
            out.extend_from_slice(&s.dev.to_le_bytes());
            out.extend_from_slice(&s.ino.to_le_bytes());
            out.extend_from_slice(&s.size.to_le_bytes());
            out.extend_from_slice(&s.mtime_ns.to_le_bytes());
            out.extend_from_slice(&s.ctime_ns.to_le_bytes());
            out.extend_from_slice(h);
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(save)?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let mut f = File::create(&tmp).map_err(save)?;
        f.write_all(&out).map_err(save)?;
        f.sync_all().map_err(save)?;
        fs::rename(&tmp, path).map_err(save)?;
        *self.dirty.lock().expect("stat cache lock") = false;
        Ok(())
    }

    /// Number of remembered files.
    pub fn len(&self) -> usize {
        self.map.lock().expect("stat cache lock").len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content hash of a regular file, from the cache when its stamp
    /// is unchanged. Returns the hash and whether the file was read.
    ///
    /// # Errors
    /// [`Error::Read`].
    pub fn file_hash(&self, path: &Path, meta: &fs::Metadata) -> Result<([u8; 32], bool), Error> {
        let stamp = Stamp::of(meta);
        if let Some((s, h)) = self.map.lock().expect("stat cache lock").get(key(path)) {
            if *s == stamp {
                return Ok((*h, false));
            }
        }
        let read = |source| Error::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut f = File::open(path).map_err(read)?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(read)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let hash = *h.finalize().as_bytes();
        self.map
            .lock()
            .expect("stat cache lock")
            .insert(key(path).to_vec(), (stamp, hash));
        *self.dirty.lock().expect("stat cache lock") = true;
        Ok((hash, true))
    }
}

fn decode(b: &[u8]) -> Option<Map> {
    let mut b = b.strip_prefix(MAGIC)?;
    // Records are ~150 bytes: size the map once.
    let mut map = Map::with_capacity_and_hasher(b.len() / 128, Default::default());
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    let u64_ = |b: &mut &[u8]| take(b, 8).map(|s| u64::from_le_bytes(s.try_into().unwrap()));
    let i128_ = |b: &mut &[u8]| take(b, 16).map(|s| i128::from_le_bytes(s.try_into().unwrap()));
    while !b.is_empty() {
        let n = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        let p = take(&mut b, n)?.to_vec();
        let s = Stamp {
            dev: u64_(&mut b)?,
            ino: u64_(&mut b)?,
            size: u64_(&mut b)?,
            mtime_ns: i128_(&mut b)?,
            ctime_ns: i128_(&mut b)?,
        };
        let h: [u8; 32] = take(&mut b, 32)?.try_into().ok()?;
        map.insert(p, (s, h));
    }
    Some(map)
}

/// One entry's contribution to the key.
fn leaf(
    rel: &str,
    path: &Path,
    meta: &fs::Metadata,
    with_mode: bool,
    cache: &StatCache,
) -> Result<[u8; 32], Error> {
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut h = blake3::Hasher::new();
    h.update(&(rel.len() as u64).to_le_bytes());
    h.update(rel.as_bytes());
    let ft = meta.file_type();
    let kind: u8 = if ft.is_dir() {
        b'd'
    } else if ft.is_symlink() {
        b'l'
    } else if ft.is_file() {
        b'f'
    } else {
        b'o'
    };
    h.update(&[kind]);
    if with_mode && !ft.is_symlink() {
        h.update(&(meta.mode() & 0o7777).to_le_bytes());
    }
    match kind {
        b'f' => {
            h.update(&meta.size().to_le_bytes());
            h.update(&cache.file_hash(path, meta)?.0);
        }
        b'l' => {
            let t = fs::read_link(path).map_err(read)?;
            let t = t.as_os_str().as_encoded_bytes();
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t);
        }
        b'o' => {
            h.update(&(meta.mode() & libc::S_IFMT).to_le_bytes());
            h.update(&meta.rdev().to_le_bytes());
        }
        _ => {}
    }
    Ok(*h.finalize().as_bytes())
}

/// The content key of a selection. `with_mode` is false when `--chmod`
/// replaces the modes anyway.
///
/// # Errors
/// [`Error::Read`].
pub fn selection_key(items: &[Item], with_mode: bool, cache: &StatCache) -> Result<Key, Error> {
    let mut h = blake3::Hasher::new();
    h.update(b"bake.selection.v1\0");
    for item in items {
        // The matched name decides where a file lands; the resolved path
        // says what was read.
        let head = format!("{}\0{}", item.name, item.rel);
        h.update(&leaf(&head, &item.path, &item.meta, with_mode, cache)?);
        let leaves: Vec<[u8; 32]> = item
            .entries
            .par_iter()
            .map(|e| leaf(&e.rel, &e.path, &e.meta, with_mode, cache))
            .collect::<Result<_, _>>()?;
        h.update(&(leaves.len() as u64).to_le_bytes());
        for l in &leaves {
            h.update(l);
        }
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerignore::Matcher;
    use crate::ir::Copy;
    use crate::ops::select::{select, Tree};
    use std::os::unix::fs::PermissionsExt;

    fn key(root: &Path, src: &str, exclude: &[&str], ignore: &[&str], cache: &StatCache) -> Key {
        let ignore = Matcher::new(ignore).unwrap();
        let tree = Tree {
            root,
            ignore: &ignore,
        };
        let c = Copy {
            source: 1,
            src: vec![src.to_string()],
            dest: "/".into(),
            owner: None,
            mode: None,
            allow_wildcard: true,
            unpack_archives: false,
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            parents: false,
            link: false,
        };
        selection_key(&select(&tree, &c).unwrap(), true, cache).unwrap()
    }

    #[test]
    fn key_covers_exactly_the_selected_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("src")).unwrap();
        fs::write(r.join("src/a.rs"), "a").unwrap();
        fs::write(r.join("src/b.log"), "b").unwrap();
        fs::write(r.join("other.txt"), "o").unwrap();
        let c = StatCache::in_memory();
        let k0 = key(r, "src", &[], &["*.md"], &c);
        // Unselected files and mtimes do not matter.
        fs::write(r.join("other.txt"), "changed").unwrap();
        let f = File::options()
            .write(true)
            .open(r.join("src/a.rs"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(key(r, "src", &[], &["*.md"], &c), k0);
        // Content, mode, new files do.
        fs::write(r.join("src/a.rs"), "A").unwrap();
        let k1 = key(r, "src", &[], &["*.md"], &c);
        assert_ne!(k1, k0);
        fs::set_permissions(r.join("src/a.rs"), fs::Permissions::from_mode(0o700)).unwrap();
        let k2 = key(r, "src", &[], &["*.md"], &c);
        assert_ne!(k2, k1);
        // Excluded files do not.
        let k3 = key(r, "src", &["*.log"], &[], &c);
        fs::write(r.join("src/b.log"), "bb").unwrap();
        assert_eq!(key(r, "src", &["*.log"], &[], &c), k3);
        let k4 = key(r, "src", &[], &["src/*.log"], &c);
        fs::write(r.join("src/b.log"), "bbb").unwrap();
        assert_eq!(key(r, "src", &[], &["src/*.log"], &c), k4);
        fs::write(r.join("src/new"), "n").unwrap();
        assert_ne!(key(r, "src", &[], &["src/*.log"], &c), k4);
    }

    #[test]
    fn stat_cache_skips_reading_unchanged_files_and_persists() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "data").unwrap();
        let file = t.path().join("cache/stat-cache");
        let c = StatCache::load(&file);
        let m = fs::metadata(&f).unwrap();
        let (h1, read1) = c.file_hash(&f, &m).unwrap();
        assert!(read1);
        let (h2, read2) = c.file_hash(&f, &m).unwrap();
        assert!(!read2);
        assert_eq!(h1, h2);
        assert_eq!(h1, *blake3::hash(b"data").as_bytes());
        c.save().unwrap();
        let c2 = StatCache::load(&file);
        assert_eq!(c2.len(), 1);
        assert!(!c2.file_hash(&f, &m).unwrap().1);
        fs::write(&f, "other").unwrap();
        let m = fs::metadata(&f).unwrap();
        let (h3, read3) = c2.file_hash(&f, &m).unwrap();
        assert!(read3);
        assert_ne!(h3, h1);
        fs::write(&file, "garbage").unwrap();
        assert!(StatCache::load(&file).is_empty());
    }
}
