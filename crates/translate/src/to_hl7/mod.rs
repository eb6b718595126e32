//! FHIR `Bundle` → GP2GP `EhrExtract`.
//!
//! A GP2GP sender reads the record as GP Connect structured FHIR (the answer to
//! `$gpc.migratestructuredrecord`) and sends it as an `RCMR_IN030000UK06` EhrExtract, or
//! `RCMR_IN030000UK07` when some of it is confidential (a `NOPAT` security label). This
//! module does that translation, following the NHS sending adaptor's mapping where it has
//! one:
//!
//! | FHIR | HL7 |
//! |---|---|
//! | Practitioner + PractitionerRole + Organization | `agentDirectory` `Agent` (`agentPerson` + `representedOrganization`, or `agentOrganization`) |
//! | Encounter + its consultation `List`s | `ehrComposition` → `CompoundStatement` `TOPIC` → `CATEGORY` → statements |
//! | Condition | `LinkSet` (+ an `ObservationStatement` naming the problem when no observation does) |
//! | AllergyIntolerance | `CompoundStatement` `CATEGORY` around an `ObservationStatement` |
//! | MedicationRequest (plan / order) + MedicationStatement + Medication | `MedicationStatement` with `ehrSupplyAuthorise` (+ `ehrSupplyDiscontinue`) / `ehrSupplyPrescribe` |
//! | Observation | `ObservationStatement`; with components (blood pressure) or members (test group) a `CompoundStatement` `BATTERY`; a comment note a `NarrativeStatement` |
//! | DiagnosticReport + Specimen + results | `CompoundStatement` `CLUSTER` → specimen `CLUSTER` → results (`BATTERY` / `CLUSTER`) and comments |
//! | Immunization | `ObservationStatement` |
//! | ReferralRequest | `RequestStatement` |
//! | ProcedureRequest | `PlanStatement` |
//! | DocumentReference | `NarrativeStatement` with `reference/referredToExternalDocument` |
//!
//! Clinical resources outside any consultation each get an `ehrComposition` of their own
//! ("Non-consultation data" / "Non-consultation medication data"), as the NHS adaptor does.
//!
//! Codes: the SNOMED CT coding becomes the `code` (its description id when the
//! `Extension-coding-sctdescid` gives one; the concept id for medicines), the other codings
//! (Read v2, CTV3, EMIS, Egton) its `translation`s. With no SNOMED CT coding the code is the
//! GP2GP degrade code for the kind of entry, the original text and codes are kept, and the
//! [`Report`] gets a [`Degrade`](crate::Degrade) line.
//!
//! Ids are UUID v5 derived from the patient and the resource ids, so the same Bundle always
//! gives the same extract.

mod agents;
mod ahead;
mod allergies;
mod build;
mod codes;
mod consultations;
mod diagnostics;
mod facts;
mod json;
mod medication;
mod observations;
mod prescan;
mod problems;
mod requests;
mod store;
mod stream;

use crate::hash::{HashMap, HashSet};

use fhir::{Bundle, Patient, Resource};
use hl7v3::datatypes::{CD, II};
use hl7v3::ehr::{
    AgentOrgSDS, CompositionComponent, EhrExtract, EhrFolder, FolderComponent, IdAct,
    InFulfillmentOf, Limitation, OrgAuthor, OrgParticipation, OrganizationSDS, RecordTarget,
    ResponsibleParty, Statement,
};
use hl7v3::message::{
    AgentSystemSDS, CommunicationFunction, ControlActEvent, Device, Payload, Subject, SystemAuthor,
    Transmission,
};
use hl7v3::{Interaction, Message};
use uuid::Uuid;

use crate::{Report, TranslateError, Unmapped};

use build::*;
use prescan::{Lookups, Prescan};
use store::{Store, Typed};

pub use stream::bundle_to_writer;

/// The OID of ODS organisation codes in HL7 (`agentOrganizationSDS/id/@root`).
pub const ODS_ROOT: &str = "1.2.826.0.1285.0.1.10";
/// The OID of ASIDs in HL7 (`device/id/@root`).
pub const ASID_ROOT: &str = "1.2.826.0.1285.0.2.0.107";
/// The OID of NHS numbers in HL7.
pub const NHS_NUMBER_ROOT: &str = "2.16.840.1.113883.2.1.4.1";

