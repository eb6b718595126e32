//! The SOAP envelope and the ebXML elements in it: the typed model, its reader and writer.

use crate::manifest::{Description, Href, Manifest, Reference, Schema};
use crate::xml::{self, Element, XmlWriter};
use crate::{Error, ErrorCode};

/// The party type Spine uses for every `eb:PartyId`: a party key names one MHS instance.
pub const PARTY_TYPE_SPINE: &str = "urn:nhs:names:partyType:ocs+serviceInstance";
/// `SOAP:actor` for elements aimed at the next MHS on the route (what GP2GP asks for).
pub const ACTOR_NEXT_MSH: &str = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH";
/// `SOAP:actor` for elements aimed at the final receiving MHS.
pub const ACTOR_TO_PARTY_MSH: &str = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH";
/// `eb:Service` of ebXML's own messages (acknowledgments and errors).
pub const SERVICE_EBXML: &str = "urn:oasis:names:tc:ebxml-msg:service";
/// `eb:Service` of GP2GP's messages.
pub const SERVICE_GP2GP: &str = "urn:nhs:names:services:gp2gp";
/// `eb:Action` of an acknowledgment message.
pub const ACTION_ACKNOWLEDGMENT: &str = "Acknowledgment";
/// `eb:Action` of an error message.
pub const ACTION_MESSAGE_ERROR: &str = "MessageError";
/// `eb:codeContext` of ebXML's own error codes.
pub const CODE_CONTEXT_EBXML: &str = "urn:oasis:names:tc:ebxml-msg:service:errors";
/// The schema location Spine's senders give for HL7 payloads.
pub const HL7_SCHEMA_LOCATION: &str = "http://www.nhsia.nhs.uk/schemas/HL7-Message.xsd";

const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_EB: &str = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd";
const NS_HL7EBXML: &str = "urn:hl7-org:transport/ebxml/DSTUv1.0";
const NS_XLINK: &str = "http://www.w3.org/1999/xlink";
const NS_NASP: &str = "http://national.carerecords.nhs.uk/schema/";

/// A SOAP envelope carrying an ebXML header: the first part of every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `eb:MessageHeader`.
    pub message_header: MessageHeader,
    /// `eb:AckRequested`: the sender wants an `eb:Acknowledgment` back.
    pub ack_requested: Option<AckRequested>,
    /// `eb:SyncReply`: the sender wants replies on the same HTTP connection.
    pub sync_reply: Option<SyncReply>,
    /// `eb:Acknowledgment`: this message acknowledges another.
    pub acknowledgment: Option<Acknowledgment>,
    /// `eb:ErrorList`: this message reports errors in another.
    pub error_list: Option<ErrorList>,
    /// `eb:Manifest` (in the SOAP body): the payloads.
    pub manifest: Option<Manifest>,
}

/// `eb:MessageHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// `eb:From`: the sending MHS.
    pub from: Party,
    /// `eb:To`: the receiving MHS.
    pub to: Party,
    /// `eb:CPAId`: the agreement (from SDS) the exchange runs under.
    pub cpa_id: String,
    /// `eb:ConversationId`: ties a GP2GP transfer's messages together.
    pub conversation_id: String,
    /// `eb:Service`, e.g. `urn:nhs:names:services:gp2gp`.
    pub service: String,
    /// `eb:Action`: the HL7 interaction id, e.g. `RCMR_IN030000UK06`.
    pub action: String,
    /// `eb:MessageData`.
    pub message_data: MessageData,
    /// `eb:DuplicateElimination`: the receiver must drop duplicates of this MessageId.
    pub duplicate_elimination: bool,
}

/// `eb:PartyId` (in `eb:From`, `eb:To`, `eb:Acknowledgment/eb:From`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// The id: on Spine, an MHS party key such as `RHM-803229`.
    pub id: String,
    /// `eb:type`; Spine's is [`PARTY_TYPE_SPINE`].
    pub party_type: Option<String>,
}

