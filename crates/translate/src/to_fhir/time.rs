//! HL7 `TS` / `IVL_TS` → FHIR dates, with the time zone GP2GP leaves implicit.
//!
//! GP2GP times carry no zone and are UK local time; STU3 requires a zone on every time of
//! day. [`TimeZone::EuropeLondon`] (the default) adds `+00:00` or `+01:00` by the UK
//! summer-time rule (last Sunday of March to last Sunday of October); dates without a time
//! stay dates, with their precision.

use fhir::{Choice, DateTime, Period, Precision};
use hl7v3::datatypes::{IVL_TS, TS};

/// The zone to read HL7 times without an explicit zone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeZone {
    /// UK civil time: GMT in winter, BST (+01:00) in summer.
    #[default]
    EuropeLondon,
    /// A fixed offset, in minutes east of UTC.
    Fixed(i16),
}

fn day_of_week(y: i32, m: u32, d: u32) -> u32 {
    // Sakamoto: 0 = Sunday.
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    let idx = (m as usize).saturating_sub(1).min(11);
    let v = y + y / 4 - y / 100 + y / 400 + T[idx] + d as i32;
    v.rem_euclid(7) as u32
}

fn last_sunday(y: i32, m: u32) -> u32 {
    let d31 = 31;
    d31 - day_of_week(y, m, d31)
}

impl TimeZone {
    /// The offset in minutes for a local time.
    pub fn offset_minutes(self, y: i32, m: u32, d: u32, h: u32) -> i16 {
        match self {
            TimeZone::Fixed(o) => o,
            TimeZone::EuropeLondon => {
                let start = last_sunday(y, 3);
                let end = last_sunday(y, 10);
                let after_start = m > 3 || (m == 3 && (d > start || (d == start && h >= 2)));
                let before_end = m < 10 || (m == 10 && (d < end || (d == end && h < 2)));
                if after_start && before_end { 60 } else { 0 }
            }
        }
    }
}

/// An HL7 timestamp as a strict FHIR date or date-time, or `None` when it is malformed.
pub fn ts_to_fhir(ts: &str, zone: TimeZone) -> Option<DateTime> {
    let ts = ts.trim();
    if ts.is_empty() {
        return None;
    }
    let dt = DateTime::from_hl7_ts(ts).ok()?;
    if !dt.has_time() || dt.offset_minutes().is_some() {
        return Some(dt);
    }
    let (y, m, d) = (
        i32::from(dt.year()?),
        u32::from(dt.month()?),
        u32::from(dt.day()?),
    );
    let (h, _, _) = dt.time()?;
    let off = zone.offset_minutes(y, m, d, u32::from(h));
    let a = off.unsigned_abs();
    // `{dt}{sign}{hh:02}:{mm:02}`, built by hand: `format!` took a twentieth of the
    // mapping's time here.
    let mut text = String::with_capacity(dt.as_str().len() + 6);
    text.push_str(dt.as_str());
    text.push(if off < 0 { '-' } else { '+' });
    push_two_digits(&mut text, a / 60);
    text.push(':');
    push_two_digits(&mut text, a % 60);
    let out = DateTime::new(text);
    out.is_strict().then_some(out)
}

/// Appends `n` (under 100) as two digits; 100 or more as all its digits, as `{:02}` does.
fn push_two_digits(text: &mut String, n: u16) {
    if n >= 100 {
        text.push_str(&n.to_string());
        return;
    }
    for d in [n / 10, n % 10] {
        text.extend(char::from_digit(u32::from(d), 10));
    }
}

/// An instant (seconds and zone required): a date-only value is not one.
pub fn ts_to_instant(ts: &str, zone: TimeZone) -> Option<DateTime> {
    ts_to_fhir(ts, zone).filter(|d| d.precision() >= Some(Precision::Second))
}

/// The value of a TS, when present and not a null flavour.
pub fn ts_value(ts: Option<&TS>) -> Option<&str> {
    ts?.value.as_deref().filter(|v| !v.trim().is_empty())
}

/// The single point an interval names: `center`, else `low`, else `value`.
pub fn ivl_point(ivl: Option<&IVL_TS>) -> Option<&str> {
    let ivl = ivl?;
    ts_value(ivl.center.as_deref())
        .or_else(|| ts_value(ivl.low.as_deref()))
        .or_else(|| ivl.value.as_deref().filter(|v| !v.trim().is_empty()))
}

/// The high bound of an interval.
pub fn ivl_high(ivl: Option<&IVL_TS>) -> Option<&str> {
    ts_value(ivl?.high.as_deref())
}

/// An interval as FHIR `effective[x]`: a date-time when it is one point, a period when it
/// has a high bound.
pub fn ivl_to_effective(ivl: Option<&IVL_TS>, zone: TimeZone) -> Option<Choice> {
    let start = ivl_point(ivl).and_then(|t| ts_to_fhir(t, zone));
    let end = ivl_high(ivl).and_then(|t| ts_to_fhir(t, zone));
    match (start, end) {
        (s, Some(e)) => Some(Choice::Period(Box::new(Period {
            start: s,
            end: Some(e),
            ..Period::default()
        }))),
        (Some(s), None) => Some(Choice::DateTime(s)),
        (None, None) => None,
    }
}

/// An interval as a FHIR period, when it has either bound.
pub fn ivl_to_period(ivl: Option<&IVL_TS>, zone: TimeZone) -> Option<Period> {
    let start = ivl_point(ivl).and_then(|t| ts_to_fhir(t, zone));
    let end = ivl_high(ivl).and_then(|t| ts_to_fhir(t, zone));
    (start.is_some() || end.is_some()).then(|| Period {
        start,
        end,
        ..Period::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uk_summer_time_is_applied_to_times_not_dates() {
        let z = TimeZone::EuropeLondon;
        assert_eq!(
            ts_to_fhir("20100123123926", z).unwrap().as_str(),
            "2010-01-23T12:39:26+00:00"
        );
        assert_eq!(
            ts_to_fhir("201007011200", z).unwrap().as_str(),
            "2010-07-01T12:00:00+01:00"
        );
        assert_eq!(ts_to_fhir("2009", z).unwrap().as_str(), "2009");
        assert_eq!(ts_to_fhir("20090101", z).unwrap().as_str(), "2009-01-01");
        // 2021: BST from 28 March to 31 October.
        assert_eq!(z.offset_minutes(2021, 3, 28, 1), 0);
        assert_eq!(z.offset_minutes(2021, 3, 28, 3), 60);
        assert_eq!(z.offset_minutes(2021, 10, 31, 3), 0);
        assert_eq!(z.offset_minutes(2021, 10, 30, 23), 60);
        assert!(ts_to_fhir("2009x", z).is_none());
        assert!(ts_to_instant("20090101", z).is_none());
    }

    #[test]
    fn a_fixed_zone_is_written_as_hours_and_minutes() {
        for (minutes, zone) in [
            (-330, "-05:30"),
            (0, "+00:00"),
            (45, "+00:45"),
            (345, "+05:45"),
            (-720, "-12:00"),
            (840, "+14:00"),
        ] {
            let got = ts_to_fhir("20100123123926", TimeZone::Fixed(minutes)).unwrap();
            assert_eq!(got.as_str(), format!("2010-01-23T12:39:26{zone}"));
        }
        // Out of any real zone's range, the date-time is not strict FHIR.
        assert!(ts_to_fhir("20100123123926", TimeZone::Fixed(6000)).is_none());
    }
}