/// What the translation needs beyond the Bundle: who sends to whom, and when.
///
/// Every field may be left `None`; see each for its default. Nothing here is read from a
/// clock or the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToHl7Options {
    /// The sending practice's ODS code. Default: the ODS code of the patient's
    /// `managingOrganization`, else of the Bundle's first Organization that has one.
    pub from_ods: Option<String>,
    /// The requesting (new) practice's ODS code. Default: the sending practice's.
    pub to_ods: Option<String>,
    /// The sending system's ASID. Default: `000000000000` (unknown).
    pub from_asid: Option<String>,
    /// The requesting system's ASID. Default: `000000000000` (unknown).
    pub to_asid: Option<String>,
    /// The time the message is made, as an HL7 timestamp (`YYYYMMDDHHMMSS`). Default: the
    /// Bundle's `meta.lastUpdated`; with neither, translation fails (this crate reads no
    /// clock).
    pub creation_time: Option<String>,
    /// The message id (a UUID). Default: derived from the Bundle.
    pub message_id: Option<String>,
    /// The id of the EhrRequest this extract answers (a UUID). Default: derived from the
    /// Bundle.
    pub request_id: Option<String>,
}

/// The ASID written when none is known.
pub const UNKNOWN_ASID: &str = "000000000000";

/// Translates a GP Connect structured record into a GP2GP EhrExtract message.
///
/// Fails only when the Bundle cannot be an EhrExtract at all (no Patient, no NHS number,
/// no time of creation, no ODS code for the sender); every item it cannot carry fully is a
/// line in the [`Report`].
pub fn bundle_to_extract(
    bundle: &Bundle,
    options: &ToHl7Options,
) -> Result<(Message, Report), TranslateError> {
    let store = Store::bundle(bundle);
    let mut prescan = Prescan::default();
    for (pos, entry) in bundle.entry.iter().enumerate() {
        if let Some(r) = &entry.resource {
            prescan.observe(pos, facts::Facts::of(r));
        }
    }
    let header = Header {
        bundle_id: bundle.id.clone(),
        last_updated: bundle.meta.as_ref().and_then(|m| m.last_updated.clone()),
    };
    let (mut ctx, parties) = prepare(store, prescan, &header, options)?;
    let mut compositions = Vec::new();
    map_compositions(&mut ctx, &mut |_, c| compositions.push(c));
    problems::prune_links(&mut ctx, &mut compositions);
    let mut ids = HashSet::default();
    for c in &compositions {
        collect_composition_ids(c, &mut ids);
    }
    check_carried(&mut ctx, &ids);
    if compositions.is_empty() {
        compositions.push(consultations::empty_record_composition(
            &mut ctx,
            &parties.creation_time,
        ));
    }
    let mut earliest = Earliest::default();
    for c in &compositions {
        earliest.add(c);
    }
    let message = message(&mut ctx, &parties, options, compositions, earliest.0);
    count_output(&message, &mut ctx.report);
    Ok((message, ctx.report))
}

/// What the translation takes from the Bundle itself (not its entries).
pub(crate) struct Header {
    pub bundle_id: Option<String>,
    pub last_updated: Option<fhir::DateTime>,
}

/// Who sends to whom, and when: settled before anything is mapped.
pub(crate) struct Parties {
    pub nhs_number: String,
    pub creation_time: String,
    pub from_ods: String,
    pub to_ods: String,
    pub from_asid: String,
    pub to_asid: String,
}