impl Party {
    /// A party named by a Spine party key.
    pub fn spine(party_key: impl Into<String>) -> Party {
        Party {
            id: party_key.into(),
            party_type: Some(PARTY_TYPE_SPINE.to_string()),
        }
    }
}

/// `eb:MessageData`.
///
/// Timestamps are kept as the text received: this crate has no clock and does not judge
/// dates (messages in the wild carry `2013-10-28T08:59:26Z`, `2021-02-03T12:59:28` and even
/// `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageData {
    /// `eb:MessageId`: unique per message; the key for duplicate elimination.
    pub message_id: String,
    /// `eb:Timestamp`.
    pub timestamp: String,
    /// `eb:RefToMessageId`: the message this one answers.
    pub ref_to_message_id: Option<String>,
    /// `eb:TimeToLive`.
    pub time_to_live: Option<String>,
}

/// `eb:AckRequested`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequested {
    /// `SOAP:actor`: who should acknowledge ([`ACTOR_NEXT_MSH`] for GP2GP).
    pub actor: Option<String>,
    /// `eb:signed`: whether the acknowledgment should be signed (never, on Spine).
    pub signed: bool,
}

/// `eb:SyncReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReply {
    /// `SOAP:actor`.
    pub actor: Option<String>,
}

/// `eb:Acknowledgment`: "I have your message".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgment {
    /// `eb:Timestamp`: when the acknowledged message was received.
    pub timestamp: String,
    /// `eb:RefToMessageId`: the acknowledged message.
    pub ref_to_message_id: String,
    /// `eb:From`: the acknowledging party.
    pub from: Option<Party>,
    /// `SOAP:actor`.
    pub actor: Option<String>,
}

/// `eb:ErrorList`: errors found in a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorList {
    /// The errors, at least one.
    pub errors: Vec<ErrorDetail>,
}

impl ErrorList {
    /// `eb:highestSeverity`: `Error` if any error is, otherwise `Warning`.
    pub fn highest_severity(&self) -> Severity {
        if self.errors.iter().any(|e| e.severity == Severity::Error) {
            Severity::Error
        } else {
            Severity::Warning
        }
    }
}

/// One `eb:Error` in an `eb:ErrorList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// `eb:errorCode`.
    pub code: ErrorCode,
    /// `eb:severity`.
    pub severity: Severity,
    /// `eb:codeContext`: the namespace of the code ([`CODE_CONTEXT_EBXML`] for ebXML's).
    pub code_context: String,
    /// `eb:location`: where in the message the error is.
    pub location: Option<String>,
    /// `eb:Description`: words for a person.
    pub description: Option<String>,
}

impl ErrorDetail {
    /// The entry a receiver reports for one of this crate's errors.
    pub fn from_error(error: &Error) -> ErrorDetail {
        ErrorDetail {
            code: error.error_code(),
            severity: Severity::Error,
            code_context: CODE_CONTEXT_EBXML.to_string(),
            location: None,
            description: Some(error.to_string()),
        }
    }
}

/// `eb:severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The message was processed despite the problem.
    Warning,
    /// The message was not processed.
    Error,
}

impl Severity {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "Warning",
            Severity::Error => "Error",
        }
    }
}

/// A SOAP fault: what Spine answers when it cannot even read a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// `faultcode`, e.g. `SOAP:Client` or `SOAP:Server`.
    pub fault_code: String,
    /// `faultstring`.
    pub fault_string: String,
    /// `faultactor`.
    pub fault_actor: Option<String>,
    /// The errors in `detail` (Spine's `nasp:errorList/nasp:error`).
    pub errors: Vec<FaultError>,
}

/// One error in a SOAP fault's detail, as Spine writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError {
    /// `codeContext`, e.g. `urn:nhs:names:errors:tms`.
    pub code_context: Option<String>,
    /// `errorCode`.
    pub error_code: String,
    /// `severity`.
    pub severity: Option<String>,
    /// `location`.
    pub location: Option<String>,
    /// `description`.
    pub description: Option<String>,
}

