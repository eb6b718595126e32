//! The Bundle as the mapping sees it: resources by position, type and reference, either
//! borrowed from a parsed [`Bundle`] or parsed from the Bundle's JSON when first needed.
//!
//! A GP Connect Bundle of a hundred megabytes takes most of a gigabyte as the typed
//! model. The streaming translation ([`super::bundle_to_writer`]) keeps only the JSON text
//! of each resource, and parses a resource when the mapping asks for it: the practice,
//! its clinicians, its locations and the medicines are kept once parsed (there are few of
//! them and they are asked for again and again); anything else stays in a small cache of
//! the resources asked for lately (a consultation's resources lie together in the
//! Bundle), and is parsed again if asked for after it has left. While the compositions are
//! mapped, a helper thread parses ahead of the mapping ([`super::ahead`]), and frees what
//! leaves the cache.
//!
//! So the mapping code holds handles rather than references: a [`Res`] (any resource) or
//! a [`Typed`] (one known to be a `T`), each cheap to clone, dereferencing to the
//! resource, and knowing its position, which is its identity.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::hash::HashMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use fhir::{Bundle, BundleIndex, EntryIndex, Reference, Resource, TypedResource};

use super::ahead::{Ahead, Taken};

#[derive(Clone)]
enum Held<'a> {
    Borrowed(&'a Resource),
    Shared(Arc<Resource>),
}

/// A resource of the Bundle.
#[derive(Clone)]
pub(crate) struct Res<'a> {
    pos: usize,
    held: Held<'a>,
}

impl Deref for Res<'_> {
    type Target = Resource;

    fn deref(&self) -> &Resource {
        match &self.held {
            Held::Borrowed(r) => r,
            Held::Shared(r) => r,
        }
    }
}

/// A resource of the Bundle that is a `T`.
pub(crate) struct Typed<'a, T> {
    res: Res<'a>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Typed<'_, T> {
    fn clone(&self) -> Self {
        Typed {
            res: self.res.clone(),
            _type: PhantomData,
        }
    }
}

impl<'a, T: TypedResource> Typed<'a, T> {
    fn new(res: Res<'a>) -> Option<Typed<'a, T>> {
        T::from_resource(&res)?;
        Some(Typed {
            res,
            _type: PhantomData,
        })
    }

    /// Its position in `Bundle.entry`.
    pub fn pos(&self) -> usize {
        self.res.pos
    }
}

impl<T: TypedResource> Deref for Typed<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match T::from_resource(&self.res) {
            Some(t) => t,
            // `Typed::new` is the only way to make one, and it checks.
            None => unreachable!("a Typed handle holds a resource of its type"),
        }
    }
}

/// The types kept once parsed: few, and asked for throughout the mapping.
const KEPT: [&str; 6] = [
    "Patient",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Medication",
];

fn kept(resource_type: &str) -> bool {
    KEPT.contains(&resource_type)
}

/// How many other resources stay parsed after they were last asked for.
const CACHE: usize = 512;

/// One entry of a Bundle read as text.
pub(crate) struct RawEntry<'a> {
    /// The resource's JSON.
    pub resource: &'a str,
    /// Its type and id, as the typed model reads them.
    pub resource_type: String,
    pub id: Option<String>,
}

/// Resources parsed from text: kept, or cached.
struct Lazy<'a> {
    entries: Vec<Option<RawEntry<'a>>>,
    index: EntryIndex,
    kept: RefCell<HashMap<usize, Arc<Resource>>>,
    cache: RefCell<Cache>,
    /// Which entries have been parsed into the model (kept ones from the start).
    parsed: RefCell<Vec<bool>>,
    /// Whether a resource failed to parse (it parsed once already, so it cannot; but if it
    /// did, the translation is not to be trusted).
    failed: Cell<bool>,
    /// The helper parsing resources ahead of the mapping, while there is one.
    ahead: RefCell<Option<Arc<Ahead>>>,
    /// Resources out of the cache, to be freed by the helper in batches.
    trash: RefCell<Vec<Arc<Resource>>>,
}

/// How many resources out of the cache are handed to the helper at once.
const TRASH_BATCH: usize = 64;

#[derive(Default)]
struct Cache {
    map: HashMap<usize, Arc<Resource>>,
    order: VecDeque<usize>,
}

enum Source<'a> {
    Bundle {
        bundle: &'a Bundle,
        index: BundleIndex<'a>,
    },
    Lazy(Box<Lazy<'a>>),
}

/// See the module documentation.
pub(crate) struct Store<'a> {
    source: Source<'a>,
}

