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
//! Kept: at most [`LIMIT`] bytes, each entry at most [`MAX_AGE`]; whatever does not fit,
//! or is not taken in time, is simply read from the store as before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// At most this many bytes kept per store (a handful of full-size messages).
pub(crate) const LIMIT: usize = 32 * 1024 * 1024;
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

struct Entries<T> {
    /// Key → (kept at, size in bytes, value).
    by_key: HashMap<String, (Instant, usize, T)>,
    bytes: usize,
}

impl<T> Entries<T> {
    fn remove(&mut self, key: &str) -> Option<T> {
        let (_, size, value) = self.by_key.remove(key)?;
        self.bytes -= size;
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
        if e.bytes + size > LIMIT {
            let stale: Vec<String> = e
                .by_key
                .iter()
                .filter(|(_, (at, _, _))| now.duration_since(*at) > MAX_AGE)
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                e.remove(&k);
            }
            if e.bytes + size > LIMIT {
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
}
