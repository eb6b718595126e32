//! Element and attribute names, interned.
//!
//! An EhrExtract of a few hundred kilobytes holds tens of thousands of elements whose
//! names come from a vocabulary of a few hundred (`id`, `code`, `ObservationStatement`,
//! `classCode`…). Allocating a string for each would cost more than parsing it, so a
//! [`Name`] is a pointer into a static table for every name of the GP2GP schemas, and owns
//! its text only for names outside it. It behaves as a `str` either way.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

/// An element or attribute name as written (prefix included).
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Owned(Box<str>),
}

impl Name {
    /// The name, interned when it is one of the known names.
    pub fn new(s: &str) -> Name {
        match lookup(s) {
            Some(known) => Name(Repr::Static(known)),
            None => Name(Repr::Owned(s.into())),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Owned(s) => s,
        }
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::new(&s)
    }
}

/// Every element and attribute name of the GP2GP schemas and of the messages real systems
/// send (generated from the schema set and the conformance corpus).
const KNOWN: &[&str] = &[
    "AD",
    "ADXP",
    "ANY",
    "Agent",
    "AgentOrgSDS",
    "AgentPersonSDS",
    "AgentSDS",
    "AgentSystemSDS",
    "BIN",
    "BL",
    "BN",
    "CD",
    "CE",
    "CO",
    "COPC_IN000001UK01",
    "CR",
    "CS",
    "CV",
    "CompoundStatement",
    "ControlActEvent",
    "ED",
    "EN",
    "ENXP",
    "EhrEmpty",
    "EhrExtract",
    "EhrRequest",
    "II",
    "INT",
    "IVL_INT",
    "IVL_PQ",
    "IVL_TS",
    "IVXB_TS",
    "LinkSet",
    "MCCI_IN010000UK13",
    "MCCI_MT010101UK12",
    "MCCI_MT020101UK12",
    "MO",
    "MedicationStatement",
    "Message",
    "NarrativeStatement",
    "ON",
    "ObservationStatement",
    "PN",
    "PQ",
    "PQR",
    "PQ_inc",
    "Participant",
    "Participant2",
    "PayloadInformation",
    "PlanStatement",
    "QTY",
    "RCCT_MT120101UK01",
    "RCMR_IN010000UK05",
    "RCMR_IN030000UK06",
    "RCMR_IN030000UK07",
    "REAL",
    "RTO",
    "RTO_QTY_QTY",
    "RegistrationStatement",
    "RequestStatement",
    "SC",
    "ST",
    "SXCM_TS",
    "TEL",
    "TN",
    "TS",
    "UKCT_MT120301UK02",
    "UKCT_MT120501UK03",
    "UKCT_MT120901UK01",
    "UKCT_MT121001UK01",
    "URL",
    "acceptAckCode",
    "acknowledgement",
    "acknowledgementDetail",
    "additionalLocator",
    "addr",
    "addressKey",
    "administrativeGenderCode",
    "agencyFor",
    "agentDevice",
    "agentDeviceSDS",
    "agentDirectory",
    "agentOrganization",
    "agentOrganizationSDS",
    "agentPerson",
    "agentPersonSDS",
    "agentRef",
    "agentSystemSDS",
    "assigningAuthorityName",
    "author",
    "author1",
    "availabilityTime",
    "carrier",
    "censusTract",
    "center",
    "city",
    "classCode",
    "code",
    "codeSystem",
    "codeSystemName",
    "codeSystemVersion",
    "communicationFunctionRcv",
    "communicationFunctionSnd",
    "component",
    "compression",
    "conditionNamed",
    "confidentialityCode",
    "consumable",
    "contextConductionInd",
    "contextControlCode",
    "country",
    "county",
    "creationTime",
    "currency",
    "deceasedInd",
    "delimiter",
    "denominator",
    "desc",
    "destination",
    "determinerCode",
    "device",
    "direction",
    "displayName",
    "displayable",
    "effectiveTime",
    "ehrComposition",
    "ehrFolder",
    "ehrSupplyAuthorise",
    "ehrSupplyDiscontinue",
    "ehrSupplyDispense",
    "ehrSupplyPrescribe",
    "encoding",
    "expirationTime",
    "extension",
    "family",
    "given",
    "gp:From",
    "gp:Gp2gpfragment",
    "gp:Recipient",
    "gp:Recipients",
    "gp:Version",
    "gp:acknowledgedMessage",
    "gp:id",
    "gp:message",
    "gp:subject",
    "high",
    "hl7:PayloadInformation",
    "houseNumber",
    "houseNumberNumeric",
    "id",
    "inFulfillmentOf",
    "inclusive",
    "informant",
    "informantRole",
    "integrityCheck",
    "integrityCheckAlgorithm",
    "interactionId",
    "interpretationCode",
    "inversionInd",
    "inverted",
    "isNotOrdered",
    "justifyingDetectedIssueEvent",
    "justifyingStatementRef",
    "language",
    "limitation",
    "limitingEhrExtractSpecification",
    "locatedEntity",
    "locatedPlace",
    "location",
    "low",
    "manufacturedMaterial",
    "manufacturedProduct",
    "manufacturerModelName",
    "mediaType",
    "messageRef",
    "modeCode",
    "moodCode",
    "name",
    "namedStatementRef",
    "npfitlc:messageType",
    "nullFlavor",
    "numerator",
    "operator",
    "originalText",
    "originalUnit",
    "originalValue",
    "part",
    "partSDSRole",
    "partType",
    "patient",
    "performer",
    "personalRelationship",
    "pertinentAnnotation",
    "pertinentInformation",
    "pertinentMedicationDosage",
    "pertinentPayloadBody",
    "pertinentSupplyAnnotation",
    "playingPerson",
    "postalCode",
    "predecessor",
    "prefix",
    "priorCompositionRef",
    "priorEhrRequest",
    "priorMedicationRef",
    "priorStatementRef",
    "priorityCode",
    "processingCode",
    "processingModeCode",
    "qualifier",
    "quantity",
    "realmCode",
    "reason",
    "recordTarget",
    "reference",
    "referenceInterpretationRange",
    "referenceRange",
    "referredToExternalDocument",
    "relationshipHolder",
    "repeatNumber",
    "replacementOf",
    "representation",
    "representedOrganization",
    "representedOrganizationSDS",
    "representedPerson",
    "representedPersonSDS",
    "responsibleParty",
    "reversalOf",
    "root",
    "seperatableInd",
    "sequelTo",
    "sequenceNumber",
    "serviceDeliveryLocation",
    "setId",
    "signatureCode",
    "signatureText",
    "softwareName",
    "specimen",
    "specimenRole",
    "specimenSpecimenMaterial",
    "state",
    "statementRef",
    "statusCode",
    "streetAddressLine",
    "streetName",
    "streetNameBase",
    "streetNameType",
    "subject",
    "suffix",
    "telecom",
    "text",
    "thumbnail",
    "time",
    "translation",
    "type",
    "typeCode",
    "typeID",
    "uncertaintyCode",
    "unit",
    "unitID",
    "unitType",
    "updateMode",
    "use",
    "useablePeriod",
    "validTime",
    "value",
    "version",
    "versionCode",
    "versionNumber",
    "width",
    "xmlns",
    "xmlns:gp",
    "xmlns:hl7",
    "xmlns:npfitct",
    "xmlns:npfitlc",
    "xmlns:xs",
    "xmlns:xsi",
    "xsi:schemaLocation",
    "xsi:type",
];

