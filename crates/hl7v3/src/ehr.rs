//! The EhrExtract: a patient's whole GP record as GP2GP carries it (`RCMR_MT030101UK04`,
//! and `RCMR_MT030101UK05` which adds confidentiality codes).
//!
//! The shape, top down:
//!
//! ```text
//! EhrExtract                      who the record is for, from which practice, to which
//! └ component/ehrFolder           the record
//!   ├ responsibleParty/agentDirectory   every person and organisation, once, by id
//!   └ component/ehrComposition    a consultation or other grouping (author, place, time)
//!     └ component/<statement>     ObservationStatement, NarrativeStatement, PlanStatement,
//!                                 RequestStatement, MedicationStatement, LinkSet,
//!                                 RegistrationStatement, CompoundStatement, EhrEmpty
//! ```
//!
//! `CompoundStatement`s nest further statements (topics, categories, test batteries, blood
//! pressure, allergies); `LinkSet`s link a problem to the statements about it by id;
//! `agentRef`s point into the agent directory; `referenceToExternalDocument`s point at
//! attachments. Field names are the schema's element names in snake case, in the schema's
//! order; UK05's `confidentialityCode` sits where UK05 puts it, so one model reads both.

use crate::datatypes::{AD, ANY, CD, ED, EN, II, INT, IVL_PQ, IVL_TS, PQ, ST, TEL, TS};
use crate::xml::Element;

hl7_class! {
    /// The extract: the whole record, addressed from the sending to the requesting practice.
    pub struct EhrExtract {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            status_code: opt CD = "statusCode",
            availability_time: opt TS = "availabilityTime",
            record_target: opt RecordTarget = "recordTarget",
            author: opt OrgAuthor = "author",
            destination: opt OrgParticipation = "destination",
            component: many FolderComponent = "component",
            in_fulfillment_of: opt InFulfillmentOf = "inFulfillmentOf",
            limitation: opt Limitation = "limitation",
        }
    }
}

hl7_class! {
    /// `recordTarget`: the patient, by NHS number.
    pub struct RecordTarget {
        attrs { type_: "type", type_code: "typeCode" }
        children { patient: opt Patient = "patient" }
    }
}

hl7_class! {
    /// The patient role: just an id (the NHS number, root `2.16.840.1.113883.2.1.4.1`).
    pub struct Patient {
        attrs { type_: "type", class_code: "classCode" }
        children { id: opt II = "id" }
    }
}

hl7_class! {
    /// An author that is an organisation known to SDS, with a time (the extract's and the
    /// folder's author).
    pub struct OrgAuthor {
        attrs { type_: "type", type_code: "typeCode" }
        children {
            time: opt TS = "time",
            signature_code: opt CD = "signatureCode",
            signature_text: opt ED = "signatureText",
            agent_org_sds: opt AgentOrgSDS = "AgentOrgSDS",
        }
    }
}

hl7_class! {
    /// A participation by an organisation known to SDS (the extract's `destination`, the
    /// request's `author` and `destination`).
    pub struct OrgParticipation {
        attrs { type_: "type", type_code: "typeCode" }
        children { agent_org_sds: opt AgentOrgSDS = "AgentOrgSDS" }
    }
}

hl7_class! {
    /// An organisation role as SDS knows it: the ODS code is in `agentOrganizationSDS/id`.
    pub struct AgentOrgSDS {
        attrs { type_: "type", class_code: "classCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            agent_organization_sds: opt OrganizationSDS = "agentOrganizationSDS",
        }
    }
}

impl AgentOrgSDS {
    /// The ODS code of the organisation.
    pub fn ods_code(&self) -> Option<&str> {
        self.agent_organization_sds
            .as_ref()?
            .id
            .as_ref()?
            .extension
            .as_deref()
    }
}

hl7_class! {
    /// An organisation known to SDS, by ODS code.
    pub struct OrganizationSDS {
        attrs { type_: "type", class_code: "classCode", determiner_code: "determinerCode" }
        children {
            id: opt II = "id",
            service_delivery_location: many Element = "serviceDeliveryLocation",
        }
    }
}

hl7_class! {
    /// `component` of the extract: the folder.
    pub struct FolderComponent {
        attrs { type_: "type", type_code: "typeCode" }
        children { ehr_folder: opt EhrFolder = "ehrFolder" }
    }
}

