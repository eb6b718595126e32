//! The message around the content: HL7's transmission wrapper and control act.
//!
//! Every GP2GP message has the same outer shape, whatever it carries:
//!
//! ```text
//! RCMR_IN030000UK06                 the interaction id is the root element's name
//! ├ id, creationTime, versionCode, interactionId, processingCode, processingModeCode,
//! │ acceptAckCode
//! ├ acknowledgement                 only in MCCI_IN010000UK13: AA / AE / AR, messageRef
//! ├ communicationFunctionRcv/device/id    the receiving system's ASID
//! ├ communicationFunctionSnd/device/id    the sending system's ASID
//! └ ControlActEvent
//!   ├ author1/AgentSystemSDS/agentSystemSDS/id   the sending ASID again
//!   ├ reason/justifyingDetectedIssueEvent/code    an AE's reason code
//!   └ subject/<payload>             EhrRequest, EhrExtract or PayloadInformation (COPC)
//! ```
//!
//! [`Message`] is that shape, typed, for all five interactions GP2GP uses.

use crate::datatypes::{CD, II, INT, ST, TS};
use crate::ehr::{EhrExtract, OrgParticipation, RecordTarget};
use crate::typed::{FromXml, ToXml};
use crate::xml::{self, Element, Layout, Writer, XmlError};

/// The interactions GP2GP uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `RCMR_IN010000UK05`: the requesting practice asks for the record.
    EhrRequest,
    /// `RCMR_IN030000UK06`: the record.
    EhrExtract,
    /// `RCMR_IN030000UK07`: the record, with confidentiality codes.
    EhrExtractConfidential,
    /// `MCCI_IN010000UK13`: an application acknowledgement.
    Acknowledgement,
    /// `COPC_IN000001UK01`: large messaging (continue, fragments, fragment index).
    CommonContent,
}

impl Interaction {
    pub const ALL: [Interaction; 5] = [
        Interaction::EhrRequest,
        Interaction::EhrExtract,
        Interaction::EhrExtractConfidential,
        Interaction::Acknowledgement,
        Interaction::CommonContent,
    ];

    /// The interaction id, which is also the root element's name.
    pub fn id(self) -> &'static str {
        match self {
            Interaction::EhrRequest => "RCMR_IN010000UK05",
            Interaction::EhrExtract => "RCMR_IN030000UK06",
            Interaction::EhrExtractConfidential => "RCMR_IN030000UK07",
            Interaction::Acknowledgement => "MCCI_IN010000UK13",
            Interaction::CommonContent => "COPC_IN000001UK01",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Interaction::ALL.into_iter().find(|i| i.id() == id)
    }

    /// The schema file that validates this interaction, where one is published.
    pub fn schema_file(self) -> Option<&'static str> {
        match self {
            Interaction::EhrRequest => None,
            other => Some(match other {
                Interaction::EhrExtract => "RCMR_IN030000UK06.xsd",
                Interaction::EhrExtractConfidential => "RCMR_IN030000UK07.xsd",
                Interaction::Acknowledgement => "MCCI_IN010000UK13.xsd",
                _ => "COPC_IN000001UK01.xsd",
            }),
        }
    }
}

hl7_class! {
    /// The transmission wrapper and its control act: everything but the root's name.
    pub struct Transmission {
        attrs { type_: "type" }
        children {
            id: opt II = "id",
            creation_time: opt TS = "creationTime",
            version_code: opt CD = "versionCode",
            interaction_id: opt II = "interactionId",
            processing_code: opt CD = "processingCode",
            processing_mode_code: opt CD = "processingModeCode",
            accept_ack_code: opt CD = "acceptAckCode",
            acknowledgement: opt Acknowledgement = "acknowledgement",
            communication_function_rcv: many CommunicationFunction = "communicationFunctionRcv",
            communication_function_snd: opt CommunicationFunction = "communicationFunctionSnd",
            control_act_event: opt ControlActEvent = "ControlActEvent",
        }
    }
}

