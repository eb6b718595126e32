//! What the [`Prescan`](super::prescan::Prescan) takes from each resource — its type and
//! id, whether it is confidential, and the few references and codes that tie resources
//! together — read either from the typed model ([`Facts::of`]) or straight from the
//! resource's JSON without building the model ([`Facts::read`], several times faster).
//!
//! The two agree wherever the typed model reads the resource: a member that is `null`,
//! or an array holding a `null`, counts as absent (the model keeps it aside); anything the
//! quick reading is not sure of (a member twice, an `id` that is not a string, a member
//! of the wrong JSON type) is an error, and the caller reads the whole Bundle instead.
//! Nothing is validated beyond the members read: the resource is still parsed in full
//! before the translation is trusted (see `to_hl7::stream`).

use crate::hash::HashMap;

use fhir::Resource;
use serde::Deserialize;
use serde::de;

use super::consultations::CONSULTATION_LIST;
use super::observations::COMMENT_NOTE;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub resource_type: String,
    pub id: Option<String>,
    /// A `NOPAT` security label (for the types the model reads: others have no `meta`).
    pub nopat: bool,
    pub kind: Kind,
}

/// The references (as strings) and codes of the kinds of resource the prescan looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Kind {
    MedicationStatement {
        based_on: Vec<String>,
    },
    /// A List with the consultation code.
    ConsultationList {
        encounter: Option<String>,
    },
    Observation {
        /// `related` targets of type `has-member` (or no type).
        members: Vec<String>,
        /// Coded "comment note".
        comment: bool,
        /// `related` targets of type `derived-from`.
        derived: Vec<String>,
    },
    DiagnosticReport {
        /// `result` then `specimen`.
        refs: Vec<String>,
    },
    #[default]
    Other,
}

impl Facts {
    /// From the typed model.
    pub fn of(r: &Resource) -> Facts {
        let refs = |v: &[fhir::Reference]| -> Vec<String> {
            v.iter().filter_map(|r| r.reference.clone()).collect()
        };
        let kind = match r {
            Resource::MedicationStatement(s) => Kind::MedicationStatement {
                based_on: refs(&s.based_on),
            },
            Resource::List(l)
                if l.code
                    .as_ref()
                    .is_some_and(|c| has_code(c, CONSULTATION_LIST)) =>
            {
                Kind::ConsultationList {
                    encounter: l.encounter.as_ref().and_then(|e| e.reference.clone()),
                }
            }
            Resource::Observation(o) => Kind::Observation {
                members: super::prescan::member_refs(o)
                    .filter_map(|r| r.reference.clone())
                    .collect(),
                comment: super::observations::is_comment(o),
                derived: super::prescan::derived_refs(o)
                    .filter_map(|r| r.reference.clone())
                    .collect(),
            },
            Resource::DiagnosticReport(d) => Kind::DiagnosticReport {
                refs: d
                    .result
                    .iter()
                    .chain(d.specimen.iter())
                    .filter_map(|r| r.reference.clone())
                    .collect(),
            },
            _ => Kind::Other,
        };
        Facts {
            resource_type: r.resource_type().to_owned(),
            id: r.id().map(str::to_owned),
            nopat: super::is_nopat(r.meta()),
            kind,
        }
    }

