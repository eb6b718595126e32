//! The STU3 resources GP Connect uses, and [`Resource`], any one of them.
//!
//! Each resource's fields follow the STU3 definition in order; elements that
//! GP Connect does not use and that are rarely populated (e.g.
//! `Encounter.hospitalization`) are not typed and stay in `extra`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};

use crate::check::{Checker, IssueKind, is_valid_id};
use crate::choice::Choice;
use crate::datatypes::{
    Address, Annotation, Attachment, CodeableConcept, Coding, ContactPoint, Dosage, HumanName,
    Identifier, Period, Quantity, Range, Ratio, Reference,
};
use crate::datetime::DateTime;
use crate::model::{Extra, Key, Node};
use crate::systems;

// ---------------------------------------------------------------------------
// Bundle and its parts

resource! {
    /// `Bundle`: a collection of resources. A GP Connect structured record is
    /// a `collection` Bundle.
    ///
    /// See [`Bundle::index`](crate::Bundle::index) to follow references
    /// between its entries.
    Bundle check = check_bundle; {
        /// `identifier`
        identifier: Option<Identifier> = "identifier",
        /// `type`: document | message | transaction | transaction-response |
        /// batch | batch-response | history | searchset | collection
        /// (required).
        r#type: Option<String> = "type",
        /// `total`: for searchsets, the number of matches.
        total: Option<u64> = "total",
        /// `link`
        link: Vec<BundleLink> = "link",
        /// `entry`
        entry: Vec<BundleEntry> = "entry",
    }
}