hl7_class! {
    /// The folder: the record itself, its agent directory and its compositions.
    pub struct EhrFolder {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            author: opt OrgAuthor = "author",
            responsible_party: opt ResponsibleParty = "responsibleParty",
            component: many CompositionComponent = "component",
        }
    }
}

hl7_class! {
    /// The folder's `responsibleParty`, which holds the agent directory.
    pub struct ResponsibleParty {
        attrs { type_: "type", type_code: "typeCode" }
        children { agent_directory: opt AgentDirectory = "agentDirectory" }
    }
}

hl7_class! {
    /// Every person and organisation the record mentions, each once, referenced by id.
    pub struct AgentDirectory {
        attrs { type_: "type", class_code: "classCode" }
        children { part: many Part = "part" }
    }
}

hl7_class! {
    /// One entry of the agent directory.
    pub struct Part {
        attrs { type_: "type", type_code: "typeCode" }
        children {
            agent: opt Agent = "Agent",
            agent_sds: opt Element = "AgentSDS",
        }
    }
}

hl7_class! {
    /// A person or organisation in the agent directory. Its `id` is what `agentRef`s point
    /// at. A person usually has `agentPerson` plus the `representedOrganization` they work
    /// for; an organisation has `agentOrganization`.
    pub struct Agent {
        attrs { type_: "type", class_code: "classCode" }
        children {
            id: many II = "id",
            code: opt CD = "code",
            addr: many AD = "addr",
            telecom: many TEL = "telecom",
            agent_organization: opt Organization = "agentOrganization",
            agent_organization_sds: opt Element = "agentOrganizationSDS",
            agent_person_sds: opt Element = "agentPersonSDS",
            agent_person: opt Person = "agentPerson",
            agent_device_sds: opt Element = "agentDeviceSDS",
            agent_device: opt Element = "agentDevice",
            represented_organization: opt Organization = "representedOrganization",
            represented_organization_sds: opt Element = "representedOrganizationSDS",
            represented_person_sds: opt Element = "representedPersonSDS",
            represented_person: opt Person = "representedPerson",
        }
    }
}

hl7_class! {
    /// An organisation with its name, ODS code (`id`), telecoms and addresses.
    pub struct Organization {
        attrs { type_: "type", class_code: "classCode", determiner_code: "determinerCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            name: opt EN = "name",
            desc: opt ST = "desc",
            telecom: many TEL = "telecom",
            addr: many AD = "addr",
        }
    }
}

hl7_class! {
    /// A person: name and gender.
    pub struct Person {
        attrs { type_: "type", class_code: "classCode", determiner_code: "determinerCode" }
        children {
            name: many EN = "name",
            administrative_gender_code: opt CD = "administrativeGenderCode",
            deceased_ind: opt INT = "deceasedInd",
        }
    }
}

hl7_class! {
    /// `component` of the folder: one composition.
    pub struct CompositionComponent {
        attrs { type_: "type", type_code: "typeCode" }
        children { ehr_composition: opt EhrComposition = "ehrComposition" }
    }
}

hl7_class! {
    /// A composition: a consultation, or another grouping of statements made by one author
    /// at one time and place.
    pub struct EhrComposition {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            confidentiality_code: opt CD = "confidentialityCode",
            author: opt Author = "author",
            location: opt Location = "location",
            participant2: many Participant2 = "Participant2",
            component: many StatementComponent = "component",
            replacement_of: opt Element = "replacementOf",
        }
    }
}

hl7_class! {
    /// The author of a composition: a time and a reference into the agent directory.
    pub struct Author {
        attrs { type_: "type", type_code: "typeCode", context_control_code: "contextControlCode" }
        children {
            time: opt TS = "time",
            signature_code: opt CD = "signatureCode",
            signature_text: opt ED = "signatureText",
            agent_ref: opt AgentRef = "agentRef",
        }
    }
}

hl7_class! {
    /// A reference to an agent in the directory, by id.
    pub struct AgentRef {
        attrs { type_: "type", class_code: "classCode" }
        children { id: opt II = "id" }
    }
}

