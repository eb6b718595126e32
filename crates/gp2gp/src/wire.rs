//! GP2GP's HL7 payloads on the wire: the messages this system writes, and what a received
//! ebXML message is.
//!
//! # Writing
//!
//! [`ehr_request`], [`ack`], [`continue_message`] and [`copc_attachment`] build the HL7 V3
//! documents a transfer sends (the EhrExtract itself comes from `translate`). Each is built
//! on `hl7v3`'s typed model and is schema-valid (`MCCI_IN010000UK13.xsd`,
//! `COPC_IN000001UK01.xsd`; the request, which has no published schema, passes the
//! structural check). The shapes follow the messages the NHS adaptors and the main GP
//! systems exchange (see `../shared/conformance/gp2gp`):
//!
//! - a negative acknowledgement (AE) carries its reason code both in
//!   `acknowledgement/acknowledgementDetail/code` and in
//!   `ControlActEvent/reason/justifyingDetectedIssueEvent/code`, so receivers that look in
//!   either place find it;
//! - the Continue is a COPC message whose payload body wraps an MCCI acknowledgement (AA,
//!   detail code `0`) of the extract;
//! - documents, fragments and fragment indexes all travel in the same COPC shape (a
//!   `GP2GPLMATTACHMENTINFO` payload naming the file): what a COPC carries is said by its
//!   ebXML manifest, not by its HL7.
//!
//! # Reading
//!
//! [`read`] looks at a whole received [`ebxml::Message`] — header, manifest, HL7 payload and
//! inline parts — and says what it is ([`Incoming`]). Real senders differ, so reading is
//! lenient where it can be and exact where it matters:
//!
//! - the HL7 payload is the manifest reference marked `hl7ebxml:Payload` (or the first one);
//!   every other reference is an attachment: `cid:` a part of this message, `mid:` a
//!   separate COPC message;
//! - a `cid:` that names no part is matched to the next attachment part no reference has
//!   claimed (some senders reuse or mistype Content-Ids); an attachment part no reference
//!   names is kept too, without a description. Only a reference with no part left for it
//!   is an error;
//! - a part's content is kept exactly as it travelled ([`ReceivedPart::bytes`], base64 text
//!   with line breaks removed when it travelled base64): the fragments of one document are
//!   slices of *one* base64 text that need not end on a 4-character boundary, so they can
//!   only be decoded once joined (see [`crate::large::assemble`]);
//! - a COPC that names any `mid:` fragment, or carries more than one attachment, is a
//!   fragment index; one that wraps an acknowledgement is a Continue; any other is a
//!   document or a fragment.
//!
//! Every error is a [`WireError`] whose [`WireError::reason_code`] is the GP2GP code to
//! refuse the message with (18 a request, 21 an extract, 30 a COPC, 31 an attachment the
//! extract names but does not carry).

use base64::Engine as _;
use bytes::Bytes;
use ebxml::{AttachmentInfo, Description, Href, TransferEncoding};
use hl7v3::datatypes::{
    ACK_REASON_CODE_SYSTEM, CD, CR, HL7_NS, II, INT, INTERACTION_ID_ROOT, ST, TS,
};
use hl7v3::ehr::{OrgParticipation, OrganizationSDS, Patient, RecordTarget};
use hl7v3::message::{
    Acknowledgement, AcknowledgementDetail, AgentSystemSDS, CommunicationFunction, ControlActEvent,
    DetectedIssueEvent, Device, EhrRequest, MessageRef, Payload, PayloadBody, PayloadInformation,
    PayloadPertinentInformation, Reason, Subject, SystemAuthor, Transmission,
};
use hl7v3::xml::{Attribute, Element, Layout, Node};
use hl7v3::{Interaction, Message, ReasonCode};
use serde::{Deserialize, Serialize};

use crate::MessageId;
use crate::requester::ExpectedDocument;

/// The OID of ASIDs (`device/id/@root`).
pub const ASID_ROOT: &str = "1.2.826.0.1285.0.2.0.107";
/// The OID of ODS organisation codes in SDS roles (`agentOrganizationSDS/id/@root`).
pub const ODS_ROOT: &str = "1.2.826.0.1285.0.1.10";
/// The OID of NHS numbers (`patient/id/@root`).
pub const NHS_NUMBER_ROOT: &str = "2.16.840.1.113883.2.1.4.1";
/// The code system of GP2GP's large-messaging codes (`GP2GPLMATTACHMENTINFO`, `GP2GP_PI`…).
pub const LARGE_MESSAGE_CODE_SYSTEM: &str = "2.16.840.1.113883.2.1.3.2.4.17.202";
/// The namespace of the `Gp2gpfragment` header inside COPC messages.
pub const GP2GP_NS: &str = "urn:nhs:names:services:gp2gp";
/// The manifest `DomainData` that marks the compressed real extract behind a skeleton.
pub const SKELETON_DOMAIN_DATA: &str = "X-GP2GP-Skeleton: Yes";

const NPFIT_LOCALISATION_NS: &str = "NPFIT:HL7:Localisation";
const MESSAGE_TYPE_ROOT: &str = "2.16.840.1.113883.2.1.3.2.4.18.17";
const ACK_QUALIFIER_SYSTEM: &str = "2.16.840.1.113883.2.1.3.2.4.17.104";
const RCMR_VERSION: &str = "V3NPfIT3.1.10";
const COPC_VERSION: &str = "V3NPfIT3.0";

/// The two practices of a transfer: their ODS codes and their systems' ASIDs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Parties {
    /// The requesting (new) practice.
    pub requester_ods: String,
    pub requester_asid: String,
    /// The sending (old) practice, where the record is.
    pub sender_ods: String,
    pub sender_asid: String,
}

// ---------------------------------------------------------------------------------------
// Writing.

/// Ids as HL7 writes them: GP2GP's schemas want upper-case UUIDs (the ebXML MessageId may
/// be in any case; [`MessageId`] compares without regard to it).
fn hl7_id(id: &str) -> String {
    id.trim().to_ascii_uppercase()
}

