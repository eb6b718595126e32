//! Unix milliseconds as calendar time in UTC, and the text forms the standards want,
//! without a calendar crate.

/// A moment broken into its UTC calendar parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub milli: u32,
}

impl Utc {
    /// The calendar parts of `ms` since the Unix epoch.
    pub fn from_ms(ms: i64) -> Utc {
        let secs = ms.div_euclid(1000);
        let milli = ms.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: (rem % 3600) / 60,
            second: rem % 60,
            milli,
        }
    }

    /// An HL7 V3 timestamp to the second: `YYYYMMDDhhmmss`.
    pub fn hl7(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// An ISO 8601 instant with milliseconds: `YYYY-MM-DDThh:mm:ss.sssZ` (FHIR `instant`).
    pub fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.milli
        )
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_moments() {
        assert_eq!(Utc::from_ms(0).hl7(), "19700101000000");
        // 2024-02-29T23:59:59.999Z, a leap day.
        let t = Utc::from_ms(1_709_251_199_999);
        assert_eq!(t.iso(), "2024-02-29T23:59:59.999Z");
        assert_eq!(t.hl7(), "20240229235959");
        // Before the epoch.
        assert_eq!(Utc::from_ms(-1).iso(), "1969-12-31T23:59:59.999Z");
    }
}