    /// From the members of a resource's JSON that it looks at ([`Picked`], taken as the
    /// Bundle is split). `modelled` says whether the model reads a resource type into a
    /// struct of its own (see [`Modelled`]).
    pub fn read(picked: &Picked<'_>, modelled: &mut Modelled) -> Result<Facts, serde_json::Error> {
        let member = |name: &str| picked.get(name);
        let ty = member("resourceType").ok_or_else(|| de::Error::missing_field("resourceType"))?;
        let resource_type: String = serde_json::from_str(ty)?;
        let typed = modelled.is_modelled(&resource_type);
        let id = match member("id") {
            None | Some("null") => None,
            Some(v) if v.starts_with('"') => Some(serde_json::from_str::<String>(v)?),
            // The model keeps a non-string id of an unmodelled type aside (no id), and
            // refuses it for a modelled one: either way, not for the quick reading.
            Some(_) => return Err(de::Error::custom("an id that is not a string")),
        };
        let nopat = typed
            && read::<Meta>(member("meta"))?.is_some_and(|m| {
                list(m.security)
                    .iter()
                    .any(|c| c.code.as_deref() == Some("NOPAT"))
            });
        let kind = if !typed {
            Kind::Other
        } else {
            match resource_type.as_str() {
                "MedicationStatement" => Kind::MedicationStatement {
                    based_on: references(read(member("basedOn"))?),
                },
                "List" => {
                    let code: Option<Concept> = read(member("code"))?;
                    if code.is_some_and(|c| codes(c).any(|k| k == CONSULTATION_LIST)) {
                        Kind::ConsultationList {
                            encounter: read::<Ref>(member("encounter"))?.and_then(|r| r.reference),
                        }
                    } else {
                        Kind::Other
                    }
                }
                "Observation" => {
                    let code: Option<Concept> = read(member("code"))?;
                    let related = list(read::<Vec<Option<Related>>>(member("related"))?);
                    let target_of = |want: fn(Option<&str>) -> bool| -> Vec<String> {
                        related
                            .iter()
                            .filter(|r| want(r.r#type.as_deref()))
                            .filter_map(|r| r.target.as_ref()?.reference.clone())
                            .collect()
                    };
                    Kind::Observation {
                        members: target_of(|t| t.is_none_or(|t| t == "has-member")),
                        comment: code.is_some_and(|c| codes(c).any(|k| k == COMMENT_NOTE)),
                        derived: target_of(|t| t == Some("derived-from")),
                    }
                }
                "DiagnosticReport" => {
                    let mut refs = references(read(member("result"))?);
                    refs.extend(references(read(member("specimen"))?));
                    Kind::DiagnosticReport { refs }
                }
                _ => Kind::Other,
            }
        };
        Ok(Facts {
            resource_type,
            id,
            nopat,
            kind,
        })
    }
}

/// The members of a resource that [`Facts::read`] looks at, in the order
/// [`Picked::slot`] keeps them.
const PICKED: [&str; 9] = [
    "resourceType",
    "id",
    "meta",
    "basedOn",
    "code",
    "encounter",
    "related",
    "result",
    "specimen",
];

/// The members of a resource's JSON that [`Facts::read`] looks at, each as its text, noted
/// as the resource is walked.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Picked<'a>([Option<&'a str>; PICKED.len()]);

impl<'a> Picked<'a> {
    /// Notes a member (one not looked at is passed over).
    pub fn note(&mut self, key: &str, value: &'a str) {
        if let Some(slot) = Self::slot(key).and_then(|i| self.0.get_mut(i)) {
            *slot = Some(value);
        }
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        *self.0.get(Self::slot(name)?)?
    }

    /// Where a member is kept (its place in [`PICKED`]); a `match`, since this is asked of
    /// every member of every resource.
    fn slot(key: &str) -> Option<usize> {
        Some(match key {
            "resourceType" => 0,
            "id" => 1,
            "meta" => 2,
            "basedOn" => 3,
            "code" => 4,
            "encounter" => 5,
            "related" => 6,
            "result" => 7,
            "specimen" => 8,
            _ => return None,
        })
    }
}

fn has_code(c: &fhir::CodeableConcept, code: &str) -> bool {
    c.coding.iter().any(|k| k.code.as_deref() == Some(code))
}

/// Which resource types the model reads into structs of their own (asked of the model
/// once per type).
#[derive(Default)]
pub(crate) struct Modelled(HashMap<String, bool>);

impl Modelled {
    pub fn is_modelled(&mut self, resource_type: &str) -> bool {
        if let Some(&m) = self.0.get(resource_type) {
            return m;
        }
        let probe = serde_json::json!({ "resourceType": resource_type });
        let m = serde_json::from_value::<Resource>(probe)
            .is_ok_and(|r| !matches!(r, Resource::Other(_)));
        self.0.insert(resource_type.to_owned(), m);
        m
    }
}

/// A member's value, `None` when it is absent or `null`.
fn read<'a, T: Deserialize<'a>>(raw: Option<&'a str>) -> Result<Option<T>, serde_json::Error> {
    match raw {
        None | Some("null") => Ok(None),
        Some(v) => serde_json::from_str(v).map(Some),
    }
}

/// An array's items; an array holding a `null` is no items, as the model reads it.
fn list<T>(v: Option<Vec<Option<T>>>) -> Vec<T> {
    let v = v.unwrap_or_default();
    if v.iter().any(Option::is_none) {
        return Vec::new();
    }
    v.into_iter().flatten().collect()
}

fn references(v: Option<Vec<Option<Ref>>>) -> Vec<String> {
    list(v).into_iter().filter_map(|r| r.reference).collect()
}

fn codes(c: Concept) -> impl Iterator<Item = String> {
    list(c.coding).into_iter().filter_map(|k| k.code)
}

#[derive(Deserialize)]
struct Ref {
    reference: Option<String>,
}

#[derive(Deserialize)]
struct Coding {
    code: Option<String>,
}

#[derive(Deserialize)]
struct Concept {
    coding: Option<Vec<Option<Coding>>>,
}

#[derive(Deserialize)]
struct Meta {
    security: Option<Vec<Option<Coding>>>,
}

#[derive(Deserialize)]
struct Related {
    r#type: Option<String>,
    target: Option<Ref>,
}

#[cfg(test)]
mod picked_tests {
    use super::*;

    #[test]
    fn every_member_looked_at_has_its_own_place() {
        for (i, name) in PICKED.iter().enumerate() {
            assert_eq!(Picked::slot(name), Some(i), "{name}");
        }
        assert_eq!(Picked::slot("status"), None);
        let mut p = Picked::default();
        p.note("code", "{}");
        p.note("status", "\"final\"");
        assert_eq!(p.get("code"), Some("{}"));
        assert_eq!(p.get("status"), None);
        assert_eq!(p.get("id"), None);
    }
}