fn bx<T>(v: T) -> Option<Box<T>> {
    Some(Box::new(v))
}

fn device(asid: &str) -> Device {
    Device {
        class_code: Some("DEV".into()),
        determiner_code: Some("INSTANCE".into()),
        id: vec![II::with_extension(ASID_ROOT, asid)],
        ..Device::default()
    }
}

fn function(type_code: &str, asid: &str) -> CommunicationFunction {
    CommunicationFunction {
        type_code: Some(type_code.into()),
        device: bx(device(asid)),
        ..CommunicationFunction::default()
    }
}

/// The transmission wrapper every GP2GP message shares, with an empty control act authored
/// by the sending system.
fn wrapper(
    interaction: Interaction,
    message_id: &str,
    now_ms: i64,
    from_asid: &str,
    to_asid: &str,
) -> Transmission {
    let version = match interaction {
        Interaction::CommonContent => COPC_VERSION,
        _ => RCMR_VERSION,
    };
    let mut t = Transmission {
        id: bx(II::root(message_id)),
        creation_time: bx(TS::new(clock::Utc::from_ms(now_ms).hl7())),
        version_code: bx(CD::simple(version)),
        interaction_id: bx(II::with_extension(INTERACTION_ID_ROOT, interaction.id())),
        processing_code: bx(CD::simple("P")),
        processing_mode_code: bx(CD::simple("T")),
        accept_ack_code: bx(CD::simple("NE")),
        communication_function_rcv: vec![function("RCV", to_asid)],
        communication_function_snd: bx(function("SND", from_asid)),
        control_act_event: bx(ControlActEvent {
            class_code: Some("CACT".into()),
            mood_code: Some("EVN".into()),
            author1: vec![SystemAuthor {
                type_code: Some("AUT".into()),
                agent_system_sds: bx(AgentSystemSDS {
                    class_code: Some("AGNT".into()),
                    agent_system_sds: bx(device(from_asid)),
                    ..AgentSystemSDS::default()
                }),
                ..SystemAuthor::default()
            }],
            ..ControlActEvent::default()
        }),
        ..Transmission::default()
    };
    t.extra.attrs.push(Attribute::new("xmlns", HL7_NS));
    t
}

fn subject(payload: Payload) -> Option<Box<Subject>> {
    bx(Subject {
        type_code: Some("SUBJ".into()),
        context_conduction_ind: Some("false".into()),
        payload: Some(payload),
        ..Subject::default()
    })
}

fn write(interaction: Interaction, t: Transmission) -> String {
    Message::new(interaction, t).to_xml(Layout::Compact)
}

fn org(type_code: &str, ods: &str) -> OrgParticipation {
    OrgParticipation {
        type_code: Some(type_code.into()),
        agent_org_sds: bx(hl7v3::ehr::AgentOrgSDS {
            class_code: Some("AGNT".into()),
            agent_organization_sds: bx(OrganizationSDS {
                class_code: Some("ORG".into()),
                determiner_code: Some("INSTANCE".into()),
                id: bx(II::with_extension(ODS_ROOT, ods)),
                ..OrganizationSDS::default()
            }),
            ..hl7v3::ehr::AgentOrgSDS::default()
        }),
        ..OrgParticipation::default()
    }
}

/// `RCMR_IN010000UK05`, requester → sender: asks for the record of `nhs_number`.
///
/// `request_id` is the HL7 message id, which the caller also uses as the ebXML MessageId;
/// it is the `EhrRequest/id` too (the id the extract's `inFulfillmentOf/priorEhrRequest`
/// names), so that one id follows the request everywhere.
pub fn ehr_request(p: &Parties, request_id: &str, nhs_number: &str, now_ms: i64) -> String {
    let request_id = &hl7_id(request_id);
    let mut t = wrapper(
        Interaction::EhrRequest,
        request_id,
        now_ms,
        &p.requester_asid,
        &p.sender_asid,
    );
    let request = EhrRequest {
        class_code: Some("EXTRACT".into()),
        mood_code: Some("RQO".into()),
        id: bx(II::root(request_id)),
        record_target: bx(RecordTarget {
            type_code: Some("RCT".into()),
            patient: bx(Patient {
                class_code: Some("PAT".into()),
                id: bx(II::with_extension(NHS_NUMBER_ROOT, nhs_number)),
                ..Patient::default()
            }),
            ..RecordTarget::default()
        }),
        author: bx(org("AUT", &p.requester_ods)),
        destination: bx(org("DST", &p.sender_ods)),
        ..EhrRequest::default()
    };
    if let Some(cae) = t.control_act_event.as_mut() {
        cae.subject = subject(Payload::EhrRequest(Box::new(request)));
    }
    write(Interaction::EhrRequest, t)
}

fn reason_cd(code: ReasonCode) -> CD {
    CD::new(
        code.code(),
        ACK_REASON_CODE_SYSTEM,
        Some(code.description()),
    )
}

