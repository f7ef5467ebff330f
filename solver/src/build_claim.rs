//! One build of a step per store, however many bake processes ask for it.
//!
//! Two CI jobs on one runner (or a developer's two terminals) often build
//! the same Dockerfile on the same store at the same time. Without
//! coordination both run every missing step; with it, the second waits
//! for the first and then finds the result in the cache.
//!
//! A cache miss claims its key: an exclusive `flock` on
//! `cache/building/<key>`. The holder runs the step and records it; the
//! claim ends when the result is in the cache (or the process ends: the
//! kernel drops the lock of a crashed or killed holder, so a claim can
//! never be left stale). A process that has to wait looks the key up again
//! once it holds the claim, and uses the first process's result. Only
//! misses claim, so a cached build takes no lock at all.
//!
//! The lock file is removed after the result is recorded. A process that
//! was waiting on the removed file then holds a lock nobody else can see,
//! and a third may claim a new file: at worst a step is built twice, as
//! without claims, never a wrong result, since every write to the store is
//! atomic.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{flock, FlockOperation};

/// Why a claim could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("claiming {path:?} for this build step")]
pub struct Error {
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// The claims this process holds, by cache key.
pub struct Claims {
    dir: PathBuf,
    held: Mutex<HashMap<String, Held>>,
}

struct Held {
    path: PathBuf,
    _file: File,
}

/// How a claim was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    /// At once: nobody else was building the step.
    Free,
    /// After another process let go of it (it may have built the step).
    AfterWaiting,
}

impl Claims {
    /// Claims live in `dir` (created on first use).
    pub fn new(dir: &Path) -> Claims {
        Claims {
            dir: dir.to_path_buf(),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Claims `key`, waiting while another process holds it; `waiting` is
    /// called once if it has to wait. A key this process already holds is
    /// returned as [`Claimed::Free`] (the scheduler runs a key once).
    ///
    /// # Errors
    /// When the lock file cannot be created or locked.
    pub fn claim(&self, key: &str, waiting: &dyn Fn()) -> Result<Claimed, Error> {
        if self.held().contains_key(key) {
            return Ok(Claimed::Free);
        }
        let path = self.dir.join(key);
        let err = |source| Error {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        let claimed = match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Claimed::Free,
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                waiting();
                flock(&file, FlockOperation::LockExclusive).map_err(|e| err(e.into()))?;
                Claimed::AfterWaiting
            }
            Err(e) => return Err(err(e.into())),
        };
        self.held().insert(
            key.to_string(),
            Held {
                path: path.clone(),
                _file: file,
            },
        );
        Ok(claimed)
    }

    /// Ends the claim on `key` (its result is recorded, or not wanted).
    pub fn release(&self, key: &str) {
        if let Some(held) = self.held().remove(key) {
            // Removed while still locked; see the module docs.
            let _ = std::fs::remove_file(&held.path);
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Claims {
    /// Claims of steps that failed end with the solve.
    fn drop(&mut self) {
        for (_, held) in self.held().drain() {
            let _ = std::fs::remove_file(&held.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_second_claimant_waits_for_the_first_to_release() {
        let dir = tempfile::tempdir().unwrap();
        // Two `Claims` stand for two processes: flock locks conflict
        // between open file descriptions, even within one process.
        let first = Claims::new(dir.path());
        let second = Arc::new(Claims::new(dir.path()));
        assert_eq!(first.claim("k", &|| panic!("free")).unwrap(), Claimed::Free);
        // Claiming again in the same process does not block.
        assert_eq!(first.claim("k", &|| panic!("free")).unwrap(), Claimed::Free);

        let released = Arc::new(AtomicBool::new(false));
        let waited = Arc::new(AtomicBool::new(false));
        let t = {
            let (second, released, waited) = (second.clone(), released.clone(), waited.clone());
            std::thread::spawn(move || {
                let how = second
                    .claim("k", &|| waited.store(true, Ordering::SeqCst))
                    .unwrap();
                assert!(released.load(Ordering::SeqCst), "got the claim while held");
                how
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        first.release("k");
        assert_eq!(t.join().unwrap(), Claimed::AfterWaiting);
        assert!(waited.load(Ordering::SeqCst));
        second.release("k");
        // Other keys are independent.
        assert_eq!(
            first.claim("other", &|| panic!("free")).unwrap(),
            Claimed::Free
        );
    }
}
