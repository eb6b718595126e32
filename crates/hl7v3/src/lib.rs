//! GP2GP's HL7 V3 messages: read them, write them, check them.
//!
//! GP2GP — moving a patient's whole GP record to their new practice — speaks five HL7 V3
//! interactions: the request (`RCMR_IN010000UK05`), the record itself as an `EhrExtract`
//! (`RCMR_IN030000UK06`, or `…UK07` with confidentiality codes), application
//! acknowledgements (`MCCI_IN010000UK13`) and the large-messaging common content
//! (`COPC_IN000001UK01`). This crate is the one place in Lloyd that understands their XML.
//!
//! It is built in three layers, each usable on its own:
//!
//! 1. [`xml`] — a hardened reader on a tokenizer of this crate's own (no DOCTYPE, no
//!    entities, limits on size and depth, UTF-8 checked once; otherwise well-formed as
//!    libxml2 judges it) that builds a lossless element tree or feeds the typed model
//!    directly, and a writer.
//! 2. The typed model — [`Message`] and the classes under it ([`ehr`] for the clinical
//!    record, [`message`] for the wrapper, acknowledgements and COPC, [`datatypes`] for
//!    HL7's data types), named exactly as the standard names them. The model is built on
//!    the tree so that nothing is ever lost: what it does not type yet is kept, in place,
//!    and written back (see [`typed`]). Read → write → read gives an identical model.
//! 3. [`validate`] — the schema (the HL7 V3 MIM schemas, through libxml2) and the rules
//!    the schema cannot express (NHS number check digits, ODS codes, ASIDs, unique ids,
//!    references that resolve, well-formed timestamps), each finding with a line and column.
//!
//! The crate does no I/O of its own except reading schema files when asked to: bytes in,
//! types out, and back.
//!
//! ```
//! let xml = br#"<MCCI_IN010000UK13 xmlns="urn:hl7-org:v3"><id root="A"/>
//!   <acknowledgement typeCode="AA"><messageRef><id root="B"/></messageRef></acknowledgement>
//! </MCCI_IN010000UK13>"#;
//! let msg = hl7v3::Message::parse(xml).unwrap();
//! assert_eq!(msg.ack_type(), Some("AA"));
//! assert_eq!(msg.acknowledged_message_id(), Some("B"));
//! let again = hl7v3::Message::parse(msg.to_xml(hl7v3::xml::Layout::Compact).as_bytes()).unwrap();
//! assert_eq!(msg, again);
//! ```

#[macro_use]
pub mod typed;
pub mod datatypes;
pub mod ehr;
pub mod message;
pub mod name;
pub mod reason;
mod scan;
pub mod stream;
pub mod validate;
pub mod xml;

pub use message::{Interaction, Message, MessageError, Payload};
pub use reason::ReasonCode;
pub use stream::{Compositions, read_all};
