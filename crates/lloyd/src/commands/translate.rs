//! `lloyd translate`: a patient's record from GP Connect FHIR to a GP2GP EhrExtract, or back.
//!
//! ```text
//! lloyd translate --to hl7 BUNDLE.json [--from-ods X] [--to-ods X] [--from-asid X]
//!                 [--to-asid X] [--creation-time TS] [--message-id UUID]
//!                 [--request-id UUID] [--report FILE]
//! lloyd translate --to fhir EXTRACT.xml [--report FILE]
//! ```
//!
//! `--to hl7` reads a GP Connect structured record (the `$gpc.migratestructuredrecord`
//! Bundle, JSON) and writes the complete `RCMR_IN030000UK06` message (`UK07` when the
//! record holds confidential items) to stdout, as compact XML. `--to fhir` reads an
//! EhrExtract message and writes the FHIR Bundle, as compact JSON. Both stream
//! ([`translate::to_hl7::bundle_to_writer`], [`translate::to_fhir::extract_to_writer`]):
//! a record of a hundred megabytes takes under three times its size in memory, and the
//! output is byte for byte what the whole-record functions write (a newline follows it). `--report FILE` writes the translation report (counts in
//! and out, every degrade, every item not carried) as JSON; a one-line summary always goes
//! to stderr. Exit status: 0 when translated, 1 when the input cannot be read or
//! translated (the message names the file and the place), 2 for a usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clock::Clock;
use translate::Report;

/// Which way to translate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// GP Connect FHIR Bundle (JSON) → GP2GP EhrExtract (HL7 V3 XML).
    Hl7,
    /// GP2GP EhrExtract (HL7 V3 XML) → GP Connect FHIR Bundle (JSON).
    Fhir,
}

/// Translate a patient's record between GP Connect FHIR and a GP2GP EhrExtract.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to translate to.
    #[arg(long, value_enum)]
    to: Direction,
    /// The input: a FHIR Bundle (JSON) for `--to hl7`, an EhrExtract (XML) for `--to fhir`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The sending practice's ODS code (default: the patient's managing organisation's).
    #[arg(long, value_name = "ODS")]
    from_ods: Option<String>,
    /// The requesting practice's ODS code (default: the sending practice's).
    #[arg(long, value_name = "ODS")]
    to_ods: Option<String>,
    /// The sending system's ASID.
    #[arg(long, value_name = "ASID")]
    from_asid: Option<String>,
    /// The requesting system's ASID.
    #[arg(long, value_name = "ASID")]
    to_asid: Option<String>,
    /// The message's creation time as an HL7 timestamp (default: now, UTC).
    #[arg(long, value_name = "TS")]
    creation_time: Option<String>,
    /// The message id (default: derived from the record, so the output is reproducible).
    #[arg(long, value_name = "UUID")]
    message_id: Option<String>,
    /// The id of the EhrRequest being answered.
    #[arg(long, value_name = "UUID")]
    request_id: Option<String>,
    /// Write the translation report (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let result = match args.to {
        Direction::Hl7 => to_hl7(&args, &mut out),
        Direction::Fhir => to_fhir(&args, &mut out),
    };
    let report = match result {
        Ok(r) => r,
        Err(Failed::Input(message)) => {
            eprintln!("lloyd translate: {}: {message}", args.file.display());
            return ExitCode::from(1);
        }
        Err(Failed::Output(e)) => {
            eprintln!("lloyd translate: cannot write the output: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = out.write_all(b"\n").and_then(|()| out.flush()) {
        eprintln!("lloyd translate: cannot write the output: {e}");
        return ExitCode::from(1);
    }
    if let Some(path) = &args.report {
        let json = match serde_json::to_vec_pretty(&report) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("lloyd translate: cannot write the report: {e}");
                return ExitCode::from(1);
            }
        };
        if let Err(e) = std::fs::write(path, json) {
            eprintln!(
                "lloyd translate: cannot write the report to {}: {e}",
                path.display()
            );
            return ExitCode::from(1);
        }
    }
    eprintln!(
        "lloyd translate: {}: {} items read, {} written, {} degraded, {} not carried",
        args.file.display(),
        report.input.values().sum::<usize>(),
        written(&report),
        report.degrades.len(),
        report.unmapped.len()
    );
    ExitCode::SUCCESS
}

