/*!
A serde model of the FHIR STU3 resources that GP Connect uses: lenient when
reading, strict when asked about what it will write, and lossless in between.

# What GP Connect structured records look like

A GP Connect "Access Record: Structured" answer (`$gpc.getstructuredrecord`,
or `$gpc.migratestructuredrecord` when a GP2GP sender reads the record to
send) is a single FHIR STU3 [`Bundle`] of `type` `collection`. Its entries are
flat: the [`Patient`], the registered [`Organization`], the usual GP as a
[`Practitioner`] with a [`PractitionerRole`], then, for each clinical area, a
[`List`] (titled e.g. "Allergies and adverse reactions", coded in SNOMED CT)
whose `entry.item`s reference the area's resources: [`AllergyIntolerance`],
[`MedicationStatement`] + [`MedicationRequest`] + [`Medication`],
[`Condition`] (problems), [`Immunization`], [`Observation`],
[`DiagnosticReport`] + [`Specimen`], [`ProcedureRequest`],
[`ReferralRequest`], [`DocumentReference`], and [`Encounter`]s
(consultations) with further Lists for their topics and headings.
Resources point at each other with relative references such as
`"Practitioner/6D340A1B-…"`; [`Bundle::index`] follows them.

Much of GP Connect's meaning is in profiles and extensions: codes carry their
SNOMED CT description id in an `Extension-coding-sctdescid` extension
([`Coding::snomed_description_id`]); a Condition links to its related
clinical content with extensions; Lists carry warning codes. [`systems`]
names the code systems, identifier systems and extension URLs seen in real
records.

# The model

Every resource and complex datatype is a struct with public fields named as
STU3 names its elements, in snake_case (`Observation::effective`,
`MedicationRequest::dispense_request`; `r#type` and `r#use` where the FHIR
name is a Rust keyword). Every field is an `Option` or a `Vec`, even where
STU3 requires the element, so that incomplete real data still reads; choice
elements (`value[x]`, `effective[x]`…) are a [`Choice`]. Dates are a
[`DateTime`] that keeps its text exactly and knows its [`Precision`]; decimals
are a [`Decimal`] that keeps its digits (`4.000` stays `4.000`).

```
# fn main() -> Result<(), fhir::Error> {
use fhir::{Bundle, Observation, Patient, Practitioner};

let json = r#"{
  "resourceType": "Bundle", "type": "collection",
  "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1",
      "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9465698490"}]}},
    {"resource": {"resourceType": "Practitioner", "id": "gp1"}},
    {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "271649006",
                           "display": "Systolic blood pressure"}]},
      "subject": {"reference": "Patient/p1"},
      "performer": [{"reference": "Practitioner/gp1"}],
      "effectiveDateTime": "2010-05",
      "valueQuantity": {"value": 120.0, "unit": "mm[Hg]"}}}
  ]
}"#;
let bundle: Bundle = fhir::from_str(json)?;
let patient = bundle.resources_of::<Patient>().next().unwrap();
assert_eq!(patient.nhs_number(), Some("9465698490"));

let index = bundle.index();
for obs in bundle.resources_of::<Observation>() {
    let code = obs.code.as_ref().and_then(|c| c.snomed()).unwrap();
    assert_eq!(code.code.as_deref(), Some("271649006"));
    let when = obs.effective.as_ref().and_then(|e| e.as_date_time()).unwrap();
    assert_eq!(when.to_hl7_ts().as_deref(), Some("201005"));
    let value = obs.value.as_ref().and_then(|v| v.as_quantity()).unwrap();
    assert_eq!(value.value.as_ref().map(|d| d.as_str()), Some("120.0"));
    let gp = index.resolve_as::<Practitioner>(&obs.performer[0]);
    assert!(gp.is_some());
}
assert!(bundle.check_strict().is_empty());
# Ok(())
# }
```

# Lenient in, strict out

Real records are not always valid FHIR: the conformance corpus has empty
strings (`"description": ""`), GP systems write partial dates and
occasionally times without a zone, some write decimals as strings, and some
write `null`s. Reading accepts all of these — a record must never be refused
for them — and keeps them exactly as they were (a `null`, or an array holding
one, is kept in `extra` rather than in the typed field).

Writing is a different matter: what Lloyd sends must be valid STU3.
[`Bundle::check_strict`] lists everything it can see that would make the
written Bundle invalid (empty strings and elements, missing required
elements, broken invariants, malformed ids, dates and decimals, duplicate
entries, references that name no entry), each with a JSON path and what to
do. [`Bundle::clean`] removes what can be removed without inventing data
(empty strings and the elements they leave empty; decimals in strings become
numbers). The crate's tests write every corpus bundle after cleaning and
check it with an independent validator (Python `fhir.resources`).

# Nothing is lost

Every struct has an `extra` map ([`Extra`]) that keeps the JSON members the
model does not name (rare elements, primitive extensions such as
`_birthDate`, choice types that are not modelled), and a Bundle entry whose
resource type is not modelled is kept whole as [`Resource::Other`]. So
reading and writing a Bundle gives back the same JSON: the same members with
the same values. Only the order of members in an object can differ (modelled
elements are written in STU3 order, then unknown members sorted by name),
which JSON and FHIR give no meaning to. One exception: a resource whose
`resourceType` is not its first member is read through an intermediate JSON
value, which writes decimals in their shortest form (`4.000` becomes `4.0`).

# Errors

Reading fails only when the JSON is malformed or an element has a JSON type
that cannot be right (an object where a string belongs). The [`Error`] says
where, as a JSON path (`entry[12].resource.code.coding[0].code`) and as a
line and column, and what to do about it.

This crate does no I/O: it reads from and writes to memory.
*/

#![deny(missing_docs)]

#[macro_use]
mod model;

mod bundle;
mod check;
mod choice;
mod datatypes;
mod datetime;
mod decimal;
mod error;
mod resources;
pub mod systems;

pub use crate::bundle::{BundleIndex, EntryIndex};
pub use crate::check::{Issue, IssueKind, is_valid_id};
pub use crate::choice::Choice;
pub use crate::datatypes::*;
pub use crate::datetime::{DateTime, Precision};
pub use crate::decimal::Decimal;
pub use crate::error::Error;
pub use crate::model::Extra;
pub use crate::resources::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads a FHIR resource or element (usually a [`Bundle`] or a
/// [`Resource`]) from JSON bytes.
pub fn from_slice<T: DeserializeOwned>(json: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(json).map_err(|err| {
        let mut de = serde_json::Deserializer::from_slice(json);
        Error::json(&err, error_path::<T, _>(&mut de))
    })
}

/// Reads a FHIR resource or element from a JSON string.
pub fn from_str<T: DeserializeOwned>(json: &str) -> Result<T, Error> {
    from_slice(json.as_bytes())
}

/// Reads the input again to find the JSON path of the error (only done after
/// a failure, as path tracking slows reading down).
fn error_path<'de, T, D>(de: D) -> String
where
    T: DeserializeOwned,
    D: serde::Deserializer<'de>,
{
    match serde_path_to_error::deserialize::<_, T>(de) {
        Err(err) => err.path().to_string(),
        Ok(_) => ".".to_owned(),
    }
}

/// Writes a resource or element as compact JSON.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(Error::Write)
}

/// Writes a resource or element as indented JSON.
pub fn to_vec_pretty<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(value).map_err(Error::Write)
}

/// Writes a resource or element as a compact JSON string.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::Write)
}

/// Writes a resource or element as an indented JSON string.
pub fn to_string_pretty<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string_pretty(value).map_err(Error::Write)
}
