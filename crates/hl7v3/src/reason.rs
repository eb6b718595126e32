//! GP2GP reason codes: why a request, extract or fragment was not accepted.
//!
//! They travel in acknowledgements (code system `2.16.840.1.113883.2.1.3.2.4.17.101`): an
//! AE carries its code in `ControlActEvent/reason/justifyingDetectedIssueEvent/code`, an AR
//! in `acknowledgement/acknowledgementDetail/code`. Code `0` is not an error: inside a COPC
//! message it asks the sender to continue.

use std::fmt;

macro_rules! reason_codes {
    ($( $(#[$m:meta])* $variant:ident = $code:literal, $text:literal; )*) => {
        /// A GP2GP reason code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ReasonCode {
            $( $(#[$m])* #[doc = $text] $variant, )*
        }

        impl ReasonCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant),*];

            /// The code as written in messages: `"0"`, `"06"`, `"99"`.
            pub fn code(self) -> &'static str {
                match self { $( ReasonCode::$variant => $code, )* }
            }

            /// What the code means, in plain English.
            pub fn description(self) -> &'static str {
                match self { $( ReasonCode::$variant => $text, )* }
            }

            /// Reads a code as written (`"6"` and `"06"` are the same code).
            pub fn from_code(s: &str) -> Option<ReasonCode> {
                let n: u32 = s.trim().parse().ok()?;
                ReasonCode::ALL.iter().copied().find(|c| c.code().parse::<u32>().ok() == Some(n))
            }
        }
    };
}

reason_codes! {
    Continue = "0", "Continue: the requester is ready for the large-message fragments";
    PatientNotAtSurgery = "06", "Patient not at surgery";
    MessagingNotEnabled = "07", "GP2GP messaging is not enabled on this system";
    ExtractWithoutRequest = "09", "EHR extract received without a corresponding request";
    FailedToGenerateExtract = "10", "Failed to generate the EHR extract";
    FailedToIntegrate = "11", "Failed to integrate the EHR extract";
    DuplicateExtract = "12", "Duplicate EHR extract received";
    ConfigurationPrevents = "13", "The system's configuration prevents it from processing this message";
    RequesterNotLargeMessageCompliant = "14", "Not sent: the requesting practice is not large-message compliant";
    AbaSuppressed = "15", "A-B-A EHR extract received and stored as a suppressed record";
    AbaWrongPatient = "17", "A-B-A EHR extract rejected: wrong record or wrong patient";
    RequestNotWellFormed = "18", "Request message not well-formed or not able to be processed";
    NotCurrentProvider = "19", "Sender check: the requester is not the patient's current healthcare provider";
    SpineError = "20", "Spine system responded with an error";
    ExtractNotWellFormed = "21", "EHR extract message not well-formed or not able to be processed";
    SenderNotLargeMessageCompliant = "23", "Not sent: the sending practice is not large-message compliant";
    SdsLookupFailed = "24", "SDS lookup gave zero or more than one result";
    LargeMessageTimeout = "25", "Large messages rejected: the overall transfer timed out";
    ReturningPatientFiledAsAttachment = "26", "Returning-patient EHR extract received and filed as an attachment";
    NonAbaWrongPatient = "28", "Non-A-B-A EHR extract rejected: wrong record or wrong patient";
    ReassemblyFailure = "29", "Large message reassembly failure";
    LargeMessageGeneralFailure = "30", "Large message general failure";
    AttachmentsNotReceived = "31", "EHR extract rejected: one or more large-message attachments were not received";
    Unexpected = "99", "Unexpected condition";
}

/// Stored and exchanged as the code itself (`"06"`).
impl serde::Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for ReasonCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        ReasonCode::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("'{code}' is not a GP2GP reason code")))
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_with_or_without_leading_zero() {
        for &c in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_code(c.code()), Some(c));
        }
        assert_eq!(
            ReasonCode::from_code("6"),
            Some(ReasonCode::PatientNotAtSurgery)
        );
        assert_eq!(ReasonCode::from_code("00"), Some(ReasonCode::Continue));
        assert_eq!(ReasonCode::from_code("16"), None);
        assert_eq!(ReasonCode::from_code("x"), None);
    }

    #[test]
    fn codes_serialize_as_written_in_messages() {
        let json = serde_json::to_string(&ReasonCode::PatientNotAtSurgery).unwrap();
        assert_eq!(json, "\"06\"");
        let back: ReasonCode = serde_json::from_str("\"6\"").unwrap();
        assert_eq!(back, ReasonCode::PatientNotAtSurgery);
        assert!(serde_json::from_str::<ReasonCode>("\"16\"").is_err());
    }

    #[test]
    fn codes_are_unique_and_in_order() {
        let nums: Vec<u32> = ReasonCode::ALL
            .iter()
            .map(|c| c.code().parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
    }
}
