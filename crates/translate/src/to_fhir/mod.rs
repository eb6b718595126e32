//! GP2GP `EhrExtract` → GP Connect structured FHIR `Bundle`.
//!
//! A receiving practice gets the record as an `EhrExtract`; its clinical system wants GP
//! Connect's structured shape. [`extract_to_bundle`] builds that Bundle, clinical area by
//! clinical area (one module each), and a [`Report`] that accounts for every statement:
//!
//! | HL7 | FHIR |
//! |---|---|
//! | `recordTarget` (NHS number), extract author (ODS) | `Patient`, `Organization` |
//! | agent directory | `Practitioner`, `PractitionerRole`, `Organization` |
//! | `ehrComposition` (a consultation) | `Encounter`, consultation `List`, topic and category `List`s |
//! | `LinkSet` | `Condition` (problem) with related-clinical-content extensions |
//! | `CompoundStatement` `CATEGORY` 14L..00 / SN53.00 + `ObservationStatement` | `AllergyIntolerance` |
//! | `MedicationStatement` + `ehrSupplyAuthorise` | `MedicationRequest` (plan) + `MedicationStatement` + `Medication` |
//! | `ehrSupplyPrescribe` | `MedicationRequest` (order); `ehrSupplyDiscontinue` stops the plan |
//! | `ObservationStatement` | `Observation`, or `Immunization` for vaccinations |
//! | `CompoundStatement` `BATTERY` blood pressure | `Observation` with components |
//! | `CompoundStatement` `CLUSTER` 16488004 (lab report) | `DiagnosticReport`, `Specimen`, test group and result `Observation`s |
//! | `RequestStatement` | `ReferralRequest` |
//! | `PlanStatement` | `ProcedureRequest` |
//! | `NarrativeStatement` with `referredToExternalDocument` | `DocumentReference` |
//! | `NarrativeStatement` | `Observation` (comment note) |
//! | `confidentialityCode` `NOPAT` | `meta.security` NOPAT |
//!
//! Resource ids come from the HL7 ids (a UUID stays itself; anything else is hashed), so
//! the same extract always gives the same Bundle. Nothing reads a clock.

mod agents;
mod allergies;
pub mod codes;
mod consultation;
mod index;
mod medication;
mod observations;
mod problems;
mod requests;
mod results;
mod stream;
pub mod time;

use crate::hash::{HashMap, HashSet};

use fhir::{Bundle, BundleEntry, Coding, Identifier, Meta, Patient, Reference, Resource, systems};
use hl7v3::datatypes::{CD, II};
use hl7v3::ehr::{EhrComposition, EhrExtract, Participant};

use crate::{Report, TranslateError, Unmapped};

pub(crate) use index::Index;
pub use stream::{WHOLE_BELOW, extract_to_writer, extract_to_writer_streaming};
pub use time::TimeZone;

/// What the caller decides for a translation (the crate reads no clock and invents no
/// random ids).
#[derive(Debug, Clone, Default)]
pub struct ToFhirOptions {
    /// The Patient's id; by default derived from the NHS number.
    pub patient_id: Option<String>,
    /// The Bundle's id; by default derived from the extract's id.
    pub bundle_id: Option<String>,
    /// The zone HL7 times are in (GP2GP: UK local time).
    pub time_zone: TimeZone,
    /// Business identifiers: when set, each clinical resource gets an identifier
    /// `{system, value = HL7 id}` (e.g. `https://PSSAdaptor/{ODS}`); by default the HL7 id
    /// travels as `urn:ietf:rfc:3986` / `urn:uuid:…` or `urn:oid:…`.
    pub identifier_system: Option<String>,
}

/// Translates an EhrExtract message (`RCMR_IN030000UK06` / `UK07`) into a GP Connect
/// structured `collection` Bundle, with a report of what was read, written, degraded and
/// left unmapped.
pub fn extract_to_bundle(
    message: &hl7v3::Message,
    options: &ToFhirOptions,
) -> Result<(Bundle, Report), TranslateError> {
    let extract = message
        .ehr_extract()
        .ok_or_else(|| TranslateError::NotAnExtract(message.interaction_id().to_owned()))?;
    translate_extract(extract, options)
}

