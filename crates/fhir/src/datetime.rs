//! FHIR's `date`, `dateTime` and `instant`, kept exactly as written.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

use crate::error::Error;

/// How much of a date or date-time was written.
///
/// FHIR lets a `date` or `dateTime` stop at the year or month (`2010`,
/// `2010-05`), and GP systems use that for vague dates ("sometime in 2010").
/// HL7 V3 `TS` values carry the same idea by their length, so the precision
/// must survive a translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// `YYYY`
    Year,
    /// `YYYY-MM`
    Month,
    /// `YYYY-MM-DD`
    Day,
    /// `YYYY-MM-DDThh:mm`: not valid FHIR (seconds are required), accepted on
    /// input because some systems write it.
    Minute,
    /// `YYYY-MM-DDThh:mm:ss`
    Second,
    /// `YYYY-MM-DDThh:mm:ss.f…` with any number of fraction digits.
    Fraction,
}

/// A FHIR `date`, `dateTime` or `instant`.
///
/// The original text is kept byte for byte, so writing a parsed value gives
/// back exactly what was read. Parsing is lenient: text that is not a valid
/// date is still kept (and written back) but reports no [`Precision`], and
/// [`Bundle::check_strict`](crate::Bundle::check_strict) reports it. A time
/// without a time zone is accepted on input (STU3 requires one; strict
/// checking reports it).
///
/// The grammar accepted is `YYYY[-MM[-DD[Thh:mm[:ss[.f+]][Z|(+|-)hh:mm]]]]`,
/// with field ranges checked (month 1–12, day within the month, hour 0–23,
/// minute 0–59, second 0–60).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DateTime {
    text: String,
    parts: Option<Parts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Parts {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    precision: Precision,
    /// Byte range of the fraction digits (after the `.`) in the text.
    fraction: (u8, u8),
    /// The zone offset in minutes east of UTC (`Z` is 0), if one was written.
    offset: Option<i16>,
}

impl DateTime {
    /// Keeps `text` as a date-time without checking it.
    ///
    /// This never fails: text that does not parse is kept and reports
    /// [`DateTime::is_valid`] as false. Use [`DateTime::parse`] to reject it.
    pub fn new(text: impl Into<String>) -> DateTime {
        let text = text.into();
        let parts = parse(text.as_bytes());
        DateTime { text, parts }
    }

    /// Parses `text`, failing when it is not a date, date-time or instant in
    /// the lenient grammar described on [`DateTime`].
    pub fn parse(text: &str) -> Result<DateTime, Error> {
        let dt = DateTime::new(text);
        if dt.is_valid() {
            Ok(dt)
        } else {
            Err(Error::InvalidValue {
                kind: "dateTime",
                text: text.to_owned(),
                expected: "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm)",
            })
        }
    }