hl7_class! {
    /// An acknowledgement: `typeCode` AA (accepted), AE (error), AR (rejected); the id of
    /// the message acknowledged; details with reason codes.
    pub struct Acknowledgement {
        attrs { type_: "type", type_code: "typeCode" }
        children {
            acknowledgement_detail: many AcknowledgementDetail = "acknowledgementDetail",
            message_ref: opt MessageRef = "messageRef",
        }
    }
}

hl7_class! {
    /// A detail of an acknowledgement: an AR's reason code, or a continue's `0`.
    pub struct AcknowledgementDetail {
        attrs { type_: "type", type_code: "typeCode" }
        children { code: opt CD = "code" }
    }
}

hl7_class! {
    /// The id of the message acknowledged.
    pub struct MessageRef {
        attrs { type_: "type" }
        children { id: opt II = "id" }
    }
}

hl7_class! {
    /// `communicationFunctionRcv` / `communicationFunctionSnd`: the system, by ASID.
    pub struct CommunicationFunction {
        attrs { type_: "type", type_code: "typeCode" }
        children { device: opt Device = "device" }
    }
}

hl7_class! {
    /// A messaging system.
    pub struct Device {
        attrs { type_: "type", class_code: "classCode", determiner_code: "determinerCode" }
        children {
            id: many II = "id",
            agency_for: opt Element = "agencyFor",
        }
    }
}

hl7_class! {
    /// The control act: who sent it, an error reason, and the payload.
    pub struct ControlActEvent {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            author: opt Element = "author",
            author1: many SystemAuthor = "author1",
            reason: many Reason = "reason",
            subject: opt Subject = "subject",
        }
    }
}

hl7_class! {
    /// `author1`: the sending system.
    pub struct SystemAuthor {
        attrs { type_: "type", type_code: "typeCode" }
        children { agent_system_sds: opt AgentSystemSDS = "AgentSystemSDS" }
    }
}

hl7_class! {
    /// A system known to SDS.
    pub struct AgentSystemSDS {
        attrs { type_: "type", class_code: "classCode" }
        children { agent_system_sds: opt Device = "agentSystemSDS" }
    }
}

hl7_class! {
    /// An AE's reason.
    pub struct Reason {
        attrs { type_: "type", type_code: "typeCode" }
        children { justifying_detected_issue_event: opt DetectedIssueEvent = "justifyingDetectedIssueEvent" }
    }
}

hl7_class! {
    /// The detected issue: its code is the GP2GP reason code.
    pub struct DetectedIssueEvent {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children { code: opt CD = "code" }
    }
}

hl7_choice! {
    /// What a message carries.
    pub enum Payload {
        EhrRequest(EhrRequest) = "EhrRequest",
        EhrExtract(EhrExtract) = "EhrExtract",
        PayloadInformation(PayloadInformation) = "PayloadInformation",
    }
}

hl7_class! {
    /// `subject` of the control act: the payload.
    pub struct Subject {
        attrs { type_: "type", type_code: "typeCode", context_conduction_ind: "contextConductionInd" }
        children { payload: choice Payload = "*" }
    }
}

hl7_class! {
    /// The request for a record: whose (NHS number), from which practice, to which.
    pub struct EhrRequest {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            id: opt II = "id",
            record_target: opt RecordTarget = "recordTarget",
            author: opt OrgParticipation = "author",
            destination: opt OrgParticipation = "destination",
        }
    }
}

hl7_class! {
    /// COPC common content: the large-messaging envelope. `value` holds a `Gp2gpfragment`
    /// header (recipients, sender, subject, message id); each `pertinentInformation`
    /// carries a body (a continue acknowledgement, a fragment, a fragment index).
    pub struct PayloadInformation {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            code: opt CD = "code",
            id: opt II = "id",
            message_type: opt Element = "messageType",
            value: opt Element = "value",
            pertinent_information: many PayloadPertinentInformation = "pertinentInformation",
        }
    }
}

