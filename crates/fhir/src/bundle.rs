//! Working with a Bundle: iterating its resources, following references,
//! checking and cleaning it.

use std::collections::BTreeMap;

/// The indexes' maps: hashed with foldhash, which is several times quicker than SipHash on
/// these short keys and seeded per process as SipHash is.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use crate::check::{Checker, Issue, IssueKind};
use crate::datatypes::{Reference, split_reference};
use crate::model::Node;
use crate::resources::{Bundle, Patient, Resource, TypedResource};

impl Bundle {
    /// The resources of the entries, in order (entries without a resource
    /// are skipped).
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.entry.iter().filter_map(|e| e.resource.as_ref())
    }

    /// The resources of type `T`, in entry order:
    /// `bundle.resources_of::<Observation>()`.
    pub fn resources_of<'a, T: TypedResource + 'a>(&'a self) -> impl Iterator<Item = &'a T> {
        self.resources().filter_map(T::from_resource)
    }

    /// The first `Patient` (a GP Connect structured record has exactly one).
    pub fn patient(&self) -> Option<&Patient> {
        self.resources_of::<Patient>().next()
    }

    /// The number of entries' resources by `resourceType`.
    pub fn count_by_type(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for r in self.resources() {
            *counts.entry(r.resource_type()).or_insert(0) += 1;
        }
        counts
    }

    /// An index for finding entries by reference.
    ///
    /// Building it walks the entries once; keep it while resolving many
    /// references.
    pub fn index(&self) -> BundleIndex<'_> {
        BundleIndex::new(self)
    }

    /// Reports what would make this Bundle invalid FHIR STU3 when written:
    /// empty strings, empty elements, `null`s, missing required elements,
    /// broken invariants (a `Coding` needs a `code` or `display`; a
    /// `Reference` needs a `reference`, `identifier` or `display`; an
    /// `Extension` a value or nested extensions), malformed ids, dates and
    /// decimals, duplicate entries, and references that name no entry of
    /// the Bundle.
    ///
    /// An empty list means none of these were found; it does not prove the
    /// Bundle valid against every STU3 rule or GP Connect profile.
    ///
    /// References checked are the `reference` of every [`Reference`] in the
    /// typed model: relative (`Type/id`), absolute and `urn:` references
    /// must match an entry (by `Type/id` or by `fullUrl`); `#id`
    /// references to contained resources are not checked. References
    /// inside unknown members (`extra`) are not seen.
    pub fn check_strict(&self) -> Vec<Issue> {
        let mut ck = Checker::new("Bundle");
        Node::check(self, &mut ck);
        let index = self.index();
        for (key, entries) in &index.duplicates {
            let at = format!(
                "Bundle.entry[{}]",
                entries.last().copied().unwrap_or_default()
            );
            ck.issues.push(Issue {
                path: at,
                resource: None,
                kind: IssueKind::DuplicateResource((*key).to_owned()),
            });
        }
        for found in std::mem::take(&mut ck.references) {
            let r = found.reference.as_str();
            if r.starts_with('#') || index.get(r).is_some() {
                continue;
            }
            ck.issues.push(Issue {
                path: found.path,
                resource: found.resource,
                kind: IssueKind::UnresolvedReference(found.reference),
            });
        }
        ck.issues
    }

    /// Drops what lenient input may contain and STU3 forbids: empty strings,
    /// `null`s, and the elements (objects, arrays, entries' members) left
    /// empty by that; turns decimals written as strings into numbers.
    ///
    /// This only removes or normalises; it cannot supply missing required
    /// elements or time zones. Run [`Bundle::check_strict`] after it.
    ///
    /// A `null` inside an array is removed too. FHIR JSON uses such `null`s
    /// to line an array of primitives up with its `_name` array of
    /// extensions; removing them would misalign the two, so a Bundle using
    /// primitive extensions on repeating elements should be fixed by hand
    /// (none has been seen in GP Connect data).
    pub fn clean(&mut self) {
        Node::clean(self);
    }
}

impl Resource {
    /// Like [`Bundle::check_strict`] for one resource; references are not
    /// resolved (there is no Bundle to resolve them in).
    pub fn check_strict(&self) -> Vec<Issue> {
        let mut ck = Checker::new(self.resource_type());
        Node::check(self, &mut ck);
        ck.issues
    }

    /// Like [`Bundle::clean`] for one resource.
    pub fn clean(&mut self) {
        Node::clean(self);
    }
}

/// Finds a Bundle's entries by reference. Built by [`Bundle::index`].
#[derive(Debug)]
pub struct BundleIndex<'a> {
    bundle: &'a Bundle,
    by_type_id: HashMap<(&'a str, &'a str), usize>,
    by_full_url: HashMap<&'a str, usize>,
    duplicates: BTreeMap<String, Vec<usize>>,
}