/// `MCCI_IN010000UK13`: an application acknowledgement of `acked_message_id`.
///
/// AA when `code` is `None`; otherwise AE with the code in both places receivers look
/// (`acknowledgementDetail/code` and `ControlActEvent/reason/justifyingDetectedIssueEvent/
/// code`). The ASIDs are given explicitly because both sides send acknowledgements:
/// `from_asid` is the acknowledging system's.
pub fn ack(
    message_id: &str,
    acked_message_id: &str,
    code: Option<ReasonCode>,
    from_asid: &str,
    to_asid: &str,
    now_ms: i64,
) -> String {
    let (message_id, acked_message_id) = (&hl7_id(message_id), &hl7_id(acked_message_id));
    let mut t = wrapper(
        Interaction::Acknowledgement,
        message_id,
        now_ms,
        from_asid,
        to_asid,
    );
    t.acknowledgement = bx(Acknowledgement {
        type_code: Some(if code.is_some() { "AE" } else { "AA" }.into()),
        acknowledgement_detail: code
            .map(|c| AcknowledgementDetail {
                type_code: Some("ER".into()),
                code: bx(reason_cd(c)),
                ..AcknowledgementDetail::default()
            })
            .into_iter()
            .collect(),
        message_ref: bx(MessageRef {
            id: bx(II::root(acked_message_id)),
            ..MessageRef::default()
        }),
        ..Acknowledgement::default()
    });
    if let (Some(c), Some(cae)) = (code, t.control_act_event.as_mut()) {
        let mut cd = reason_cd(c);
        cd.qualifier.push(CR {
            value: bx(CD::new("ER", ACK_QUALIFIER_SYSTEM, None)),
            ..CR::default()
        });
        cae.reason.push(Reason {
            type_code: Some("RSON".into()),
            justifying_detected_issue_event: bx(DetectedIssueEvent {
                class_code: Some("ALRT".into()),
                mood_code: Some("EVN".into()),
                code: bx(cd),
                ..DetectedIssueEvent::default()
            }),
            ..Reason::default()
        });
    }
    write(Interaction::Acknowledgement, t)
}

fn text_element(name: &str, text: &str) -> Element {
    Element::new(name).with_text(text)
}

/// The `Gp2gpfragment` header of a COPC payload.
fn fragment_header(
    p_recipient_ods: &str,
    from_ods: &str,
    subject: &str,
    message_id: &str,
) -> Element {
    Element::new("Gp2gpfragment")
        .with_attr("xmlns", GP2GP_NS)
        .with_child(text_element("Version", "01"))
        .with_child(
            Element::new("Recipients").with_child(text_element("Recipient", p_recipient_ods)),
        )
        .with_child(text_element("From", from_ods))
        .with_child(text_element("subject", subject))
        .with_child(text_element("message-id", message_id))
}

/// A COPC message around one payload body.
#[allow(clippy::too_many_arguments)]
fn copc(
    message_id: &str,
    now_ms: i64,
    from_asid: &str,
    to_asid: &str,
    info_code: CD,
    message_type: &str,
    header: Element,
    body: PayloadBody,
) -> String {
    let mut t = wrapper(
        Interaction::CommonContent,
        message_id,
        now_ms,
        from_asid,
        to_asid,
    );
    let mut info = PayloadInformation {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        code: bx(info_code),
        id: bx(II::root(message_id)),
        message_type: bx(Element::new("npfitlc:messageType")
            .with_attr("root", MESSAGE_TYPE_ROOT)
            .with_attr("extension", message_type)),
        value: bx(Element::new("value").with_child(header)),
        pertinent_information: vec![PayloadPertinentInformation {
            type_code: Some("PERT".into()),
            sequence_number: bx(INT::new(1)),
            pertinent_payload_body: bx(body),
            ..PayloadPertinentInformation::default()
        }],
        ..PayloadInformation::default()
    };
    info.extra
        .attrs
        .push(Attribute::new("xmlns:npfitlc", NPFIT_LOCALISATION_NS));
    if let Some(cae) = t.control_act_event.as_mut() {
        cae.subject = subject(Payload::PayloadInformation(Box::new(info)));
    }
    write(Interaction::CommonContent, t)
}

fn st_with(child: Element) -> ST {
    let mut st = ST::default();
    st.extra.children.push((0, Node::Element(child)));
    st
}

/// `COPC_IN000001UK01` Continue, requester → sender: an AA with detail code `0`
/// acknowledging the extract `extract_message_id`, asking for the documents and fragments.
pub fn continue_message(
    p: &Parties,
    message_id: &str,
    extract_message_id: &str,
    now_ms: i64,
) -> String {
    let (message_id, extract_message_id) = (&hl7_id(message_id), &hl7_id(extract_message_id));
    let embedded_ack = ack_element(
        message_id,
        extract_message_id,
        &p.requester_asid,
        &p.sender_asid,
        now_ms,
    );
    let body_value = Element::new("Gp2gpfragment")
        .with_attr("xmlns", GP2GP_NS)
        .with_child(embedded_ack)
        .with_child(
            Element::new("acknowledgedMessage")
                .with_child(Element::new("id").with_attr("root", extract_message_id)),
        );
    let body = PayloadBody {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        code: bx(CD::new(
            "GP2GP_PB",
            LARGE_MESSAGE_CODE_SYSTEM,
            Some("GP2GP Payload Body"),
        )),
        id: bx(II::root(message_id)),
        value: bx(st_with(body_value)),
        ..PayloadBody::default()
    };
    copc(
        message_id,
        now_ms,
        &p.requester_asid,
        &p.sender_asid,
        CD::new(
            "GP2GP_PI",
            LARGE_MESSAGE_CODE_SYSTEM,
            Some("GP2GP Payload Information"),
        ),
        "RCMR_MT000002GB01",
        fragment_header(
            &p.sender_ods,
            &p.requester_ods,
            "Continue Acknowledgement",
            message_id,
        ),
        body,
    )
}

