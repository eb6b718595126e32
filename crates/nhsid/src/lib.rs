//! NHS identifiers, checked.
//!
//! Every part of Lloyd meets the same handful of national identifiers, and each has a shape
//! that can be checked without asking anyone:
//!
//! - the **NHS number**: ten digits, the last a modulus-11 check digit over the first nine
//!   (weights 10 down to 2; a remainder giving 11 means 0, giving 10 means the number can
//!   never be valid);
//! - the **ODS code** of an organisation (a practice such as `A82038`, a trust, a supplier):
//!   3 to 10 upper-case letters and digits;
//! - the **ASID** (Accredited System ID) of a system on Spine: 12 digits in the live service,
//!   though test harnesses use other digit strings, so anything of 1 to 18 digits is accepted
//!   and only the shape is checked;
//! - the **party key** of a message handler: `ODS-NNNNNNN` (an ODS code, a dash, digits).
//!
//! Each checker returns a typed value or an [`IdError`] whose message says what is wrong and
//! what a valid identifier looks like, so it can be shown to a person as it is.

use std::fmt;

/// HL7 OID of the NHS number (`id/@root` on a patient).
pub const NHS_NUMBER_OID: &str = "2.16.840.1.113883.2.1.4.1";
/// HL7 OID of an ODS organisation code as Spine's SDS writes it.
pub const ODS_SDS_OID: &str = "1.2.826.0.1285.0.1.10";
/// HL7 OID of an ODS organisation code as GP systems write it in an agent directory.
pub const ODS_OID: &str = "2.16.840.1.113883.2.1.4.3";
/// HL7 OID of an ASID (a Spine accredited system, `device/id/@root`).
pub const ASID_OID: &str = "1.2.826.0.1285.0.2.0.107";

/// What is wrong with an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("NHS number '{0}' must be exactly 10 digits (spaces between groups are allowed)")]
    NhsNumberShape(String),
    #[error(
        "NHS number '{0}' has a wrong check digit: it is not a real NHS number, check it was typed correctly"
    )]
    NhsNumberCheckDigit(String),
    #[error("ODS code '{0}' must be 3 to 10 upper-case letters and digits, e.g. A82038")]
    OdsCode(String),
    #[error("ASID '{0}' must be 1 to 18 digits (Spine ASIDs are 12), e.g. 200000000149")]
    Asid(String),
    #[error("party key '{0}' must be an ODS code, a dash and digits, e.g. A82038-0000001")]
    PartyKey(String),
}

/// A ten-digit NHS number whose check digit is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber([u8; 10]);

impl NhsNumber {
    /// Parses `s`, accepting the usual `943 476 5919` grouping with single spaces.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let digits = nhs_number_digits(s).ok_or_else(|| IdError::NhsNumberShape(s.to_string()))?;
        match check_digit(&digits[..9]) {
            Some(c) if c == digits[9] => Ok(NhsNumber(digits)),
            _ => Err(IdError::NhsNumberCheckDigit(s.to_string())),
        }
    }

    /// Builds a valid NHS number from its first nine digits (given as a number below
    /// 1,000,000,000), or `None` when those nine digits admit no check digit. Used by the
    /// synthetic population generator.
    pub fn from_stem(stem: u32) -> Option<Self> {
        if stem >= 1_000_000_000 {
            return None;
        }
        let mut digits = [0u8; 10];
        let mut n = stem;
        for d in digits[..9].iter_mut().rev() {
            *d = (n % 10) as u8;
            n /= 10;
        }
        digits[9] = check_digit(&digits[..9])?;
        Some(NhsNumber(digits))
    }

    /// The ten digits without spaces.
    pub fn as_string(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl std::str::FromStr for NhsNumber {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NhsNumber::parse(s)
    }
}

/// What a ten-digit string says about itself as an NHS number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NhsNumberCheck {
    /// Ten digits with the right check digit.
    Valid,
    /// Ten digits, but the check digit is wrong (test harnesses use `1234567890`).
    BadCheckDigit,
    /// Not ten digits at all.
    BadShape,
}

/// Classifies `s` without building an [`NhsNumber`]; validators use this to tell an error
/// (not an NHS number) from a warning (right shape, wrong check digit).
pub fn check_nhs_number(s: &str) -> NhsNumberCheck {
    match NhsNumber::parse(s) {
        Ok(_) => NhsNumberCheck::Valid,
        Err(IdError::NhsNumberCheckDigit(_)) => NhsNumberCheck::BadCheckDigit,
        Err(_) => NhsNumberCheck::BadShape,
    }
}