impl<'a> BundleIndex<'a> {
    fn new(bundle: &'a Bundle) -> BundleIndex<'a> {
        let mut index = BundleIndex {
            bundle,
            by_type_id: HashMap::with_capacity_and_hasher(bundle.entry.len(), Default::default()),
            by_full_url: HashMap::default(),
            duplicates: BTreeMap::new(),
        };
        for (i, entry) in bundle.entry.iter().enumerate() {
            if let Some(r) = &entry.resource
                && let Some(id) = r.id()
                && index
                    .by_type_id
                    .insert((r.resource_type(), id), i)
                    .is_some()
            {
                let key = format!("{}/{id}", r.resource_type());
                index.duplicates.entry(key).or_default().push(i);
            }
            if let Some(url) = entry.full_url.as_deref().filter(|u| !u.is_empty())
                && index.by_full_url.insert(url, i).is_some()
            {
                index.duplicates.entry(url.to_owned()).or_default().push(i);
            }
        }
        index
    }

    /// The position in `Bundle.entry` of the resource `reference` names:
    /// an entry's `fullUrl`, or `Type/id` (relative, versioned or at the end
    /// of an absolute URL).
    pub fn position(&self, reference: &str) -> Option<usize> {
        if let Some(&i) = self.by_full_url.get(reference) {
            return Some(i);
        }
        let (ty, id) = split_reference(reference)?;
        self.by_type_id.get(&(ty, id)).copied()
    }

    /// The resource `reference` (a string such as `Patient/123`) names.
    pub fn get(&self, reference: &str) -> Option<&'a Resource> {
        let i = self.position(reference)?;
        self.bundle.entry.get(i)?.resource.as_ref()
    }

    /// The resource with this type and id.
    pub fn get_by_id(&self, resource_type: &str, id: &str) -> Option<&'a Resource> {
        let &i = self.by_type_id.get(&(resource_type, id))?;
        self.bundle.entry.get(i)?.resource.as_ref()
    }

    /// The resource a [`Reference`] points to.
    pub fn resolve(&self, reference: &Reference) -> Option<&'a Resource> {
        self.get(reference.reference.as_deref()?)
    }

    /// The resource a [`Reference`] points to, if it is a `T`:
    /// `index.resolve_as::<Practitioner>(&recorder)`.
    pub fn resolve_as<T: TypedResource>(&self, reference: &Reference) -> Option<&'a T> {
        T::from_resource(self.resolve(reference)?)
    }
}

/// Finds entries by reference, as [`BundleIndex`] does, from each entry's resource type,
/// id and `fullUrl` alone: for a Bundle read a piece at a time, whose resources are not all
/// held at once.
///
/// Positions are the entries' positions in `Bundle.entry`. Where two entries share a
/// `Type/id` or a `fullUrl`, the later one is found, as with [`BundleIndex`].
#[derive(Debug, Default)]
pub struct EntryIndex {
    /// Resource type → id → position.
    by_type_id: HashMap<String, HashMap<String, usize>>,
    by_full_url: HashMap<String, usize>,
}

impl EntryIndex {
    /// An empty index.
    pub fn new() -> EntryIndex {
        EntryIndex::default()
    }

    /// Adds the entry at `position`: its resource's type and id (when it has a resource
    /// with an id) and its `fullUrl` (when it has a non-empty one).
    pub fn add(
        &mut self,
        position: usize,
        type_and_id: Option<(&str, &str)>,
        full_url: Option<&str>,
    ) {
        if let Some((ty, id)) = type_and_id {
            self.by_type_id
                .entry(ty.to_owned())
                .or_default()
                .insert(id.to_owned(), position);
        }
        if let Some(url) = full_url.filter(|u| !u.is_empty()) {
            self.by_full_url.insert(url.to_owned(), position);
        }
    }

    /// The position of the entry `reference` names: an entry's `fullUrl`, or `Type/id`
    /// (relative, versioned or at the end of an absolute URL).
    pub fn position(&self, reference: &str) -> Option<usize> {
        if let Some(&i) = self.by_full_url.get(reference) {
            return Some(i);
        }
        let (ty, id) = split_reference(reference)?;
        self.by_type_id.get(ty)?.get(id).copied()
    }
}

#[cfg(test)]
mod entry_index_tests {
    use super::*;

    #[test]
    fn an_entry_index_finds_what_a_bundle_index_finds() {
        let json = r#"{"resourceType":"Bundle","type":"collection","entry":[
            {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"p"}},
            {"resource":{"resourceType":"Practitioner","id":"gp"}},
            {"fullUrl":"https://x.nhs.uk/Practitioner/gp","resource":{"resourceType":"Practitioner","id":"gp"}},
            {"resource":{"resourceType":"Observation"}},
            {"fullUrl":""}
        ]}"#;
        let bundle: Bundle = crate::from_str(json).unwrap();
        let index = bundle.index();
        let mut entries = EntryIndex::new();
        for (i, e) in bundle.entry.iter().enumerate() {
            let r = e.resource.as_ref();
            entries.add(
                i,
                r.and_then(|r| Some((r.resource_type(), r.id()?))),
                e.full_url.as_deref(),
            );
        }
        for reference in [
            "Patient/p",
            "urn:uuid:1",
            "Practitioner/gp",
            "Practitioner/gp/_history/3",
            "https://elsewhere.nhs.uk/fhir/Practitioner/gp",
            "https://x.nhs.uk/Practitioner/gp",
            "Observation/",
            "Patient/q",
            "#contained",
            "",
        ] {
            assert_eq!(
                entries.position(reference),
                index.position(reference),
                "{reference}"
            );
        }
        assert_eq!(entries.position("Practitioner/gp"), Some(2));
    }
}
