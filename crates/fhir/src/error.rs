//! The crate's error type.

/// What went wrong reading or writing FHIR JSON, or parsing a FHIR value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not well-formed JSON, or does not have the shape STU3
    /// gives the element at `path`.
    #[error("FHIR JSON {problem} at {path} (line {line}, column {column}): {message}; {advice}")]
    Json {
        /// The JSON path of the element being read, e.g.
        /// `entry[12].resource.code.coding[0].code` (`.` for the top).
        path: String,
        /// 1-based line of the input where reading stopped.
        line: usize,
        /// 1-based column of the input where reading stopped.
        column: usize,
        /// What kind of problem it was (`syntax error`, `data error`…).
        problem: &'static str,
        /// serde_json's description (without its position).
        message: String,
        /// What to do about it.
        advice: &'static str,
    },
    /// Writing JSON failed (only possible with a failing writer).
    #[error("writing FHIR JSON failed: {0}")]
    Write(#[source] serde_json::Error),
    /// A value given to a constructor such as
    /// [`DateTime::parse`](crate::DateTime::parse) is malformed.
    #[error("{text:?} is not a valid FHIR {kind}; expected {expected}")]
    InvalidValue {
        /// The FHIR type (`dateTime`, `decimal`…).
        kind: &'static str,
        /// The text given.
        text: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
}

impl Error {
    pub(crate) fn json(err: &serde_json::Error, path: String) -> Error {
        use serde_json::error::Category;
        let (problem, advice) = match err.classify() {
            Category::Syntax => (
                "syntax error",
                "the input is not well-formed JSON; fix it at that position",
            ),
            Category::Eof => (
                "ends early",
                "the input stops in the middle of a value; it may be truncated",
            ),
            Category::Data => (
                "data error",
                "the element's JSON type or value does not fit FHIR STU3 there; \
                 compare it with the STU3 definition of that element",
            ),
            Category::Io => ("read error", "the input could not be read"),
        };
        let mut message = err.to_string();
        // serde_json appends " at line L column C"; it is reported separately.
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        Error::Json {
            path,
            line: err.line(),
            column: err.column(),
            problem,
            message,
            advice,
        }
    }
}