fn check_bundle(b: &Bundle, ck: &mut Checker) {
    ck.require(b.r#type.is_some(), "type");
}

backbone! {
    /// `Bundle.link`
    BundleLink check = check_bundle_link; {
        /// `relation` (required)
        relation: Option<String> = "relation",
        /// `url` (required)
        url: Option<String> = "url",
    }
}

fn check_bundle_link(l: &BundleLink, ck: &mut Checker) {
    ck.require(l.relation.is_some(), "relation");
    ck.require(l.url.is_some(), "url");
}

backbone! {
    /// `Bundle.entry`
    BundleEntry {
        /// `link`
        link: Vec<BundleLink> = "link",
        /// `fullUrl`: the absolute URL (or `urn:uuid:`) of the resource.
        full_url: Option<String> = "fullUrl",
        /// `resource`
        resource: Option<Resource> = "resource",
        /// `search`
        search: Option<Box<BundleEntrySearch>> = "search",
        /// `request`
        request: Option<Box<BundleEntryRequest>> = "request",
        /// `response`
        response: Option<Box<BundleEntryResponse>> = "response",
    }
}

backbone! {
    /// `Bundle.entry.search`
    BundleEntrySearch {
        /// `mode`: match | include | outcome.
        mode: Option<String> = "mode",
        /// `score`
        score: Option<crate::Decimal> = "score",
    }
}

backbone! {
    /// `Bundle.entry.request`
    BundleEntryRequest {
        /// `method` (required)
        method: Option<String> = "method",
        /// `url` (required)
        url: Option<String> = "url",
        /// `ifNoneMatch`
        if_none_match: Option<String> = "ifNoneMatch",
        /// `ifModifiedSince`
        if_modified_since: Option<DateTime> = "ifModifiedSince",
        /// `ifMatch`
        if_match: Option<String> = "ifMatch",
        /// `ifNoneExist`
        if_none_exist: Option<String> = "ifNoneExist",
    }
}

backbone! {
    /// `Bundle.entry.response`
    BundleEntryResponse {
        /// `status` (required)
        status: Option<String> = "status",
        /// `location`
        location: Option<String> = "location",
        /// `etag`
        etag: Option<String> = "etag",
        /// `lastModified`
        last_modified: Option<DateTime> = "lastModified",
        /// `outcome`
        outcome: Option<Resource> = "outcome",
    }
}

// ---------------------------------------------------------------------------
// Administrative resources

domain_resource! {
    /// `Patient`. In GP Connect: `CareConnect-GPC-Patient-1`, identified by
    /// NHS number ([`Patient::nhs_number`]).
    Patient {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `active`
        active: Option<bool> = "active",
        /// `name`
        name: Vec<HumanName> = "name",
        /// `telecom`
        telecom: Vec<ContactPoint> = "telecom",
        /// `gender`: male | female | other | unknown.
        gender: Option<String> = "gender",
        /// `birthDate`
        birth_date: Option<DateTime> = "birthDate",
        /// `deceased[x]`: `deceasedBoolean` or `deceasedDateTime`.
        deceased: Option<Choice> = "deceased",
        /// `address`
        address: Vec<Address> = "address",
        /// `maritalStatus`
        marital_status: Option<CodeableConcept> = "maritalStatus",
        /// `multipleBirth[x]`: `multipleBirthBoolean` or `multipleBirthInteger`.
        multiple_birth: Option<Choice> = "multipleBirth",
        /// `photo`
        photo: Vec<Attachment> = "photo",
        /// `contact`
        contact: Vec<PatientContact> = "contact",
        /// `communication`
        communication: Vec<PatientCommunication> = "communication",
        /// `generalPractitioner`
        general_practitioner: Vec<Reference> = "generalPractitioner",
        /// `managingOrganization`
        managing_organization: Option<Reference> = "managingOrganization",
        /// `link`
        link: Vec<PatientLink> = "link",
    }
}

impl Patient {
    /// The NHS number (the identifier with system [`systems::NHS_NUMBER`]).
    pub fn nhs_number(&self) -> Option<&str> {
        Identifier::value_for(&self.identifier, systems::NHS_NUMBER)
    }
}

backbone! {
    /// `Patient.contact`
    PatientContact {
        /// `relationship`
        relationship: Vec<CodeableConcept> = "relationship",
        /// `name`
        name: Option<HumanName> = "name",
        /// `telecom`
        telecom: Vec<ContactPoint> = "telecom",
        /// `address`
        address: Option<Address> = "address",
        /// `gender`
        gender: Option<String> = "gender",
        /// `organization`
        organization: Option<Reference> = "organization",
        /// `period`
        period: Option<Period> = "period",
    }
}

backbone! {
    /// `Patient.communication`
    PatientCommunication check = check_patient_communication; {
        /// `language` (required)
        language: Option<CodeableConcept> = "language",
        /// `preferred`
        preferred: Option<bool> = "preferred",
    }
}

fn check_patient_communication(c: &PatientCommunication, ck: &mut Checker) {
    ck.require(c.language.is_some(), "language");
}

backbone! {
    /// `Patient.link`
    PatientLink check = check_patient_link; {
        /// `other` (required)
        other: Option<Reference> = "other",
        /// `type`: replaced-by | replaces | refer | seealso (required).
        r#type: Option<String> = "type",
    }
}

fn check_patient_link(l: &PatientLink, ck: &mut Checker) {
    ck.require(l.other.is_some(), "other");
    ck.require(l.r#type.is_some(), "type");
}

domain_resource! {
    /// `Organization`. In GP Connect identified by ODS code
    /// ([`Organization::ods_code`]).
    Organization {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `active`
        active: Option<bool> = "active",
        /// `type`
        r#type: Vec<CodeableConcept> = "type",
        /// `name`
        name: Option<String> = "name",
        /// `alias`
        alias: Vec<String> = "alias",
        /// `telecom`
        telecom: Vec<ContactPoint> = "telecom",
        /// `address`
        address: Vec<Address> = "address",
        /// `partOf`
        part_of: Option<Reference> = "partOf",
        /// `contact`
        contact: Vec<OrganizationContact> = "contact",
        /// `endpoint`
        endpoint: Vec<Reference> = "endpoint",
    }
}

impl Organization {
    /// The ODS code (the identifier with system
    /// [`systems::ODS_ORGANIZATION_CODE`]).
    pub fn ods_code(&self) -> Option<&str> {
        Identifier::value_for(&self.identifier, systems::ODS_ORGANIZATION_CODE)
    }
}

backbone! {
    /// `Organization.contact`
    OrganizationContact {
        /// `purpose`
        purpose: Option<CodeableConcept> = "purpose",
        /// `name`
        name: Option<HumanName> = "name",
        /// `telecom`
        telecom: Vec<ContactPoint> = "telecom",
        /// `address`
        address: Option<Address> = "address",
    }
}

domain_resource! {
    /// `Practitioner`. In GP Connect identified by SDS user id
    /// ([`Practitioner::sds_user_id`]).
    Practitioner {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `active`
        active: Option<bool> = "active",
        /// `name`
        name: Vec<HumanName> = "name",
        /// `telecom`
        telecom: Vec<ContactPoint> = "telecom",
        /// `address`
        address: Vec<Address> = "address",
        /// `gender`
        gender: Option<String> = "gender",
        /// `birthDate`
        birth_date: Option<DateTime> = "birthDate",
        /// `photo`
        photo: Vec<Attachment> = "photo",
        /// `qualification`
        qualification: Vec<PractitionerQualification> = "qualification",
        /// `communication`
        communication: Vec<CodeableConcept> = "communication",
    }
}

impl Practitioner {
    /// The SDS user id (the identifier with system [`systems::SDS_USER_ID`]).
    pub fn sds_user_id(&self) -> Option<&str> {
        Identifier::value_for(&self.identifier, systems::SDS_USER_ID)
    }
}

backbone! {
    /// `Practitioner.qualification`
    PractitionerQualification check = check_qualification; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `code` (required)
        code: Option<CodeableConcept> = "code",
        /// `period`
        period: Option<Period> = "period",
        /// `issuer`
        issuer: Option<Reference> = "issuer",
    }
}

fn check_qualification(q: &PractitionerQualification, ck: &mut Checker) {
    ck.require(q.code.is_some(), "code");
}

domain_resource! {
    /// `PractitionerRole`: a practitioner's role at an organisation.
    PractitionerRole {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `active`
        active: Option<bool> = "active",
        /// `period`
        period: Option<Period> = "period",
        /// `practitioner`
        practitioner: Option<Reference> = "practitioner",
        /// `organization`
        organization: Option<Reference> = "organization",
        /// `code`: the role (SDS job role name in GP Connect).
        code: Vec<CodeableConcept> = "code",
        /// `specialty`
        specialty: Vec<CodeableConcept> = "specialty",
        /// `location`
        location: Vec<Reference> = "location",
        /// `healthcareService`
        healthcare_service: Vec<Reference> = "healthcareService",
        /// `telecom`
        telecom: Vec<ContactPoint> = "telecom",
        /// `availabilityExceptions`
        availability_exceptions: Option<String> = "availabilityExceptions",
        /// `endpoint`
        endpoint: Vec<Reference> = "endpoint",
    }
}

domain_resource! {
    /// `Location`
    Location {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `status`: active | suspended | inactive.
        status: Option<String> = "status",
        /// `operationalStatus`
        operational_status: Option<Coding> = "operationalStatus",
        /// `name`
        name: Option<String> = "name",
        /// `alias`
        alias: Vec<String> = "alias",
        /// `description`
        description: Option<String> = "description",
        /// `mode`: instance | kind.
        mode: Option<String> = "mode",
        /// `type`
        r#type: Option<CodeableConcept> = "type",
        /// `telecom`
        telecom: Vec<ContactPoint> = "telecom",
        /// `address`
        address: Option<Address> = "address",
        /// `physicalType`
        physical_type: Option<CodeableConcept> = "physicalType",
        /// `managingOrganization`
        managing_organization: Option<Reference> = "managingOrganization",
        /// `partOf`
        part_of: Option<Reference> = "partOf",
        /// `endpoint`
        endpoint: Vec<Reference> = "endpoint",
    }
}

// ---------------------------------------------------------------------------
// List

domain_resource! {
    /// `List`. GP Connect groups each clinical area (and each consultation's
    /// topics and headings) in a List whose `entry.item`s reference the
    /// resources.
    List check = check_list; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `status`: current | retired | entered-in-error (required).
        status: Option<String> = "status",
        /// `mode`: working | snapshot | changes (required).
        mode: Option<String> = "mode",
        /// `title`
        title: Option<String> = "title",
        /// `code`: what the list is of (a SNOMED CT heading).
        code: Option<CodeableConcept> = "code",
        /// `subject`
        subject: Option<Reference> = "subject",
        /// `encounter`
        encounter: Option<Reference> = "encounter",
        /// `date`
        date: Option<DateTime> = "date",
        /// `source`
        source: Option<Reference> = "source",
        /// `orderedBy`
        ordered_by: Option<CodeableConcept> = "orderedBy",
        /// `note`
        note: Vec<Annotation> = "note",
        /// `entry`
        entry: Vec<ListEntry> = "entry",
        /// `emptyReason`
        empty_reason: Option<CodeableConcept> = "emptyReason",
    }
}

fn check_list(l: &List, ck: &mut Checker) {
    ck.require(l.status.is_some(), "status");
    ck.require(l.mode.is_some(), "mode");
}

backbone! {
    /// `List.entry`
    ListEntry check = check_list_entry; {
        /// `flag`
        flag: Option<CodeableConcept> = "flag",
        /// `deleted`
        deleted: Option<bool> = "deleted",
        /// `date`
        date: Option<DateTime> = "date",
        /// `item` (required)
        item: Option<Reference> = "item",
    }
}

fn check_list_entry(e: &ListEntry, ck: &mut Checker) {
    ck.require(e.item.is_some(), "item");
}