hl7_class! {
    /// Where a composition took place.
    pub struct Location {
        attrs { type_: "type", type_code: "typeCode" }
        children { located_entity: opt LocatedEntity = "locatedEntity" }
    }
}

hl7_class! {
    /// The place of a location.
    pub struct LocatedEntity {
        attrs { type_: "type", class_code: "classCode" }
        children {
            code: opt CD = "code",
            located_place: opt Place = "locatedPlace",
        }
    }
}

hl7_class! {
    /// A named place.
    pub struct Place {
        attrs { type_: "type", class_code: "classCode", determiner_code: "determinerCode" }
        children {
            name: opt EN = "name",
            telecom: many TEL = "telecom",
            addr: opt AD = "addr",
        }
    }
}

hl7_class! {
    /// Another participant of a composition (e.g. the person who entered it, `RESP`/`PPRF`).
    pub struct Participant2 {
        attrs { type_: "type", type_code: "typeCode", context_control_code: "contextControlCode" }
        children { agent_ref: opt AgentRef = "agentRef" }
    }
}

hl7_choice! {
    /// One clinical statement, named after its class.
    pub enum Statement {
        CompoundStatement(CompoundStatement) = "CompoundStatement",
        EhrEmpty(EhrEmpty) = "EhrEmpty",
        LinkSet(LinkSet) = "LinkSet",
        MedicationStatement(MedicationStatement) = "MedicationStatement",
        NarrativeStatement(NarrativeStatement) = "NarrativeStatement",
        ObservationStatement(ObservationStatement) = "ObservationStatement",
        PlanStatement(PlanStatement) = "PlanStatement",
        RegistrationStatement(RegistrationStatement) = "RegistrationStatement",
        RequestStatement(RequestStatement) = "RequestStatement",
    }
}

hl7_class! {
    /// `component` of a composition or compound statement: one statement, with an optional
    /// sequence number.
    pub struct StatementComponent {
        attrs { type_: "type", type_code: "typeCode", context_conduction_ind: "contextConductionInd" }
        children {
            sequence_number: opt INT = "sequenceNumber",
            seperatable_ind: opt INT = "seperatableInd",
            statement: choice Statement = "*",
        }
    }
}

hl7_class! {
    /// A group of statements: `classCode` `TOPIC` and `CATEGORY` (consultation structure),
    /// `BATTERY` (a test group, blood pressure), `CLUSTER` (an allergy, a test result with
    /// its comments).
    pub struct CompoundStatement {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: many II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            priority_code: opt CD = "priorityCode",
            confidentiality_code: opt CD = "confidentialityCode",
            uncertainty_code: opt CD = "uncertaintyCode",
            specimen: many Specimen = "specimen",
            component: many StatementComponent = "component",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// A participant of a statement (`PRF` performer, `AUT` author…) with an optional time.
    pub struct Participant {
        attrs { type_: "type", type_code: "typeCode", context_control_code: "contextControlCode" }
        children {
            time: opt IVL_TS = "time",
            agent_ref: opt AgentRef = "agentRef",
        }
    }
}

hl7_class! {
    /// A relationship to another statement by id (`replacementOf`, `sequelTo`).
    pub struct StatementRefHolder {
        attrs { type_: "type", type_code: "typeCode" }
        children { prior_statement_ref: opt StatementRef = "priorStatementRef" }
    }
}

hl7_class! {
    /// A reference to a statement by id.
    pub struct StatementRef {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children { id: opt II = "id" }
    }
}

hl7_class! {
    /// `reference` to an external document (an attachment).
    pub struct Reference {
        attrs { type_: "type", type_code: "typeCode" }
        children { referred_to_external_document: opt ExternalDocument = "referredToExternalDocument" }
    }
}

hl7_class! {
    /// An attachment: its `text` carries the media type and a `reference` to the file
    /// (`file://localhost/<id>_<name>`) sent beside the extract.
    pub struct ExternalDocument {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            text: opt ED = "text",
            effective_time: opt IVL_TS = "effectiveTime",
            confidentiality_code: opt CD = "confidentialityCode",
            set_id: opt II = "setId",
            version_number: opt INT = "versionNumber",
            author: many Element = "author",
        }
    }
}

