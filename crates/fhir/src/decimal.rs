//! FHIR's `decimal`, with the digits kept exactly as written.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::Error;

/// A FHIR `decimal`.
///
/// FHIR decimals carry their precision in the digits: a laboratory value of
/// `4.000` is not the same statement as `4`. Converting through `f64` would
/// lose that, so the number is kept as the JSON text it was written as.
///
/// Input is lenient: a decimal written as a JSON string (`"4.5"`) is accepted
/// and written back as a string; [`Decimal::is_quoted`] tells, strict checking
/// reports it, and cleaning turns it into a JSON number.
#[derive(Clone)]
pub struct Decimal {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// A JSON number, as its exact text.
    Number(Box<RawValue>),
    /// A JSON string, unescaped (may not be a number at all).
    Text(String),
}

impl Decimal {
    /// Parses a decimal from its text, such as `4.000` or `-1e3`.
    pub fn parse(text: &str) -> Result<Decimal, Error> {
        if !is_number(text) {
            return Err(Error::InvalidValue {
                kind: "decimal",
                text: text.to_owned(),
                expected: "a decimal number such as 4.000 or -0.5",
            });
        }
        let raw = RawValue::from_string(text.to_owned()).map_err(|_| Error::InvalidValue {
            kind: "decimal",
            text: text.to_owned(),
            expected: "a decimal number such as 4.000 or -0.5",
        })?;
        Ok(Decimal {
            repr: Repr::Number(raw),
        })
    }

    /// The shortest decimal that reads back as `v`; `None` for NaN or
    /// infinities, which FHIR cannot carry.
    pub fn from_f64(v: f64) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        Decimal::parse(&format!("{v}")).ok()
    }

    /// The decimal's text as written (without quotes when it came as a
    /// string).
    pub fn as_str(&self) -> &str {
        match &self.repr {
            Repr::Number(raw) => raw.get(),
            Repr::Text(t) => t,
        }
    }

    /// Whether the input wrote this decimal as a JSON string.
    pub fn is_quoted(&self) -> bool {
        matches!(self.repr, Repr::Text(_))
    }

    /// Whether the text is a number (a quoted one may not be).
    pub fn is_valid(&self) -> bool {
        match &self.repr {
            Repr::Number(_) => true,
            Repr::Text(t) => is_number(t),
        }
    }

    /// The value as an `f64` (which may round it).
    pub fn to_f64(&self) -> Option<f64> {
        if !self.is_valid() {
            return None;
        }
        self.as_str().parse().ok()
    }

    /// Turns a quoted number into a JSON number. Returns false (and changes
    /// nothing) when the text is not a number.
    pub(crate) fn unquote(&mut self) -> bool {
        if let Repr::Text(t) = &self.repr {
            match Decimal::parse(t) {
                Ok(d) => *self = d,
                Err(_) => return false,
            }
        }
        true
    }
}

/// JSON's (and FHIR's) number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.is_quoted() == other.is_quoted() && self.as_str() == other.as_str()
    }
}

impl Eq for Decimal {}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Number(raw) => write!(f, "Decimal({})", raw.get()),
            Repr::Text(t) => write!(f, "Decimal({t:?})"),
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decimal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Decimal, Error> {
        Decimal::parse(s)
    }
}

impl From<i64> for Decimal {
    fn from(v: i64) -> Decimal {
        // The text of an integer is always a valid JSON number.
        match RawValue::from_string(v.to_string()) {
            Ok(raw) => Decimal {
                repr: Repr::Number(raw),
            },
            Err(_) => Decimal {
                repr: Repr::Text(v.to_string()),
            },
        }
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.repr {
            Repr::Number(raw) => raw.serialize(s),
            Repr::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        match raw.get().as_bytes().first() {
            Some(b'"') => {
                let text: String = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
                Ok(Decimal {
                    repr: Repr::Text(text),
                })
            }
            Some(b'-' | b'0'..=b'9') => Ok(Decimal {
                repr: Repr::Number(raw),
            }),
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other(raw.get()),
                &"a FHIR decimal (a JSON number such as 4.000)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_digits() {
        let d: Decimal = serde_json::from_str("4.000").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.as_str(), "4.000");
        assert_eq!(serde_json::to_string(&d).ok().as_deref(), Some("4.000"));
        let d: Decimal = serde_json::from_str("\"4.50\"").unwrap_or_else(|e| panic!("{e}"));
        assert!(d.is_quoted() && d.is_valid());
        assert_eq!(serde_json::to_string(&d).ok().as_deref(), Some("\"4.50\""));
        let mut d2 = d.clone();
        assert!(d2.unquote());
        assert_eq!(serde_json::to_string(&d2).ok().as_deref(), Some("4.50"));
        assert!(serde_json::from_str::<Decimal>("true").is_err());
    }

    #[test]
    fn grammar() {
        for ok in ["0", "-0", "1.5", "10", "1e3", "1.25E-3", "-12.000"] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in ["", "01", "1.", ".5", "+1", "1e", "abc", "1.5 ", "NaN"] {
            assert!(!is_number(bad), "{bad}");
        }
    }
}