/// The MCCI acknowledgement a Continue wraps (in the HL7 namespace, inside the GP2GP one).
fn ack_element(
    message_id: &str,
    acked: &str,
    from_asid: &str,
    to_asid: &str,
    now_ms: i64,
) -> Element {
    let ii = |root: &str, ext: Option<&str>| {
        let e = Element::new("id").with_attr("root", root);
        match ext {
            Some(x) => e.with_attr("extension", x),
            None => e,
        }
    };
    let code = |name: &str, code: &str| Element::new(name).with_attr("code", code);
    let dev = |name: &str, asid: &str| {
        Element::new(name).with_child(Element::new("device").with_child(ii(ASID_ROOT, Some(asid))))
    };
    let continue_code = Element::new("code")
        .with_attr("code", "0")
        .with_attr("codeSystem", ACK_REASON_CODE_SYSTEM)
        .with_attr("displayName", "Continue");
    Element::new("Message")
        .with_attr("xmlns", HL7_NS)
        .with_attr("type", "Message")
        .with_child(ii(message_id, None))
        .with_child(continue_code.clone())
        .with_child(
            Element::new("creationTime").with_attr("value", clock::Utc::from_ms(now_ms).hl7()),
        )
        .with_child(code("versionCode", RCMR_VERSION))
        .with_child(
            Element::new("interactionId")
                .with_attr("root", INTERACTION_ID_ROOT)
                .with_attr("extension", Interaction::Acknowledgement.id()),
        )
        .with_child(code("processingCode", "P"))
        .with_child(code("processingModeCode", "T"))
        .with_child(code("acceptAckCode", "NE"))
        .with_child(
            Element::new("acknowledgement")
                .with_attr("typeCode", "AA")
                .with_child(
                    Element::new("acknowledgementDetail")
                        .with_attr("typeCode", "IF")
                        .with_child(continue_code),
                )
                .with_child(Element::new("messageRef").with_child(ii(acked, None))),
        )
        .with_child(dev("communicationFunctionRcv", to_asid))
        .with_child(dev("communicationFunctionSnd", from_asid))
}

/// `COPC_IN000001UK01`, sender → requester: the HL7 of a message carrying a document, one
/// fragment of a document, or a fragment index. Its ebXML manifest (built by
/// [`crate::large`]) says which; the HL7 names the file (`Attachment: <filename>` and a
/// `file://localhost/<filename>` reference), as the GP systems' COPC messages do.
pub fn copc_attachment(p: &Parties, message_id: &str, filename: &str, now_ms: i64) -> String {
    let message_id = &hl7_id(message_id);
    let body = PayloadBody {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        code: bx(CD::new(
            "GP2GPLMATTACHMENT",
            LARGE_MESSAGE_CODE_SYSTEM,
            Some("GP2GP Large Message Attachment"),
        )),
        id: bx(II::root(message_id)),
        value: bx(st_with(
            Element::new("reference").with_attr("value", format!("file://localhost/{filename}")),
        )),
        ..PayloadBody::default()
    };
    copc(
        message_id,
        now_ms,
        &p.sender_asid,
        &p.requester_asid,
        CD::new(
            "GP2GPLMATTACHMENTINFO",
            LARGE_MESSAGE_CODE_SYSTEM,
            Some("GP2GP Large Message Attachment Information"),
        ),
        "RCMR_MT000001GB01",
        fragment_header(
            &p.requester_ods,
            &p.sender_ods,
            &format!("Attachment: {filename}"),
            message_id,
        ),
        body,
    )
}

// ---------------------------------------------------------------------------------------
// Reading.

/// The acknowledgement types of `MCCI_IN010000UK13`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AckType {
    /// Application Accept.
    AA,
    /// Application Error.
    AE,
    /// Application Reject.
    AR,
}

impl AckType {
    /// Reads `AA`, `AE` or `AR` (any case).
    pub fn parse(s: &str) -> Option<AckType> {
        match s.trim().to_ascii_uppercase().as_str() {
            "AA" => Some(AckType::AA),
            "AE" => Some(AckType::AE),
            "AR" => Some(AckType::AR),
            _ => None,
        }
    }
}

/// What an inbound GP2GP message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `RCMR_IN010000UK05`: a request for a record.
    Request {
        /// The ebXML MessageId (in well-behaved systems also the HL7 message id): what the
        /// acknowledgement of the request names.
        request_id: MessageId,
        /// `EhrRequest/id`: what the extract's `inFulfillmentOf/priorEhrRequest/id` names.
        ehr_request_id: String,
        nhs_number: String,
        /// From the payload: requester = `author` ODS and the sending ASID; sender =
        /// `destination` ODS and the receiving ASID.
        parties: Parties,
    },
    /// `RCMR_IN030000UK06`/`07`: a record.
    Extract {
        /// The ebXML MessageId (what `mid:`/transport acknowledgements refer to).
        message_id: MessageId,
        /// The HL7 message id (`id/@root`): what the final acknowledgement's `messageRef`
        /// names. The same as `message_id` for every well-behaved sender.
        hl7_message_id: MessageId,
        interaction_id: String,
        /// The HL7 payload as received.
        hl7: Bytes,
        /// The documents the manifest says follow as separate COPC messages (`mid:`), ready
        /// for `requester::Event::Extract`; `skeleton` is set on the compressed real
        /// extract behind a skeleton.
        documents: Vec<ExpectedDocument>,
        /// The documents carried in this message (`cid:`), as they travelled.
        inline: Vec<ReceivedPart>,
        /// The patient's NHS number, as the extract gives it.
        nhs_number: Option<String>,
        /// From the payload: sender = the extract's `author` ODS and the sending ASID;
        /// requester = its `destination` ODS (often `nullFlavor`: then empty) and the
        /// receiving ASID.
        parties: Parties,
    },
    /// `COPC_IN000001UK01` wrapping an AA of the extract: send the documents.
    Continue {
        message_id: MessageId,
        extract_message_id: MessageId,
    },
    /// A COPC carrying a whole document or one fragment (its parts as they travelled).
    Copc {
        message_id: MessageId,
        parts: Vec<ReceivedPart>,
    },
    /// A COPC fragment index: the `mid:` fragments in manifest order, and any fragments it
    /// carries itself (`cid:`, each with its [`ReceivedPart::position`] among the index's
    /// references, so that [`crate::large::assemble`] can put them in place).
    FragmentIndex {
        message_id: MessageId,
        fragments: Vec<MessageId>,
        parts: Vec<ReceivedPart>,
    },
    /// `MCCI_IN010000UK13` (the answer to a request, the final acknowledgement of an
    /// extract, or a NACK of a COPC message).
    Ack {
        message_id: MessageId,
        acked_message_id: MessageId,
        ack_type: AckType,
        /// The GP2GP reason code, if the acknowledgement has one GP2GP knows.
        code: Option<ReasonCode>,
        /// The code as written (Spine's own rejections use codes of another system).
        raw_code: Option<String>,
    },
}