// ---------------------------------------------------------------------------
// Clinical resources

domain_resource! {
    /// `AllergyIntolerance`
    AllergyIntolerance check = check_allergy; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `clinicalStatus`: active | inactive | resolved.
        clinical_status: Option<String> = "clinicalStatus",
        /// `verificationStatus` (required).
        verification_status: Option<String> = "verificationStatus",
        /// `type`: allergy | intolerance.
        r#type: Option<String> = "type",
        /// `category`: food | medication | environment | biologic.
        category: Vec<String> = "category",
        /// `criticality`
        criticality: Option<String> = "criticality",
        /// `code`
        code: Option<CodeableConcept> = "code",
        /// `patient` (required)
        patient: Option<Reference> = "patient",
        /// `onset[x]`
        onset: Option<Choice> = "onset",
        /// `assertedDate`
        asserted_date: Option<DateTime> = "assertedDate",
        /// `recorder`
        recorder: Option<Reference> = "recorder",
        /// `asserter`
        asserter: Option<Reference> = "asserter",
        /// `lastOccurrence`
        last_occurrence: Option<DateTime> = "lastOccurrence",
        /// `note`
        note: Vec<Annotation> = "note",
        /// `reaction`
        reaction: Vec<AllergyIntoleranceReaction> = "reaction",
    }
}

fn check_allergy(a: &AllergyIntolerance, ck: &mut Checker) {
    ck.require(a.verification_status.is_some(), "verificationStatus");
    ck.require(a.patient.is_some(), "patient");
}

backbone! {
    /// `AllergyIntolerance.reaction`
    AllergyIntoleranceReaction check = check_reaction; {
        /// `substance`
        substance: Option<CodeableConcept> = "substance",
        /// `manifestation` (at least one)
        manifestation: Vec<CodeableConcept> = "manifestation",
        /// `description`
        description: Option<String> = "description",
        /// `onset`
        onset: Option<DateTime> = "onset",
        /// `severity`: mild | moderate | severe.
        severity: Option<String> = "severity",
        /// `exposureRoute`
        exposure_route: Option<CodeableConcept> = "exposureRoute",
        /// `note`
        note: Vec<Annotation> = "note",
    }
}

fn check_reaction(r: &AllergyIntoleranceReaction, ck: &mut Checker) {
    ck.require(!r.manifestation.is_empty(), "manifestation");
}

domain_resource! {
    /// `Medication`: the medicinal product (a dm+d code in GP Connect).
    Medication {
        /// `code`
        code: Option<CodeableConcept> = "code",
        /// `status`
        status: Option<String> = "status",
        /// `isBrand`
        is_brand: Option<bool> = "isBrand",
        /// `isOverTheCounter`
        is_over_the_counter: Option<bool> = "isOverTheCounter",
        /// `manufacturer`
        manufacturer: Option<Reference> = "manufacturer",
        /// `form`
        form: Option<CodeableConcept> = "form",
        /// `ingredient`
        ingredient: Vec<MedicationIngredient> = "ingredient",
        /// `image`
        image: Vec<Attachment> = "image",
    }
}

backbone! {
    /// `Medication.ingredient`
    MedicationIngredient {
        /// `item[x]`: `itemCodeableConcept` or `itemReference` (required).
        item: Option<Choice> = "item",
        /// `isActive`
        is_active: Option<bool> = "isActive",
        /// `amount`
        amount: Option<Ratio> = "amount",
    }
}

domain_resource! {
    /// `MedicationStatement`: in GP Connect, the medication authorisation
    /// (course), with its issues as `MedicationRequest`s.
    MedicationStatement check = check_medication_statement; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `basedOn`: the `MedicationRequest` (intent plan) it records.
        based_on: Vec<Reference> = "basedOn",
        /// `partOf`
        part_of: Vec<Reference> = "partOf",
        /// `context`
        context: Option<Reference> = "context",
        /// `status` (required)
        status: Option<String> = "status",
        /// `category`
        category: Option<CodeableConcept> = "category",
        /// `medication[x]`: `medicationReference` in GP Connect (required).
        medication: Option<Choice> = "medication",
        /// `effective[x]`
        effective: Option<Choice> = "effective",
        /// `dateAsserted`
        date_asserted: Option<DateTime> = "dateAsserted",
        /// `informationSource`
        information_source: Option<Reference> = "informationSource",
        /// `subject` (required)
        subject: Option<Reference> = "subject",
        /// `derivedFrom`
        derived_from: Vec<Reference> = "derivedFrom",
        /// `taken`: y | n | unk | na (required).
        taken: Option<String> = "taken",
        /// `reasonNotTaken`
        reason_not_taken: Vec<CodeableConcept> = "reasonNotTaken",
        /// `reasonCode`
        reason_code: Vec<CodeableConcept> = "reasonCode",
        /// `reasonReference`
        reason_reference: Vec<Reference> = "reasonReference",
        /// `note`
        note: Vec<Annotation> = "note",
        /// `dosage`
        dosage: Vec<Dosage> = "dosage",
    }
}

fn check_medication_statement(m: &MedicationStatement, ck: &mut Checker) {
    ck.require(m.status.is_some(), "status");
    ck.require(m.medication.is_some(), "medication[x]");
    ck.require(m.subject.is_some(), "subject");
    ck.require(m.taken.is_some(), "taken");
}

domain_resource! {
    /// `MedicationRequest`: in GP Connect an authorisation (`intent` plan)
    /// or an issue (`intent` order).
    MedicationRequest check = check_medication_request; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `definition`
        definition: Vec<Reference> = "definition",
        /// `basedOn`: for an issue, its authorisation.
        based_on: Vec<Reference> = "basedOn",
        /// `groupIdentifier`
        group_identifier: Option<Identifier> = "groupIdentifier",
        /// `status`
        status: Option<String> = "status",
        /// `intent`: proposal | plan | order | instance-order (required).
        intent: Option<String> = "intent",
        /// `category`
        category: Option<CodeableConcept> = "category",
        /// `priority`
        priority: Option<String> = "priority",
        /// `medication[x]` (required)
        medication: Option<Choice> = "medication",
        /// `subject` (required)
        subject: Option<Reference> = "subject",
        /// `context`
        context: Option<Reference> = "context",
        /// `supportingInformation`
        supporting_information: Vec<Reference> = "supportingInformation",
        /// `authoredOn`
        authored_on: Option<DateTime> = "authoredOn",
        /// `requester`
        requester: Option<Requester> = "requester",
        /// `recorder`
        recorder: Option<Reference> = "recorder",
        /// `reasonCode`
        reason_code: Vec<CodeableConcept> = "reasonCode",
        /// `reasonReference`
        reason_reference: Vec<Reference> = "reasonReference",
        /// `note`
        note: Vec<Annotation> = "note",
        /// `dosageInstruction`
        dosage_instruction: Vec<Dosage> = "dosageInstruction",
        /// `dispenseRequest`
        dispense_request: Option<MedicationRequestDispenseRequest> = "dispenseRequest",
        /// `substitution`
        substitution: Option<MedicationRequestSubstitution> = "substitution",
        /// `priorPrescription`
        prior_prescription: Option<Reference> = "priorPrescription",
        /// `detectedIssue`
        detected_issue: Vec<Reference> = "detectedIssue",
        /// `eventHistory`
        event_history: Vec<Reference> = "eventHistory",
    }
}

