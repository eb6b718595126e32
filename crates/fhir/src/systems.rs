//! Code systems, identifier systems, profiles and extension URLs seen in
//! GP Connect structured records.

/// SNOMED CT.
pub const SNOMED_CT: &str = "http://snomed.info/sct";
/// Read codes version 2.
pub const READ_V2: &str = "http://read.info/readv2";
/// Read codes version 3 (CTV3).
pub const READ_CTV3: &str = "http://read.info/ctv3";
/// UCUM units.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// dm+d (the NHS Dictionary of Medicines and Devices), coded in SNOMED CT.
pub const DMD: &str = SNOMED_CT;
/// EMIS drug codes.
pub const EMIS_DRUG_CODES: &str = "https://fhir.hl7.org.uk/Id/emis-drug-codes";
/// Egton (EMIS) codes.
pub const EGTON_CODES: &str = "https://fhir.hl7.org.uk/Id/egton-codes";

/// NHS number (identifier system).
pub const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// ODS organisation code (identifier system).
pub const ODS_ORGANIZATION_CODE: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// ODS site code (identifier system).
pub const ODS_SITE_CODE: &str = "https://fhir.nhs.uk/Id/ods-site-code";
/// SDS user id (identifier system).
pub const SDS_USER_ID: &str = "https://fhir.nhs.uk/Id/sds-user-id";
/// SDS role profile id (identifier system).
pub const SDS_ROLE_PROFILE_ID: &str = "https://fhir.nhs.uk/Id/sds-role-profile-id";

/// Extension carrying the SNOMED CT description id of a Coding.
pub const EXTENSION_CODING_SCTDESCID: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-coding-sctdescid";
/// The `descriptionId` part of [`EXTENSION_CODING_SCTDESCID`].
pub const SCTDESCID_DESCRIPTION_ID: &str = "descriptionId";
/// The `descriptionDisplay` part of [`EXTENSION_CODING_SCTDESCID`].
pub const SCTDESCID_DESCRIPTION_DISPLAY: &str = "descriptionDisplay";

/// Prefix of NHS England (fhir.nhs.uk) StructureDefinitions.
pub const NHS_STRUCTURE_DEFINITION: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/";
/// Prefix of HL7 UK (fhir.hl7.org.uk) StructureDefinitions.
pub const HL7_UK_STRUCTURE_DEFINITION: &str = "https://fhir.hl7.org.uk/STU3/StructureDefinition/";

/// Profile of the structured record Bundle.
pub const PROFILE_STRUCTURED_RECORD_BUNDLE: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-StructuredRecord-Bundle-1";

/// GP Connect extension URLs (all under [`NHS_STRUCTURE_DEFINITION`] or
/// [`HL7_UK_STRUCTURE_DEFINITION`]).
pub mod extension {
    /// List: the clinical setting.
    pub const CLINICAL_SETTING: &str =
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ClinicalSetting-1";
    /// List: a warning (`confidential-items`, `data-in-transit`,
    /// `data-awaiting-filing`).
    pub const LIST_WARNING_CODE: &str =
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ListWarningCode-1";
    /// MedicationRequest: acute, repeat, repeat dispensing…
    pub const PRESCRIPTION_TYPE: &str =
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescriptionType-1";
    /// MedicationStatement: who prescribes.
    pub const PRESCRIBING_AGENCY: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescribingAgency-1";
    /// MedicationStatement: date of the last issue.
    pub const MEDICATION_STATEMENT_LAST_ISSUE_DATE: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationStatementLastIssueDate-1";
    /// MedicationRequest (plan): repeats allowed and issued.
    pub const MEDICATION_REPEAT_INFORMATION: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationRepeatInformation-1";
    /// MedicationRequest: why the status changed.
    pub const MEDICATION_STATUS_REASON: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationStatusReason-1";
    /// Patient: registration details.
    pub const REGISTRATION_DETAILS: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-RegistrationDetails-1";
    /// Patient identifier: NHS number verification status.
    pub const NHS_NUMBER_VERIFICATION_STATUS: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSNumberVerificationStatus-1";
    /// Patient: communication (language, interpreter).
    pub const NHS_COMMUNICATION: &str =
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSCommunication-1";
    /// Organization: the main location.
    pub const MAIN_LOCATION: &str =
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MainLocation-1";
    /// Condition: links to the problem's related clinical content.
    pub const RELATED_CLINICAL_CONTENT: &str = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedClinicalContent-1";
    /// Condition: the actual problem record.
    pub const ACTUAL_PROBLEM: &str =
        "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-ActualProblem-1";
    /// Condition: major or minor.
    pub const PROBLEM_SIGNIFICANCE: &str = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-ProblemSignificance-1";
    /// Condition: a related problem (parent, child, sibling).
    pub const RELATED_PROBLEM_HEADER: &str = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedProblemHeader-1";
    /// Immunization: the vaccination procedure code.
    pub const VACCINATION_PROCEDURE: &str = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-VaccinationProcedure-1";
    /// Immunization: the date recorded.
    pub const DATE_RECORDED: &str =
        "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-DateRecorded-1";
    /// Specimen collection: fasting status.
    pub const FASTING_STATUS: &str =
        "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-FastingStatus-1";
    /// Encounter: an associated encounter (HL7 core extension).
    pub const ENCOUNTER_ASSOCIATED_ENCOUNTER: &str =
        "http://hl7.org/fhir/StructureDefinition/encounter-associatedEncounter";
}

/// GP Connect error and warning codes in OperationOutcome.
pub const SPINE_ERROR_OR_WARNING_CODE: &str =
    "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1";
/// List empty reasons.
pub const LIST_EMPTY_REASON_CODE: &str =
    "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1";
/// Prescription types (acute, repeat…).
pub const PRESCRIPTION_TYPE: &str =
    "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1";
/// Encounter participant types (GP Connect).
pub const PARTICIPANT_TYPE: &str =
    "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-ParticipantType-1";
/// HL7 v3 participation types (`REC`, `PPRF`).
pub const V3_PARTICIPATION_TYPE: &str = "http://hl7.org/fhir/v3/ParticipationType";
/// Observation categories.
pub const OBSERVATION_CATEGORY: &str = "http://hl7.org/fhir/observation-category";
/// List orders.
pub const LIST_ORDER: &str = "http://hl7.org/fhir/list-order";
/// Condition categories (Care Connect).
pub const CONDITION_CATEGORY: &str =
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1";
/// SDS job role names.
pub const SDS_JOB_ROLE_NAME: &str =
    "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-SDSJobRoleName-1";