impl Incoming {
    /// The ebXML MessageId of the message read.
    pub fn message_id(&self) -> &MessageId {
        match self {
            Incoming::Request { request_id, .. } => request_id,
            Incoming::Extract { message_id, .. }
            | Incoming::Continue { message_id, .. }
            | Incoming::Copc { message_id, .. }
            | Incoming::FragmentIndex { message_id, .. }
            | Incoming::Ack { message_id, .. } => message_id,
        }
    }
}

/// An attachment part as received: what the manifest says about it, and its content as it
/// travelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedPart {
    /// The part's Content-Id (or the `cid:` that named it).
    pub content_id: String,
    /// The manifest reference's `eb:id` (GP2GP puts the document id there).
    pub document_id: Option<String>,
    /// Where the manifest lists it among the message's attachment references (0-based,
    /// the HL7 payload not counted); parts no reference names come after.
    pub position: usize,
    /// `Filename` of the manifest description.
    pub filename: Option<String>,
    /// `ContentType` of the description, else the part's own `Content-Type`.
    pub content_type: String,
    /// `Compressed=Yes`: the document (once decoded and joined) is gzip.
    pub compressed: bool,
    /// `LargeAttachment=Yes`.
    pub large: bool,
    /// `OriginalBase64=Yes` (informational: senders disagree about what it means, so the
    /// content is decoded by how it travelled, never by this flag).
    pub original_base64: bool,
    /// `Length`, where given.
    pub length: Option<u64>,
    /// `DomainData`, e.g. [`SKELETON_DOMAIN_DATA`].
    pub domain_data: Option<String>,
    /// The part travelled base64-encoded: `bytes` is that base64 text (line breaks and
    /// other whitespace removed). Otherwise `bytes` is the content itself.
    pub base64: bool,
    /// The content as it travelled (see `base64`).
    #[serde(with = "base64_text")]
    pub bytes: Bytes,
}

impl ReceivedPart {
    /// Whether this part is the compressed real extract behind a skeleton.
    pub fn is_skeleton(&self) -> bool {
        self.domain_data.as_deref().is_some_and(is_skeleton_marker)
    }

    /// The content with its transfer encoding undone (for a part that is a whole
    /// document; a fragment may not decode on its own).
    pub fn decoded(&self) -> Result<Bytes, base64::DecodeError> {
        if self.base64 {
            Ok(Bytes::from(decode_base64(&self.bytes)?))
        } else {
            Ok(self.bytes.clone())
        }
    }
}

/// Decodes MIME base64 as RFC 2045 says: characters outside the base64 alphabet (line
/// breaks, and the stray characters some senders leave) are ignored; padding is optional.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let engine = &base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
    // Text without line breaks (what the driver keeps) decodes at once; only text the
    // decoder refuses is filtered and decoded again, so clean text is read once, not
    // scanned first.
    if let Some(decoded) = decode_base64_clean(text) {
        return Ok(decoded);
    }
    let clean = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    // Whatever is not base64 (line breaks, mostly) goes; the runs between are copied
    // whole rather than a byte at a time.
    let mut filtered = Vec::with_capacity(text.len());
    for run in text.split(|b| !clean(b)) {
        filtered.extend_from_slice(run);
    }
    engine.decode(filtered)
}

/// Base64 text with nothing but base64 characters in it, decoded; `None` for anything
/// else (line breaks included), which [`decode_base64`] filters first.
pub(crate) fn decode_base64_clean(text: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(text)
        .ok()
}

/// `bytes::Bytes` as base64 text in serialized forms (JSON stays compact and readable).
mod base64_text {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

/// Whether a `DomainData` value marks a skeleton (`X-GP2GP-Skeleton: Yes`, spaces and case
/// as senders write them).
pub fn is_skeleton_marker(domain_data: &str) -> bool {
    let squeezed: String = domain_data
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    squeezed.contains("x-gp2gp-skeleton:yes")
}

/// Why a received message cannot be taken as the GP2GP message it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(
        "message {message_id} has no HL7 payload (no MIME part after the SOAP envelope): a GP2GP message always carries one"
    )]
    NoPayload { message_id: String },
    #[error("the HL7 payload of message {message_id} could not be decoded: {source}")]
    Transport {
        message_id: String,
        #[source]
        source: ebxml::Error,
    },
    #[error(
        "the HL7 payload of message {message_id} (eb:Action {action}) cannot be read as a GP2GP message: {source}"
    )]
    Hl7 {
        message_id: String,
        action: String,
        #[source]
        source: hl7v3::MessageError,
    },
    #[error(
        "message {message_id}: eb:Action says {action} but the HL7 payload is {payload}; the sender must make them the same interaction"
    )]
    ActionMismatch {
        message_id: String,
        action: String,
        payload: &'static str,
    },
    #[error("{interaction} message {message_id} has no {what}: the sender must include it")]
    Missing {
        message_id: String,
        interaction: &'static str,
        what: &'static str,
    },
    #[error("{interaction} message {message_id}: {what} '{value}' is not valid ({why})")]
    Invalid {
        message_id: String,
        interaction: &'static str,
        what: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "the manifest of {interaction} message {message_id} names {href} but the message carries no part for it: the sender must resend it with the attachment"
    )]
    MissingPart {
        message_id: String,
        interaction: &'static str,
        href: String,
    },
    #[error(
        "COPC message {message_id} carries no attachment and names no fragment: there is nothing in it to take"
    )]
    EmptyCopc { message_id: String },
}