/// What can come back from posting a message: an ebXML envelope (an acknowledgment or an
/// error list) or a SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An ebXML envelope.
    Envelope(Box<Envelope>),
    /// A SOAP fault.
    Fault(SoapFault),
}

impl Reply {
    /// Reads a reply body (bare SOAP XML).
    pub fn parse(xml: &[u8], limits: &crate::Limits) -> Result<Reply, Error> {
        let root = parse_root(xml, limits)?;
        match root.child("Body").and_then(|b| b.child("Fault")) {
            Some(fault) => Ok(Reply::Fault(fault_from(fault))),
            None => Ok(Reply::Envelope(Box::new(envelope_from(&root)?))),
        }
    }
}

fn parse_root(xml: &[u8], limits: &crate::Limits) -> Result<Element, Error> {
    if xml.len() > limits.max_envelope_bytes {
        return Err(Error::EnvelopeTooLarge {
            size: xml.len() as u64,
            limit: limits.max_envelope_bytes as u64,
        });
    }
    let root = xml::parse(xml, limits.max_xml_depth)?;
    if root.name != "Envelope" {
        return Err(Error::NotSoapEnvelope { root: root.qname });
    }
    Ok(root)
}

fn required<'a>(e: Option<&'a Element>, local: &str, name: &'static str) -> Result<&'a str, Error> {
    e.and_then(|e| e.child_text(local))
        .ok_or(Error::MissingElement { element: name })
}

fn party_from(parent: Option<&Element>, name: &'static str) -> Result<Party, Error> {
    let pid = parent
        .and_then(|p| p.child("PartyId"))
        .filter(|p| p.text().is_some())
        .ok_or(Error::MissingElement { element: name })?;
    Ok(Party {
        id: pid.text().unwrap_or_default().to_string(),
        party_type: pid.attr("type").map(str::to_string),
    })
}

fn opt_text(e: &Element, local: &str) -> Option<String> {
    e.child_text(local).map(str::to_string)
}