hl7_class! {
    /// One body of a COPC message, numbered.
    pub struct PayloadPertinentInformation {
        attrs { type_: "type", type_code: "typeCode" }
        children {
            sequence_number: opt INT = "sequenceNumber",
            pertinent_payload_body: opt PayloadBody = "pertinentPayloadBody",
        }
    }
}

hl7_class! {
    /// A COPC body: its `code` says what it is, `value` holds it.
    pub struct PayloadBody {
        attrs { type_: "type", class_code: "classCode", mood_code: "moodCode" }
        children {
            code: opt CD = "code",
            id: opt II = "id",
            value: opt ST = "value",
        }
    }
}

/// A GP2GP HL7 V3 message, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The root element's name as written (normally the interaction id).
    pub root_name: String,
    pub transmission: Transmission,
}

/// What is wrong with a document as a GP2GP message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error(
        "the root element <{0}> is not a GP2GP interaction (expected one of RCMR_IN010000UK05, RCMR_IN030000UK06, RCMR_IN030000UK07, MCCI_IN010000UK13, COPC_IN000001UK01)"
    )]
    UnknownInteraction(String),
}

impl Message {
    /// Reads a message from bytes, with the default limits.
    pub fn parse(input: &[u8]) -> Result<Message, MessageError> {
        Message::parse_with(input, &xml::Limits::default())
    }

    /// Reads a message from bytes, straight into the model (no intermediate tree).
    pub fn parse_with(input: &[u8], limits: &xml::Limits) -> Result<Message, MessageError> {
        let mut r = xml::EventReader::new(input, limits)?;
        let (start, empty, offset) = r.root_start()?;
        let root_name = start.name().to_string();
        if Interaction::from_id(xml::local_name(&root_name)).is_none() {
            return Err(MessageError::UnknownInteraction(root_name));
        }
        let transmission = Transmission::from_events(&mut r, &start, empty, offset)?;
        r.expect_end()?;
        Ok(Message {
            root_name,
            transmission,
        })
    }

    /// Types an already-read tree. Fails only when the root is not a GP2GP interaction.
    pub fn from_root(root: Element) -> Result<Message, MessageError> {
        let local = root.local_name();
        if Interaction::from_id(local).is_none() {
            return Err(MessageError::UnknownInteraction(root.name.to_string()));
        }
        let root_name = root.name.to_string();
        Ok(Message {
            root_name,
            transmission: Transmission::from_xml(root),
        })
    }

    /// A new message of this interaction.
    pub fn new(interaction: Interaction, transmission: Transmission) -> Message {
        Message {
            root_name: interaction.id().to_string(),
            transmission,
        }
    }

    /// Writes the message as a document.
    pub fn to_xml(&self, layout: Layout) -> String {
        let mut w = Writer::new(layout);
        // Typed elements take the root's prefix: a document that binds HL7 to `hl7:`
        // rather than to the default namespace stays in the HL7 namespace throughout.
        let (prefix, local) = match self.root_name.split_once(':') {
            Some((p, l)) => (Some(p), l),
            None => (None, self.root_name.as_str()),
        };
        w.set_typed_prefix(prefix);
        self.transmission.write_xml(local, &mut w);
        w.finish()
    }

    /// The interaction, from the root element's name.
    pub fn interaction(&self) -> Option<Interaction> {
        Interaction::from_id(xml::local_name(&self.root_name))
    }

    /// The interaction id as the message states it (`interactionId/@extension`), falling
    /// back to the root element's name.
    pub fn interaction_id(&self) -> &str {
        self.transmission
            .interaction_id
            .as_ref()
            .and_then(|i| i.extension.as_deref())
            .unwrap_or(xml::local_name(&self.root_name))
    }

    /// The message id (`id/@root`).
    pub fn message_id(&self) -> Option<&str> {
        self.transmission.id.as_ref()?.root.as_deref()
    }