fn check_medication_request(m: &MedicationRequest, ck: &mut Checker) {
    ck.require(m.intent.is_some(), "intent");
    ck.require(m.medication.is_some(), "medication[x]");
    ck.require(m.subject.is_some(), "subject");
}

backbone! {
    /// `requester` of `MedicationRequest`, `ProcedureRequest` and
    /// `ReferralRequest` (the same shape in all three).
    Requester check = check_requester; {
        /// `agent` (required)
        agent: Option<Reference> = "agent",
        /// `onBehalfOf`
        on_behalf_of: Option<Reference> = "onBehalfOf",
    }
}

fn check_requester(r: &Requester, ck: &mut Checker) {
    ck.require(r.agent.is_some(), "agent");
}

backbone! {
    /// `MedicationRequest.dispenseRequest`
    MedicationRequestDispenseRequest {
        /// `validityPeriod`
        validity_period: Option<Period> = "validityPeriod",
        /// `numberOfRepeatsAllowed`
        number_of_repeats_allowed: Option<u64> = "numberOfRepeatsAllowed",
        /// `quantity`
        quantity: Option<Quantity> = "quantity",
        /// `expectedSupplyDuration`
        expected_supply_duration: Option<Quantity> = "expectedSupplyDuration",
        /// `performer`
        performer: Option<Reference> = "performer",
    }
}

backbone! {
    /// `MedicationRequest.substitution`
    MedicationRequestSubstitution {
        /// `allowed` (required)
        allowed: Option<bool> = "allowed",
        /// `reason`
        reason: Option<CodeableConcept> = "reason",
    }
}

domain_resource! {
    /// `Condition`: in GP Connect, a problem (with its related clinical
    /// content in extensions).
    Condition check = check_condition; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `clinicalStatus`: active | recurrence | inactive | remission |
        /// resolved.
        clinical_status: Option<String> = "clinicalStatus",
        /// `verificationStatus`
        verification_status: Option<String> = "verificationStatus",
        /// `category`
        category: Vec<CodeableConcept> = "category",
        /// `severity`
        severity: Option<CodeableConcept> = "severity",
        /// `code`
        code: Option<CodeableConcept> = "code",
        /// `bodySite`
        body_site: Vec<CodeableConcept> = "bodySite",
        /// `subject` (required)
        subject: Option<Reference> = "subject",
        /// `context`
        context: Option<Reference> = "context",
        /// `onset[x]`
        onset: Option<Choice> = "onset",
        /// `abatement[x]`
        abatement: Option<Choice> = "abatement",
        /// `assertedDate`
        asserted_date: Option<DateTime> = "assertedDate",
        /// `asserter`
        asserter: Option<Reference> = "asserter",
        /// `stage`
        stage: Option<ConditionStage> = "stage",
        /// `evidence`
        evidence: Vec<ConditionEvidence> = "evidence",
        /// `note`
        note: Vec<Annotation> = "note",
    }
}

fn check_condition(c: &Condition, ck: &mut Checker) {
    ck.require(c.subject.is_some(), "subject");
}

backbone! {
    /// `Condition.stage`
    ConditionStage {
        /// `summary`
        summary: Option<CodeableConcept> = "summary",
        /// `assessment`
        assessment: Vec<Reference> = "assessment",
    }
}

backbone! {
    /// `Condition.evidence`
    ConditionEvidence {
        /// `code`
        code: Vec<CodeableConcept> = "code",
        /// `detail`
        detail: Vec<Reference> = "detail",
    }
}

domain_resource! {
    /// `Encounter`: in GP Connect, a consultation; its topics and headings
    /// are Lists that reference it.
    Encounter check = check_encounter; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `status` (required)
        status: Option<String> = "status",
        /// `class`
        class: Option<Coding> = "class",
        /// `type`
        r#type: Vec<CodeableConcept> = "type",
        /// `priority`
        priority: Option<CodeableConcept> = "priority",
        /// `subject`
        subject: Option<Reference> = "subject",
        /// `episodeOfCare`
        episode_of_care: Vec<Reference> = "episodeOfCare",
        /// `incomingReferral`
        incoming_referral: Vec<Reference> = "incomingReferral",
        /// `participant`
        participant: Vec<EncounterParticipant> = "participant",
        /// `appointment`
        appointment: Option<Reference> = "appointment",
        /// `period`
        period: Option<Period> = "period",
        /// `length`: a Duration.
        length: Option<Quantity> = "length",
        /// `reason`
        reason: Vec<CodeableConcept> = "reason",
        /// `diagnosis`
        diagnosis: Vec<EncounterDiagnosis> = "diagnosis",
        /// `account`
        account: Vec<Reference> = "account",
        /// `location`
        location: Vec<EncounterLocation> = "location",
        /// `serviceProvider`
        service_provider: Option<Reference> = "serviceProvider",
        /// `partOf`
        part_of: Option<Reference> = "partOf",
    }
}

fn check_encounter(e: &Encounter, ck: &mut Checker) {
    ck.require(e.status.is_some(), "status");
}

backbone! {
    /// `Encounter.participant`
    EncounterParticipant {
        /// `type`: in GP Connect, recorder (`REC`) or performer (`PPRF`).
        r#type: Vec<CodeableConcept> = "type",
        /// `period`
        period: Option<Period> = "period",
        /// `individual`
        individual: Option<Reference> = "individual",
    }
}

backbone! {
    /// `Encounter.diagnosis`
    EncounterDiagnosis check = check_encounter_diagnosis; {
        /// `condition` (required)
        condition: Option<Reference> = "condition",
        /// `role`
        role: Option<CodeableConcept> = "role",
        /// `rank`
        rank: Option<u64> = "rank",
    }
}

fn check_encounter_diagnosis(d: &EncounterDiagnosis, ck: &mut Checker) {
    ck.require(d.condition.is_some(), "condition");
}

backbone! {
    /// `Encounter.location`
    EncounterLocation check = check_encounter_location; {
        /// `location` (required)
        location: Option<Reference> = "location",
        /// `status`
        status: Option<String> = "status",
        /// `period`
        period: Option<Period> = "period",
    }
}