impl<'a> Store<'a> {
    /// Over a parsed Bundle.
    pub fn bundle(bundle: &'a Bundle) -> Store<'a> {
        Store {
            source: Source::Bundle {
                bundle,
                index: bundle.index(),
            },
        }
    }

    /// Over a Bundle's entries as text (`None` for an entry without a resource), with the
    /// resources to keep already parsed and the index of entries by reference.
    pub fn lazy(
        entries: Vec<Option<RawEntry<'a>>>,
        index: EntryIndex,
        kept_parsed: HashMap<usize, Arc<Resource>>,
    ) -> Store<'a> {
        let mut parsed = vec![false; entries.len()];
        for &pos in kept_parsed.keys() {
            if let Some(p) = parsed.get_mut(pos) {
                *p = true;
            }
        }
        Store {
            source: Source::Lazy(Box::new(Lazy {
                entries,
                index,
                parsed: RefCell::new(parsed),
                kept: RefCell::new(kept_parsed),
                cache: RefCell::new(Cache::default()),
                failed: Cell::new(false),
                ahead: RefCell::new(None),
                trash: RefCell::new(Vec::new()),
            })),
        }
    }

    /// Whether the types to keep once parsed include this one.
    pub fn keeps(resource_type: &str) -> bool {
        kept(resource_type)
    }

    /// Whether every resource the mapping has not asked for parses into the model (a
    /// Bundle the whole-Bundle path would refuse must be refused here too).
    pub fn all_parse(&self) -> bool {
        match &self.source {
            Source::Bundle { .. } => true,
            Source::Lazy(l) => {
                let parsed = l.parsed.borrow();
                l.entries.iter().enumerate().all(|(pos, e)| {
                    let Some(e) = e else { return true };
                    parsed.get(pos).copied().unwrap_or(false)
                        || serde_json::from_str::<Resource>(e.resource).is_ok()
                })
            }
        }
    }

    /// Each entry's resource JSON by position, for a helper parsing ahead (none over a
    /// parsed Bundle).
    pub fn texts(&self) -> Vec<Option<&'a str>> {
        match &self.source {
            Source::Bundle { .. } => Vec::new(),
            Source::Lazy(l) => l
                .entries
                .iter()
                .map(|e| e.as_ref().map(|e| e.resource))
                .collect(),
        }
    }

    /// Starts (`Some`) or ends (`None`) taking resources from a helper parsing ahead.
    pub fn attach(&self, ahead: Option<Arc<Ahead>>) {
        if let Source::Lazy(l) = &self.source {
            l.ahead.replace(ahead);
            if l.ahead.borrow().is_none() {
                l.trash.borrow_mut().clear();
            }
        }
    }

    /// Tells the helper, if there is one, which resources the mapping will ask for next
    /// (positions in ascending order).
    pub fn plan_ahead(&self, plan: impl FnOnce() -> Vec<usize>) {
        if let Source::Lazy(l) = &self.source
            && let Some(ahead) = l.ahead.borrow().as_ref()
        {
            ahead.plan(plan());
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Bundle { bundle, .. } => bundle.entry.len(),
            Source::Lazy(l) => l.entries.len(),
        }
    }

    /// Whether a resource could not be parsed again (see [`Lazy::failed`]).
    pub fn failed(&self) -> bool {
        match &self.source {
            Source::Bundle { .. } => false,
            Source::Lazy(l) => l.failed.get(),
        }
    }

    /// The resource type of the entry at `pos`, if it has a resource.
    pub fn resource_type(&self, pos: usize) -> Option<&str> {
        match &self.source {
            Source::Bundle { bundle, .. } => {
                Some(bundle.entry.get(pos)?.resource.as_ref()?.resource_type())
            }
            Source::Lazy(l) => Some(l.entries.get(pos)?.as_ref()?.resource_type.as_str()),
        }
    }

    /// The id of the resource at `pos`.
    pub fn id(&self, pos: usize) -> Option<&str> {
        match &self.source {
            Source::Bundle { bundle, .. } => bundle.entry.get(pos)?.resource.as_ref()?.id(),
            Source::Lazy(l) => l.entries.get(pos)?.as_ref()?.id.as_deref(),
        }
    }

    /// `Type/id` of the resource at `pos` (just `Type` without an id), as
    /// [`Resource::label`] gives it.
    pub fn label(&self, pos: usize) -> Option<String> {
        let mut label = String::new();
        self.label_into(pos, &mut label).then_some(label)
    }

    /// [`Store::label`] into `label` (cleared first), for loops over every entry; false
    /// (and `label` empty) for an entry without a resource.
    pub fn label_into(&self, pos: usize, label: &mut String) -> bool {
        label.clear();
        let Some(ty) = self.resource_type(pos) else {
            return false;
        };
        label.push_str(ty);
        if let Some(id) = self.id(pos) {
            label.push('/');
            label.push_str(id);
        }
        true
    }

    /// The positions of the resources of type `T`, in Bundle order.
    pub fn positions_of<T: TypedResource>(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&p| self.resource_type(p) == Some(T::RESOURCE_TYPE))
            .collect()
    }

    /// The positions of every entry with a resource, in Bundle order.
    pub fn positions(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&p| self.resource_type(p).is_some())
            .collect()
    }

    /// The resource at `pos`.
    pub fn get(&self, pos: usize) -> Option<Res<'a>> {
        let held = match &self.source {
            Source::Bundle { bundle, .. } => {
                Held::Borrowed(bundle.entry.get(pos)?.resource.as_ref()?)
            }
            Source::Lazy(l) => Held::Shared(l.get(pos)?),
        };
        Some(Res { pos, held })
    }

    /// The resource at `pos`, if it is a `T`.
    pub fn get_as<T: TypedResource>(&self, pos: usize) -> Option<Typed<'a, T>> {
        if self.resource_type(pos) != Some(T::RESOURCE_TYPE) {
            return None;
        }
        Typed::new(self.get(pos)?)
    }

    /// The first resource of type `T`.
    pub fn first_of<T: TypedResource>(&self) -> Option<Typed<'a, T>> {
        (0..self.len())
            .find(|&p| self.resource_type(p) == Some(T::RESOURCE_TYPE))
            .and_then(|p| self.get_as(p))
    }

    /// The position of the entry a reference string names (see [`BundleIndex::position`]).
    pub fn position(&self, reference: &str) -> Option<usize> {
        match &self.source {
            Source::Bundle { index, .. } => index.position(reference),
            Source::Lazy(l) => l.index.position(reference),
        }
    }

    /// The position of the resource a [`Reference`] names.
    pub fn resolve_pos(&self, reference: &Reference) -> Option<usize> {
        let pos = self.position(reference.reference.as_deref()?)?;
        self.resource_type(pos).map(|_| pos)
    }

    /// The resource a [`Reference`] names.
    pub fn resolve(&self, reference: &Reference) -> Option<Res<'a>> {
        self.get(self.resolve_pos(reference)?)
    }

    /// The resource a [`Reference`] names, if it is a `T`.
    pub fn resolve_as<T: TypedResource>(&self, reference: &Reference) -> Option<Typed<'a, T>> {
        self.get_as(self.resolve_pos(reference)?)
    }

    /// `Type/id` of the resource a [`Reference`] names, without reading it.
    pub fn resolve_label(&self, reference: &Reference) -> Option<String> {
        self.label(self.resolve_pos(reference)?)
    }
}