    /// Builds a FHIR date-time from an HL7 V3 `TS` value
    /// (`YYYY[MM[DD[HH[MM[SS[.f+]]]]]][(+|-)ZZZZ]`).
    ///
    /// FHIR cannot say "to the hour" or "to the minute": such values gain
    /// `:00` seconds (and `:00` minutes for an hour), so their precision
    /// becomes [`Precision::Second`]. A `TS` without a zone gives a FHIR
    /// date-time without a zone, which STU3 does not allow for times; the
    /// caller decides which zone to add (GP2GP times are UK local time).
    pub fn from_hl7_ts(ts: &str) -> Result<DateTime, Error> {
        let invalid = || Error::InvalidValue {
            kind: "HL7 TS",
            text: ts.to_owned(),
            expected: "YYYY[MM[DD[HH[MM[SS[.f+]]]]]][+ZZZZ|-ZZZZ]",
        };
        let (body, zone) = match ts.find(['+', '-']) {
            Some(i) => (&ts[..i], Some(&ts[i..])),
            None => (ts, None),
        };
        let (digits, fraction) = match body.split_once('.') {
            Some((d, f)) => (d, Some(f)),
            None => (body, None),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let mut text = String::with_capacity(32);
        match digits.len() {
            4 => text.push_str(digits),
            6 => {
                text.push_str(&digits[..4]);
                text.push('-');
                text.push_str(&digits[4..6]);
            }
            8 | 10 | 12 | 14 => {
                text.push_str(&digits[..4]);
                text.push('-');
                text.push_str(&digits[4..6]);
                text.push('-');
                text.push_str(&digits[6..8]);
                if digits.len() > 8 {
                    text.push('T');
                    text.push_str(&digits[8..10]);
                    text.push(':');
                    text.push_str(digits.get(10..12).unwrap_or("00"));
                    text.push(':');
                    text.push_str(digits.get(12..14).unwrap_or("00"));
                }
            }
            _ => return Err(invalid()),
        }
        if let Some(f) = fraction {
            if digits.len() != 14 || f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            text.push('.');
            text.push_str(f);
        }
        if let Some(z) = zone {
            let zb = z.as_bytes();
            if digits.len() < 10 || zb.len() != 5 || !zb[1..].iter().all(u8::is_ascii_digit) {
                return Err(invalid());
            }
            text.push_str(&z[..3]);
            text.push(':');
            text.push_str(&z[3..]);
        }
        DateTime::parse(&text).map_err(|_| invalid())
    }

    /// The text exactly as read (or built).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the text is a date or date-time in the lenient grammar.
    pub fn is_valid(&self) -> bool {
        self.parts.is_some()
    }

    /// Whether the text is valid for FHIR STU3 as written: a date, or a
    /// date-time with seconds and a time zone.
    pub fn is_strict(&self) -> bool {
        match self.parts {
            None => false,
            Some(p) => match p.precision {
                Precision::Year | Precision::Month | Precision::Day => true,
                Precision::Minute => false,
                Precision::Second | Precision::Fraction => p.offset.is_some(),
            },
        }
    }

    /// How much was written, or `None` when the text is not a date.
    pub fn precision(&self) -> Option<Precision> {
        self.parts.map(|p| p.precision)
    }

    /// Whether a time of day was written (precision of a minute or finer).
    pub fn has_time(&self) -> bool {
        self.precision().is_some_and(|p| p >= Precision::Minute)
    }

    /// The year, if the text is valid.
    pub fn year(&self) -> Option<u16> {
        self.parts.map(|p| p.year)
    }

    /// The month (1–12), if written.
    pub fn month(&self) -> Option<u8> {
        self.parts
            .filter(|p| p.precision >= Precision::Month)
            .map(|p| p.month)
    }

    /// The day of the month, if written.
    pub fn day(&self) -> Option<u8> {
        self.parts
            .filter(|p| p.precision >= Precision::Day)
            .map(|p| p.day)
    }

    /// Hour, minute and second, if a time was written (seconds are 0 for
    /// [`Precision::Minute`]).
    pub fn time(&self) -> Option<(u8, u8, u8)> {
        self.parts
            .filter(|p| p.precision >= Precision::Minute)
            .map(|p| (p.hour, p.minute, p.second))
    }

    /// The fraction-of-second digits as written (without the `.`), if any.
    pub fn fraction(&self) -> Option<&str> {
        let p = self.parts.filter(|p| p.precision == Precision::Fraction)?;
        self.text
            .get(usize::from(p.fraction.0)..usize::from(p.fraction.1))
    }

    /// The zone offset in minutes east of UTC (`Z` is `Some(0)`), if a zone
    /// was written.
    pub fn offset_minutes(&self) -> Option<i16> {
        self.parts.and_then(|p| p.offset)
    }

    /// The value as an HL7 V3 `TS` (`YYYYMMDDHHMMSS`), as far as it was
    /// written: `2010` gives `2010`, `2010-05-01` gives `20100501`,
    /// `2010-05-01T10:30:00.5+01:00` gives `20100501103000.5`.
    ///
    /// The clock time is kept as written (local to its zone) and the zone is
    /// left out; use [`DateTime::to_hl7_ts_with_zone`] to keep it. Returns
    /// `None` when the text is not a valid date.
    pub fn to_hl7_ts(&self) -> Option<String> {
        let p = self.parts?;
        let mut out = String::with_capacity(24);
        push_num(&mut out, u32::from(p.year), 4);
        if p.precision >= Precision::Month {
            push_num(&mut out, u32::from(p.month), 2);
        }
        if p.precision >= Precision::Day {
            push_num(&mut out, u32::from(p.day), 2);
        }
        if p.precision >= Precision::Minute {
            push_num(&mut out, u32::from(p.hour), 2);
            push_num(&mut out, u32::from(p.minute), 2);
        }
        if p.precision >= Precision::Second {
            push_num(&mut out, u32::from(p.second), 2);
        }
        if let Some(f) = self.fraction() {
            out.push('.');
            out.push_str(f);
        }
        Some(out)
    }

    /// Like [`DateTime::to_hl7_ts`], with the zone appended as `+ZZZZ` or
    /// `-ZZZZ` when one was written (`Z` gives `+0000`).
    pub fn to_hl7_ts_with_zone(&self) -> Option<String> {
        let mut out = self.to_hl7_ts()?;
        if let Some(off) = self.offset_minutes() {
            out.push(if off < 0 { '-' } else { '+' });
            let off = u32::from(off.unsigned_abs());
            push_num(&mut out, off / 60, 2);
            push_num(&mut out, off % 60, 2);
        }
        Some(out)
    }
}

fn push_num(out: &mut String, n: u32, width: usize) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{n:0width$}");
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

fn parse(b: &[u8]) -> Option<Parts> {
    if b.len() > 64 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let mut p = Parts {
        year: u16::try_from(year).ok()?,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        precision: Precision::Year,
        fraction: (0, 0),
        offset: None,
    };
    if b.len() == 4 {
        return Some(p);
    }
    if b.get(4) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    p.month = month as u8;
    p.precision = Precision::Month;
    if b.len() == 7 {
        return Some(p);
    }
    if b.get(7) != Some(&b'-') {
        return None;
    }
    let day = digits(b, 8, 2)?;
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    p.day = day as u8;
    p.precision = Precision::Day;
    if b.len() == 10 {
        return Some(p);
    }
    if b.get(10) != Some(&b'T') {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    p.hour = hour as u8;
    p.minute = minute as u8;
    p.precision = Precision::Minute;
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        let second = digits(b, i + 1, 2)?;
        if second > 60 {
            return None;
        }
        p.second = second as u8;
        p.precision = Precision::Second;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut end = start;
            while b.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            if end == start {
                return None;
            }
            p.fraction = (u8::try_from(start).ok()?, u8::try_from(end).ok()?);
            p.precision = Precision::Fraction;
            i = end;
        }
    }
    match b.get(i) {
        None => {}
        Some(b'Z') => {
            p.offset = Some(0);
            i += 1;
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            if b.get(i + 3) != Some(&b':') {
                return None;
            }
            let om = digits(b, i + 4, 2)?;
            if oh > 14 || om > 59 {
                return None;
            }
            let off = (oh * 60 + om) as i16;
            p.offset = Some(if sign == b'-' { -off } else { off });
            i += 6;
        }
        Some(_) => return None,
    }
    if i != b.len() {
        return None;
    }
    Some(p)
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DateTime({:?})", self.text)
    }
}

