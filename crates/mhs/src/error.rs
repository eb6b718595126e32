//! The one error type of this crate.

use hl7v3::ReasonCode;

/// Everything that can go wrong sending or receiving through the MHS.
///
/// Each message says what to do about it. [`Error::reason_code`] gives the GP2GP reason
/// code a service should report when the failure ends a transfer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work.
    #[error("the MHS configuration is not usable: {0}")]
    Config(String),
    /// Plain HTTP was asked for on an address other people can reach.
    #[error(
        "refusing to listen on {addr} without TLS: plain HTTP is only allowed on a loopback \
         address (127.0.0.1, ::1); give the MHS a certificate, key and CA to listen elsewhere"
    )]
    InsecureListen {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// A certificate, key or CA could not be read.
    #[error("the TLS {what} cannot be used: {reason}")]
    Tls {
        /// Which item.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SDS did not give exactly one usable answer (GP2GP reason code 24).
    #[error("SDS lookup failed: {0}")]
    Sds(#[from] crate::sds::SdsError),
    /// The message breaks Spine's rules or limits (see `ebxml::Limits`).
    #[error("the message cannot be sent: {0}")]
    Ebxml(#[from] ebxml::Error),
    /// The outbound message is not complete.
    #[error("the message cannot be sent: {0}")]
    InvalidMessage(String),
    /// A message with this MessageId was already accepted for sending, with other content.
    #[error("message {0} was already accepted for sending; give each message a new Message-Id")]
    DuplicateMessageId(String),
    /// No message with this MessageId is known.
    #[error("no message with id {0} is known to this MHS")]
    UnknownMessage(String),
    /// The database failed.
    #[error("the MHS database failed: {0}")]
    Store(#[from] store::StoreError),
    /// The payload store failed.
    #[error("the MHS payload store failed: {0}")]
    Payload(#[from] store::PayloadError),
    /// The MHS has been shut down.
    #[error("the MHS has been shut down")]
    ShutDown,
}

impl From<store::sqlx::Error> for Error {
    fn from(e: store::sqlx::Error) -> Self {
        Error::Store(store::StoreError::Sql(e))
    }
}

impl Error {
    /// The GP2GP reason code for this failure, if it has one: SDS failures are 24
    /// ([`ReasonCode::SdsLookupFailed`]).
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            Error::Sds(_) => Some(ReasonCode::SdsLookupFailed),
            _ => None,
        }
    }
}
