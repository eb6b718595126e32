//! GP2GP transfers.
//!
//! A transfer is a conversation between two practices' systems, carried by reliable ebXML
//! messages: the *requester* (the patient's new practice) asks for the record, the *sender*
//! (the old practice) checks the request and sends the record — in one message, or as a
//! "large message" of an extract plus separate fragments — and the requester files it and
//! sends a final acknowledgement. `../shared/domain/GP2GP.md` tells the whole story.
//!
//! This crate's core is two protocol state machines, [`requester`] and [`sender`], written
//! as explicit types with pure transitions: a state plus an event gives the next state and
//! the actions to take (send this acknowledgement, translate the record, hand it to the
//! inbox). They do no I/O and read no clock; the driver that runs them persists each state
//! before carrying out its actions, which is what makes a transfer survive `kill -9` at any
//! step. Every transition, including the ones a confused or hostile peer provokes, is
//! tested here without a network.
//!
//! Around them, two pure modules deal with what travels: [`wire`] builds the HL7 payloads a
//! transfer sends (request, acknowledgements, Continue, COPC) and says what a received ebXML
//! message is; [`large`] plans everything a sender sends for a record of any size (a
//! skeleton and a gzipped extract when the extract is too big, documents inline, in COPC
//! messages, or split into fragments with an index) and puts it back together on the
//! requester's side.

pub mod driver;
pub mod ids;
pub mod large;
pub mod requester;
pub mod sender;
pub mod wire;

pub use ids::MessageId;