const SLOTS: usize = 1024;

fn hash(s: &str) -> usize {
    // The length and five bytes (the first two, the middle one, the last two), mixed by
    // one multiplication: that tells the known names apart well enough (a test checks how
    // far any of them is from its slot) at the cost of a few instructions whatever the
    // length. No need for DoS resistance: the table is fixed, and a name outside it costs
    // one probe run at most.
    let b = s.as_bytes();
    let at = |i: usize| u64::from(b.get(i).copied().unwrap_or_default());
    let n = b.len();
    let key = n as u64
        | at(0) << 8
        | at(1) << 16
        | at(n / 2) << 24
        | at(n.wrapping_sub(2)) << 32
        | at(n.wrapping_sub(1)) << 40;
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
}

fn table() -> &'static [Option<&'static str>; SLOTS] {
    static TABLE: OnceLock<[Option<&'static str>; SLOTS]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [None; SLOTS];
        for &name in KNOWN {
            let mut i = hash(name) % SLOTS;
            while t[i].is_some() {
                i = (i + 1) % SLOTS;
            }
            t[i] = Some(name);
        }
        t
    })
}

fn lookup(s: &str) -> Option<&'static str> {
    if s.len() > 40 {
        return None;
    }
    let t = table();
    let mut i = hash(s) % SLOTS;
    loop {
        match t[i] {
            None => return None,
            Some(k) if k == s => return Some(k),
            Some(_) => i = (i + 1) % SLOTS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_interned_and_others_owned() {
        for &k in KNOWN {
            assert!(matches!(Name::new(k).0, Repr::Static(_)), "{k}");
            assert_eq!(Name::new(k).as_str(), k);
        }
        let odd = Name::new("supplierExtension");
        assert!(matches!(odd.0, Repr::Owned(_)));
        assert_eq!(odd, Name::new("supplierExtension"));
        assert_ne!(odd, Name::new("id"));
    }

    #[test]
    fn the_table_has_room_to_spare() {
        assert!(
            KNOWN.len() * 2 < SLOTS,
            "{} names in {SLOTS} slots",
            KNOWN.len()
        );
        // Every known name is found within a few probes of its slot.
        let table = table();
        for &name in KNOWN {
            let home = hash(name) % SLOTS;
            let probes = (0..SLOTS)
                .position(|d| table[(home + d) % SLOTS] == Some(name))
                .unwrap();
            assert!(probes <= 3, "{name} is {probes} slots from home");
        }
        let mut sorted = KNOWN.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KNOWN.len(), "duplicate names in KNOWN");
    }
}