hl7_class! {
    /// A specimen of a test result or test group.
    pub struct Specimen {
        attrs { type_: "type", type_code: "typeCode" }
        children { specimen_role: opt SpecimenRole = "specimenRole" }
    }
}

hl7_class! {
    /// The specimen itself.
    pub struct SpecimenRole {
        attrs { type_: "type", class_code: "classCode" }
        children {
            id: many II = "id",
            effective_time: opt IVL_TS = "effectiveTime",
            specimen_specimen_material: opt SpecimenMaterial = "specimenSpecimenMaterial",
        }
    }
}

hl7_class! {
    /// What the specimen is, in words.
    pub struct SpecimenMaterial {
        attrs { type_: "type", class_code: "classCode", determiner_code: "determinerCode" }
        children { desc: opt ST = "desc" }
    }
}

hl7_class! {
    /// A placeholder for a statement that was deleted or withheld.
    pub struct EhrEmpty {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// A problem and what links to it: `conditionNamed` points at the statement that names
    /// the problem, each `component` at a statement about it.
    pub struct LinkSet {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            confidentiality_code: opt CD = "confidentialityCode",
            component: many LinkSetComponent = "component",
            condition_named: opt ConditionNamed = "conditionNamed",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// A statement linked to a problem.
    pub struct LinkSetComponent {
        attrs { type_: "type", type_code: "typeCode" }
        children { statement_ref: opt StatementRef = "statementRef" }
    }
}

hl7_class! {
    /// The statement that names a problem.
    pub struct ConditionNamed {
        attrs { type_: "type", type_code: "typeCode", inversion_ind: "inversionInd" }
        children { named_statement_ref: opt StatementRef = "namedStatementRef" }
    }
}

hl7_class! {
    /// A medication: the drug (`consumable`), and what was done with it (`component`:
    /// `ehrSupplyAuthorise` = a repeat template or plan, `ehrSupplyPrescribe` = an issue,
    /// `ehrSupplyDiscontinue`, `ehrSupplyDispense`), with dosage (`pertinentInformation`).
    pub struct MedicationStatement {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            priority_code: opt CD = "priorityCode",
            confidentiality_code: opt CD = "confidentialityCode",
            consumable: many Consumable = "consumable",
            component: many SupplyComponent = "component",
            pertinent_information: many MedicationDosageHolder = "pertinentInformation",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// The drug of a medication statement, or of a supply.
    pub struct Consumable {
        attrs { type_: "type", type_code: "typeCode" }
        children { manufactured_product: opt ManufacturedProduct = "manufacturedProduct" }
    }
}

hl7_class! {
    /// The product role.
    pub struct ManufacturedProduct {
        attrs { type_: "type", class_code: "classCode" }
        children { manufactured_material: opt Material = "manufacturedMaterial" }
    }
}

hl7_class! {
    /// The drug itself: its code (dm+d / SNOMED), quantity and expiry.
    pub struct Material {
        attrs { type_: "type", class_code: "classCode", determiner_code: "determinerCode" }
        children {
            code: opt CD = "code",
            quantity: opt PQ = "quantity",
            expiration_time: opt TS = "expirationTime",
        }
    }
}

hl7_choice! {
    /// What was done with a medication.
    pub enum Supply {
        Authorise(Authorise) = "ehrSupplyAuthorise",
        Discontinue(Discontinue) = "ehrSupplyDiscontinue",
        Dispense(Dispense) = "ehrSupplyDispense",
        Prescribe(Prescribe) = "ehrSupplyPrescribe",
    }
}

hl7_class! {
    /// `component` of a medication statement: one supply.
    pub struct SupplyComponent {
        attrs { type_: "type", type_code: "typeCode" }
        children { supply: choice Supply = "*" }
    }
}

hl7_class! {
    /// An authorisation: the plan or repeat template issues are made from.
    pub struct Authorise {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            repeat_number: opt INT = "repeatNumber",
            quantity: opt PQ = "quantity",
            predecessor: many MedicationRefHolder = "predecessor",
            performer: opt Element = "performer",
            consumable: opt Consumable = "consumable",
            pertinent_information: many SupplyAnnotationHolder = "pertinentInformation",
        }
    }
}

hl7_class! {
    /// A discontinuation of an authorisation (`reversalOf` points at it).
    pub struct Discontinue {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            availability_time: opt TS = "availabilityTime",
            reversal_of: many MedicationRefHolder = "reversalOf",
            performer: opt Element = "performer",
            consumable: opt Consumable = "consumable",
            pertinent_information: many SupplyAnnotationHolder = "pertinentInformation",
        }
    }
}

hl7_class! {
    /// A dispensing.
    pub struct Dispense {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            availability_time: opt TS = "availabilityTime",
            quantity: opt PQ = "quantity",
            in_fulfillment_of: opt MedicationRefHolder = "inFulfillmentOf",
            performer: opt Element = "performer",
            consumable: opt Consumable = "consumable",
            pertinent_information: many SupplyAnnotationHolder = "pertinentInformation",
        }
    }
}

