//! Unix milliseconds as FHIR instants (`2024-05-01T09:30:00.000Z`), without a calendar crate.

/// `ms` since the Unix epoch as an ISO 8601 UTC instant with milliseconds.
pub fn instant(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Reads an ISO 8601 instant — `2024-05-01T09:30:00Z`, with optional fractional seconds
/// and a `Z` or `±hh:mm` offset — or a date (`2024-05-01`, midnight UTC) into Unix ms.
pub fn parse_instant(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, rest) = match t.split_once(['T', 't', ' ']) {
        Some((d, r)) => (d, Some(r)),
        None => (t, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || date.len() != 10 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    // A day that does not exist (13th month, 30 February) comes back as another one.
    if civil_from_days(days) != (y, m, day) {
        return None;
    }
    let Some(rest) = rest else {
        return Some(days * 86_400_000);
    };
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let (oh, om) = (num(oh)?, num(om)?);
        if oh > 23 || om > 59 || off.len() != 6 {
            return None;
        }
        (c, sign * (oh * 3_600_000 + om * 60_000))
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let (h, mi, s) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if parts.next().is_some() || hms.len() != 8 || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let ms = match fraction {
        None => 0,
        Some(f) => {
            num(f)?;
            let digits: String = f.chars().chain("000".chars()).take(3).collect();
            num(&digits)?
        }
    };
    Some(days * 86_400_000 + (h * 3600 + mi * 60 + s) * 1000 + ms - offset_ms)
}

/// (year, month, day) in the proleptic Gregorian calendar to days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_are_utc_with_milliseconds() {
        assert_eq!(super::instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::instant(1_714_555_800_123),
            "2024-05-01T09:30:00.123Z"
        );
        assert_eq!(super::instant(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn instants_and_dates_are_read_back() {
        use super::{instant, parse_instant};
        for ms in [
            0,
            1_714_555_800_123,
            951_782_400_000,
            -86_400_000,
            4_102_444_799_999,
        ] {
            assert_eq!(parse_instant(&instant(ms)), Some(ms), "{}", instant(ms));
        }
        assert_eq!(
            parse_instant("2024-05-01T09:30:00Z"),
            Some(1_714_555_800_000)
        );
        assert_eq!(
            parse_instant("2024-05-01T10:30:00+01:00"),
            Some(1_714_555_800_000)
        );
        assert_eq!(
            parse_instant("2024-05-01T09:30:00.5Z"),
            Some(1_714_555_800_500)
        );
        assert_eq!(parse_instant("2024-05-01"), Some(1_714_521_600_000));
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2023-02-29",
            "2024-05-01T25:00:00Z",
            "2024-05-01T09:30Z",
            "2024-05-01T09:30:00",
            "2024-05-01T09:30:00+1:00",
            "2024-5-1",
            "2024-05-01T09:30:00.xZ",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