fn nhs_number_digits(s: &str) -> Option<[u8; 10]> {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut prev_space = true; // no leading space
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => {
                if n == 10 {
                    return None;
                }
                digits[n] = b - b'0';
                n += 1;
                prev_space = false;
            }
            b' ' if !prev_space => prev_space = true,
            _ => return None,
        }
    }
    (n == 10 && !prev_space).then_some(digits)
}

/// Modulus 11 over nine digits with weights 10..2; `None` when the remainder makes 10.
fn check_digit(nine: &[u8]) -> Option<u8> {
    let sum: u32 = nine
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// An ODS organisation code, e.g. `A82038`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OdsCode(String);

impl OdsCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (3..=10).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(OdsCode(s.to_string()))
        } else {
            Err(IdError::OdsCode(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Spine ASID (Accredited System ID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asid(String);

impl Asid {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if (1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Asid(s.to_string()))
        } else {
            Err(IdError::Asid(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Asid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message handler's party key, e.g. `A82038-0000001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyKey(String);

impl PartyKey {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = match s.split_once('-') {
            Some((ods, num)) => {
                OdsCode::parse(ods).is_ok()
                    && !num.is_empty()
                    && num.len() <= 10
                    && num.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        };
        if ok {
            Ok(PartyKey(s.to_string()))
        } else {
            Err(IdError::PartyKey(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid_nhs_numbers_pass() {
        // Numbers of NHS test patients in the conformance corpus.
        for n in ["9465701483", "9465698490", "9729649588", "943 476 5919"] {
            assert!(NhsNumber::parse(n).is_ok(), "{n} should be valid");
        }
    }

    #[test]
    fn wrong_check_digit_is_told_apart_from_wrong_shape() {
        assert_eq!(
            check_nhs_number("1234567890"),
            NhsNumberCheck::BadCheckDigit
        );
        assert_eq!(
            check_nhs_number("9465701484"),
            NhsNumberCheck::BadCheckDigit
        );
        assert_eq!(check_nhs_number("946570148"), NhsNumberCheck::BadShape);
        assert_eq!(check_nhs_number("94657014833"), NhsNumberCheck::BadShape);
        assert_eq!(check_nhs_number("94657O1483"), NhsNumberCheck::BadShape);
        assert_eq!(check_nhs_number(" 9465701483"), NhsNumberCheck::BadShape);
        assert_eq!(check_nhs_number("9465701483 "), NhsNumberCheck::BadShape);
        assert_eq!(check_nhs_number("946  5701483"), NhsNumberCheck::BadShape);
    }

    #[test]
    fn remainder_ten_never_validates() {
        // 000000001: sum = 2 → 11 - 2 = 9; 000000010: sum = 3*1 = 3 → 8.
        // Find stems whose check would be 10 and make sure no digit completes them.
        let mut found = 0;
        for stem in 0..200u32 {
            if NhsNumber::from_stem(stem).is_none() {
                found += 1;
                let base = format!("{stem:09}");
                for d in 0..10 {
                    assert!(NhsNumber::parse(&format!("{base}{d}")).is_err());
                }
            }
        }
        assert!(found > 0, "some stem in 0..200 has remainder 10");
    }

    #[test]
    fn every_generated_number_parses_back() {
        for stem in (0..1_000_000_000u32).step_by(7_777_777) {
            if let Some(n) = NhsNumber::from_stem(stem) {
                assert_eq!(NhsNumber::parse(&n.to_string()), Ok(n));
            }
        }
    }

    #[test]
    fn ods_asid_and_party_key_shapes() {
        assert!(OdsCode::parse("A82038").is_ok());
        assert!(OdsCode::parse("a82038").is_err());
        assert!(OdsCode::parse("A8").is_err());
        assert!(OdsCode::parse("{{toOds}}").is_err());
        assert!(Asid::parse("200000000149").is_ok());
        assert!(Asid::parse("GP2GPTEST").is_err());
        assert!(Asid::parse("").is_err());
        assert!(PartyKey::parse("A82038-0000001").is_ok());
        assert!(PartyKey::parse("A82038").is_err());
        assert!(PartyKey::parse("A82038-").is_err());
        assert!(PartyKey::parse("a82038-1").is_err());
    }

    #[test]
    fn errors_say_what_a_valid_value_looks_like() {
        let e = NhsNumber::parse("12").unwrap_err().to_string();
        assert!(e.contains("10 digits"), "{e}");
        let e = OdsCode::parse("x").unwrap_err().to_string();
        assert!(e.contains("A82038"), "{e}");
    }
}