/// Like [`extract_to_bundle`], for an `EhrExtract` already taken out of its message.
pub fn translate_extract(
    extract: &EhrExtract,
    options: &ToFhirOptions,
) -> Result<(Bundle, Report), TranslateError> {
    let folder = extract.folder().ok_or(TranslateError::NoFolder)?;
    let nhs = extract
        .nhs_number()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or(TranslateError::NoNhsNumber)?;

    let compositions: Vec<&EhrComposition> = folder
        .component
        .iter()
        .filter_map(|c| c.ehr_composition.as_deref())
        .collect();
    let mut index = Index::default();
    for comp in &compositions {
        index.add_composition(comp.component.iter().filter_map(|c| c.statement.as_ref()));
    }
    index.finish();
    for comp in &compositions {
        index.capture_named(comp.component.iter().filter_map(|c| c.statement.as_ref()));
    }
    let extract_time = extract
        .availability_time
        .as_ref()
        .and_then(|t| t.value.clone());
    let mut ctx = Ctx::new(options, index, extract_time);
    ctx.patient(nhs, source_ods(extract));
    ctx.agents(extract.agents());
    for (i, comp) in compositions.iter().enumerate() {
        ctx.composition(comp, i);
    }
    ctx.conditions();
    ctx.unmapped_leftovers();

    let bundle_id = bundle_id(options, extract.id.as_deref(), nhs);
    let entries = std::mem::take(&mut ctx.entries);
    let bundle = Bundle {
        entry: entries,
        ..bundle_shell(bundle_id)
    };
    Ok((bundle, ctx.report))
}

/// The sending practice's ODS code (the extract's author).
fn source_ods(extract: &EhrExtract) -> Option<&str> {
    extract
        .author
        .as_ref()
        .and_then(|a| a.agent_org_sds.as_ref())
        .and_then(|a| a.ods_code())
}

/// The Bundle's id: as given, else from the extract's id, else from the NHS number.
fn bundle_id(options: &ToFhirOptions, extract_id: Option<&II>, nhs: &str) -> String {
    options
        .bundle_id
        .clone()
        .or_else(|| extract_id.and_then(ii_id))
        .unwrap_or_else(|| format!("bundle-{}", hash_hex(nhs)))
}

/// The Bundle without its entries.
fn bundle_shell(id: String) -> Bundle {
    Bundle {
        id: Some(id),
        meta: Some(Meta {
            profile: vec![systems::PROFILE_STRUCTURED_RECORD_BUNDLE.to_owned()],
            ..Meta::default()
        }),
        r#type: Some("collection".to_owned()),
        ..Bundle::default()
    }
}

// ---------------------------------------------------------------------------
// ids

/// FNV-1a, 64 bits: a cheap, stable hash for derived ids.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) fn hash_hex(s: &str) -> String {
    format!("{:016x}", fnv(s.as_bytes()))
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A FHIR id for an HL7 instance identifier: the root as it is when it is a valid id and
/// there is no extension, else `root-extension` when valid, else a hash of both.
pub(crate) fn ii_id(ii: &II) -> Option<String> {
    let root = ii.root.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let ext = ii
        .extension
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    match (root, ext) {
        (None, None) => None,
        (Some(r), None) if valid_id(r) => Some(r.to_owned()),
        (None, Some(e)) if valid_id(e) => Some(e.to_owned()),
        (Some(r), Some(e)) if valid_id(r) && valid_id(e) && r.len() + e.len() < 64 => {
            Some(format!("{r}-{e}"))
        }
        (r, e) => Some(format!(
            "h{}",
            hash_hex(&format!("{}^{}", r.unwrap_or(""), e.unwrap_or("")))
        )),
    }
}

/// The string an HL7 id is looked up by (statement references use the root, or
/// root+extension).
pub(crate) fn ii_key(ii: &II) -> Option<String> {
    let root = ii.root.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let ext = ii
        .extension
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    match (root, ext) {
        (Some(r), None) => Some(r.to_ascii_uppercase()),
        (Some(r), Some(e)) => Some(format!("{}^{e}", r.to_ascii_uppercase())),
        (None, Some(e)) => Some(e.to_owned()),
        (None, None) => None,
    }
}

pub(crate) fn reference(target: &str) -> Reference {
    Reference {
        reference: Some(target.to_owned()),
        ..Reference::default()
    }
}

// ---------------------------------------------------------------------------
// the translation context

/// Where a statement sits: its composition and what it inherits from it.
#[derive(Clone)]
pub(crate) struct Scope {
    /// `Encounter/…` when the composition is a consultation.
    pub encounter: Option<String>,
    /// The composition's id (for derived ids and report lines).
    pub comp_id: String,
    /// `ehrComposition/author/time`.
    pub author_time: Option<String>,
    /// `ehrComposition/availabilityTime`.
    pub availability: Option<String>,
    /// The composition's author (`Practitioner/…`).
    pub author: Option<String>,
    /// The composition's performer (`Participant2`).
    pub performer: Option<String>,
    /// Confidential (NOPAT) at composition level.
    pub confidential: bool,
}