    /// The receiving system's ASID.
    pub fn to_asid(&self) -> Option<&str> {
        device_asid(self.transmission.communication_function_rcv.first())
    }

    /// The sending system's ASID.
    pub fn from_asid(&self) -> Option<&str> {
        device_asid(self.transmission.communication_function_snd.as_deref())
    }

    /// The payload, if the message has one.
    pub fn payload(&self) -> Option<&Payload> {
        self.transmission
            .control_act_event
            .as_ref()?
            .subject
            .as_ref()?
            .payload
            .as_ref()
    }

    pub fn ehr_extract(&self) -> Option<&EhrExtract> {
        match self.payload()? {
            Payload::EhrExtract(e) => Some(e),
            _ => None,
        }
    }

    pub fn ehr_request(&self) -> Option<&EhrRequest> {
        match self.payload()? {
            Payload::EhrRequest(e) => Some(e),
            _ => None,
        }
    }

    pub fn payload_information(&self) -> Option<&PayloadInformation> {
        match self.payload()? {
            Payload::PayloadInformation(p) => Some(p),
            _ => None,
        }
    }

    /// The acknowledgement type (`AA`, `AE`, `AR`) of an MCCI message, or of the
    /// acknowledgement a COPC continue carries.
    pub fn ack_type(&self) -> Option<&str> {
        if let Some(a) = &self.transmission.acknowledgement {
            return a.type_code.as_deref();
        }
        self.embedded_ack()?.attr("typeCode")
    }

    /// The id of the message an acknowledgement acknowledges.
    pub fn acknowledged_message_id(&self) -> Option<&str> {
        if let Some(a) = &self.transmission.acknowledgement {
            return a.message_ref.as_ref()?.id.as_ref()?.root.as_deref();
        }
        self.embedded_ack()?
            .path(&["messageRef", "id"])?
            .attr("root")
    }

    /// The reason code of an acknowledgement: from `acknowledgementDetail/code` (AR, and
    /// the continue's `0`) or from the control act's `reason` (AE).
    pub fn reason_code(&self) -> Option<&str> {
        if let Some(a) = &self.transmission.acknowledgement {
            if let Some(code) = a
                .acknowledgement_detail
                .iter()
                .find_map(|d| d.code.as_ref()?.code.as_deref())
            {
                return Some(code);
            }
            return self
                .transmission
                .control_act_event
                .as_ref()?
                .reason
                .iter()
                .find_map(|r| {
                    r.justifying_detected_issue_event
                        .as_ref()?
                        .code
                        .as_ref()?
                        .code
                        .as_deref()
                });
        }
        self.embedded_ack()?
            .path(&["acknowledgementDetail", "code"])?
            .attr("code")
    }

    /// A COPC continue wraps an MCCI acknowledgement (`Message/acknowledgement`) inside
    /// its payload body; this finds it.
    fn embedded_ack(&self) -> Option<&Element> {
        let info = self.payload_information()?;
        info.pertinent_information.iter().find_map(|pi| {
            let value = pi.pertinent_payload_body.as_ref()?.value.as_ref()?;
            value.extra.elements().find_map(|fragment| {
                fragment
                    .child("Message")
                    .and_then(|m| m.child("acknowledgement"))
            })
        })
    }
}

fn device_asid(f: Option<&CommunicationFunction>) -> Option<&str> {
    f?.device.as_ref()?.id.first()?.extension.as_deref()
}

impl EhrRequest {
    /// The NHS number of the patient whose record is requested.
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

    /// The requesting practice's ODS code.
    pub fn requesting_ods(&self) -> Option<&str> {
        self.author.as_ref()?.agent_org_sds.as_ref()?.ods_code()
    }

    /// The sending practice's ODS code (where the record is).
    pub fn sending_ods(&self) -> Option<&str> {
        self.destination
            .as_ref()?
            .agent_org_sds
            .as_ref()?
            .ods_code()
    }
}