hl7_class! {
    /// An issue (prescription) made under an authorisation (`inFulfillmentOf` points at it).
    pub struct Prescribe {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            availability_time: opt TS = "availabilityTime",
            quantity: opt PQ = "quantity",
            in_fulfillment_of: opt MedicationRefHolder = "inFulfillmentOf",
            performer: opt Element = "performer",
            consumable: opt Consumable = "consumable",
            pertinent_information: many SupplyAnnotationHolder = "pertinentInformation",
        }
    }
}

hl7_class! {
    /// A relationship to another supply by id (`predecessor`, `reversalOf`,
    /// `inFulfillmentOf`).
    pub struct MedicationRefHolder {
        attrs { type_: "type", type_code: "typeCode" }
        children { prior_medication_ref: opt MedicationRef = "priorMedicationRef" }
    }
}

hl7_class! {
    /// A reference to a supply by id.
    pub struct MedicationRef {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children { id: opt II = "id" }
    }
}

hl7_class! {
    /// A note on a supply.
    pub struct SupplyAnnotationHolder {
        attrs { type_: "type", type_code: "typeCode" }
        children { pertinent_supply_annotation: opt TextAct = "pertinentSupplyAnnotation" }
    }
}

hl7_class! {
    /// The dosage of a medication statement.
    pub struct MedicationDosageHolder {
        attrs { type_: "type", type_code: "typeCode" }
        children { pertinent_medication_dosage: opt TextAct = "pertinentMedicationDosage" }
    }
}

hl7_class! {
    /// An act that is only text: a dosage instruction, a supply note, an annotation.
    pub struct TextAct {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children { text: opt ST = "text" }
    }
}