fn envelope_from(root: &Element) -> Result<Envelope, Error> {
    let header = root.child("Header");
    let mh = header
        .and_then(|h| h.child("MessageHeader"))
        .ok_or(Error::MissingElement {
            element: "eb:MessageHeader",
        })?;
    let md = mh.child("MessageData");
    let message_header = MessageHeader {
        from: party_from(mh.child("From"), "eb:From/eb:PartyId")?,
        to: party_from(mh.child("To"), "eb:To/eb:PartyId")?,
        cpa_id: required(Some(mh), "CPAId", "eb:CPAId")?.to_string(),
        conversation_id: required(Some(mh), "ConversationId", "eb:ConversationId")?.to_string(),
        service: required(Some(mh), "Service", "eb:Service")?.to_string(),
        action: required(Some(mh), "Action", "eb:Action")?.to_string(),
        message_data: MessageData {
            message_id: required(md, "MessageId", "eb:MessageData/eb:MessageId")?.to_string(),
            timestamp: required(md, "Timestamp", "eb:MessageData/eb:Timestamp")?.to_string(),
            ref_to_message_id: md.and_then(|m| opt_text(m, "RefToMessageId")),
            time_to_live: md.and_then(|m| opt_text(m, "TimeToLive")),
        },
        duplicate_elimination: mh.child("DuplicateElimination").is_some(),
    };
    let ack_requested = header
        .and_then(|h| h.child("AckRequested"))
        .map(|a| AckRequested {
            actor: a.attr("actor").map(str::to_string),
            signed: a.attr("signed").is_some_and(|s| s.trim() == "true"),
        });
    let sync_reply = header
        .and_then(|h| h.child("SyncReply"))
        .map(|s| SyncReply {
            actor: s.attr("actor").map(str::to_string),
        });
    let acknowledgment = match header.and_then(|h| h.child("Acknowledgment")) {
        None => None,
        Some(a) => Some(Acknowledgment {
            timestamp: required(Some(a), "Timestamp", "eb:Acknowledgment/eb:Timestamp")?
                .to_string(),
            ref_to_message_id: required(
                Some(a),
                "RefToMessageId",
                "eb:Acknowledgment/eb:RefToMessageId",
            )?
            .to_string(),
            from: match a.child("From") {
                Some(f) => Some(party_from(Some(f), "eb:Acknowledgment/eb:From/eb:PartyId")?),
                None => None,
            },
            actor: a.attr("actor").map(str::to_string),
        }),
    };
    let error_list = match header.and_then(|h| h.child("ErrorList")) {
        None => None,
        Some(list) => {
            let mut errors = Vec::new();
            for e in list.children("Error") {
                let code = e.attr("errorCode").ok_or(Error::MissingElement {
                    element: "eb:Error/@eb:errorCode",
                })?;
                let severity = match e.attr("severity").map(str::trim) {
                    Some("Error") | None => Severity::Error,
                    Some("Warning") => Severity::Warning,
                    Some(other) => {
                        return Err(Error::UnrecognisedValue {
                            element: "eb:Error/@eb:severity",
                            value: other.to_string(),
                        });
                    }
                };
                errors.push(ErrorDetail {
                    code: ErrorCode::parse(code),
                    severity,
                    code_context: e
                        .attr("codeContext")
                        .unwrap_or(CODE_CONTEXT_EBXML)
                        .to_string(),
                    location: e.attr("location").map(str::to_string),
                    description: opt_text(e, "Description"),
                });
            }
            if errors.is_empty() {
                return Err(Error::MissingElement {
                    element: "eb:ErrorList/eb:Error",
                });
            }
            Some(ErrorList { errors })
        }
    };
    let manifest = match root.child("Body").and_then(|b| b.child("Manifest")) {
        None => None,
        Some(m) => {
            let mut references = Vec::new();
            for r in m.children("Reference") {
                let href = r.attr("href").ok_or(Error::MissingElement {
                    element: "eb:Reference/@xlink:href",
                })?;
                references.push(Reference {
                    href: Href::parse(href)?,
                    id: r.attr("id").map(str::to_string),
                    schema: r.child("Schema").and_then(|s| {
                        s.attr("location").map(|loc| Schema {
                            location: loc.to_string(),
                            version: s.attr("version").map(str::to_string),
                        })
                    }),
                    description: r
                        .child("Description")
                        .and_then(|d| d.text())
                        .map(Description::parse),
                    hl7_payload: r.child("Payload").is_some(),
                });
            }
            Some(Manifest { references })
        }
    };
    Ok(Envelope {
        message_header,
        ack_requested,
        sync_reply,
        acknowledgment,
        error_list,
        manifest,
    })
}

fn fault_from(fault: &Element) -> SoapFault {
    let mut found = Vec::new();
    if let Some(detail) = fault.child("detail") {
        detail.descendants("error", &mut found);
    }
    SoapFault {
        fault_code: opt_text(fault, "faultcode").unwrap_or_default(),
        fault_string: opt_text(fault, "faultstring").unwrap_or_default(),
        fault_actor: opt_text(fault, "faultactor"),
        errors: found
            .into_iter()
            .map(|e| FaultError {
                code_context: opt_text(e, "codeContext"),
                error_code: opt_text(e, "errorCode").unwrap_or_default(),
                severity: opt_text(e, "severity"),
                location: opt_text(e, "location"),
                description: opt_text(e, "description"),
            })
            .collect(),
    }
}

impl Envelope {
    /// Reads an envelope (the bytes of the first MIME part, or a bare SOAP document).
    ///
    /// Elements are matched by local name, whatever their prefix. The header fields Spine
    /// needs are required ([`Error::MissingElement`] names the first one absent); unknown
    /// elements are ignored. A SOAP fault is not an envelope with a header: read replies
    /// with [`Reply::parse`].
    pub fn parse(xml: &[u8], limits: &crate::Limits) -> Result<Envelope, Error> {
        envelope_from(&parse_root(xml, limits)?)
    }