/// Checks what the extract cannot do without, and sets up the translation: the agent
/// directory, and the resources carried inside others claimed. Fails only when the Bundle
/// cannot be an EhrExtract at all.
pub(crate) fn prepare<'a>(
    store: Store<'a>,
    prescan: Prescan,
    header: &Header,
    options: &ToHl7Options,
) -> Result<(Ctx<'a>, Parties), TranslateError> {
    let patient = store
        .first_of::<Patient>()
        .ok_or(TranslateError::NoPatient)?;
    let nhs_number = patient
        .nhs_number()
        .filter(|n| !n.trim().is_empty())
        .ok_or(TranslateError::NoNhsNumber)?
        .trim()
        .to_string();
    let creation_time = match &options.creation_time {
        Some(t) => t.clone(),
        None => header
            .last_updated
            .as_ref()
            .and_then(hl7_ts)
            .ok_or_else(|| {
                TranslateError::Invalid(
                    "no creation time: give one (an HL7 timestamp such as 20240131093000); the Bundle has no meta.lastUpdated to use instead".into(),
                )
            })?,
    };
    if let Err(e) = hl7v3::datatypes::check_timestamp(&creation_time) {
        return Err(TranslateError::Invalid(format!(
            "the creation time is not an HL7 timestamp: {e}"
        )));
    }

    let mut ctx = Ctx::new(store, patient, &nhs_number, header, prescan);
    for pos in ctx.store.positions() {
        if let Some(ty) = ctx.store.resource_type(pos) {
            ctx.report.read(ty);
        }
    }

    let from_ods = match &options.from_ods {
        Some(o) => o.clone(),
        None => ctx.practice_ods().ok_or_else(|| {
            TranslateError::Invalid(
                "no ODS code for the sending practice: the patient's managingOrganization has none and no Organization in the Bundle has one; give it explicitly".into(),
            )
        })?,
    };
    let to_ods = options.to_ods.clone().unwrap_or_else(|| from_ods.clone());
    let from_asid = options
        .from_asid
        .clone()
        .unwrap_or_else(|| UNKNOWN_ASID.into());
    let to_asid = options
        .to_asid
        .clone()
        .unwrap_or_else(|| UNKNOWN_ASID.into());

    agents::build_directory(&mut ctx);
    // Resources carried inside others are claimed first, so that they are not also sent on
    // their own: test results, specimens and comments inside reports, statements inside
    // medication courses.
    let claims = std::mem::take(&mut ctx.claims);
    ctx.consumed.extend(claims);
    Ok((
        ctx,
        Parties {
            nhs_number,
            creation_time,
            from_ods,
            to_ods,
            from_asid,
            to_asid,
        },
    ))
}

/// Maps the consultations, then everything recorded outside them, handing each
/// composition on as it is made.
pub(crate) fn map_compositions<'a>(
    ctx: &mut Ctx<'a>,
    emit: &mut dyn FnMut(&mut Ctx<'a>, CompositionComponent),
) {
    consultations::map_consultations(ctx, emit);
    consultations::map_non_consultation(ctx, emit);
}

/// The ids (roots) of every statement of a composition, at any depth.
pub(crate) fn collect_composition_ids(c: &CompositionComponent, ids: &mut HashSet<String>) {
    if let Some(comp) = &c.ehr_composition {
        for sc in &comp.component {
            if let Some(s) = &sc.statement {
                problems::collect_ids(s, ids);
            }
        }
    }
}

/// The earliest composition time, for the folder's `effectiveTime/low`: compared by date,
/// the first of the earliest.
#[derive(Default)]
pub(crate) struct Earliest(pub Option<String>);

impl Earliest {
    pub fn add(&mut self, c: &CompositionComponent) {
        let Some(t) = c
            .ehr_composition
            .as_ref()
            .and_then(|c| c.effective_time.as_ref())
            .and_then(|t| t.start())
        else {
            return;
        };
        fn date(s: &str) -> &str {
            s.get(..8).unwrap_or(s)
        }
        if self.0.as_deref().is_none_or(|e| date(t) < date(e)) {
            self.0 = Some(t.to_string());
        }
    }
}