impl Lazy<'_> {
    fn get(&self, pos: usize) -> Option<Arc<Resource>> {
        let entry = self.entries.get(pos)?.as_ref()?;
        let keep = kept(&entry.resource_type);
        if keep && let Some(r) = self.kept.borrow().get(&pos) {
            return Some(r.clone());
        }
        if let Some(r) = self.cache.borrow().map.get(&pos) {
            return Some(r.clone());
        }
        let ahead = match self.ahead.borrow().as_ref().map(|a| a.take(pos)) {
            Some(Taken::Ready(r)) => Some(r),
            Some(Taken::Missing) | None => None,
        };
        let r = match ahead {
            Some(r) => r,
            None => match serde_json::from_str::<Resource>(entry.resource) {
                Ok(r) => Arc::new(r),
                Err(_) => {
                    self.failed.set(true);
                    return None;
                }
            },
        };
        if let Some(p) = self.parsed.borrow_mut().get_mut(pos) {
            *p = true;
        }
        if keep {
            self.kept.borrow_mut().insert(pos, r.clone());
        } else {
            let mut cache = self.cache.borrow_mut();
            if cache.order.len() >= CACHE
                && let Some(old) = cache.order.pop_front()
                && let Some(old) = cache.map.remove(&old)
            {
                self.discard(old);
            }
            cache.order.push_back(pos);
            cache.map.insert(pos, r.clone());
        }
        Some(r)
    }

    /// Frees a resource out of the cache: on the helper's thread, if there is one.
    fn discard(&self, r: Arc<Resource>) {
        let ahead = self.ahead.borrow();
        let Some(ahead) = ahead.as_ref() else {
            return;
        };
        let mut trash = self.trash.borrow_mut();
        trash.push(r);
        if trash.len() >= TRASH_BATCH {
            let refused = ahead.discard(std::mem::take(&mut *trash));
            drop(trash);
            drop(refused);
        }
    }
}
