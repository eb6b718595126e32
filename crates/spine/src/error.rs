//! The crate's one error type, and how it reaches a client: once, at the edge, as a FHIR
//! `OperationOutcome` shaped like Spine's (`issue.details.coding` in the
//! `Spine-ErrorOrWarningCode` system), with the HTTP status Spine would use.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The code system Spine's FHIR APIs put their error codes in.
pub const SPINE_ERROR_SYSTEM: &str = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode";

/// What went wrong in a Spine service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is not one the service accepts; `code` is Spine's error code
    /// (`INVALID_RESOURCE_ID`, `INVALID_SEARCH_DATA`, `INVALID_UPDATE`…).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Nothing is held under that identifier.
    #[error("{0}")]
    NotFound(String),
    /// The resource changed since the client read it (stale `If-Match`), or `If-Match` is missing.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The thing being created already exists.
    #[error("{0}")]
    Conflict(String),
    /// The request body is bigger than the service accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The client has made more requests than the configured rate allows; try again in a second.
    #[error("too many requests: the rate limit is {0} a second, try again shortly")]
    TooManyRequests(u32),
    /// The database failed.
    #[error("the Spine database failed: {0}")]
    Store(#[from] store::StoreError),
    /// A payload could not be stored or read.
    #[error("the Spine payload store failed: {0}")]
    Payload(#[from] store::PayloadError),
    /// Stored data could not be read back (a bug, or a database edited by hand).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A configuration file could not be used.
    #[error("{0}")]
    Config(String),
    /// The relay's message handling (its outbox, its TLS client) failed.
    #[error("the Spine relay failed: {0}")]
    Relay(#[from] mhs::Error),
}

impl From<store::sqlx::Error> for Error {
    fn from(e: store::sqlx::Error) -> Error {
        Error::Store(store::StoreError::Sql(e))
    }
}

impl Error {
    /// A 400 with Spine's error `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Error {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Store(_)
            | Error::Payload(_)
            | Error::Corrupt(_)
            | Error::Config(_)
            | Error::Relay(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Spine's error code and the FHIR issue type for this error.
    pub fn codes(&self) -> (&'static str, &'static str) {
        match self {
            Error::BadRequest { code, .. } => (code, "invalid"),
            Error::NotFound(_) => ("RESOURCE_NOT_FOUND", "not-found"),
            Error::PreconditionFailed(_) => ("PRECONDITION_FAILED", "conflict"),
            Error::Conflict(_) => ("DUPLICATE_RESOURCE", "duplicate"),
            Error::TooLarge(_) => ("MESSAGE_TOO_LARGE", "too-long"),
            Error::TooManyRequests(_) => ("TOO_MANY_REQUESTS", "throttled"),
            _ => ("UNKNOWN_ERROR", "exception"),
        }
    }

    /// The error as a FHIR `OperationOutcome` (JSON).
    pub fn operation_outcome(&self) -> serde_json::Value {
        let (code, issue_type) = self.codes();
        operation_outcome(issue_type, code, &self.to_string())
    }
}

/// An `OperationOutcome` with one error issue, in the shape Spine answers with.
pub fn operation_outcome(issue_type: &str, code: &str, message: &str) -> serde_json::Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": issue_type,
            "details": {
                "coding": [{
                    "system": SPINE_ERROR_SYSTEM,
                    "version": "1",
                    "code": code,
                    "display": message,
                }]
            },
        }]
    })
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, %status, "request refused");
        }
        let mut response = crate::fhir_json(status, &self.operation_outcome());
        if let Error::TooManyRequests(_) = self {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