/// Why a translation failed.
enum Failed {
    /// The input cannot be read or translated (said of the file).
    Input(String),
    /// Standard output could not be written.
    Output(String),
}

impl From<translate::TranslateError> for Failed {
    fn from(e: translate::TranslateError) -> Failed {
        match e {
            translate::TranslateError::Write(w) => Failed::Output(w),
            other => Failed::Input(other.to_string()),
        }
    }
}

/// Items written, not counting the sub-counts (`CompoundStatement:TOPIC`) and supplies.
fn written(report: &Report) -> usize {
    report
        .output
        .iter()
        .filter(|(k, _)| !k.contains(':') && !k.starts_with("ehrSupply"))
        .map(|(_, v)| v)
        .sum()
}

fn read(path: &Path) -> Result<Vec<u8>, Failed> {
    std::fs::read(path).map_err(|e| Failed::Input(format!("cannot read the file: {e}")))
}

/// Streams the EhrExtract (compact XML) to `out`: memory holds the input, the output and a
/// small index, not the Bundle and the message as models; nothing is written unless the
/// translation succeeds.
fn to_hl7(args: &Args, out: &mut impl std::io::Write) -> Result<Report, Failed> {
    let bytes = read(&args.file)?;
    let options = translate::to_hl7::ToHl7Options {
        from_ods: args.from_ods.clone(),
        to_ods: args.to_ods.clone(),
        from_asid: args.from_asid.clone(),
        to_asid: args.to_asid.clone(),
        creation_time: Some(
            args.creation_time
                .clone()
                .unwrap_or_else(|| hl7_ts_utc(clock::SystemClock.now_ms())),
        ),
        message_id: args.message_id.clone(),
        request_id: args.request_id.clone(),
    };
    Ok(translate::to_hl7::bundle_to_writer(&bytes, out, &options)?)
}

/// Streams the Bundle (compact JSON) to `out`, a composition at a time. The input is
/// checked as XML before anything is written, so bad input writes nothing.
fn to_fhir(args: &Args, out: &mut impl std::io::Write) -> Result<Report, Failed> {
    let bytes = read(&args.file)?;
    let options = translate::to_fhir::ToFhirOptions::default();
    match translate::to_fhir::extract_to_writer(&bytes, out, &options) {
        Ok(report) => Ok(report),
        Err(translate::TranslateError::Read(e)) => {
            // Read again as a whole message for the place of the fault (line and column);
            // this costs nothing unless the input is bad.
            Err(Failed::Input(match hl7v3::Message::parse(&bytes) {
                Err(e) => not_hl7(&bytes, &e),
                Ok(_) => format!("the input could not be read: {e}"),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// What is wrong with input that is not a GP2GP HL7 message, with the line and column.
fn not_hl7(bytes: &[u8], e: &hl7v3::MessageError) -> String {
    let offset = match e {
        hl7v3::MessageError::Xml(x) => x.offset(),
        _ => None,
    };
    let at = offset
        .map(|o| {
            let (line, col) = hl7v3::xml::LineIndex::new(bytes).line_col(o);
            format!(" at line {line}, column {col}")
        })
        .unwrap_or_default();
    format!("not a GP2GP HL7 message{at}: {e}")
}

/// Unix milliseconds as an HL7 timestamp in UTC, `YYYYMMDDHHMMSS`.
fn hl7_ts_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::hl7_ts_utc;

    #[test]
    fn unix_milliseconds_become_hl7_timestamps() {
        assert_eq!(hl7_ts_utc(0), "19700101000000");
        assert_eq!(hl7_ts_utc(951_782_400_000), "20000229000000");
        assert_eq!(hl7_ts_utc(1_706_693_400_123), "20240131093000");
    }
}