impl WireError {
    /// The interaction the message was (or claimed to be), where known.
    pub fn interaction(&self) -> Option<Interaction> {
        let id = match self {
            WireError::NoPayload { .. } | WireError::Transport { .. } => return None,
            WireError::Hl7 { action, .. } | WireError::ActionMismatch { action, .. } => {
                action.as_str()
            }
            WireError::Missing { interaction, .. }
            | WireError::Invalid { interaction, .. }
            | WireError::MissingPart { interaction, .. } => interaction,
            WireError::EmptyCopc { .. } => Interaction::CommonContent.id(),
        };
        Interaction::from_id(id.trim())
    }

    /// The GP2GP reason code to refuse the message with: 18 for a request, 21 for an
    /// extract (31 when it names an attachment it does not carry), 30 for a COPC message,
    /// 99 otherwise.
    pub fn reason_code(&self) -> ReasonCode {
        match (self.interaction(), self) {
            (Some(Interaction::EhrRequest), _) => ReasonCode::RequestNotWellFormed,
            (
                Some(Interaction::EhrExtract | Interaction::EhrExtractConfidential),
                WireError::MissingPart { .. },
            ) => ReasonCode::AttachmentsNotReceived,
            (Some(Interaction::EhrExtract | Interaction::EhrExtractConfidential), _) => {
                ReasonCode::ExtractNotWellFormed
            }
            (Some(Interaction::CommonContent), _) => ReasonCode::LargeMessageGeneralFailure,
            _ => ReasonCode::Unexpected,
        }
    }
}

/// A `mid:` reference of a manifest.
struct External {
    message_id: String,
    info: AttachmentInfo,
}

/// What a message's manifest and parts hold beside the HL7 payload.
struct Attachments {
    inline: Vec<ReceivedPart>,
    external: Vec<External>,
}

fn attachments(
    message: &ebxml::Message,
    message_id: &str,
    interaction: Interaction,
) -> Result<Attachments, WireError> {
    let parts = message.attachments();
    let mut claimed = vec![false; parts.len()];
    let references: Vec<&ebxml::Reference> = match &message.envelope().manifest {
        Some(m) => {
            let payload_at = m.references.iter().position(|r| r.hl7_payload).unwrap_or(0);
            m.references
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != payload_at)
                .map(|(_, r)| r)
                .collect()
        }
        None => Vec::new(),
    };
    let mut inline = Vec::new();
    let mut external = Vec::new();
    for (position, r) in references.iter().enumerate() {
        let info = match &r.description {
            Some(Description::Attachment(info)) => info.clone(),
            _ => AttachmentInfo::default(),
        };
        match &r.href {
            Href::Mid(id) => external.push(External {
                message_id: id.trim().to_string(),
                info,
            }),
            Href::Cid(cid) => {
                let wanted = cid.trim().trim_start_matches('<').trim_end_matches('>');
                let found = parts
                    .iter()
                    .enumerate()
                    .position(|(i, p)| {
                        !claimed[i]
                            && p.content_id()
                                .is_some_and(|c| c.eq_ignore_ascii_case(wanted))
                    })
                    .or_else(|| claimed.iter().position(|c| !c));
                let Some(i) = found else {
                    return Err(WireError::MissingPart {
                        message_id: message_id.to_string(),
                        interaction: interaction.id(),
                        href: r.href.to_string(),
                    });
                };
                claimed[i] = true;
                inline.push(received_part(&parts[i], Some(r), info, position, wanted));
            }
        }
    }
    let mut position = references.len();
    for (i, part) in parts.iter().enumerate() {
        if !claimed[i] {
            let cid = part.content_id().unwrap_or_default().to_string();
            inline.push(received_part(
                part,
                None,
                AttachmentInfo::default(),
                position,
                &cid,
            ));
            position += 1;
        }
    }
    Ok(Attachments { inline, external })
}

/// `raw` without its whitespace (base64's line breaks), copied in whole runs between the
/// breaks rather than a byte at a time; `raw` itself when it has none.
fn without_whitespace(raw: &Bytes) -> Bytes {
    let Some(first) = raw.iter().position(u8::is_ascii_whitespace) else {
        return raw.clone();
    };
    if let Some(out) = without_line_breaks(raw, first) {
        return Bytes::from(out);
    }
    let mut out = Vec::with_capacity(raw.len());
    for run in raw.split(u8::is_ascii_whitespace) {
        out.extend_from_slice(run);
    }
    Bytes::from(out)
}

/// The usual shape of base64 on the wire — lines of one length (`line`: where the first
/// whitespace is) each ended by the same CRLF or LF, the last maybe shorter, then maybe
/// trailing whitespace — without its line breaks, copied a line at a time with no look
/// at each byte. `None` when `raw` is not of that shape (anything but base64 characters
/// left in the result counts): the caller filters it byte by byte instead. Whatever this
/// returns is what that filter gives: every byte it skips is whitespace, and none it
/// keeps is.
fn without_line_breaks(raw: &[u8], line: usize) -> Option<Vec<u8>> {
    let break_ = if raw[line..].starts_with(b"\r\n") {
        &b"\r\n"[..]
    } else if raw[line] == b'\n' {
        &b"\n"[..]
    } else {
        return None;
    };
    if line == 0 {
        return None;
    }
    let end = raw.len()
        - raw
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    let text = &raw[..end];
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let stop = (at + line).min(text.len());
        out.extend_from_slice(&text[at..stop]);
        at = stop;
        if at < text.len() {
            if !text[at..].starts_with(break_) {
                return None;
            }
            at += break_.len();
        }
    }
    // Bytes up to a space are the whitespace (and control characters, which send the
    // text the slow way too); counted without stopping, so the loop runs on whole vectors.
    let blank = |chunk: &[u8]| chunk.iter().fold(0u8, |n, &b| n | u8::from(b <= b' ')) != 0;
    if out.chunks(4096).any(blank) {
        return None;
    }
    Some(out)
}