fn check_encounter_location(l: &EncounterLocation, ck: &mut Checker) {
    ck.require(l.location.is_some(), "location");
}

domain_resource! {
    /// `Observation`: in GP Connect, uncategorised data, blood pressures,
    /// narrative items in consultations, test groups, test results and
    /// filing comments.
    Observation check = check_observation; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `basedOn`
        based_on: Vec<Reference> = "basedOn",
        /// `status` (required)
        status: Option<String> = "status",
        /// `category`
        category: Vec<CodeableConcept> = "category",
        /// `code` (required)
        code: Option<CodeableConcept> = "code",
        /// `subject`
        subject: Option<Reference> = "subject",
        /// `context`
        context: Option<Reference> = "context",
        /// `effective[x]`: `effectiveDateTime` or `effectivePeriod`.
        effective: Option<Choice> = "effective",
        /// `issued`
        issued: Option<DateTime> = "issued",
        /// `performer`
        performer: Vec<Reference> = "performer",
        /// `value[x]`
        value: Option<Choice> = "value",
        /// `dataAbsentReason`
        data_absent_reason: Option<CodeableConcept> = "dataAbsentReason",
        /// `interpretation`
        interpretation: Option<CodeableConcept> = "interpretation",
        /// `comment`
        comment: Option<String> = "comment",
        /// `bodySite`
        body_site: Option<CodeableConcept> = "bodySite",
        /// `method`
        method: Option<CodeableConcept> = "method",
        /// `specimen`
        specimen: Option<Reference> = "specimen",
        /// `device`
        device: Option<Reference> = "device",
        /// `referenceRange`
        reference_range: Vec<ObservationReferenceRange> = "referenceRange",
        /// `related`: e.g. a test group's members (`has-member`).
        related: Vec<ObservationRelated> = "related",
        /// `component`: e.g. systolic and diastolic blood pressure.
        component: Vec<ObservationComponent> = "component",
    }
}

fn check_observation(o: &Observation, ck: &mut Checker) {
    ck.require(o.status.is_some(), "status");
    ck.require(o.code.is_some(), "code");
}

backbone! {
    /// `Observation.referenceRange`
    ObservationReferenceRange {
        /// `low`
        low: Option<Quantity> = "low",
        /// `high`
        high: Option<Quantity> = "high",
        /// `type`
        r#type: Option<CodeableConcept> = "type",
        /// `appliesTo`
        applies_to: Vec<CodeableConcept> = "appliesTo",
        /// `age`
        age: Option<Range> = "age",
        /// `text`
        text: Option<String> = "text",
    }
}

backbone! {
    /// `Observation.related`
    ObservationRelated check = check_observation_related; {
        /// `type`: has-member | derived-from | sequel-to | replaces |
        /// qualified-by | interfered-by.
        r#type: Option<String> = "type",
        /// `target` (required)
        target: Option<Reference> = "target",
    }
}

fn check_observation_related(r: &ObservationRelated, ck: &mut Checker) {
    ck.require(r.target.is_some(), "target");
}

backbone! {
    /// `Observation.component`
    ObservationComponent check = check_observation_component; {
        /// `code` (required)
        code: Option<CodeableConcept> = "code",
        /// `value[x]`
        value: Option<Choice> = "value",
        /// `dataAbsentReason`
        data_absent_reason: Option<CodeableConcept> = "dataAbsentReason",
        /// `interpretation`
        interpretation: Option<CodeableConcept> = "interpretation",
        /// `referenceRange`
        reference_range: Vec<ObservationReferenceRange> = "referenceRange",
    }
}

fn check_observation_component(c: &ObservationComponent, ck: &mut Checker) {
    ck.require(c.code.is_some(), "code");
}

domain_resource! {
    /// `Immunization`
    Immunization check = check_immunization; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `status`: completed | entered-in-error (required).
        status: Option<String> = "status",
        /// `notGiven` (required)
        not_given: Option<bool> = "notGiven",
        /// `vaccineCode` (required)
        vaccine_code: Option<CodeableConcept> = "vaccineCode",
        /// `patient` (required)
        patient: Option<Reference> = "patient",
        /// `encounter`
        encounter: Option<Reference> = "encounter",
        /// `date`
        date: Option<DateTime> = "date",
        /// `primarySource` (required)
        primary_source: Option<bool> = "primarySource",
        /// `reportOrigin`
        report_origin: Option<CodeableConcept> = "reportOrigin",
        /// `location`
        location: Option<Reference> = "location",
        /// `manufacturer`
        manufacturer: Option<Reference> = "manufacturer",
        /// `lotNumber`
        lot_number: Option<String> = "lotNumber",
        /// `expirationDate`
        expiration_date: Option<DateTime> = "expirationDate",
        /// `site`
        site: Option<CodeableConcept> = "site",
        /// `route`
        route: Option<CodeableConcept> = "route",
        /// `doseQuantity`
        dose_quantity: Option<Quantity> = "doseQuantity",
        /// `practitioner`
        practitioner: Vec<ImmunizationPractitioner> = "practitioner",
        /// `note`
        note: Vec<Annotation> = "note",
        /// `explanation`
        explanation: Option<ImmunizationExplanation> = "explanation",
        /// `reaction`
        reaction: Vec<ImmunizationReaction> = "reaction",
    }
}

fn check_immunization(i: &Immunization, ck: &mut Checker) {
    ck.require(i.status.is_some(), "status");
    ck.require(i.not_given.is_some(), "notGiven");
    ck.require(i.vaccine_code.is_some(), "vaccineCode");
    ck.require(i.patient.is_some(), "patient");
    ck.require(i.primary_source.is_some(), "primarySource");
}

backbone! {
    /// `Immunization.practitioner`
    ImmunizationPractitioner check = check_immunization_practitioner; {
        /// `role`
        role: Option<CodeableConcept> = "role",
        /// `actor` (required)
        actor: Option<Reference> = "actor",
    }
}

fn check_immunization_practitioner(p: &ImmunizationPractitioner, ck: &mut Checker) {
    ck.require(p.actor.is_some(), "actor");
}

backbone! {
    /// `Immunization.explanation`
    ImmunizationExplanation {
        /// `reason`
        reason: Vec<CodeableConcept> = "reason",
        /// `reasonNotGiven`
        reason_not_given: Vec<CodeableConcept> = "reasonNotGiven",
    }
}

backbone! {
    /// `Immunization.reaction`
    ImmunizationReaction {
        /// `date`
        date: Option<DateTime> = "date",
        /// `detail`
        detail: Option<Reference> = "detail",
        /// `reported`
        reported: Option<bool> = "reported",
    }
}

