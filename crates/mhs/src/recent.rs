//! Bytes this process has just written to the payload store, kept in memory for the next
//! step in the same process, so that it need not read them back from disk.
//!
//! An outbox stores a message and, a moment later, its worker sends it; an MHS stores an
//! inbound message and, a moment later, hands it to its consumer. Both steps still go
//! through the payload store — the copy on disk is what survives a crash, and what another
//! process sharing the database reads — but the one that follows in this process takes the
//! same `Bytes` from here (the inbox: the message already parsed) instead of reading the
//! file again. A key's bytes never change once stored, so what is kept here is always
//! what is on disk.
//!
//! Kept: at most [`LIMIT`] bytes a store and [`PROCESS_LIMIT`] bytes in all the stores of
//! the process together, each entry at most [`MAX_AGE`]; whatever does not fit, or is not
//! taken in time, is simply read from the store as before.
//!
//! Why a limit for the whole process: one process may run many MHSs (`lloyd demo` and
//! `lloyd loadgen` run every practice's inbox and outbox and Spine's relay in one), and
//! 32 MB for each of ~17 stores came to hundreds of megabytes of resident memory under
//! load for a saving of a file read each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// At most this many bytes kept per store (a handful of full-size messages).
pub(crate) const LIMIT: usize = 32 * 1024 * 1024;
/// At most this many bytes kept by every store in the process together.
pub(crate) const PROCESS_LIMIT: usize = 48 * 1024 * 1024;
/// What every store in the process keeps now.
static PROCESS_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Takes `size` bytes of the process's allowance, if that many are left.
fn reserve(size: usize) -> bool {
    PROCESS_BYTES
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |kept| {
            kept.checked_add(size).filter(|&n| n <= PROCESS_LIMIT)
        })
        .is_ok()
}

fn release(size: usize) {
    PROCESS_BYTES.fetch_sub(size, Ordering::AcqRel);
}
/// An entry not taken within this long is dropped (another process may have sent it).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// See the module documentation. `T`: the stored bytes, or something made from them.
pub(crate) struct Recent<T = Bytes> {
    entries: Mutex<Entries<T>>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent {
            entries: Mutex::new(Entries {
                by_key: HashMap::new(),
                bytes: 0,
            }),
        }
    }
}

impl<T> Drop for Recent<T> {
    fn drop(&mut self) {
        // What this store kept goes back to the process's allowance.
        release(self.entries().bytes);
    }
}

struct Entries<T> {
    /// Key → (kept at, size in bytes, value).
    by_key: HashMap<String, (Instant, usize, T)>,
    bytes: usize,
}

impl<T> Entries<T> {
    fn remove(&mut self, key: &str) -> Option<T> {
        let (_, size, value) = self.by_key.remove(key)?;
        self.bytes -= size;
        release(size);
        Some(value)
    }
}

impl<T> Recent<T> {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        // A panic while holding the lock leaves the map consistent (each change is one
        // insert or remove with its count), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `value` (`size` bytes), just stored under `key`, if there is room.
    pub(crate) fn keep(&self, key: &str, value: T, size: usize) {
        let mut e = self.entries();
        e.remove(key);
        let now = Instant::now();
        let fits = |e: &Entries<T>| e.bytes + size <= LIMIT && reserve(size);
        if !fits(&e) {
            let stale: Vec<String> = e
                .by_key
                .iter()
                .filter(|(_, (at, _, _))| now.duration_since(*at) > MAX_AGE)
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                e.remove(&k);
            }
            if !fits(&e) {
                return;
            }
        }
        e.bytes += size;
        e.by_key.insert(key.to_string(), (now, size, value));
    }

    /// What is kept for `key`, if it still is (and no longer kept).
    pub(crate) fn take(&self, key: &str) -> Option<T> {
        self.entries().remove(key)
    }

    /// Drops what is kept under `key` (its stored copy is going away).
    pub(crate) fn forget(&self, key: &str) {
        self.entries().remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept_is_taken_once_and_the_limit_holds() {
        let r = Recent::<Bytes>::default();
        let keep = |key: &str, b: &Bytes| r.keep(key, b.clone(), b.len());
        keep("a", &Bytes::from_static(b"one"));
        assert_eq!(r.take("a").unwrap(), Bytes::from_static(b"one"));
        assert!(r.take("a").is_none(), "taken once");

        let big = Bytes::from(vec![0u8; LIMIT / 2 + 1]);
        keep("b", &big);
        keep("c", &big);
        assert!(r.take("c").is_none(), "over the limit: not kept");
        assert_eq!(r.take("b").unwrap().len(), big.len());

        keep("d", &Bytes::from_static(b"x"));
        r.forget("d");
        assert!(r.take("d").is_none());
        assert_eq!(r.entries().bytes, 0);
    }

    #[test]
    fn the_stores_of_a_process_share_one_allowance() {
        // Each store is within its own limit; together they may not pass the process's.
        let stores: Vec<Recent> = (0..PROCESS_LIMIT / (LIMIT / 2) + 2)
            .map(|_| Recent::default())
            .collect();
        let half = Bytes::from(vec![0u8; LIMIT / 2]);
        for r in &stores {
            r.keep("m", half.clone(), half.len());
        }
        let kept = stores.iter().filter(|r| r.entries().bytes > 0).count();
        assert!(kept >= 1, "something is kept");
        assert!(
            kept * (LIMIT / 2) <= PROCESS_LIMIT,
            "{kept} stores kept {} MB",
            kept * LIMIT / 2 / 1024 / 1024
        );
        // A store that goes away gives its share back.
        drop(stores);
        let r = Recent::<Bytes>::default();
        r.keep("m", half.clone(), half.len());
        assert!(r.take("m").is_some());
    }
}