fn received_part(
    part: &ebxml::Part,
    reference: Option<&ebxml::Reference>,
    info: AttachmentInfo,
    position: usize,
    cid: &str,
) -> ReceivedPart {
    let base64 = part.transfer_encoding() == TransferEncoding::Base64;
    let raw = part.raw();
    let bytes = if base64 {
        without_whitespace(raw)
    } else {
        raw.clone()
    };
    let part_type = part
        .content_type()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    ReceivedPart {
        content_id: part.content_id().unwrap_or(cid).to_string(),
        document_id: reference.and_then(|r| r.id.clone()),
        position,
        filename: info.filename.filter(|f| !f.trim().is_empty()),
        content_type: info
            .content_type
            .filter(|t| !t.trim().is_empty())
            .or(part_type)
            .unwrap_or_else(|| "application/octet-stream".to_string()),
        compressed: info.compressed.unwrap_or(false),
        large: info.large_attachment.unwrap_or(false),
        original_base64: info.original_base64.unwrap_or(false),
        length: info.length,
        domain_data: info.domain_data,
        base64,
        bytes,
    }
}

fn expected(e: External) -> ExpectedDocument {
    let skeleton = e
        .info
        .domain_data
        .as_deref()
        .is_some_and(is_skeleton_marker);
    ExpectedDocument {
        filename: e
            .info
            .filename
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| e.message_id.clone()),
        message_id: MessageId::new(e.message_id),
        content_type: e
            .info
            .content_type
            .unwrap_or_else(|| "application/octet-stream".to_string()),
        compressed: e.info.compressed.unwrap_or(false),
        large: e.info.large_attachment.unwrap_or(false),
        skeleton,
    }
}

/// Reads what a received ebXML message is. See the [module documentation](self).
pub fn read(message: &ebxml::Message) -> Result<Incoming, WireError> {
    let header = &message.envelope().message_header;
    let message_id = header.message_data.message_id.trim().to_string();
    let action = header.action.trim().to_string();
    let payload = message.payload().ok_or_else(|| WireError::NoPayload {
        message_id: message_id.clone(),
    })?;
    let hl7 = payload.decoded().map_err(|source| WireError::Transport {
        message_id: message_id.clone(),
        source,
    })?;
    let parsed = Message::parse(&hl7).map_err(|source| WireError::Hl7 {
        message_id: message_id.clone(),
        action: action.clone(),
        source,
    })?;
    let Some(interaction) = parsed.interaction() else {
        // `Message::parse` accepts only GP2GP interactions; this is unreachable in practice.
        return Err(WireError::ActionMismatch {
            message_id,
            action,
            payload: "not a GP2GP interaction",
        });
    };
    if !action.eq_ignore_ascii_case(interaction.id()) {
        return Err(WireError::ActionMismatch {
            message_id,
            action,
            payload: interaction.id(),
        });
    }
    if message_id.is_empty() {
        return Err(WireError::Missing {
            message_id,
            interaction: interaction.id(),
            what: "eb:MessageId",
        });
    }
    match interaction {
        Interaction::EhrRequest => read_request(&parsed, message_id),
        Interaction::EhrExtract | Interaction::EhrExtractConfidential => {
            read_extract(message, &parsed, hl7, message_id, interaction)
        }
        Interaction::Acknowledgement => read_ack(&parsed, message_id, interaction),
        Interaction::CommonContent => read_copc(message, &parsed, message_id),
    }
}

fn required<'a>(
    value: Option<&'a str>,
    message_id: &str,
    interaction: Interaction,
    what: &'static str,
) -> Result<&'a str, WireError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| WireError::Missing {
            message_id: message_id.to_string(),
            interaction: interaction.id(),
            what,
        })
}

fn read_request(parsed: &Message, message_id: String) -> Result<Incoming, WireError> {
    let i = Interaction::EhrRequest;
    let request = parsed.ehr_request().ok_or_else(|| WireError::Missing {
        message_id: message_id.clone(),
        interaction: i.id(),
        what: "ControlActEvent/subject/EhrRequest",
    })?;
    let nhs_number = required(
        request.nhs_number(),
        &message_id,
        i,
        "NHS number (recordTarget/patient/id)",
    )?;
    if let Err(e) = nhsid::NhsNumber::parse(nhs_number) {
        return Err(WireError::Invalid {
            message_id,
            interaction: i.id(),
            what: "NHS number",
            value: nhs_number.to_string(),
            why: e.to_string(),
        });
    }
    let ehr_request_id = required(
        request.id.as_ref().and_then(|id| id.root.as_deref()),
        &message_id,
        i,
        "EhrRequest/id",
    )?;
    let parties = Parties {
        requester_ods: required(
            request.requesting_ods(),
            &message_id,
            i,
            "requesting practice ODS code (EhrRequest/author)",
        )?
        .to_string(),
        requester_asid: required(
            parsed.from_asid(),
            &message_id,
            i,
            "sending system ASID (communicationFunctionSnd)",
        )?
        .to_string(),
        sender_ods: required(
            request.sending_ods(),
            &message_id,
            i,
            "sending practice ODS code (EhrRequest/destination)",
        )?
        .to_string(),
        sender_asid: required(
            parsed.to_asid(),
            &message_id,
            i,
            "receiving system ASID (communicationFunctionRcv)",
        )?
        .to_string(),
    };
    Ok(Incoming::Request {
        request_id: MessageId::new(message_id.as_str()),
        ehr_request_id: ehr_request_id.to_string(),
        nhs_number: nhs_number.to_string(),
        parties,
    })
}

