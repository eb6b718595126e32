//! Property tests for FHIR dates and date-times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fhir::{DateTime, Precision};
use proptest::prelude::*;

const PRECISIONS: [Precision; 6] = [
    Precision::Year,
    Precision::Month,
    Precision::Day,
    Precision::Minute,
    Precision::Second,
    Precision::Fraction,
];

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 31,
    }
}

/// A valid date-time as parts: (text, precision, expected HL7 TS, offset).
fn valid() -> impl Strategy<Value = (String, Precision, String, Option<i16>)> {
    (
        1u32..=9999,
        1u32..=12,
        1u32..=31,
        0u32..=23,
        0u32..=59,
        0u32..=59,
        "[0-9]{1,9}",
        0usize..6,
        prop_oneof![
            Just(None::<Option<i16>>),
            Just(Some(Some(0i16))),
            (-14i16..=14, prop::sample::select(vec![0i16, 15, 30, 45]))
                .prop_map(|(h, m)| Some(Some(h * 60 + if h < 0 { -m } else { m }))),
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, p, zone)| {
            let d = d.min(days_in_month(y, mo));
            let precision = PRECISIONS[p];
            let mut text = format!("{y:04}");
            let mut ts = text.clone();
            if precision >= Precision::Month {
                text += &format!("-{mo:02}");
                ts += &format!("{mo:02}");
            }
            if precision >= Precision::Day {
                text += &format!("-{d:02}");
                ts += &format!("{d:02}");
            }
            let mut offset = None;
            if precision >= Precision::Minute {
                text += &format!("T{h:02}:{mi:02}");
                ts += &format!("{h:02}{mi:02}");
                if precision >= Precision::Second {
                    text += &format!(":{s:02}");
                    ts += &format!("{s:02}");
                }
                if precision == Precision::Fraction {
                    text += &format!(".{frac}");
                    ts += &format!(".{frac}");
                }
                match zone {
                    None => {}
                    Some(None) => {}
                    Some(Some(0)) if h % 2 == 0 => {
                        text += "Z";
                        offset = Some(0);
                    }
                    Some(Some(off)) => {
                        let sign = if off < 0 { '-' } else { '+' };
                        let a = off.unsigned_abs();
                        text += &format!("{sign}{:02}:{:02}", a / 60, a % 60);
                        offset = Some(off);
                    }
                }
            }
            (text, precision, ts, offset)
        })
}

proptest! {
    #[test]
    fn valid_text_parses_with_its_precision((text, precision, ts, offset) in valid()) {
        let dt = DateTime::parse(&text).unwrap();
        prop_assert_eq!(dt.as_str(), text.as_str());
        prop_assert_eq!(dt.precision(), Some(precision));
        prop_assert_eq!(dt.to_hl7_ts(), Some(ts));
        prop_assert_eq!(dt.offset_minutes(), offset);
        prop_assert_eq!(dt.has_time(), precision >= Precision::Minute);
        let strict = precision <= Precision::Day
            || (precision >= Precision::Second && offset.is_some());
        prop_assert_eq!(dt.is_strict(), strict);
    }

    #[test]
    fn text_round_trips_through_json_and_display((text, ..) in valid()) {
        let dt = DateTime::parse(&text).unwrap();
        let json = serde_json::to_string(&dt).unwrap();
        let back: DateTime = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &dt);
        let again: DateTime = back.to_string().parse().unwrap();
        prop_assert_eq!(again.precision(), dt.precision());
        prop_assert_eq!(again, dt);
    }

    #[test]
    fn hl7_ts_round_trips((text, precision, _, offset) in valid()) {
        let dt = DateTime::parse(&text).unwrap();
        let ts = dt.to_hl7_ts_with_zone().unwrap();
        let back = DateTime::from_hl7_ts(&ts).unwrap();
        // Minute precision gains seconds; everything else comes back as it was.
        let want = if precision == Precision::Minute { Precision::Second } else { precision };
        prop_assert_eq!(back.precision(), Some(want));
        prop_assert_eq!(back.offset_minutes(), offset);
        prop_assert_eq!(back.year(), dt.year());
        prop_assert_eq!(back.month(), dt.month());
        prop_assert_eq!(back.day(), dt.day());
        prop_assert_eq!(back.time(), dt.time());
        prop_assert_eq!(back.fraction(), dt.fraction());
        if precision <= Precision::Day {
            prop_assert_eq!(back.as_str(), dt.as_str());
        }
    }

    #[test]
    fn any_text_is_kept_and_never_panics(text in "\\PC{0,40}") {
        let dt = DateTime::new(text.clone());
        prop_assert_eq!(dt.as_str(), text.as_str());
        prop_assert_eq!(dt.is_valid(), dt.precision().is_some());
        prop_assert_eq!(dt.is_valid(), dt.to_hl7_ts().is_some());
        prop_assert_eq!(dt.is_valid(), DateTime::parse(&text).is_ok());
    }

    #[test]
    fn any_hl7_text_gives_a_valid_date_or_an_error(text in "[0-9+.\\-]{0,24}|\\PC{0,24}") {
        if let Ok(dt) = DateTime::from_hl7_ts(&text) {
            prop_assert!(dt.is_valid());
            // Digits survive (seconds may be added for hour/minute precision).
            let digits: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
            prop_assert!(dt.to_hl7_ts().unwrap().starts_with(&digits));
        }
    }

    #[test]
    fn day_past_the_end_of_the_month_is_invalid(y in 1u32..=9999, m in 1u32..=12, extra in 1u32..=5) {
        let d = days_in_month(y, m) + extra;
        let text = format!("{y:04}-{m:02}-{d:02}");
        prop_assert!(!DateTime::new(text).is_valid());
    }
}