    /// Writes the envelope as XML, in the canonical form: Spine's usual prefixes (`SOAP`,
    /// `eb`, `hl7ebxml`, `xlink`), every namespace declared on the root.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open(
            "SOAP:Envelope",
            &[
                ("xmlns:SOAP", NS_SOAP),
                ("xmlns:eb", NS_EB),
                ("xmlns:hl7ebxml", NS_HL7EBXML),
                ("xmlns:xlink", NS_XLINK),
            ],
        );
        w.open("SOAP:Header", &[]);
        let mh = &self.message_header;
        w.open(
            "eb:MessageHeader",
            &[("SOAP:mustUnderstand", "1"), ("eb:version", "2.0")],
        );
        write_party(&mut w, "eb:From", &mh.from);
        write_party(&mut w, "eb:To", &mh.to);
        w.leaf("eb:CPAId", &[], &mh.cpa_id);
        w.leaf("eb:ConversationId", &[], &mh.conversation_id);
        w.leaf("eb:Service", &[], &mh.service);
        w.leaf("eb:Action", &[], &mh.action);
        w.open("eb:MessageData", &[]);
        let md = &mh.message_data;
        w.leaf("eb:MessageId", &[], &md.message_id);
        w.leaf("eb:Timestamp", &[], &md.timestamp);
        if let Some(r) = &md.ref_to_message_id {
            w.leaf("eb:RefToMessageId", &[], r);
        }
        if let Some(t) = &md.time_to_live {
            w.leaf("eb:TimeToLive", &[], t);
        }
        w.close("eb:MessageData");
        if mh.duplicate_elimination {
            w.empty("eb:DuplicateElimination", &[]);
        }
        w.close("eb:MessageHeader");
        if let Some(a) = &self.ack_requested {
            let mut attrs = vec![
                ("SOAP:mustUnderstand", "1"),
                ("eb:version", "2.0"),
                ("eb:signed", if a.signed { "true" } else { "false" }),
            ];
            if let Some(actor) = &a.actor {
                attrs.push(("SOAP:actor", actor));
            }
            w.empty("eb:AckRequested", &attrs);
        }
        if let Some(s) = &self.sync_reply {
            let mut attrs = vec![("SOAP:mustUnderstand", "1"), ("eb:version", "2.0")];
            if let Some(actor) = &s.actor {
                attrs.push(("SOAP:actor", actor));
            }
            w.empty("eb:SyncReply", &attrs);
        }
        if let Some(a) = &self.acknowledgment {
            let mut attrs = vec![("SOAP:mustUnderstand", "1"), ("eb:version", "2.0")];
            if let Some(actor) = &a.actor {
                attrs.push(("SOAP:actor", actor));
            }
            w.open("eb:Acknowledgment", &attrs);
            w.leaf("eb:Timestamp", &[], &a.timestamp);
            w.leaf("eb:RefToMessageId", &[], &a.ref_to_message_id);
            if let Some(from) = &a.from {
                write_party(&mut w, "eb:From", from);
            }
            w.close("eb:Acknowledgment");
        }
        if let Some(list) = &self.error_list {
            w.open(
                "eb:ErrorList",
                &[
                    ("SOAP:mustUnderstand", "1"),
                    ("eb:version", "2.0"),
                    ("eb:highestSeverity", list.highest_severity().as_str()),
                ],
            );
            for e in &list.errors {
                let mut attrs = vec![
                    ("eb:codeContext", e.code_context.as_str()),
                    ("eb:errorCode", e.code.as_str()),
                    ("eb:severity", e.severity.as_str()),
                ];
                if let Some(loc) = &e.location {
                    attrs.push(("eb:location", loc));
                }
                match &e.description {
                    Some(d) => {
                        w.open("eb:Error", &attrs);
                        w.leaf("eb:Description", &[("xml:lang", "en-GB")], d);
                        w.close("eb:Error");
                    }
                    None => w.empty("eb:Error", &attrs),
                }
            }
            w.close("eb:ErrorList");
        }
        w.close("SOAP:Header");
        match &self.manifest {
            None => w.empty("SOAP:Body", &[]),
            Some(m) => {
                w.open("SOAP:Body", &[]);
                w.open(
                    "eb:Manifest",
                    &[("SOAP:mustUnderstand", "1"), ("eb:version", "2.0")],
                );
                for r in &m.references {
                    let href = r.href.to_string();
                    let mut attrs = vec![("xlink:href", href.as_str())];
                    if let Some(id) = &r.id {
                        attrs.push(("eb:id", id));
                    }
                    w.open("eb:Reference", &attrs);
                    if let Some(s) = &r.schema {
                        let mut attrs = vec![("eb:location", s.location.as_str())];
                        if let Some(v) = &s.version {
                            attrs.push(("eb:version", v));
                        }
                        w.empty("eb:Schema", &attrs);
                    }
                    if let Some(d) = &r.description {
                        w.leaf("eb:Description", &[("xml:lang", "en")], &d.to_string());
                    }
                    if r.hl7_payload {
                        w.empty(
                            "hl7ebxml:Payload",
                            &[("style", "HL7"), ("encoding", "XML"), ("version", "3.0")],
                        );
                    }
                    w.close("eb:Reference");
                }
                w.close("eb:Manifest");
                w.close("SOAP:Body");
            }
        }
        w.close("SOAP:Envelope");
        w.finish()
    }
}