domain_resource! {
    /// `DiagnosticReport`: in GP Connect, a pathology report, with its test
    /// groups and results as `Observation`s in `result`.
    DiagnosticReport check = check_diagnostic_report; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `basedOn`
        based_on: Vec<Reference> = "basedOn",
        /// `status` (required)
        status: Option<String> = "status",
        /// `category`
        category: Option<CodeableConcept> = "category",
        /// `code` (required)
        code: Option<CodeableConcept> = "code",
        /// `subject`
        subject: Option<Reference> = "subject",
        /// `context`
        context: Option<Reference> = "context",
        /// `effective[x]`
        effective: Option<Choice> = "effective",
        /// `issued`
        issued: Option<DateTime> = "issued",
        /// `performer`
        performer: Vec<DiagnosticReportPerformer> = "performer",
        /// `specimen`
        specimen: Vec<Reference> = "specimen",
        /// `result`
        result: Vec<Reference> = "result",
        /// `imagingStudy`
        imaging_study: Vec<Reference> = "imagingStudy",
        /// `conclusion`
        conclusion: Option<String> = "conclusion",
        /// `codedDiagnosis`
        coded_diagnosis: Vec<CodeableConcept> = "codedDiagnosis",
        /// `presentedForm`
        presented_form: Vec<Attachment> = "presentedForm",
    }
}

fn check_diagnostic_report(d: &DiagnosticReport, ck: &mut Checker) {
    ck.require(d.status.is_some(), "status");
    ck.require(d.code.is_some(), "code");
}

backbone! {
    /// `DiagnosticReport.performer`
    DiagnosticReportPerformer check = check_dr_performer; {
        /// `role`
        role: Option<CodeableConcept> = "role",
        /// `actor` (required)
        actor: Option<Reference> = "actor",
    }
}

fn check_dr_performer(p: &DiagnosticReportPerformer, ck: &mut Checker) {
    ck.require(p.actor.is_some(), "actor");
}

domain_resource! {
    /// `Specimen`
    Specimen check = check_specimen; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `accessionIdentifier`
        accession_identifier: Option<Identifier> = "accessionIdentifier",
        /// `status`
        status: Option<String> = "status",
        /// `type`
        r#type: Option<CodeableConcept> = "type",
        /// `subject` (required)
        subject: Option<Reference> = "subject",
        /// `receivedTime`
        received_time: Option<DateTime> = "receivedTime",
        /// `parent`
        parent: Vec<Reference> = "parent",
        /// `request`
        request: Vec<Reference> = "request",
        /// `collection`
        collection: Option<SpecimenCollection> = "collection",
        /// `note`
        note: Vec<Annotation> = "note",
    }
}

fn check_specimen(s: &Specimen, ck: &mut Checker) {
    ck.require(s.subject.is_some(), "subject");
}

backbone! {
    /// `Specimen.collection`
    SpecimenCollection {
        /// `collector`
        collector: Option<Reference> = "collector",
        /// `collected[x]`: `collectedDateTime` or `collectedPeriod`.
        collected: Option<Choice> = "collected",
        /// `quantity`
        quantity: Option<Quantity> = "quantity",
        /// `method`
        method: Option<CodeableConcept> = "method",
        /// `bodySite`
        body_site: Option<CodeableConcept> = "bodySite",
    }
}

domain_resource! {
    /// `ProcedureRequest`: in GP Connect, a diary entry (or a test request).
    ProcedureRequest check = check_procedure_request; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `definition`
        definition: Vec<Reference> = "definition",
        /// `basedOn`
        based_on: Vec<Reference> = "basedOn",
        /// `replaces`
        replaces: Vec<Reference> = "replaces",
        /// `requisition`
        requisition: Option<Identifier> = "requisition",
        /// `status` (required)
        status: Option<String> = "status",
        /// `intent` (required)
        intent: Option<String> = "intent",
        /// `priority`
        priority: Option<String> = "priority",
        /// `doNotPerform`
        do_not_perform: Option<bool> = "doNotPerform",
        /// `category`
        category: Vec<CodeableConcept> = "category",
        /// `code` (required)
        code: Option<CodeableConcept> = "code",
        /// `subject` (required)
        subject: Option<Reference> = "subject",
        /// `context`
        context: Option<Reference> = "context",
        /// `occurrence[x]`
        occurrence: Option<Choice> = "occurrence",
        /// `asNeeded[x]`
        as_needed: Option<Choice> = "asNeeded",
        /// `authoredOn`
        authored_on: Option<DateTime> = "authoredOn",
        /// `requester`
        requester: Option<Requester> = "requester",
        /// `performerType`
        performer_type: Option<CodeableConcept> = "performerType",
        /// `performer`
        performer: Option<Reference> = "performer",
        /// `reasonCode`
        reason_code: Vec<CodeableConcept> = "reasonCode",
        /// `reasonReference`
        reason_reference: Vec<Reference> = "reasonReference",
        /// `supportingInfo`
        supporting_info: Vec<Reference> = "supportingInfo",
        /// `specimen`
        specimen: Vec<Reference> = "specimen",
        /// `bodySite`
        body_site: Vec<CodeableConcept> = "bodySite",
        /// `note`
        note: Vec<Annotation> = "note",
        /// `relevantHistory`
        relevant_history: Vec<Reference> = "relevantHistory",
    }
}

fn check_procedure_request(p: &ProcedureRequest, ck: &mut Checker) {
    ck.require(p.status.is_some(), "status");
    ck.require(p.intent.is_some(), "intent");
    ck.require(p.code.is_some(), "code");
    ck.require(p.subject.is_some(), "subject");
}

domain_resource! {
    /// `ReferralRequest`
    ReferralRequest check = check_referral_request; {
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `definition`
        definition: Vec<Reference> = "definition",
        /// `basedOn`
        based_on: Vec<Reference> = "basedOn",
        /// `replaces`
        replaces: Vec<Reference> = "replaces",
        /// `groupIdentifier`
        group_identifier: Option<Identifier> = "groupIdentifier",
        /// `status` (required)
        status: Option<String> = "status",
        /// `intent` (required)
        intent: Option<String> = "intent",
        /// `type`
        r#type: Option<CodeableConcept> = "type",
        /// `priority`
        priority: Option<String> = "priority",
        /// `serviceRequested`
        service_requested: Vec<CodeableConcept> = "serviceRequested",
        /// `subject` (required)
        subject: Option<Reference> = "subject",
        /// `context`
        context: Option<Reference> = "context",
        /// `occurrence[x]`
        occurrence: Option<Choice> = "occurrence",
        /// `authoredOn`
        authored_on: Option<DateTime> = "authoredOn",
        /// `requester`
        requester: Option<Requester> = "requester",
        /// `specialty`
        specialty: Option<CodeableConcept> = "specialty",
        /// `recipient`
        recipient: Vec<Reference> = "recipient",
        /// `reasonCode`
        reason_code: Vec<CodeableConcept> = "reasonCode",
        /// `reasonReference`
        reason_reference: Vec<Reference> = "reasonReference",
        /// `description`
        description: Option<String> = "description",
        /// `supportingInfo`
        supporting_info: Vec<Reference> = "supportingInfo",
        /// `note`
        note: Vec<Annotation> = "note",
        /// `relevantHistory`
        relevant_history: Vec<Reference> = "relevantHistory",
    }
}