/// The whole message around the compositions.
pub(crate) fn message(
    ctx: &mut Ctx<'_>,
    parties: &Parties,
    options: &ToHl7Options,
    compositions: Vec<CompositionComponent>,
    earliest: Option<String>,
) -> Message {
    let Parties {
        nhs_number,
        creation_time,
        from_ods,
        to_ods,
        from_asid,
        to_asid,
    } = parties;
    let folder = EhrFolder {
        class_code: Some("FOLDER".into()),
        mood_code: Some("EVN".into()),
        id: ii(ctx.id("folder")),
        status_code: cs("COMPLETE"),
        effective_time: bx(hl7v3::datatypes::IVL_TS {
            low: earliest.map(|e| bx_ts(&e)).or_else(|| nf_ts("UNK")),
            ..Default::default()
        }),
        availability_time: ts(creation_time),
        author: bx(org_author(from_ods, creation_time)),
        responsible_party: bx(ResponsibleParty {
            type_code: Some("RESP".into()),
            agent_directory: bx(std::mem::take(&mut ctx.directory)),
            ..Default::default()
        }),
        component: compositions,
        ..Default::default()
    };

    let extract = EhrExtract {
        class_code: Some("EXTRACT".into()),
        mood_code: Some("EVN".into()),
        id: ii(ctx.id("extract")),
        status_code: cs("COMPLETE"),
        availability_time: ts(creation_time),
        record_target: bx(RecordTarget {
            type_code: Some("RCT".into()),
            patient: bx(hl7v3::ehr::Patient {
                class_code: Some("PAT".into()),
                id: bx(II::with_extension(NHS_NUMBER_ROOT, nhs_number)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        author: bx(org_author(from_ods, creation_time)),
        destination: bx(OrgParticipation {
            type_code: Some("DST".into()),
            agent_org_sds: bx(agent_org_sds(to_ods)),
            ..Default::default()
        }),
        component: vec![FolderComponent {
            type_code: Some("COMP".into()),
            ehr_folder: bx(folder),
            ..Default::default()
        }],
        in_fulfillment_of: bx(InFulfillmentOf {
            type_code: Some("FLFS".into()),
            prior_ehr_request: bx(IdAct {
                class_code: Some("EXTRACT".into()),
                mood_code: Some("RQO".into()),
                id: ii(options
                    .request_id
                    .clone()
                    .unwrap_or_else(|| ctx.id("ehr-request"))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        limitation: bx(limitation(ctx)),
        ..Default::default()
    };

    let interaction = if ctx.confidential {
        Interaction::EhrExtractConfidential
    } else {
        Interaction::EhrExtract
    };
    let mut transmission = Transmission {
        id: ii(options
            .message_id
            .clone()
            .unwrap_or_else(|| ctx.id("message"))),
        creation_time: ts(creation_time),
        version_code: cs("V3NPfIT3.1.10"),
        interaction_id: bx(II::with_extension(
            hl7v3::datatypes::INTERACTION_ID_ROOT,
            interaction.id(),
        )),
        processing_code: cs("P"),
        processing_mode_code: cs("T"),
        accept_ack_code: cs("NE"),
        communication_function_rcv: vec![communication_function("RCV", to_asid)],
        communication_function_snd: bx(communication_function("SND", from_asid)),
        control_act_event: bx(ControlActEvent {
            class_code: Some("CACT".into()),
            mood_code: Some("EVN".into()),
            author1: vec![SystemAuthor {
                type_code: Some("AUT".into()),
                agent_system_sds: bx(AgentSystemSDS {
                    class_code: Some("AGNT".into()),
                    agent_system_sds: bx(device(from_asid)),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            subject: bx(Subject {
                type_code: Some("SUBJ".into()),
                context_conduction_ind: Some("false".into()),
                payload: Some(Payload::EhrExtract(Box::new(extract))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    transmission.extra.attrs.push(hl7v3::xml::Attribute::new(
        "xmlns",
        hl7v3::datatypes::HL7_NS,
    ));
    transmission.extra.attrs.push(hl7v3::xml::Attribute::new(
        "xmlns:xsi",
        hl7v3::datatypes::XSI_NS,
    ));
    Message::new(interaction, transmission)
}

fn communication_function(type_code: &str, asid: &str) -> CommunicationFunction {
    CommunicationFunction {
        type_code: Some(type_code.into()),
        device: bx(device(asid)),
        ..Default::default()
    }
}

fn device(asid: &str) -> Device {
    Device {
        class_code: Some("DEV".into()),
        determiner_code: Some("INSTANCE".into()),
        id: vec![II::with_extension(ASID_ROOT, asid)],
        ..Default::default()
    }
}

fn agent_org_sds(ods: &str) -> AgentOrgSDS {
    AgentOrgSDS {
        class_code: Some("AGNT".into()),
        agent_organization_sds: bx(OrganizationSDS {
            class_code: Some("ORG".into()),
            determiner_code: Some("INSTANCE".into()),
            id: bx(II::with_extension(ODS_ROOT, ods)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn org_author(ods: &str, time: &str) -> OrgAuthor {
    OrgAuthor {
        type_code: Some("AUT".into()),
        time: ts(time),
        agent_org_sds: bx(agent_org_sds(ods)),
        ..Default::default()
    }
}

fn limitation(ctx: &Ctx<'_>) -> Limitation {
    let spec = hl7v3::xml::Element::new("limitingEhrExtractSpecification")
        .with_attr("classCode", "OBS")
        .with_attr("moodCode", "DEF")
        .with_child(hl7v3::xml::Element::new("id").with_attr("root", ctx.id("limitation")))
        .with_child(
            hl7v3::xml::Element::new("code")
                .with_attr("code", "37241000000102")
                .with_attr("codeSystem", hl7v3::datatypes::SNOMED_CT)
                .with_attr(
                    "displayName",
                    "Entire record available to originator (administrative concept)",
                ),
        );
    Limitation {
        type_code: Some("LIMIT".into()),
        inversion_ind: Some("true".into()),
        limiting_ehr_extract_specification: bx(spec),
        ..Default::default()
    }
}

/// Counts what was written: compositions, statements by element name (compound
/// statements also by class, `CompoundStatement:TOPIC`), and supplies.
fn count_output(message: &Message, report: &mut Report) {
    let Some(folder) = message.ehr_extract().and_then(|e| e.folder()) else {
        return;
    };
    for c in &folder.component {
        count_composition(c, report);
    }
}

/// [`count_output`] for one composition.
pub(crate) fn count_composition(c: &CompositionComponent, report: &mut Report) {
    let Some(comp) = &c.ehr_composition else {
        return;
    };
    report.wrote("ehrComposition");
    let mut stack: Vec<&Statement> = comp
        .component
        .iter()
        .filter_map(|sc| sc.statement.as_ref())
        .collect();
    let mut key = String::new();
    while let Some(s) = stack.pop() {
        report.wrote(s.element_name());
        match s {
            Statement::CompoundStatement(c) => {
                key.clear();
                key.push_str("CompoundStatement:");
                key.push_str(c.class_code.as_deref().unwrap_or(""));
                report.wrote(&key);
                stack.extend(c.component.iter().filter_map(|sc| sc.statement.as_ref()));
            }
            Statement::MedicationStatement(m) => {
                for c in &m.component {
                    if let Some(s) = &c.supply {
                        report.wrote(s.element_name());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The state of one translation.
pub(crate) struct Ctx<'a> {
    /// The Bundle's resources.
    pub store: Store<'a>,
    pub patient: Typed<'a, Patient>,
    ns: Uuid,
    pub report: Report,
    /// Whether any resource carries a `NOPAT` label (then the message is UK07).
    pub confidential: bool,
    /// The agent directory being built.
    pub directory: hl7v3::ehr::AgentDirectory,
    /// Agent ids by `Type/id` of the Practitioner or Organization.
    pub agent_ids: HashMap<String, String>,
    /// The agent used when a statement names none: the practice.
    pub default_agent: String,
    /// Resources already mapped (`Type/id`): each is mapped once.
    pub consumed: HashSet<String>,
    /// Resources carried inside others (`Type/id`), found by the prescan.
    claims: Vec<String>,
    /// Lookups built once, so that mapping one resource never scans the whole Bundle.
    pub lookups: Lookups,
}

impl<'a> Ctx<'a> {
    fn new(
        store: Store<'a>,
        patient: Typed<'a, Patient>,
        nhs_number: &str,
        header: &Header,
        prescan: Prescan,
    ) -> Ctx<'a> {
        let seed = format!(
            "lloyd:gp2gp:{nhs_number}:{}:{}",
            patient.id.as_deref().unwrap_or(""),
            header.bundle_id.as_deref().unwrap_or("")
        );
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_OID, seed.as_bytes());
        let confidential = prescan.confidential;
        let (lookups, claims) = prescan.finish(&store);
        Ctx {
            store,
            lookups,
            claims,
            patient,
            ns,
            report: Report::default(),
            confidential,
            directory: hl7v3::ehr::AgentDirectory::default(),
            agent_ids: HashMap::default(),
            default_agent: String::new(),
            consumed: HashSet::default(),
        }
    }

    /// A UUID (upper case, as GP2GP writes them) derived from `key`.
    pub fn id(&self, key: &str) -> String {
        derived_id(self.ns, key)
    }

    /// The id of the statement a resource becomes: `res_id("Observation", "1")`.
    pub fn res_id(&self, ty: &str, id: &str) -> String {
        derived_res_id(self.ns, ty, id)
    }

    /// Marks a resource as mapped; false when it already was.
    pub fn consume(&mut self, r: &Resource) -> bool {
        self.consumed.insert(r.label())
    }

    /// The practice's ODS code, from the patient's managing organization or the first
    /// Organization with one.
    fn practice_ods(&self) -> Option<String> {
        let managing = self
            .patient
            .managing_organization
            .as_ref()
            .and_then(|r| self.store.resolve_as::<fhir::Organization>(r));
        managing
            .and_then(|o| o.ods_code().map(str::to_owned))
            .or_else(|| {
                self.store
                    .positions_of::<fhir::Organization>()
                    .into_iter()
                    .filter_map(|p| self.store.get_as::<fhir::Organization>(p))
                    .find_map(|o| o.ods_code().map(str::to_owned))
            })
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The `confidentialityCode` for a resource with a NOPAT label.
    pub fn confidentiality(&self, meta: Option<&fhir::Meta>) -> Option<Box<CD>> {
        is_nopat(meta).then(|| {
            bx(CD::new(
                "NOPAT",
                "2.16.840.1.113883.4.642.3.47",
                Some("no disclosure to patient, family or caregivers without attending provider's authorization"),
            ))
        })?
    }

    pub fn unmapped(&mut self, source: String, kind: &str, reason: impl Into<String>) {
        self.report.unmapped.push(Unmapped {
            source,
            kind: kind.to_string(),
            reason: reason.into(),
        });
    }
}

/// [`Ctx::id`] in the namespace `ns`.
fn derived_id(ns: Uuid, key: &str) -> String {
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    Uuid::new_v5(&ns, key.as_bytes())
        .as_hyphenated()
        .encode_upper(&mut text)
        .to_owned()
}

/// [`Ctx::res_id`] in the namespace `ns`.
fn derived_res_id(ns: Uuid, ty: &str, id: &str) -> String {
    let mut key = String::with_capacity(ty.len() + 1 + id.len());
    key.push_str(ty);
    key.push('/');
    key.push_str(id);
    derived_id(ns, &key)
}

fn is_nopat(meta: Option<&fhir::Meta>) -> bool {
    meta.is_some_and(|m| {
        m.security
            .iter()
            .any(|c| c.code.as_deref() == Some("NOPAT"))
    })
}

/// Maps one clinical resource to the statements it becomes (none for resources that are
/// carried inside others or are not clinical statements). Marks it consumed.
pub(crate) fn map_resource(ctx: &mut Ctx<'_>, r: &Resource) -> Vec<Statement> {
    if !is_statement_resource(r) || !ctx.consume(r) {
        return Vec::new();
    }
    match r {
        Resource::AllergyIntolerance(a) => vec![allergies::map_allergy(ctx, a)],
        Resource::Condition(c) => problems::map_condition(ctx, c),
        Resource::MedicationRequest(m) => medication::map_medication_request(ctx, m),
        Resource::MedicationStatement(m) => medication::map_orphan_statement(ctx, m),
        Resource::Observation(o) => observations::map_observation(ctx, o),
        Resource::Immunization(i) => vec![observations::map_immunization(ctx, i)],
        Resource::DiagnosticReport(d) => vec![diagnostics::map_report(ctx, d)],
        Resource::ReferralRequest(rr) => vec![requests::map_referral(ctx, rr)],
        Resource::ProcedureRequest(p) => vec![requests::map_procedure_request(ctx, p)],
        Resource::DocumentReference(d) => vec![requests::map_document(ctx, d)],
        _ => Vec::new(),
    }
}

/// Whether a resource becomes statements of its own.
pub(crate) fn is_statement_resource(r: &Resource) -> bool {
    is_statement_type(r.resource_type())
}

/// [`is_statement_resource`] by resource type.
pub(crate) fn is_statement_type(resource_type: &str) -> bool {
    matches!(
        resource_type,
        "AllergyIntolerance"
            | "Condition"
            | "MedicationRequest"
            | "MedicationStatement"
            | "Observation"
            | "Immunization"
            | "DiagnosticReport"
            | "ReferralRequest"
            | "ProcedureRequest"
            | "DocumentReference"
    )
}

/// Resources that are structure or context rather than statements: they are carried in
/// the agent directory, the compositions, or inside other statements.
pub(crate) fn is_structural_type(resource_type: &str) -> bool {
    matches!(
        resource_type,
        "Patient"
            | "Organization"
            | "Practitioner"
            | "PractitionerRole"
            | "Location"
            | "List"
            | "Encounter"
            | "Medication"
            | "Specimen"
    )
}

/// The safety net behind "nothing silently dropped": every clinical resource of the Bundle
/// must have become a statement (by its id, `ids` being those of every statement written),
/// or be carried by one (a course by its authorisation), or be in the report already.
/// Anything else gets a report line.
pub(crate) fn check_carried(ctx: &mut Ctx<'_>, ids: &HashSet<String>) {
    let reported: HashSet<String> = ctx
        .report
        .unmapped
        .iter()
        .map(|u| u.source.clone())
        .collect();
    let carried = carried_positions(ctx, ids);
    let mut label = String::new();
    for pos in ctx.store.positions() {
        let Some(ty) = ctx.store.resource_type(pos) else {
            continue;
        };
        ctx.store.label_into(pos, &mut label);
        if !is_statement_type(ty) {
            if ty == "Specimen" && !ctx.consumed.contains(label.as_str()) {
                let id = ctx.store.id(pos).unwrap_or("").to_owned();
                ctx.unmapped(
                    label.clone(),
                    "Specimen",
                    format!(
                        "the specimen {id} belongs to no DiagnosticReport, and GP2GP carries specimens only inside a report"
                    ),
                );
            }
            continue;
        }
        if ctx.store.id(pos).is_none() {
            let ty = ty.to_owned();
            ctx.unmapped(label.clone(), &ty, "the resource has no id");
            continue;
        }
        let carried = carried.get(pos).copied().unwrap_or(false)
            || (ty == "MedicationStatement" && ctx.consumed.contains(label.as_str()));
        if !carried && !reported.contains(label.as_str()) {
            let ty = ty.to_owned();
            ctx.unmapped(
                label.clone(),
                &ty,
                "the resource was not carried by any statement of the extract",
            );
        }
    }
}

/// Which entries' resources became a statement written (`ids`), by position: a statement
/// resource's id is derived from its `Type/id` (a SHA-1 each), on every core for a large
/// record.
fn carried_positions(ctx: &Ctx<'_>, ids: &HashSet<String>) -> Vec<bool> {
    let work: Vec<(usize, &str, &str)> = ctx
        .store
        .positions()
        .into_iter()
        .filter_map(|p| {
            let ty = ctx
                .store
                .resource_type(p)
                .filter(|t| is_statement_type(t))?;
            Some((p, ty, ctx.store.id(p)?))
        })
        .collect();
    let threads = if work.len() < 4096 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
    };
    let ns = ctx.ns;
    let check = move |part: &[(usize, &str, &str)]| -> Vec<usize> {
        part.iter()
            .filter(|(_, ty, id)| ids.contains(&derived_res_id(ns, ty, id)))
            .map(|w| w.0)
            .collect()
    };
    let found: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let mut parts = work.chunks(work.len().div_ceil(threads).max(1));
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|part| scope.spawn(move || check(part))).collect();
        let mut found = vec![check(first)];
        for h in others {
            found.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        found
    });
    let mut carried = vec![false; ctx.store.len()];
    for pos in found.into_iter().flatten() {
        if let Some(c) = carried.get_mut(pos) {
            *c = true;
        }
    }
    carried
}