hl7_class! {
    /// Free text, and the carrier of attachments (`reference`).
    pub struct NarrativeStatement {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            text: opt ED = "text",
            status_code: opt CD = "statusCode",
            availability_time: opt TS = "availabilityTime",
            confidentiality_code: opt CD = "confidentialityCode",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// An observation: a coded finding, a measurement, a test result, an allergy's detail.
    pub struct ObservationStatement {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            priority_code: opt CD = "priorityCode",
            confidentiality_code: opt CD = "confidentialityCode",
            uncertainty_code: opt CD = "uncertaintyCode",
            value: opt ANY = "value",
            interpretation_code: opt CD = "interpretationCode",
            subject: opt Element = "subject",
            specimen: many Specimen = "specimen",
            pertinent_information: many AnnotationHolder = "pertinentInformation",
            reference_range: many ReferenceRange = "referenceRange",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// A numbered annotation on an observation.
    pub struct AnnotationHolder {
        attrs { type_: "type", type_code: "typeCode" }
        children {
            sequence_number: opt INT = "sequenceNumber",
            pertinent_annotation: opt TextAct = "pertinentAnnotation",
        }
    }
}

hl7_class! {
    /// A reference range of a result.
    pub struct ReferenceRange {
        attrs { type_: "type", type_code: "typeCode" }
        children { reference_interpretation_range: opt InterpretationRange = "referenceInterpretationRange" }
    }
}

hl7_class! {
    /// The range: text and/or a quantity interval.
    pub struct InterpretationRange {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            text: opt ED = "text",
            value: opt IVL_PQ = "value",
        }
    }
}

hl7_class! {
    /// A plan: a recall, a diary entry.
    pub struct PlanStatement {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            text: opt ED = "text",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            priority_code: opt CD = "priorityCode",
            confidentiality_code: opt CD = "confidentialityCode",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// A registration event (the patient's registration details).
    pub struct RegistrationStatement {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            code: opt CD = "code",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            confidentiality_code: opt CD = "confidentialityCode",
            responsible_party: opt Element = "responsibleParty",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// A request: a referral, a test request.
    pub struct RequestStatement {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: many II = "id",
            code: opt CD = "code",
            text: opt ED = "text",
            status_code: opt CD = "statusCode",
            effective_time: opt IVL_TS = "effectiveTime",
            availability_time: opt TS = "availabilityTime",
            priority_code: opt CD = "priorityCode",
            confidentiality_code: opt CD = "confidentialityCode",
            responsible_party: opt Element = "responsibleParty",
            informant: many Element = "informant",
            participant: many Participant = "Participant",
            replacement_of: many StatementRefHolder = "replacementOf",
            reason: many Element = "reason",
            reference: many Reference = "reference",
            sequel_to: many StatementRefHolder = "sequelTo",
        }
    }
}

hl7_class! {
    /// `inFulfillmentOf`: the request this extract answers.
    pub struct InFulfillmentOf {
        attrs { type_: "type", type_code: "typeCode" }
        children { prior_ehr_request: opt IdAct = "priorEhrRequest" }
    }
}

hl7_class! {
    /// An act known only by id.
    pub struct IdAct {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children { id: opt II = "id" }
    }
}

hl7_class! {
    /// `limitation`: what the extract was limited to (in GP2GP, always the whole record).
    pub struct Limitation {
        attrs { type_: "type", type_code: "typeCode", inversion_ind: "inversionInd" }
        children { limiting_ehr_extract_specification: opt Element = "limitingEhrExtractSpecification" }
    }
}

impl EhrExtract {
    /// The folder (GP2GP extracts have exactly one).
    pub fn folder(&self) -> Option<&EhrFolder> {
        self.component.iter().find_map(|c| c.ehr_folder.as_deref())
    }

    /// The patient's NHS number.
    pub fn nhs_number(&self) -> Option<&str> {
        self.record_target
            .as_ref()?
            .patient
            .as_ref()?
            .id
            .as_ref()?
            .extension
            .as_deref()
    }

    /// Every statement in the record, at any depth, in document order.
    pub fn statements(&self) -> Vec<&Statement> {
        let mut out = Vec::new();
        if let Some(folder) = self.folder() {
            for comp in folder
                .component
                .iter()
                .filter_map(|c| c.ehr_composition.as_deref())
            {
                for sc in &comp.component {
                    if let Some(s) = &sc.statement {
                        collect_statements(s, &mut out);
                    }
                }
            }
        }
        out
    }

    /// The agents of the agent directory.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.folder()
            .and_then(|f| f.responsible_party.as_ref())
            .and_then(|r| r.agent_directory.as_ref())
            .map(|d| d.part.as_slice())
            .unwrap_or(&[])
            .iter()
            .filter_map(|p| p.agent.as_deref())
    }
}

fn collect_statements<'a>(s: &'a Statement, out: &mut Vec<&'a Statement>) {
    // An explicit stack: compound statements can nest deeply in hostile input.
    let mut stack = vec![s];
    while let Some(s) = stack.pop() {
        out.push(s);
        if let Statement::CompoundStatement(c) = s {
            for child in c
                .component
                .iter()
                .rev()
                .filter_map(|sc| sc.statement.as_ref())
            {
                stack.push(child);
            }
        }
    }
}

impl Statement {
    /// The statement's own id (for a compound statement or request, the first).
    pub fn id(&self) -> Option<&II> {
        match self {
            Statement::CompoundStatement(s) => s.id.first(),
            Statement::EhrEmpty(s) => s.id.as_deref(),
            Statement::LinkSet(s) => s.id.as_deref(),
            Statement::MedicationStatement(s) => s.id.as_deref(),
            Statement::NarrativeStatement(s) => s.id.as_deref(),
            Statement::ObservationStatement(s) => s.id.as_deref(),
            Statement::PlanStatement(s) => s.id.as_deref(),
            Statement::RegistrationStatement(s) => s.id.as_deref(),
            Statement::RequestStatement(s) => s.id.first(),
            Statement::Other(_) => None,
        }
    }
}
