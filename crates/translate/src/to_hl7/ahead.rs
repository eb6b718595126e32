//! Parsing resources ahead of the mapping, on another thread.
//!
//! Parsing each resource's JSON into the typed model is the largest single cost of the
//! streaming translation ([`super::bundle_to_writer`]), and the mapping asks for resources
//! mostly in Bundle order: a consultation's resources lie together after its Encounter,
//! and what is recorded outside consultations is mapped in Bundle order. So a second
//! thread parses the resources the mapping is expected to ask for (a *plan*, in order),
//! a window of them at a time, and the mapping takes each from the window when it asks
//! for it; anything it asks for that is not there it parses itself, as without the helper.
//!
//! The helper never decides anything: whether a resource is taken from the window or
//! parsed on the spot, the mapping gets the same resource, so the output does not depend
//! on timing. Memory holds at most [`WINDOW`] parsed resources beyond what the mapping
//! holds; those the mapping has passed by [`BEHIND`] positions without asking for are
//! dropped. Resources the mapping is done with are handed back to be freed here too
//! ([`Ahead::discard`]), so that the mapping's thread does not spend its time freeing them.

use std::collections::BTreeMap;

use crate::hash::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use fhir::Resource;

/// How many parsed resources may wait for the mapping.
pub(crate) const WINDOW: usize = 256;
/// How far (in positions) the mapping may pass a waiting resource before it is dropped.
pub(crate) const BEHIND: usize = 1024;
/// How many resources may wait to be freed.
const TRASH: usize = WINDOW;
/// A resource this many places further on in the plan than the helper has reached is not
/// waited for: the helper skips to beyond it.
const FAR: usize = 64;

/// The window shared by the mapping and the helper.
pub(crate) struct Ahead {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Positions to parse, in order.
    plan: Vec<usize>,
    /// The next place in `plan`.
    next: usize,
    /// Parsed, waiting for the mapping.
    ready: BTreeMap<usize, Arc<Resource>>,
    /// Parsed by the mapping itself before the helper reached them.
    taken: HashSet<usize>,
    /// The position the helper is parsing now.
    parsing: Option<usize>,
    /// The furthest position the mapping has asked for under this plan.
    furthest: usize,
    /// Resources to free.
    trash: Vec<Arc<Resource>>,
    stop: bool,
    /// Whether the helper waits for room in the window (or for work).
    helper_waits: bool,
    /// Whether the mapping waits for the resource being parsed.
    mapping_waits: bool,
}

/// What [`Ahead::take`] found.
pub(crate) enum Taken {
    /// Parsed ahead.
    Ready(Arc<Resource>),
    /// Not parsed ahead: the caller parses it.
    Missing,
}