fn write_party(w: &mut XmlWriter, element: &str, party: &Party) {
    w.open(element, &[]);
    match &party.party_type {
        Some(t) => w.leaf("eb:PartyId", &[("eb:type", t)], &party.id),
        None => w.leaf("eb:PartyId", &[], &party.id),
    }
    w.close(element);
}

impl SoapFault {
    /// The fault a receiver answers with when it cannot read a message well enough to
    /// build an ebXML error message (no readable `eb:MessageHeader`): `SOAP:Client`, with
    /// the error in Spine's `nasp:errorList` form.
    pub fn from_error(error: &Error) -> SoapFault {
        SoapFault {
            fault_code: "SOAP:Client".to_string(),
            fault_string: "The message could not be processed".to_string(),
            fault_actor: None,
            errors: vec![FaultError {
                code_context: Some(CODE_CONTEXT_EBXML.to_string()),
                error_code: error.error_code().to_string(),
                severity: Some(Severity::Error.as_str().to_string()),
                location: None,
                description: Some(error.to_string()),
            }],
        }
    }

    /// Writes the fault as a SOAP envelope.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("SOAP:Envelope", &[("xmlns:SOAP", NS_SOAP)]);
        w.open("SOAP:Body", &[]);
        w.open("SOAP:Fault", &[]);
        w.leaf("faultcode", &[], &self.fault_code);
        w.leaf("faultstring", &[], &self.fault_string);
        if let Some(a) = &self.fault_actor {
            w.leaf("faultactor", &[], a);
        }
        if !self.errors.is_empty() {
            w.open("detail", &[]);
            w.open("nasp:errorList", &[("xmlns:nasp", NS_NASP)]);
            for e in &self.errors {
                w.open("nasp:error", &[]);
                if let Some(c) = &e.code_context {
                    w.leaf("nasp:codeContext", &[], c);
                }
                w.leaf("nasp:errorCode", &[], &e.error_code);
                if let Some(s) = &e.severity {
                    w.leaf("nasp:severity", &[], s);
                }
                if let Some(l) = &e.location {
                    w.leaf("nasp:location", &[], l);
                }
                if let Some(d) = &e.description {
                    w.leaf("nasp:description", &[], d);
                }
                w.close("nasp:error");
            }
            w.close("nasp:errorList");
            w.close("detail");
        }
        w.close("SOAP:Fault");
        w.close("SOAP:Body");
        w.close("SOAP:Envelope");
        w.finish()
    }
}