fn read_extract(
    message: &ebxml::Message,
    parsed: &Message,
    hl7: Bytes,
    message_id: String,
    interaction: Interaction,
) -> Result<Incoming, WireError> {
    let extract = parsed.ehr_extract().ok_or_else(|| WireError::Missing {
        message_id: message_id.clone(),
        interaction: interaction.id(),
        what: "ControlActEvent/subject/EhrExtract",
    })?;
    let hl7_id = required(
        parsed.message_id(),
        &message_id,
        interaction,
        "HL7 message id (id/@root)",
    )?;
    let ods = |p: Option<&hl7v3::ehr::AgentOrgSDS>| {
        p.and_then(|a| a.ods_code())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let parties = Parties {
        requester_ods: ods(extract
            .destination
            .as_ref()
            .and_then(|d| d.agent_org_sds.as_deref())),
        requester_asid: parsed.to_asid().unwrap_or_default().trim().to_string(),
        sender_ods: ods(extract
            .author
            .as_ref()
            .and_then(|a| a.agent_org_sds.as_deref())),
        sender_asid: parsed.from_asid().unwrap_or_default().trim().to_string(),
    };
    let a = attachments(message, &message_id, interaction)?;
    Ok(Incoming::Extract {
        hl7_message_id: MessageId::new(hl7_id),
        message_id: MessageId::new(message_id.as_str()),
        interaction_id: interaction.id().to_string(),
        hl7,
        documents: a.external.into_iter().map(expected).collect(),
        inline: a.inline,
        nhs_number: extract.nhs_number().map(|n| n.trim().to_string()),
        parties,
    })
}

fn read_ack(
    parsed: &Message,
    message_id: String,
    interaction: Interaction,
) -> Result<Incoming, WireError> {
    let type_code = required(
        parsed.ack_type(),
        &message_id,
        interaction,
        "acknowledgement/@typeCode",
    )?;
    let ack_type = AckType::parse(type_code).ok_or_else(|| WireError::Invalid {
        message_id: message_id.clone(),
        interaction: interaction.id(),
        what: "acknowledgement type",
        value: type_code.to_string(),
        why: "expected AA, AE or AR".into(),
    })?;
    let acked = required(
        parsed.acknowledged_message_id(),
        &message_id,
        interaction,
        "acknowledged message id (acknowledgement/messageRef/id)",
    )?;
    let raw_code = parsed
        .reason_code()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Ok(Incoming::Ack {
        message_id: MessageId::new(message_id.as_str()),
        acked_message_id: MessageId::new(acked),
        ack_type,
        code: raw_code.as_deref().and_then(ReasonCode::from_code),
        raw_code,
    })
}

fn read_copc(
    message: &ebxml::Message,
    parsed: &Message,
    message_id: String,
) -> Result<Incoming, WireError> {
    let interaction = Interaction::CommonContent;
    if parsed.ack_type().is_some() {
        let ack = read_ack(parsed, message_id, interaction)?;
        return Ok(match ack {
            Incoming::Ack {
                message_id,
                acked_message_id,
                ack_type: AckType::AA,
                code: None | Some(ReasonCode::Continue),
                ..
            } => Incoming::Continue {
                message_id,
                extract_message_id: acked_message_id,
            },
            other => other,
        });
    }
    let a = attachments(message, &message_id, interaction)?;
    let id = MessageId::new(message_id.as_str());
    if !a.external.is_empty() || a.inline.len() > 1 {
        Ok(Incoming::FragmentIndex {
            message_id: id,
            fragments: a
                .external
                .into_iter()
                .map(|e| MessageId::new(e.message_id))
                .collect(),
            parts: a.inline,
        })
    } else if a.inline.is_empty() {
        Err(WireError::EmptyCopc { message_id })
    } else {
        Ok(Incoming::Copc {
            message_id: id,
            parts: a.inline,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    #[test]
    fn base64_in_lines_with_stray_characters_decodes_to_the_bytes() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let lined: Vec<u8> = text
            .as_bytes()
            .chunks(76)
            .collect::<Vec<_>>()
            .join(&b"\r\n"[..]);
        assert_eq!(super::decode_base64(&lined).unwrap(), bytes);
        let mut stray = b" \t".to_vec();
        stray.extend_from_slice(&lined);
        stray.extend_from_slice(b"\n\n");
        assert_eq!(super::decode_base64(&stray).unwrap(), bytes);
        assert_eq!(super::decode_base64(text.as_bytes()).unwrap(), bytes);
        assert!(super::decode_base64(b"QUJD\r\nR").is_err());
    }
}

#[cfg(test)]
mod whitespace_tests {
    use bytes::Bytes;

    /// What `without_whitespace` must give: every whitespace byte gone, nothing else.
    fn filtered(raw: &[u8]) -> Vec<u8> {
        raw.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect()
    }

    #[test]
    fn line_breaks_go_and_nothing_else_whatever_the_shape() {
        let text: Vec<u8> = (0..5_000u32)
            .map(|i| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(i * 7 % 64) as usize]
            })
            .collect();
        let lines = |width: usize, sep: &[u8]| text.chunks(width).collect::<Vec<_>>().join(sep);
        let mut cases: Vec<Vec<u8>> = vec![
            lines(76, b"\r\n"),
            lines(76, b"\n"),
            lines(64, b"\r\n"),
            [lines(76, b"\r\n"), b"\r\n".to_vec()].concat(),
            [lines(76, b"\r\n"), b" \t\r\n\n".to_vec()].concat(),
            text.clone(),
            b"\r\nQUJD".to_vec(),
            b"QUJD\rRUZH".to_vec(),
            b"QUJD".to_vec(),
        ];
        // Not the usual shape: a short line in the middle, a space inside a line, mixed
        // breaks, a control character — each must still lose exactly its whitespace.
        let mut short = lines(76, b"\r\n");
        short.splice(100..100, b"\r\n".iter().copied());
        cases.push(short);
        let mut space = lines(76, b"\r\n");
        space[10] = b' ';
        cases.push(space);
        let mut mixed = lines(76, b"\r\n");
        mixed.remove(76);
        cases.push(mixed);
        let mut control = lines(76, b"\r\n");
        control[5] = 0x01;
        cases.push(control);
        for (i, raw) in cases.into_iter().enumerate() {
            let got = super::without_whitespace(&Bytes::from(raw.clone()));
            assert_eq!(&got[..], &filtered(&raw)[..], "case {i}");
        }
    }
}