impl Ahead {
    pub fn new() -> Arc<Ahead> {
        Arc::new(Ahead {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held leaves nothing half-changed that matters: the
        // state is a cache.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets what to parse next (positions in ascending order), dropping anything parsed for
    /// an earlier plan.
    pub fn plan(&self, plan: Vec<usize>) {
        let mut s = self.lock();
        let old = std::mem::take(&mut s.ready);
        s.trash.extend(old.into_values());
        s.taken.clear();
        s.plan = plan;
        s.next = 0;
        s.furthest = 0;
        drop(s);
        self.changed.notify_all();
    }

    /// The resource at `pos` if it was parsed ahead (waiting for it if it is being parsed
    /// now); otherwise the caller is to parse it, and the helper will not.
    pub fn take(&self, pos: usize) -> Taken {
        let mut s = self.lock();
        if pos > s.furthest {
            s.furthest = pos;
            let limit = pos.saturating_sub(BEHIND);
            while let Some(entry) = s.ready.first_entry() {
                if *entry.key() >= limit {
                    break;
                }
                let r = entry.remove();
                s.trash.push(r);
            }
        }
        while s.parsing == Some(pos) {
            s.mapping_waits = true;
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.mapping_waits = false;
        let found = match s.ready.remove(&pos) {
            Some(r) => Taken::Ready(r),
            None => {
                // Not reached yet: near, the helper is told to leave it; far, it skips to
                // beyond it (the mapping has moved on).
                let rest = s.plan.get(s.next..).unwrap_or_default();
                let at = rest.partition_point(|&p| p < pos);
                if rest.get(at) == Some(&pos) {
                    if at < FAR {
                        s.taken.insert(pos);
                    } else {
                        s.next += at + 1;
                    }
                }
                Taken::Missing
            }
        };
        // The helper is woken when the window is half empty, not for each resource.
        let wake = s.helper_waits && s.ready.len() <= WINDOW / 2;
        drop(s);
        if wake {
            self.changed.notify_all();
        }
        found
    }

    /// Hands resources the mapping is done with to the helper to free; gives them back
    /// (for the caller to free) when the helper has not kept up with freeing.
    pub fn discard(&self, resources: Vec<Arc<Resource>>) -> Option<Vec<Arc<Resource>>> {
        let mut s = self.lock();
        if s.trash.len() >= TRASH {
            return Some(resources);
        }
        s.trash.extend(resources);
        let wake = s.helper_waits;
        drop(s);
        if wake {
            self.changed.notify_all();
        }
        None
    }

    /// Tells the helper to finish.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }

    /// The helper: parses the plan's resources (`texts[pos]` the JSON of the resource at
    /// `pos`) until told to stop. A resource that does not parse is left for the mapping,
    /// which then finds it missing and parses it itself (and fails as it would have).
    pub fn run(&self, texts: &[Option<&str>]) {
        loop {
            let mut s = self.lock();
            let job = loop {
                if s.stop {
                    return;
                }
                if !s.trash.is_empty() {
                    break None;
                }
                if s.ready.len() < WINDOW
                    && let Some(&pos) = s.plan.get(s.next)
                {
                    s.next += 1;
                    if s.taken.remove(&pos) {
                        continue;
                    }
                    s.parsing = Some(pos);
                    break Some(pos);
                }
                s.helper_waits = true;
                s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
                s.helper_waits = false;
            };
            let trash = std::mem::take(&mut s.trash);
            drop(s);
            drop(trash);
            let Some(pos) = job else {
                continue;
            };
            let parsed = texts
                .get(pos)
                .copied()
                .flatten()
                .and_then(|t| serde_json::from_str::<Resource>(t).ok());
            let mut s = self.lock();
            s.parsing = None;
            if let Some(r) = parsed
                && pos + BEHIND >= s.furthest
            {
                s.ready.insert(pos, Arc::new(r));
            }
            let wake = s.mapping_waits;
            drop(s);
            if wake {
                self.changed.notify_all();
            }
        }
    }
}

/// Stops the helper when dropped, so that a scope waiting for it ends even if the mapping
/// panics.
pub(crate) struct StopOnDrop(pub Arc<Ahead>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Whatever the helper has reached, each resource asked for is either the right one,
    /// parsed ahead, or missing for the caller to parse; a new plan, asking out of order
    /// and asking twice change nothing of that; and the helper stops when told.
    #[test]
    fn taken_resources_are_the_ones_asked_for() {
        let json: Vec<String> = (0..3000)
            .map(|i| format!(r#"{{"resourceType":"Observation","id":"o{i}","status":"final"}}"#))
            .collect();
        let texts: Vec<Option<&str>> = json
            .iter()
            .enumerate()
            .map(|(i, t)| (i % 7 != 3).then_some(t.as_str()))
            .collect();
        let ahead = Ahead::new();
        ahead.plan((0..texts.len()).filter(|&p| texts[p].is_some()).collect());
        std::thread::scope(|scope| {
            let helper = ahead.clone();
            let texts = &texts;
            let running = scope.spawn(move || helper.run(texts));
            let _stop = StopOnDrop(ahead.clone());
            let order = (0..1500)
                .chain((2000..2100).rev())
                .chain(1500..2000)
                .chain([10, 10, 2999]);
            for pos in order {
                if let Taken::Ready(r) = ahead.take(pos) {
                    assert_eq!(r.id(), Some(format!("o{pos}").as_str()));
                    assert!(texts[pos].is_some());
                }
            }
            // A second plan: only the even positions from 2000.
            ahead.plan((2000..3000).filter(|p| p % 2 == 0).collect());
            for pos in 2000..3000 {
                if let Taken::Ready(r) = ahead.take(pos) {
                    assert_eq!(pos % 2, 0);
                    assert_eq!(r.id(), Some(format!("o{pos}").as_str()));
                }
            }
            ahead.discard(Vec::new());
            drop(_stop);
            running.join().unwrap();
        });
        // The window is bounded: never more waiting than it holds.
        assert!(ahead.lock().ready.len() <= WINDOW);
    }
}