impl FromStr for DateTime {
    type Err = Error;

    fn from_str(s: &str) -> Result<DateTime, Error> {
        DateTime::parse(s)
    }
}

impl Serialize for DateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = DateTime;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a FHIR date or dateTime string such as \"2010-05-01\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<DateTime, E> {
                Ok(DateTime::new(v))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<DateTime, E> {
                Ok(DateTime::new(v))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions() {
        let cases = [
            ("2010", Some(Precision::Year), Some("2010")),
            ("2010-05", Some(Precision::Month), Some("201005")),
            ("2010-05-31", Some(Precision::Day), Some("20100531")),
            (
                "2010-05-31T10:30",
                Some(Precision::Minute),
                Some("201005311030"),
            ),
            (
                "2010-05-31T10:30:05",
                Some(Precision::Second),
                Some("20100531103005"),
            ),
            (
                "2010-05-31T10:30:05.120+01:00",
                Some(Precision::Fraction),
                Some("20100531103005.120"),
            ),
            ("2010-02-30", None, None),
            ("2010-13", None, None),
            ("", None, None),
            ("2010-05-31T25:00:00Z", None, None),
            ("2010-05-31 10:30:00", None, None),
            ("2010-05-31T10:30:00+0100", None, None),
        ];
        for (text, precision, ts) in cases {
            let dt = DateTime::new(text);
            assert_eq!(dt.precision(), precision, "{text}");
            assert_eq!(dt.to_hl7_ts().as_deref(), ts, "{text}");
            assert_eq!(dt.as_str(), text);
        }
    }

    #[test]
    fn zones() {
        let dt = DateTime::new("2021-01-19T09:50:59.608+00:00");
        assert_eq!(dt.offset_minutes(), Some(0));
        assert!(dt.is_strict());
        assert_eq!(dt.fraction(), Some("608"));
        let dt = DateTime::new("2021-01-19T09:50:59-05:30");
        assert_eq!(dt.offset_minutes(), Some(-330));
        assert_eq!(
            dt.to_hl7_ts_with_zone().as_deref(),
            Some("20210119095059-0530")
        );
        let dt = DateTime::new("2021-01-19T09:50:59");
        assert!(dt.is_valid());
        assert!(!dt.is_strict());
        assert_eq!(dt.to_hl7_ts_with_zone().as_deref(), Some("20210119095059"));
        assert!(DateTime::new("2020-02-29").is_valid());
        assert!(!DateTime::new("2019-02-29").is_valid());
    }

    #[test]
    fn from_hl7() {
        let cases = [
            ("2010", "2010"),
            ("201005", "2010-05"),
            ("20100531", "2010-05-31"),
            ("2010053110", "2010-05-31T10:00:00"),
            ("201005311030", "2010-05-31T10:30:00"),
            ("20100531103005.25+0100", "2010-05-31T10:30:05.25+01:00"),
        ];
        for (ts, fhir) in cases {
            assert_eq!(
                DateTime::from_hl7_ts(ts).map(|d| d.text).ok().as_deref(),
                Some(fhir)
            );
        }
        for bad in ["", "20", "2010053", "20100532", "2010+0100", "x0100531"] {
            assert!(DateTime::from_hl7_ts(bad).is_err(), "{bad}");
        }
    }
}