fn check_referral_request(r: &ReferralRequest, ck: &mut Checker) {
    ck.require(r.status.is_some(), "status");
    ck.require(r.intent.is_some(), "intent");
    ck.require(r.subject.is_some(), "subject");
}

domain_resource! {
    /// `DocumentReference`: a document (letter, scan…) held with the record;
    /// its content is fetched as a `Binary`.
    DocumentReference check = check_document_reference; {
        /// `masterIdentifier`
        master_identifier: Option<Identifier> = "masterIdentifier",
        /// `identifier`
        identifier: Vec<Identifier> = "identifier",
        /// `status` (required)
        status: Option<String> = "status",
        /// `docStatus`
        doc_status: Option<String> = "docStatus",
        /// `type` (required)
        r#type: Option<CodeableConcept> = "type",
        /// `class`
        class: Option<CodeableConcept> = "class",
        /// `subject`
        subject: Option<Reference> = "subject",
        /// `created`
        created: Option<DateTime> = "created",
        /// `indexed` (an instant; required)
        indexed: Option<DateTime> = "indexed",
        /// `author`
        author: Vec<Reference> = "author",
        /// `authenticator`
        authenticator: Option<Reference> = "authenticator",
        /// `custodian`
        custodian: Option<Reference> = "custodian",
        /// `relatesTo`
        relates_to: Vec<DocumentReferenceRelatesTo> = "relatesTo",
        /// `description`
        description: Option<String> = "description",
        /// `securityLabel`
        security_label: Vec<CodeableConcept> = "securityLabel",
        /// `content` (at least one)
        content: Vec<DocumentReferenceContent> = "content",
        /// `context`
        context: Option<DocumentReferenceContext> = "context",
    }
}

fn check_document_reference(d: &DocumentReference, ck: &mut Checker) {
    ck.require(d.status.is_some(), "status");
    ck.require(d.r#type.is_some(), "type");
    ck.require(d.indexed.is_some(), "indexed");
    ck.require(!d.content.is_empty(), "content");
}

backbone! {
    /// `DocumentReference.relatesTo`
    DocumentReferenceRelatesTo check = check_relates_to; {
        /// `code` (required)
        code: Option<String> = "code",
        /// `target` (required)
        target: Option<Reference> = "target",
    }
}

fn check_relates_to(r: &DocumentReferenceRelatesTo, ck: &mut Checker) {
    ck.require(r.code.is_some(), "code");
    ck.require(r.target.is_some(), "target");
}

backbone! {
    /// `DocumentReference.content`
    DocumentReferenceContent check = check_content; {
        /// `attachment` (required)
        attachment: Option<Attachment> = "attachment",
        /// `format`
        format: Option<Coding> = "format",
    }
}

fn check_content(c: &DocumentReferenceContent, ck: &mut Checker) {
    ck.require(c.attachment.is_some(), "attachment");
}

backbone! {
    /// `DocumentReference.context`
    DocumentReferenceContext {
        /// `encounter`
        encounter: Option<Reference> = "encounter",
        /// `event`
        event: Vec<CodeableConcept> = "event",
        /// `period`
        period: Option<Period> = "period",
        /// `facilityType`
        facility_type: Option<CodeableConcept> = "facilityType",
        /// `practiceSetting`
        practice_setting: Option<CodeableConcept> = "practiceSetting",
        /// `sourcePatientInfo`
        source_patient_info: Option<Reference> = "sourcePatientInfo",
    }
}

// ---------------------------------------------------------------------------
// Infrastructure resources

resource! {
    /// `Binary`: raw content, such as a document fetched by GP Connect
    /// Access Document.
    Binary check = check_binary; {
        /// `contentType`: the MIME type (required).
        content_type: Option<String> = "contentType",
        /// `securityContext`
        security_context: Option<Reference> = "securityContext",
        /// `content`: the content, base64-encoded (required).
        content: Option<String> = "content",
    }
}

fn check_binary(b: &Binary, ck: &mut Checker) {
    ck.require(b.content_type.is_some(), "contentType");
    ck.require(b.content.is_some(), "content");
}

domain_resource! {
    /// `OperationOutcome`: errors and warnings. GP Connect codes them in
    /// `issue.details.coding` with system
    /// [`systems::SPINE_ERROR_OR_WARNING_CODE`].
    OperationOutcome check = check_operation_outcome; {
        /// `issue` (at least one)
        issue: Vec<OperationOutcomeIssue> = "issue",
    }
}

fn check_operation_outcome(o: &OperationOutcome, ck: &mut Checker) {
    ck.require(!o.issue.is_empty(), "issue");
}

backbone! {
    /// `OperationOutcome.issue`
    OperationOutcomeIssue check = check_oo_issue; {
        /// `severity`: fatal | error | warning | information (required).
        severity: Option<String> = "severity",
        /// `code`: the issue type (required).
        code: Option<String> = "code",
        /// `details`
        details: Option<CodeableConcept> = "details",
        /// `diagnostics`
        diagnostics: Option<String> = "diagnostics",
        /// `location`
        location: Vec<String> = "location",
        /// `expression`
        expression: Vec<String> = "expression",
    }
}

fn check_oo_issue(i: &OperationOutcomeIssue, ck: &mut Checker) {
    ck.require(i.severity.is_some(), "severity");
    ck.require(i.code.is_some(), "code");
}

resource! {
    /// `Parameters`: the body of an operation such as
    /// `$gpc.getstructuredrecord`.
    Parameters {
        /// `parameter`
        parameter: Vec<ParametersParameter> = "parameter",
    }
}

impl Parameters {
    /// The first parameter with this `name`.
    pub fn get(&self, name: &str) -> Option<&ParametersParameter> {
        self.parameter
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
    }
}

backbone! {
    /// `Parameters.parameter`
    ParametersParameter check = check_parameter; {
        /// `name` (required)
        name: Option<String> = "name",
        /// `value[x]`
        value: Option<Choice> = "value",
        /// `resource`
        resource: Option<Resource> = "resource",
        /// `part`: nested parameters.
        part: Vec<ParametersParameter> = "part",
    }
}

fn check_parameter(p: &ParametersParameter, ck: &mut Checker) {
    ck.require(p.name.is_some(), "name");
}

impl ParametersParameter {
    /// The first part with this `name`.
    pub fn part(&self, name: &str) -> Option<&ParametersParameter> {
        self.part.iter().find(|p| p.name.as_deref() == Some(name))
    }
}

// ---------------------------------------------------------------------------
// Resource: any one of them

/// A resource type this crate models: lets generic code such as
/// [`Bundle::resources_of`](crate::Bundle::resources_of) pick resources of
/// one type.
pub trait TypedResource: Sized {
    /// The `resourceType`, e.g. `"Observation"`.
    const RESOURCE_TYPE: &'static str;

    /// The resource if `resource` is of this type.
    fn from_resource(resource: &Resource) -> Option<&Self>;

    /// The resource's `id`.
    fn resource_id(&self) -> Option<&str>;

    /// Wraps the resource in [`Resource`].
    fn into_resource(self) -> Resource;
}

macro_rules! resources {
    ($($ty:ident,)*) => {
        /// Any resource: one of the types this crate models, or
        /// [`Resource::Other`] for the rest.
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum Resource {
            $(
                #[doc = concat!("A `", stringify!($ty), "`.")]
                $ty(Box<$ty>),
            )*
            /// A resource of a type this crate does not model, kept as the
            /// JSON object it was (including its `resourceType`).
            Other(Extra),
        }

        impl Resource {
            /// The `resourceType`.
            pub fn resource_type(&self) -> &str {
                match self {
                    $( Resource::$ty(_) => stringify!($ty), )*
                    Resource::Other(m) => m
                        .get("resourceType")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default(),
                }
            }

            /// The logical `id`.
            pub fn id(&self) -> Option<&str> {
                match self {
                    $( Resource::$ty(r) => r.id.as_deref(), )*
                    Resource::Other(m) => m.get("id").and_then(serde_json::Value::as_str),
                }
            }

            /// The `meta` element, for the modelled types.
            pub fn meta(&self) -> Option<&crate::datatypes::Meta> {
                match self {
                    $( Resource::$ty(r) => r.meta.as_ref(), )*
                    Resource::Other(_) => None,
                }
            }

            fn read_typed<'de, A: MapAccess<'de>>(
                ty: &str,
                map: A,
            ) -> Result<Option<Resource>, A::Error> {
                Ok(Some(match ty {
                    $( stringify!($ty) => Resource::$ty(Box::new($ty::read_members(map, None)?)), )*
                    _ => return Ok(None),
                }))
            }

            fn from_object<E: de::Error>(ty: &str, obj: Extra) -> Result<Resource, E> {
                let value = serde_json::Value::Object(obj);
                Ok(match ty {
                    $(
                        stringify!($ty) => Resource::$ty(Box::new(
                            $ty::deserialize(value).map_err(E::custom)?,
                        )),
                    )*
                    _ => match value {
                        serde_json::Value::Object(obj) => Resource::Other(obj),
                        _ => return Err(E::custom("a resource must be a JSON object")),
                    },
                })
            }

            fn clean_inner(&mut self) {
                match self {
                    $( Resource::$ty(r) => Node::clean(&mut **r), )*
                    Resource::Other(m) => crate::model::clean_extra(m),
                }
            }

            fn check_inner(&self, ck: &mut Checker) {
                match self {
                    $( Resource::$ty(r) => Node::check(&**r, ck), )*
                    Resource::Other(m) => crate::model::check_extra(m, ck),
                }
            }
        }

        impl Serialize for Resource {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Resource::$ty(r) => r.serialize(s), )*
                    Resource::Other(m) => m.serialize(s),
                }
            }
        }

        $(
            impl TypedResource for $ty {
                const RESOURCE_TYPE: &'static str = stringify!($ty);

                fn from_resource(resource: &Resource) -> Option<&$ty> {
                    match resource {
                        Resource::$ty(r) => Some(r),
                        _ => None,
                    }
                }

                fn resource_id(&self) -> Option<&str> {
                    self.id.as_deref()
                }

                fn into_resource(self) -> Resource {
                    Resource::$ty(Box::new(self))
                }
            }

            impl From<$ty> for Resource {
                fn from(r: $ty) -> Resource {
                    Resource::$ty(Box::new(r))
                }
            }
        )*
    };
}

