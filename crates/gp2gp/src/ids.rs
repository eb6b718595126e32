//! Identifiers shared by both sides of a transfer.

use serde::{Deserialize, Serialize};

/// An ebXML/HL7 message id (a UUID, compared without regard to case: real systems differ
/// in the case they write UUIDs in, and the same message must be recognised either way).
#[derive(Debug, Clone, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    pub fn new(id: impl Into<String>) -> MessageId {
        MessageId(id.into().to_ascii_uppercase())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for MessageId {
    fn eq(&self, other: &MessageId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl std::hash::Hash for MessageId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_ascii_uppercase().hash(state)
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> MessageId {
        MessageId::new(s)
    }
}