pub(crate) struct Ctx<'a> {
    pub opts: &'a ToFhirOptions,
    pub report: Report,
    /// Entries made and not yet handed on.
    pub entries: Vec<BundleEntry>,
    /// Entries handed on already (see [`Ctx::take_entries`]).
    taken: usize,
    used: HashSet<(&'static str, String)>,
    pub patient_ref: String,
    pub index: Index,
    /// Agent id (key) → `Practitioner/…` or `Organization/…`.
    pub agents: HashMap<String, String>,
    /// Statement id (key) → the reference of the resource it became.
    pub produced: HashMap<String, String>,
    /// LinkSets seen, with their scope, mapped once every statement is known.
    pub linksets: Vec<(hl7v3::ehr::LinkSet, Scope)>,
    /// Medication dedupe: key → `Medication/…`.
    pub medications: HashMap<String, String>,
    /// Locations already written (by id).
    pub locations: HashSet<String>,
    /// The sending practice (`Organization/…`).
    pub source_org: Option<String>,
    /// The extract's availability time (fallback for asserted dates).
    pub extract_time: Option<String>,
}

impl<'a> Ctx<'a> {
    fn new(opts: &'a ToFhirOptions, index: Index, extract_time: Option<String>) -> Ctx<'a> {
        Ctx {
            opts,
            report: Report::default(),
            entries: Vec::new(),
            taken: 0,
            used: HashSet::default(),
            patient_ref: String::new(),
            index,
            agents: HashMap::default(),
            produced: HashMap::default(),
            linksets: Vec::new(),
            medications: HashMap::default(),
            locations: HashSet::default(),
            source_org: None,
            extract_time,
        }
    }

    /// How many entries have been made so far (derived ids count them).
    pub fn entry_count(&self) -> usize {
        self.taken + self.entries.len()
    }

    /// Hands on the entries made so far.
    pub fn take_entries(&mut self) -> Vec<BundleEntry> {
        self.taken += self.entries.len();
        std::mem::take(&mut self.entries)
    }

    pub fn zone(&self) -> TimeZone {
        self.opts.time_zone
    }

    /// Claims a resource id, making it unique within its type.
    pub fn claim(&mut self, ty: &'static str, id: String) -> String {
        if self.used.insert((ty, id.clone())) {
            return id;
        }
        for n in 2.. {
            let candidate = format!("{}-{n}", &id[..id.len().min(58)]);
            if self.used.insert((ty, candidate.clone())) {
                return candidate;
            }
        }
        id
    }

    /// An id for a resource made from `ii`, or derived from `fallback` when it has none.
    pub fn id_for(
        &mut self,
        ty: &'static str,
        ii: Option<&II>,
        fallback: impl std::fmt::Display,
    ) -> String {
        // The fallback is made into text only when it is used (most statements have ids).
        let base = ii
            .and_then(ii_id)
            .unwrap_or_else(|| format!("h{}", hash_hex(&fallback.to_string())));
        self.claim(ty, base)
    }

    /// Adds a resource to the Bundle and counts it.
    pub fn push(&mut self, resource: Resource) {
        self.report.wrote(resource.resource_type());
        self.entries.push(BundleEntry {
            resource: Some(resource),
            ..BundleEntry::default()
        });
    }

    /// The reference to the Patient.
    pub fn subject(&self) -> Reference {
        reference(&self.patient_ref)
    }

    /// Records that statement `ii` became `target` (`Type/id`).
    pub fn produced(&mut self, ii: Option<&II>, target: &str) {
        if let Some(k) = ii.and_then(ii_key) {
            self.produced.entry(k).or_insert_with(|| target.to_owned());
        }
    }

    /// The identifiers for a resource made from `ii`.
    pub fn identifiers(&self, ii: Option<&II>) -> Vec<Identifier> {
        let Some(ii) = ii else { return Vec::new() };
        if let Some(system) = &self.opts.identifier_system {
            return ii
                .value()
                .map(|v| vec![Identifier::new(system.clone(), v)])
                .unwrap_or_default();
        }
        let root = ii.root.as_deref().map(str::trim).filter(|r| !r.is_empty());
        let ext = ii
            .extension
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        match (root, ext) {
            (Some(r), Some(e)) => vec![Identifier::new(["urn:oid:", r].concat(), e)],
            (Some(r), None) if is_uuid(r) => vec![Identifier::new(
                "urn:ietf:rfc:3986",
                ["urn:uuid:", &r.to_ascii_lowercase()].concat(),
            )],
            (Some(r), None) => vec![Identifier::new(
                "urn:ietf:rfc:3986",
                ["urn:oid:", r].concat(),
            )],
            _ => Vec::new(),
        }
    }

    /// `meta` for a resource: NOPAT when the entry or its composition is confidential.
    pub fn meta(&self, confidentiality: Option<&CD>, scope_confidential: bool) -> Option<Meta> {
        let nopat = scope_confidential || is_nopat(confidentiality);
        nopat.then(|| Meta {
            security: vec![Coding::new(
                "http://hl7.org/fhir/v3/ActCode",
                "NOPAT",
                "no disclosure to patient, family or caregivers without attending provider's authorization",
            )],
            ..Meta::default()
        })
    }

    /// The practitioner (or organisation) an `agentRef` names, if it is in the directory.
    pub fn agent(&mut self, id: Option<&II>, source: &str) -> Option<String> {
        let key = id.and_then(ii_key)?;
        if let Some(r) = self.agents.get(&key) {
            return Some(r.clone());
        }
        self.report.unmapped.push(Unmapped {
            source: source.to_owned(),
            kind: "agentRef".to_owned(),
            reason: format!(
                "the agent {key} is not in the agent directory; the reference to it was left out"
            ),
        });
        // Report it once only.
        self.agents.insert(key, String::new());
        None
    }

    /// The first participant of the given types, as a reference.
    pub fn participant(
        &mut self,
        parts: &[Participant],
        types: &[&str],
        source: &str,
    ) -> Option<String> {
        let p = parts.iter().find(|p| {
            p.type_code.as_deref().is_some_and(|t| types.contains(&t))
                && p.agent_ref.as_ref().and_then(|a| a.id.as_ref()).is_some()
        })?;
        let id = p.agent_ref.as_ref().and_then(|a| a.id.as_deref());
        self.agent(id, source).filter(|r| !r.is_empty())
    }

    /// The author of a statement: its `AUT` participant, else the composition's author.
    pub fn author_of(
        &mut self,
        parts: &[Participant],
        scope: &Scope,
        source: &str,
    ) -> Option<String> {
        self.participant(parts, &["AUT"], source)
            .or_else(|| scope.author.clone())
    }

    /// The performer of a statement: its `PRF`/`PPRF` participant, else the composition's.
    pub fn performer_of(
        &mut self,
        parts: &[Participant],
        scope: &Scope,
        source: &str,
    ) -> Option<String> {
        self.participant(parts, &["PRF", "PPRF"], source)
            .or_else(|| scope.performer.clone())
            .or_else(|| scope.author.clone())
    }

    /// Statements mapped by nobody: every statement read must have produced a resource or
    /// been consumed by one; anything else is reported.
    fn unmapped_leftovers(&mut self) {
        // (Each area reports its own unmapped items as it goes; nothing to do here yet.)
    }
}

pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

pub(crate) fn is_nopat(cd: Option<&CD>) -> bool {
    cd.and_then(|c| c.code.as_deref())
        .is_some_and(|c| c.eq_ignore_ascii_case("NOPAT"))
}

/// Text of an optional ST/ED, trimmed, `None` when empty.
pub(crate) fn text_of(st: Option<&hl7v3::datatypes::ST>) -> Option<String> {
    let t = st?.text();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Builds the Patient (by NHS number) and the sending practice.
impl Ctx<'_> {
    fn patient(&mut self, nhs: &str, source_ods: Option<&str>) {
        let id = self
            .opts
            .patient_id
            .clone()
            .unwrap_or_else(|| format!("patient-{}", hash_hex(nhs)));
        let id = self.claim("Patient", id);
        self.patient_ref = format!("Patient/{id}");
        self.report.read("recordTarget");
        let mut patient = Patient {
            id: Some(id),
            meta: Some(Meta {
                profile: vec![
                    "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1"
                        .to_owned(),
                ],
                ..Meta::default()
            }),
            identifier: vec![Identifier::new(systems::NHS_NUMBER, nhs)],
            ..Patient::default()
        };
        if let Some(ods) = source_ods.map(str::trim).filter(|o| !o.is_empty()) {
            let org_id = self.claim("Organization", format!("ods-{}", sanitize(ods)));
            let org = fhir::Organization {
                id: Some(org_id.clone()),
                identifier: vec![Identifier::new(systems::ODS_ORGANIZATION_CODE, ods)],
                ..fhir::Organization::default()
            };
            self.source_org = Some(format!("Organization/{org_id}"));
            patient.managing_organization = Some(reference(&format!("Organization/{org_id}")));
            self.push(org.into());
        }
        self.push(patient.into());
    }
}

/// Keeps only characters a FHIR id may have.
pub(crate) fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(60)
        .collect();
    if out.is_empty() { hash_hex(s) } else { out }
}