resources! {
    Bundle,
    Patient,
    Organization,
    Practitioner,
    PractitionerRole,
    Location,
    List,
    AllergyIntolerance,
    Medication,
    MedicationStatement,
    MedicationRequest,
    Condition,
    Encounter,
    Observation,
    Immunization,
    DiagnosticReport,
    Specimen,
    ProcedureRequest,
    ReferralRequest,
    DocumentReference,
    Binary,
    OperationOutcome,
    Parameters,
}

impl Resource {
    /// `Type/id`, or just `Type` when the resource has no id.
    pub fn label(&self) -> String {
        let ty = self.resource_type();
        match self.id() {
            Some(id) => {
                let mut label = String::with_capacity(ty.len() + 1 + id.len());
                label.push_str(ty);
                label.push('/');
                label.push_str(id);
                label
            }
            None => ty.to_owned(),
        }
    }

    /// The resource as `T`, if it is one.
    pub fn downcast_ref<T: TypedResource>(&self) -> Option<&T> {
        T::from_resource(self)
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Resource, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = Resource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a FHIR resource (a JSON object with a resourceType)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Resource, A::Error> {
                // Fast path: `resourceType` first, as every FHIR server
                // writes it. The rest of the object is then read straight
                // into the right type.
                let Some(first) = map.next_key::<Key<'de>>()? else {
                    return Err(de::Error::missing_field("resourceType"));
                };
                let mut obj = Extra::new();
                if first.0 == "resourceType" {
                    let ty: Key<'de> = map.next_value()?;
                    let ty: &str = &ty.0;
                    if let Some(r) = Resource::read_typed(ty, &mut map)? {
                        return Ok(r);
                    }
                    obj.insert("resourceType".to_owned(), ty.into());
                } else {
                    obj.insert(first.0.into_owned(), map.next_value()?);
                }
                // Slow path: buffer the object, then find its type.
                while let Some(k) = map.next_key::<Key<'de>>()? {
                    let v: serde_json::Value = map.next_value()?;
                    obj.insert(k.0.into_owned(), v);
                }
                let ty = match obj.get("resourceType") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => return Err(de::Error::missing_field("resourceType")),
                };
                Resource::from_object(&ty, obj)
            }
        }
        d.deserialize_map(V)
    }
}

impl Node for Resource {
    fn is_empty(&self) -> bool {
        false
    }

    fn clean(&mut self) {
        self.clean_inner();
    }

    fn check(&self, ck: &mut Checker) {
        ck.in_resource(self.label(), |ck| {
            if let Some(id) = self.id()
                && !is_valid_id(id)
            {
                ck.at_field("id", |ck| ck.issue(IssueKind::InvalidId(id.to_owned())));
            }
            self.check_inner(ck);
        });
    }
}
