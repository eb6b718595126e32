//! Deterministic synthetic GP records, of any size, for benchmarks, property tests and the
//! simulated population `lloyd seed` writes.
//!
//! [`record_xml`] writes an `RCMR_IN030000UK06` EhrExtract for one patient
//! ([`Demographics`]) at one practice ([`PracticeProfile`]) from a [`RecordPlan`] — a seed,
//! a size and the documents filed in it. The record is shaped after the conformance
//! corpus: an agent directory of the practice's clinicians (the same people in every record
//! of a practice), then the patient's history from birth (or 2000) to
//! [`AS_OF`](AS_OF_DATE): consultations (coded observations with values, free-text notes,
//! blood pressures, recalls, referrals), repeat and acute medication with their issues and
//! the odd discontinuation, problems linking to the observations about them, drug and
//! non-drug allergies, pathology reports (specimen, test group, results with reference
//! ranges and comments), immunisations on the UK schedule for the patient's age, and
//! documents. Each record leans one way, as real ones do (mostly medication, mostly
//! results, mostly consultations, many allergies). [`record_bundle`] turns it into the GP
//! Connect structured Bundle a practice serves, with the patient's demographics, the
//! practice's details and each document's size filled in.
//!
//! The same inputs always give the same bytes; the text is written straight into one
//! buffer, so a 100 MB record takes well under a second. [`RecordPlan::typical`] draws a
//! realistic size (log-normal, median about 200 KB, a long tail to tens of MB) and the
//! documents' plan from a seed, in integer and basic floating-point arithmetic only, so the
//! same seed gives the same plan on every machine. [`document_bytes`] writes a planned
//! document: a PDF or PNG of exactly its planned size.
//!
//! [`synthetic_extract_xml`], [`synthetic_extract`] and [`synthetic_bundle`] are the
//! original size-and-seed entry points (one fixed practice, an NHS number from the seed).

use std::fmt::Write;

use hl7v3::{Message, MessageError};

mod documents;

pub use documents::MIN_DOCUMENT_BYTES;

/// The generator everything synthetic is drawn with: splitmix64, small, fast, and the same
/// everywhere (also for a population's demographics, so that one seed fixes the lot).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        let i = self.below(items.len() as u64) as usize;
        &items[i.min(items.len().saturating_sub(1))]
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in [0, 1), exactly representable.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Close to a standard normal (the sum of twelve uniforms, less six): only additions,
    /// so every machine draws the same number.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }

    /// An upper-case version-4-shaped UUID.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08X}-{:04X}-4{:03X}-{:04X}-{:012X}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0x0FFF,
            0x8000 | (b >> 48 & 0x3FFF),
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

/// e^x from basic arithmetic only (`f64::exp` may differ in the last bit between
/// platforms, and a size drawn from a seed must not). Accurate to a few units in the last
/// place over the range used here.
fn exp(x: f64) -> f64 {
    let x = x.clamp(-700.0, 700.0);
    let k = (x / std::f64::consts::LN_2).round();
    let r = x - k * std::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for i in 1..=20 {
        term *= r / f64::from(i);
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// A value drawn from a log-normal distribution with this median and spread (σ of its
/// logarithm), clamped to `min..=max`.
pub fn log_normal(rng: &mut Rng, median: f64, sigma: f64, min: u64, max: u64) -> u64 {
    let v = median * exp(sigma * rng.normal());
    (v as u64).clamp(min, max)
}

/// The day records are written up to: 1 January 2025.
pub const AS_OF_DATE: &str = "2025-01-01";
/// [`AS_OF_DATE`] in days after 1 January 2000.
const AS_OF: i64 = 9132;
/// The original entry points' records end on 19 January 2021.
const LEGACY_AS_OF: i64 = 7689;

/// Days after 1 January 2000 of a `YYYY-MM-DD` date.
fn day_of(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = date[..4].parse().ok()?;
    let m: i64 = date[5..7].parse().ok()?;
    let d: i64 = date[8..].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468 - 10957)
}

/// A date `days` days after 1 January 2000, as HL7 `YYYYMMDD`.
fn date(days: i64) -> String {
    // Civil-from-days (Howard Hinnant), from 2000-03-01 based arithmetic.
    let z = days + 10957 + 719_468; // days since 1970 + epoch shift
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}{m:02}{d:02}")
}

/// The practice a record belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeProfile {
    /// Its ODS code (the record's author and custodian).
    pub ods: String,
    /// Its name, e.g. `Kirkgate Medical Centre`.
    pub name: String,
    /// Street and town, without the postcode.
    pub address_lines: Vec<String>,
    pub postcode: String,
    /// A telephone number, e.g. `01132 496 0000`.
    pub phone: String,
}

impl PracticeProfile {
    /// The practice of the original entry points.
    fn legacy() -> PracticeProfile {
        PracticeProfile {
            ods: "B83002".into(),
            name: "Main Surgery".into(),
            address_lines: vec!["1 High Street".into(), "Leeds".into()],
            postcode: "LS1 1AA".into(),
            phone: "01133800000".into(),
        }
    }

    /// The practice's clinicians: (given, family), the same for every record of the
    /// practice, four to eight of them.
    fn clinicians(&self) -> Vec<(&'static str, &'static str)> {
        let mut rng = Rng(fnv(self.ods.as_bytes()));
        let n = 4 + rng.below(5) as usize;
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(n);
        while out.len() < n {
            let c = (*rng.pick(CLINICIAN_GIVEN), *rng.pick(CLINICIAN_FAMILY));
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

/// FNV-1a: a stable hash of a few bytes.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Who the record is about, as PDS knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demographics {
    /// Ten digits, a valid check digit.
    pub nhs_number: String,
    pub family: Option<String>,
    pub given: Option<String>,
    /// `Mr`, `Mrs`, `Ms`, `Miss`, `Dr`…
    pub prefix: Option<String>,
    /// `male`, `female`, `other` or `unknown`.
    pub gender: Option<String>,
    /// `YYYY-MM-DD`; the history starts here (or in 2000, whichever is later).
    pub birth_date: Option<String>,
    pub address_lines: Vec<String>,
    pub postcode: Option<String>,
}

/// What an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// A letter: a text page and scanned pages (`application/pdf`).
    Pdf,
    /// A scanned image (`image/png`).
    Png,
}

impl DocumentKind {
    pub fn content_type(self) -> &'static str {
        match self {
            DocumentKind::Pdf => "application/pdf",
            DocumentKind::Png => "image/png",
        }
    }

    /// The file extension (and the word in a plan's text).
    pub fn extension(self) -> &'static str {
        match self {
            DocumentKind::Pdf => "pdf",
            DocumentKind::Png => "png",
        }
    }

    fn from_extension(s: &str) -> Option<DocumentKind> {
        match s {
            "pdf" => Some(DocumentKind::Pdf),
            "png" => Some(DocumentKind::Png),
            _ => None,
        }
    }
}

/// One attachment a record will have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentPlan {
    pub kind: DocumentKind,
    /// Its exact size in bytes (at least [`MIN_DOCUMENT_BYTES`]).
    pub bytes: u64,
}

/// A planned attachment with the id and title it has in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDocument {
    /// An upper-case UUID: the `DocumentReference`'s id in the Bundle and the
    /// `NarrativeStatement`'s in the extract.
    pub id: String,
    pub kind: DocumentKind,
    pub bytes: u64,
    /// What kind of letter, e.g. `Discharge summary`.
    pub title: String,
}

impl PlannedDocument {
    /// `{id}.pdf` / `{id}.png`: the attachment's file name.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.id, self.kind.extension())
    }
}

/// Everything a synthetic record is made from, besides who and where: its seed, its size
/// and its documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPlan {
    pub seed: u64,
    /// About how big the record is, in bytes: the EhrExtract a practice sends for it and
    /// its Bundle as JSON each come out within a few tens of percent of this (the
    /// structured record; attachments are extra).
    pub bytes: u64,
    pub documents: Vec<DocumentPlan>,
}

/// Median size of a record's EhrExtract.
pub const MEDIAN_RECORD_BYTES: u64 = 200_000;
/// The smallest and largest records [`RecordPlan::typical`] plans.
pub const MIN_RECORD_BYTES: u64 = 20_000;
pub const MAX_RECORD_BYTES: u64 = 40_000_000;
/// The largest attachment planned with large attachments asked for.
pub const MAX_DOCUMENT_BYTES: u64 = 40_000_000;

impl RecordPlan {
    /// A realistic plan from a seed: the size log-normal around [`MEDIAN_RECORD_BYTES`] at
    /// 38, England's median age (spread 1.1, so one record in twenty is over 1 MB and a few
    /// in 100,000 reach tens of MB), smaller for children and larger for the old; about one
    /// document per 120 KB of record, three in four of them PDFs. Documents are small scans (median
    /// 30 KB, at most 200 KB) unless `large_attachments`, when they are median 300 KB with
    /// a tail up to [`MAX_DOCUMENT_BYTES`].
    pub fn typical(seed: u64, age_years: Option<u32>, large_attachments: bool) -> RecordPlan {
        let mut rng = Rng(seed ^ 0x0051_A30F_5EED_0001);
        let age = f64::from(age_years.unwrap_or(38).min(100));
        // Children's records are shorter, the old's longer: 1 at 38 (England's median
        // age), half that for a baby, 2.3 at 100.
        let age_factor = 0.5 + age / 75.0;
        let bytes = log_normal(
            &mut rng,
            MEDIAN_RECORD_BYTES as f64 * age_factor,
            1.1,
            MIN_RECORD_BYTES,
            MAX_RECORD_BYTES,
        );
        let mut plan = RecordPlan::sized(seed, bytes);
        plan.documents = Self::documents_for(&mut rng, bytes, large_attachments);
        plan
    }

    /// A plan of a given size with small documents (what the original entry points use).
    pub fn sized(seed: u64, bytes: u64) -> RecordPlan {
        let mut rng = Rng(seed ^ 0x0051_A30F_5EED_0002);
        RecordPlan {
            seed,
            bytes,
            documents: Self::documents_for(&mut rng, bytes, false),
        }
    }

    fn documents_for(rng: &mut Rng, bytes: u64, large: bool) -> Vec<DocumentPlan> {
        // About one per 120 KB, and a fraction of one more by chance.
        let mean_x100 = bytes * 100 / 120_000;
        let n = (mean_x100 / 100 + u64::from(rng.below(100) < mean_x100 % 100)).min(100);
        (0..n)
            .map(|_| {
                let kind = if rng.chance(75) {
                    DocumentKind::Pdf
                } else {
                    DocumentKind::Png
                };
                let bytes = if large {
                    log_normal(rng, 300_000.0, 1.1, MIN_DOCUMENT_BYTES, MAX_DOCUMENT_BYTES)
                } else {
                    log_normal(rng, 30_000.0, 0.6, MIN_DOCUMENT_BYTES, 200_000)
                };
                DocumentPlan { kind, bytes }
            })
            .collect()
    }

    /// The documents with their ids (from the seed and their place in the plan) and titles.
    pub fn planned_documents(&self) -> Vec<PlannedDocument> {
        self.documents
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut rng = Rng(self.seed ^ 0xD0C5_0000_0000_0000 ^ (i as u64).rotate_left(32));
                PlannedDocument {
                    id: rng.uuid(),
                    kind: d.kind,
                    bytes: d.bytes,
                    title: (*rng.pick(LETTERS)).to_string(),
                }
            })
            .collect()
    }

    /// The documents as one line of text (`pdf:48213,png:5120000`), for storing beside the
    /// seed; [`RecordPlan::parse_documents`] reads it back.
    pub fn documents_text(&self) -> String {
        let mut s = String::with_capacity(self.documents.len() * 12);
        for (i, d) in self.documents.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{}:{}", d.kind.extension(), d.bytes);
        }
        s
    }

    /// Reads [`RecordPlan::documents_text`]'s line.
    pub fn parse_documents(text: &str) -> Result<Vec<DocumentPlan>, String> {
        text.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|part| {
                let (kind, bytes) = part
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| format!("'{part}' is not kind:bytes (e.g. pdf:48213)"))?;
                let kind = DocumentKind::from_extension(kind)
                    .ok_or_else(|| format!("'{kind}' is not a document kind (pdf or png)"))?;
                let bytes = bytes
                    .parse::<u64>()
                    .map_err(|_| format!("'{bytes}' is not a size in bytes"))?;
                Ok(DocumentPlan { kind, bytes })
            })
            .collect()
    }

    /// The total size of the documents.
    pub fn document_bytes(&self) -> u64 {
        self.documents.iter().map(|d| d.bytes).sum()
    }
}

const SNOMED: &str = "2.16.840.1.113883.2.1.3.2.4.15";

/// (code, display, value unit or "") — observations seen in real records.
const OBSERVATIONS: &[(&str, &str, &str)] = &[
    ("77176002", "Smoker", ""),
    ("8517006", "Ex-smoker", ""),
    ("27113001", "Body weight", "kg"),
    ("50373000", "Body height", "m"),
    ("60621009", "Body mass index", "kg/m2"),
    (
        "228273003",
        "Finding relating to alcohol drinking behaviour",
        "",
    ),
    ("271062006", "Fasting blood glucose", "mmol/L"),
    ("364075005", "Heart rate", "/min"),
    ("86290005", "Respiratory rate", "/min"),
    ("162864005", "Body mass index 30+ - obesity", ""),
    ("38341003", "Hypertensive disorder", ""),
    ("195967001", "Asthma", ""),
    ("44054006", "Diabetes mellitus type 2", ""),
    ("35489007", "Depressive disorder", ""),
    ("22298006", "Myocardial infarction", ""),
    ("267036007", "Dyspnoea", ""),
    ("25064002", "Headache", ""),
    ("161891005", "Backache", ""),
];

/// (code, display) — dm+d products.
const DRUGS: &[(&str, &str, &str)] = &[
    ("319773006", "Aspirin 75mg dispersible tablets", "tablet"),
    ("330062008", "Allopurinol 300mg tablets", "tablet"),
    ("322236009", "Paracetamol 500mg tablets", "tablet"),
    ("317896006", "Digoxin 125microgram tablets", "tablet"),
    ("318135007", "Atenolol 50mg tablets", "tablet"),
    ("320000009", "Simvastatin 40mg tablets", "tablet"),
    ("325072002", "Metformin 500mg tablets", "tablet"),
    ("376701008", "Ramipril 5mg capsules", "capsule"),
    (
        "39113611000001102",
        "Salbutamol 100micrograms/dose inhaler CFC free",
        "inhaler",
    ),
    ("323509004", "Amoxicillin 500mg capsules", "capsule"),
];

const DOSAGES: &[&str] = &[
    "One To Be Taken Each Day",
    "One To Be Taken Twice A Day",
    "Two To Be Taken Four Times A Day When Required",
    "One Tablet At Night",
    "Two Puffs When Required",
];

/// (test code, display, unit, low, high)
const TESTS: &[(&str, &str, &str, f64, f64)] = &[
    (
        "1022431000000105",
        "Haemoglobin estimation",
        "g/L",
        130.0,
        180.0,
    ),
    (
        "1022541000000102",
        "Total white blood count",
        "10*9/L",
        4.0,
        11.0,
    ),
    (
        "1022651000000100",
        "Platelet count - observation",
        "10*9/L",
        150.0,
        400.0,
    ),
    (
        "1000661000000107",
        "Serum sodium level",
        "mmol/L",
        133.0,
        146.0,
    ),
    (
        "1000651000000109",
        "Serum potassium level",
        "mmol/L",
        3.5,
        5.3,
    ),
    (
        "1000731000000107",
        "Serum creatinine level",
        "umol/L",
        59.0,
        104.0,
    ),
    (
        "1005671000000105",
        "Serum cholesterol level",
        "mmol/L",
        0.0,
        5.0,
    ),
    (
        "1003141000000105",
        "Plasma glucose level",
        "mmol/L",
        3.0,
        7.8,
    ),
];

const GROUPS: &[(&str, &str)] = &[
    ("26604007", "Full blood count"),
    ("444164000", "Urea and electrolytes level"),
    ("26958001", "Liver function test"),
    ("252150008", "Fasting lipid profile"),
];

const ALLERGENS: &[(&str, &str, bool)] = &[
    ("294505008", "Allergy to amoxicillin", true),
    ("293586001", "Allergy to aspirin", true),
    ("91935009", "Allergy to peanut", false),
    ("300916003", "Latex allergy", false),
    ("91934008", "Allergy to nut", false),
];

const PLANS: &[(&str, &str)] = &[
    ("394720003", "Medication review"),
    ("185389009", "Follow-up visit"),
    ("390906007", "Follow-up encounter"),
];

const REFERRALS: &[(&str, &str)] = &[
    ("183516009", "Referral to cardiology service"),
    ("306206005", "Referral to service"),
    ("183524004", "Referral to psychiatry service"),
];

const NOTES: &[&str] = &[
    "Patient reports feeling better since last visit.",
    "Discussed lifestyle changes; diet sheet given.",
    "Advised to return if symptoms persist or worsen.",
    "Reviewed by GP. No change to management.",
    "Telephone consultation; patient well, no concerns raised.",
];

/// Kinds of letter filed as documents.
const LETTERS: &[&str] = &[
    "Discharge summary",
    "Outpatient clinic letter",
    "Referral letter",
    "Radiology report",
    "Scanned correspondence",
    "Community nursing letter",
    "Insurance report",
];

/// Vaccinations (code, display) on the childhood schedule: (days after birth, …).
const CHILDHOOD_IMMUNISATIONS: &[(i64, &str, &str)] = &[
    (
        56,
        "414259000",
        "First diphtheria tetanus and five component acellular pertussis, haemophilus influenzae type b, inactivated polio vaccination",
    ),
    (
        56,
        "247631000000101",
        "First pneumococcal conjugated vaccination",
    ),
    (
        84,
        "415507003",
        "Second diphtheria tetanus and five component acellular pertussis, haemophilus influenzae type b, inactivated polio vaccination",
    ),
    (
        112,
        "415712004",
        "Third diphtheria tetanus and five component acellular pertussis, haemophilus influenzae type b, inactivated polio vaccination",
    ),
    (
        112,
        "247641000000105",
        "Second pneumococcal conjugated vaccination",
    ),
    (
        365,
        "428975001",
        "Vaccination with Haemophilus influenzae type B and Neisseria meningitidis serotype C combination vaccine",
    ),
    (
        1220,
        "170433008",
        "Measles mumps and rubella vaccination - second dose",
    ),
];
const FLU: (&str, &str) = ("822851000000102", "Seasonal influenza vaccination");
const COVID: [(&str, &str); 2] = [
    (
        "1324681000000101",
        "Administration of first dose of severe acute respiratory syndrome coronavirus 2 vaccine",
    ),
    (
        "1324691000000104",
        "Administration of second dose of severe acute respiratory syndrome coronavirus 2 vaccine",
    ),
];

const CLINICIAN_FAMILY: &[&str] = &[
    "Whitcombe",
    "McAvenue",
    "Patel",
    "Okafor",
    "Nguyen",
    "Smith",
    "Hargreaves",
    "Begum",
    "Kowalski",
    "Adeyemi",
    "Fraser",
    "Lindqvist",
    "Chaudhry",
    "O'Neill",
    "Mensah",
    "Rossi",
    "Thornton",
    "Iqbal",
    "Davies",
    "Achterberg",
];
const CLINICIAN_GIVEN: &[&str] = &[
    "Peter", "David", "Asha", "Chidi", "Linh", "Sarah", "Helen", "Rahul", "Fiona", "Tomasz",
    "Grace", "Imran", "Siobhan", "Kwame", "Elena", "James", "Priya", "Owen",
];

/// How a record leans: percent chances per step of the history.
struct Mix {
    medication: u64,
    results: u64,
    allergy: u64,
    referral: u64,
    max_allergies: u32,
    max_problems: u32,
}

impl Mix {
    /// One of the shapes the corpus shows: balanced, mostly medication (Daniels), mostly
    /// results (Mold, Guerra), mostly consultations (Yamura), many allergies (Gainsford).
    fn draw(rng: &mut Rng) -> Mix {
        let (medication, results, allergy, referral, max_allergies) = match rng.below(10) {
            0..=3 => (30, 15, 3, 8, 6),
            4 | 5 => (60, 8, 3, 6, 6),
            6 | 7 => (5, 45, 2, 5, 4),
            8 => (10, 10, 2, 12, 4),
            _ => (10, 10, 20, 8, 30),
        };
        Mix {
            medication,
            results,
            allergy,
            referral,
            max_allergies,
            max_problems: 40,
        }
    }
}

struct Gen<'a> {
    rng: Rng,
    out: String,
    agents: Vec<String>,
    /// The current day (after 1 January 2000).
    day: i64,
    /// The practice's name, XML-escaped (consultation locations, custodian).
    site: String,
    mix: Mix,
    allergies: u32,
    problems: u32,
    /// Vaccinations still to give: (day, code, display), in order.
    immunisations: Vec<(i64, &'a str, &'a str)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The vaccinations a patient born on `birth` gets between `from` and `to`, in order:
/// the childhood schedule, flu each autumn from 65 (most years), COVID-19 in 2021 for
/// adults.
fn immunisation_schedule(
    rng: &mut Rng,
    birth: Option<i64>,
    from: i64,
    to: i64,
) -> Vec<(i64, &'static str, &'static str)> {
    let mut out = Vec::new();
    let Some(birth) = birth else {
        return out;
    };
    for &(after, code, display) in CHILDHOOD_IMMUNISATIONS {
        if rng.chance(93) {
            out.push((birth + after, code, display));
        }
    }
    let sixty_five = birth + 65 * 365 + 16;
    for year in 2000..=2040 {
        let Some(autumn) = day_of(&format!("{year}-10-01")) else {
            continue;
        };
        if autumn > to {
            break;
        }
        if autumn >= sixty_five && rng.chance(75) {
            out.push((autumn + rng.below(50) as i64, FLU.0, FLU.1));
        }
    }
    let covid = day_of("2021-02-01").unwrap_or(7702);
    if covid - birth >= 18 * 365 && rng.chance(85) {
        let first = covid + rng.below(120) as i64;
        out.push((first, COVID[0].0, COVID[0].1));
        out.push((first + 56 + rng.below(28) as i64, COVID[1].0, COVID[1].1));
    }
    out.retain(|(d, _, _)| (from..=to).contains(d));
    out.sort_by_key(|(d, _, _)| *d);
    out
}

impl Gen<'_> {
    fn code(&mut self, tag: &str, code: &str, display: &str) {
        let _ = write!(
            self.out,
            r#"<{tag} code="{code}" codeSystem="{SNOMED}" displayName="{}"/>"#,
            esc(display)
        );
    }

    fn participant(&mut self, type_code: &str) {
        let a = self.rng.pick(&self.agents).clone();
        let _ = write!(
            self.out,
            r#"<Participant typeCode="{type_code}" contextControlCode="OP"><agentRef classCode="AGNT"><id root="{a}"/></agentRef></Participant>"#
        );
    }

    fn composition_start(&mut self, code: &str, display: &str, when: &str) -> String {
        let id = self.rng.uuid();
        let author = self.rng.pick(&self.agents).clone();
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><ehrComposition classCode="COMPOSITION" moodCode="EVN"><id root="{id}"/><code code="{code}" codeSystem="{SNOMED}" displayName="{display}"/><statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/><author typeCode="AUT" contextControlCode="OP"><time value="{when}"/><agentRef classCode="AGNT"><id root="{author}"/></agentRef></author>"#
        );
        if code == "24591000000103" {
            self.out.push_str(r#"<location typeCode="LOC"><locatedEntity classCode="LOCE"><code code="394730007" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Healthcare related organisation"/><locatedPlace classCode="PLC" determinerCode="INSTANCE"><name>"#);
            self.out.push_str(&self.site);
            self.out
                .push_str("</name></locatedPlace></locatedEntity></location>");
        }
        let _ = write!(
            self.out,
            r#"<Participant2 typeCode="PRF" contextControlCode="OP"><agentRef classCode="AGNT"><id root="{author}"/></agentRef></Participant2>"#
        );
        id
    }

    fn composition_end(&mut self) {
        self.out.push_str("</ehrComposition></component>\n");
    }

    /// An observation; returns its id.
    fn observation(&mut self, when: &str) -> String {
        let id = self.rng.uuid();
        let &(code, display, unit) = self.rng.pick(OBSERVATIONS);
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><ObservationStatement classCode="OBS" moodCode="EVN"><id root="{id}"/>"#
        );
        self.code("code", code, display);
        let _ = write!(
            self.out,
            r#"<statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/>"#
        );
        if !unit.is_empty() {
            let v = 20 + self.rng.below(900);
            let _ = write!(
                self.out,
                r#"<value xsi:type="PQ" value="{}.{}" unit="1"><translation value="{}.{}"><originalText>{unit}</originalText></translation></value>"#,
                v / 10,
                v % 10,
                v / 10,
                v % 10
            );
        }
        if self.rng.chance(40) {
            let note = *self.rng.pick(NOTES);
            let _ = write!(
                self.out,
                r#"<pertinentInformation typeCode="PERT"><sequenceNumber value="+1"/><pertinentAnnotation classCode="OBS" moodCode="EVN"><text>{note}</text></pertinentAnnotation></pertinentInformation>"#
            );
        }
        self.participant("PRF");
        self.out.push_str("</ObservationStatement></component>");
        id
    }

    fn narrative(&mut self, when: &str) {
        let id = self.rng.uuid();
        let note = *self.rng.pick(NOTES);
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><NarrativeStatement classCode="OBS" moodCode="EVN"><id root="{id}"/><text>{note}</text><statusCode code="COMPLETE"/><availabilityTime value="{when}"/>"#
        );
        self.participant("PRF");
        self.out.push_str("</NarrativeStatement></component>");
    }

    fn blood_pressure(&mut self, when: &str) {
        let id = self.rng.uuid();
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><CompoundStatement classCode="BATTERY" moodCode="EVN"><id root="{id}"/>"#
        );
        self.code("code", "163020007", "O/E - blood pressure reading");
        let _ = write!(
            self.out,
            r#"<statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/>"#
        );
        for (code, display, base) in [
            ("72313002", "Systolic arterial pressure", 110),
            ("1091811000000102", "Diastolic arterial pressure", 65),
        ] {
            let v = base + self.rng.below(40);
            let oid = self.rng.uuid();
            let _ = write!(
                self.out,
                r#"<component typeCode="COMP" contextConductionInd="true"><ObservationStatement classCode="OBS" moodCode="EVN"><id root="{oid}"/><code code="{code}" codeSystem="{SNOMED}" displayName="{display}"/><statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/><value xsi:type="PQ" value="{v}.000" unit="1"><translation value="{v}.000"><originalText>mm[Hg]</originalText></translation></value></ObservationStatement></component>"#
            );
        }
        self.participant("PRF");
        self.out.push_str("</CompoundStatement></component>");
    }

    fn plan(&mut self, when: &str, later: &str) {
        let id = self.rng.uuid();
        let &(code, display) = self.rng.pick(PLANS);
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><PlanStatement classCode="OBS" moodCode="INT"><id root="{id}"/>"#
        );
        self.code("code", code, display);
        let _ = write!(
            self.out,
            r#"<statusCode code="ACTIVE"/><effectiveTime><center value="{later}"/></effectiveTime><availabilityTime value="{when}"/>"#
        );
        self.participant("PRF");
        self.out.push_str("</PlanStatement></component>");
    }

    fn referral(&mut self, when: &str) {
        let id = self.rng.uuid();
        let &(code, display) = self.rng.pick(REFERRALS);
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><RequestStatement classCode="OBS" moodCode="RQO"><id root="{id}"/>"#
        );
        self.code("code", code, display);
        let _ = write!(
            self.out,
            r#"<text>Referral letter sent. Reason: {}</text><statusCode code="COMPLETE"/><effectiveTime><center nullFlavor="NI"/></effectiveTime><availabilityTime value="{when}"/><priorityCode code="394848005" codeSystem="{SNOMED}" displayName="Normal"/>"#,
            display
        );
        self.participant("AUT");
        self.out.push_str("</RequestStatement></component>");
    }

    /// A time on the current day, in surgery hours.
    fn now(&mut self) -> String {
        format!(
            "{}{:02}{:02}00",
            date(self.day),
            8 + self.rng.below(10),
            self.rng.below(60)
        )
    }

    fn consultation(&mut self) {
        let when = self.now();
        let later = date(self.day + 90 + self.rng.below(200) as i64);
        let comp = self.composition_start("24591000000103", "Other report", &when);
        let mut linked = Vec::new();
        for _ in 0..1 + self.rng.below(4) {
            linked.push(self.observation(&when));
        }
        if self.rng.chance(70) {
            self.narrative(&when);
        }
        if self.rng.chance(30) {
            self.blood_pressure(&when);
        }
        if self.rng.chance(15) {
            self.plan(&when, &later);
        }
        if self.rng.chance(self.mix.referral) {
            self.referral(&when);
        }
        if self.problems < self.mix.max_problems && self.rng.chance(20) && !linked.is_empty() {
            self.problems += 1;
            self.problem(&when, &linked);
        }
        let _ = comp;
        self.composition_end();
    }

    fn problem(&mut self, when: &str, linked: &[String]) {
        let id = self.rng.uuid();
        let named = linked[0].clone();
        let (code, display) = if self.rng.chance(70) {
            ("394774009", "Active Problem")
        } else {
            ("394775005", "Inactive Problem")
        };
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><LinkSet classCode="OBS" moodCode="EVN"><id root="{id}"/><code code="{code}" codeSystem="{SNOMED}" displayName="{display}"><qualifier inverted="false"><name code="394847000" codeSystem="{SNOMED}" displayName="Unspecified significance"/></qualifier></code><statusCode code="COMPLETE"/><effectiveTime><low value="{when}"/></effectiveTime><availabilityTime value="{when}"/>"#
        );
        for l in linked.iter().skip(1) {
            let _ = write!(
                self.out,
                r#"<component typeCode="COMP"><statementRef classCode="OBS" moodCode="EVN"><id root="{l}"/></statementRef></component>"#
            );
        }
        let _ = write!(
            self.out,
            r#"<conditionNamed typeCode="NAME" inversionInd="true"><namedStatementRef classCode="OBS" moodCode="EVN"><id root="{named}"/></namedStatementRef></conditionNamed>"#
        );
        self.participant("PRF");
        self.out.push_str("</LinkSet></component>");
    }

    fn medication(&mut self) {
        let start = self.day;
        let when = date(start);
        let &(code, display, form) = self.rng.pick(DRUGS);
        let dosage = *self.rng.pick(DOSAGES);
        let repeats = if self.rng.chance(60) {
            6 + self.rng.below(7)
        } else {
            0
        };
        let issues = if repeats == 0 {
            1
        } else {
            1 + self.rng.below(repeats)
        };
        let stop = self.rng.chance(15);
        let end = date(start + 28 * issues as i64);
        let auth_id = self.rng.uuid();
        let qty = 28 + 28 * self.rng.below(3);

        self.composition_start("196391000000103", "Non-consultation medication data", &when);
        let ms_id = self.rng.uuid();
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><MedicationStatement classCode="SBADM" moodCode="INT"><id root="{ms_id}"/><statusCode code="COMPLETE"/><effectiveTime><low value="{when}"/><high value="{end}"/></effectiveTime><availabilityTime value="{when}"/><consumable typeCode="CSM"><manufacturedProduct classCode="MANU"><manufacturedMaterial determinerCode="KIND" classCode="MMAT">"#
        );
        self.code("code", code, display);
        let _ = write!(
            self.out,
            r#"</manufacturedMaterial></manufacturedProduct></consumable><component typeCode="COMP"><ehrSupplyAuthorise classCode="SPLY" moodCode="INT"><id root="{auth_id}"/><code code="394823007" codeSystem="{SNOMED}" displayName="NHS Prescription"/><statusCode code="COMPLETE"/><effectiveTime><low value="{when}"/><high value="{end}"/></effectiveTime><availabilityTime value="{when}"/><repeatNumber value="{repeats}"/><quantity value="{qty}" unit="1"><translation value="{qty}"><originalText>{form}</originalText></translation></quantity><pertinentInformation typeCode="PERT"><pertinentSupplyAnnotation classCode="OBS" moodCode="EVN"><text>Expected Supply Duration: 28 day</text></pertinentSupplyAnnotation></pertinentInformation></ehrSupplyAuthorise></component>"#
        );
        if stop {
            let did = self.rng.uuid();
            let _ = write!(
                self.out,
                r#"<component typeCode="COMP"><ehrSupplyDiscontinue classCode="SPLY" moodCode="RQO"><id root="{did}"/><code code="394823007" codeSystem="{SNOMED}" displayName="NHS Prescription"/><statusCode code="COMPLETE"/><availabilityTime value="{end}"/><reversalOf typeCode="REV"><priorMedicationRef moodCode="INT"><id root="{auth_id}"/></priorMedicationRef></reversalOf><pertinentInformation typeCode="PERT"><pertinentSupplyAnnotation classCode="OBS" moodCode="EVN"><text>Stopped: side effects</text></pertinentSupplyAnnotation></pertinentInformation></ehrSupplyDiscontinue></component>"#
            );
        }
        let _ = write!(
            self.out,
            r#"<pertinentInformation typeCode="PERT"><pertinentMedicationDosage classCode="SBADM" moodCode="RMD"><text>{dosage}</text></pertinentMedicationDosage></pertinentInformation>"#
        );
        self.participant("AUT");
        self.out.push_str("</MedicationStatement></component>");
        self.composition_end();

        // The issues, each its own statement, as senders write them.
        for i in 0..issues {
            let on = date(start + 28 * i as i64);
            self.composition_start("196391000000103", "Non-consultation medication data", &on);
            let ms = self.rng.uuid();
            let pid = self.rng.uuid();
            let _ = write!(
                self.out,
                r#"<component typeCode="COMP"><MedicationStatement classCode="SBADM" moodCode="ORD"><id root="{ms}"/><statusCode code="COMPLETE"/><effectiveTime><low value="{on}"/><high value="{}"/></effectiveTime><availabilityTime value="{on}"/><consumable typeCode="CSM"><manufacturedProduct classCode="MANU"><manufacturedMaterial determinerCode="KIND" classCode="MMAT">"#,
                date(start + 28 * i as i64 + 28)
            );
            self.code("code", code, display);
            let _ = write!(
                self.out,
                r#"</manufacturedMaterial></manufacturedProduct></consumable><component typeCode="COMP"><ehrSupplyPrescribe classCode="SPLY" moodCode="RQO"><id root="{pid}"/><code code="394823007" codeSystem="{SNOMED}" displayName="NHS Prescription"/><statusCode code="COMPLETE"/><availabilityTime value="{on}"/><quantity value="{qty}" unit="1"><translation value="{qty}"><originalText>{form}</originalText></translation></quantity><inFulfillmentOf typeCode="FLFS"><priorMedicationRef moodCode="INT"><id root="{auth_id}"/></priorMedicationRef></inFulfillmentOf></ehrSupplyPrescribe></component><pertinentInformation typeCode="PERT"><pertinentMedicationDosage classCode="SBADM" moodCode="RMD"><text>{dosage}</text></pertinentMedicationDosage></pertinentInformation>"#
            );
            self.participant("AUT");
            self.out.push_str("</MedicationStatement></component>");
            self.composition_end();
        }
    }

    fn allergy(&mut self) {
        let when = date(self.day);
        let &(code, display, drug) = self.rng.pick(ALLERGENS);
        self.composition_start("196401000000100", "Non-consultation data", &when);
        let cid = self.rng.uuid();
        let oid = self.rng.uuid();
        let (cat, cat_display) = if drug {
            ("14L..00", "H/O: drug allergy")
        } else {
            ("SN53.00", "Allergy, unspecified")
        };
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><CompoundStatement classCode="CATEGORY" moodCode="EVN"><id root="{cid}"/><code code="{cat}" codeSystem="2.16.840.1.113883.2.1.6.2" displayName="{cat_display}"/><statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/><component typeCode="COMP" contextConductionInd="true"><ObservationStatement classCode="OBS" moodCode="EVN"><id root="{oid}"/>"#
        );
        self.code("code", code, display);
        let _ = write!(
            self.out,
            r#"<statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/><pertinentInformation typeCode="PERT"><sequenceNumber value="+1"/><pertinentAnnotation classCode="OBS" moodCode="EVN"><text>Status: Active</text></pertinentAnnotation></pertinentInformation>"#
        );
        self.participant("AUT");
        self.out
            .push_str("</ObservationStatement></component></CompoundStatement></component>");
        self.composition_end();
    }

    fn lab_report(&mut self) {
        let when = format!("{}100000", date(self.day));
        let group = *self.rng.pick(GROUPS);
        self.composition_start("24591000000103", "Other report", &when);
        let rid = self.rng.uuid();
        let sid = self.rng.uuid();
        let gid = self.rng.uuid();
        let acc = self.rng.below(1_000_000);
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><CompoundStatement classCode="CLUSTER" moodCode="EVN"><id root="{rid}"/><code code="16488004" codeSystem="{SNOMED}" displayName="laboratory reporting"><originalText>Filed Report</originalText></code><statusCode code="COMPLETE"/><effectiveTime><center nullFlavor="NI"/></effectiveTime><availabilityTime value="{when}"/><component typeCode="COMP" contextConductionInd="true"><CompoundStatement classCode="CLUSTER" moodCode="EVN"><id root="{sid}"/><code code="123038009" codeSystem="{SNOMED}" displayName="specimen (specimen)"/><statusCode code="COMPLETE"/><effectiveTime><center nullFlavor="NI"/></effectiveTime><availabilityTime value="{when}"/><specimen typeCode="SPC"><specimenRole classCode="SPEC"><id root="{sid}"/><id root="2.16.840.1.113883.2.1.4.5.2" extension="AC{acc:06}"/><effectiveTime><center value="{when}"/></effectiveTime><specimenSpecimenMaterial classCode="MAT" determinerCode="KIND"><desc>Blood</desc></specimenSpecimenMaterial></specimenRole></specimen><component typeCode="COMP" contextConductionInd="true"><CompoundStatement classCode="BATTERY" moodCode="EVN"><id root="{gid}"/><code code="{}" codeSystem="{SNOMED}" displayName="{}"/><statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/>"#,
            group.0, group.1
        );
        for _ in 0..2 + self.rng.below(4) {
            let &(code, display, unit, low, high) = self.rng.pick(TESTS);
            let tid = self.rng.uuid();
            let v = low + (high - low) * (self.rng.below(1000) as f64 / 900.0);
            let flag = if v > high { "HI" } else { "N" };
            let _ = write!(
                self.out,
                r#"<component typeCode="COMP" contextConductionInd="true"><ObservationStatement classCode="OBS" moodCode="EVN"><id root="{tid}"/><code code="{code}" codeSystem="{SNOMED}" displayName="{display}"/><statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/><value xsi:type="PQ" value="{v:.1}" unit="{unit}"/><interpretationCode code="{flag}" codeSystem="2.16.840.1.113883.2.1.6.5"/><referenceRange typeCode="REFV"><referenceInterpretationRange classCode="OBS" moodCode="EVN.CRT"><value><low value="{low}" unit="{unit}"/><high value="{high}" unit="{unit}"/></value></referenceInterpretationRange></referenceRange></ObservationStatement></component>"#
            );
        }
        self.out
            .push_str("</CompoundStatement></component></CompoundStatement></component>");
        let nid = self.rng.uuid();
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP" contextConductionInd="true"><NarrativeStatement classCode="OBS" moodCode="EVN"><id root="{nid}"/><text mediaType="text/x-h7uk-pmip">CommentType:LABORATORY RESULT COMMENT(E141)
CommentDate:{when}

Interpretation: results reviewed</text><statusCode code="COMPLETE"/><availabilityTime value="{when}"/></NarrativeStatement></component>"#
        );
        self.participant("AUT");
        self.out.push_str("</CompoundStatement></component>");
        self.composition_end();
    }

    /// A document filed in the record: a letter or a scan, its attachment planned.
    fn document(&mut self, doc: &PlannedDocument) {
        let when = self.now();
        self.composition_start("24591000000103", "Other report", &when);
        let id = &doc.id;
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><NarrativeStatement classCode="OBS" moodCode="EVN"><id root="{id}"/><text>Type: {} Custodian Org: {}</text><statusCode code="COMPLETE"/><availabilityTime value="{when}"/>"#,
            esc(&doc.title),
            self.site,
        );
        self.participant("AUT");
        let _ = write!(
            self.out,
            r#"<reference typeCode="REFR"><referredToExternalDocument classCode="DOC" moodCode="EVN"><id root="{id}"/><code code="37251000000104" codeSystem="{SNOMED}" displayName="Other digital signal"/><text mediaType="{}"><reference value="file://localhost/{}"/></text></referredToExternalDocument></reference>"#,
            doc.kind.content_type(),
            doc.file_name(),
        );
        self.out.push_str("</NarrativeStatement></component>");
        self.composition_end();
    }

    /// A vaccination given: its own consultation, as practices record them.
    fn immunisation(&mut self, code: &str, display: &str) {
        let when = self.now();
        self.composition_start("24591000000103", "Other report", &when);
        let id = self.rng.uuid();
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><ObservationStatement classCode="OBS" moodCode="EVN"><id root="{id}"/>"#
        );
        self.code("code", code, display);
        let batch = self.rng.below(1_000_000);
        let site = *self
            .rng
            .pick(&["Left arm", "Right arm", "Left thigh", "Right thigh"]);
        let _ = write!(
            self.out,
            r#"<statusCode code="COMPLETE"/><effectiveTime><center value="{when}"/></effectiveTime><availabilityTime value="{when}"/><pertinentInformation typeCode="PERT"><sequenceNumber value="+1"/><pertinentAnnotation classCode="OBS" moodCode="EVN"><text>Batch: BN{batch:06} Site: {site}</text></pertinentAnnotation></pertinentInformation>"#
        );
        self.participant("PRF");
        self.out.push_str("</ObservationStatement></component>");
        self.composition_end();
    }
}

/// Bytes one step of the history writes, on average (for spreading the steps over it).
const STEP_BYTES: u64 = 3_000;

/// Writes a synthetic EhrExtract for `patient` at `practice` from `plan` (at least a small
/// complete record), every planned document in it.
pub fn record_xml(practice: &PracticeProfile, patient: &Demographics, plan: &RecordPlan) -> String {
    // This writer's extracts are leaner than what the record translates back to (to_hl7
    // writes more per item; measured 1.24 to 1.5 times): aim low so that the extract a
    // practice sends, and its Bundle, come out about `plan.bytes`.
    let target = plan.bytes.saturating_mul(20) / 27;
    write_record(practice, patient, plan, target, AS_OF)
}

fn write_record(
    practice: &PracticeProfile,
    patient: &Demographics,
    plan: &RecordPlan,
    target: u64,
    as_of: i64,
) -> String {
    let target_bytes = usize::try_from(target).unwrap_or(usize::MAX);
    let mut rng = Rng(plan.seed ^ 0x5EED_0F11_0C4A_11ED);
    let birth = patient.birth_date.as_deref().and_then(day_of);
    let start = birth.unwrap_or(0).clamp(0, as_of);
    let mix = Mix::draw(&mut rng);
    let immunisations = immunisation_schedule(&mut rng, birth, start, as_of);
    let mut g = Gen {
        rng,
        out: String::with_capacity(target_bytes.saturating_add(64 * 1024).min(1 << 30)),
        agents: Vec::new(),
        day: start,
        site: esc(&practice.name),
        mix,
        allergies: 0,
        problems: 0,
        immunisations,
    };
    let nhs = esc(&patient.nhs_number);
    let ods = esc(&practice.ods);
    let made = format!("{}101500", date(as_of));
    let (msg_id, extract_id, folder_id) = (g.rng.uuid(), g.rng.uuid(), g.rng.uuid());
    let _ = write!(
        g.out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<RCMR_IN030000UK06 xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><id root="{msg_id}"/><creationTime value="{made}"/><versionCode code="V3NPfIT3.1.10"/><interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="RCMR_IN030000UK06"/><processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/><communicationFunctionRcv typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="200000000205"/></device></communicationFunctionRcv><communicationFunctionSnd typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="200000000359"/></device></communicationFunctionSnd><ControlActEvent classCode="CACT" moodCode="EVN"><author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT"><agentSystemSDS classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="200000000359"/></agentSystemSDS></AgentSystemSDS></author1><subject typeCode="SUBJ" contextConductionInd="false"><EhrExtract classCode="EXTRACT" moodCode="EVN"><id root="{extract_id}"/><statusCode code="COMPLETE"/><availabilityTime value="{made}"/><recordTarget typeCode="RCT"><patient classCode="PAT"><id root="2.16.840.1.113883.2.1.4.1" extension="{nhs}"/></patient></recordTarget><author typeCode="AUT"><time value="{made}"/><AgentOrgSDS classCode="AGNT"><agentOrganizationSDS classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="{ods}"/></agentOrganizationSDS></AgentOrgSDS></author><destination typeCode="DST"><AgentOrgSDS classCode="AGNT"><agentOrganizationSDS classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="{ods}"/></agentOrganizationSDS></AgentOrgSDS></destination><component typeCode="COMP"><ehrFolder classCode="FOLDER" moodCode="EVN"><id root="{folder_id}"/><statusCode code="COMPLETE"/><effectiveTime><low value="{}"/><high value="{}"/></effectiveTime><availabilityTime value="{made}"/><author typeCode="AUT"><time value="{made}"/><AgentOrgSDS classCode="AGNT"><agentOrganizationSDS classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="{ods}"/></agentOrganizationSDS></AgentOrgSDS></author><responsibleParty typeCode="RESP"><agentDirectory classCode="AGNT">
"#,
        date(start),
        date(as_of),
    );
    // The practice's clinicians: the same ids in every record of the practice.
    let mut staff = Rng(fnv(practice.ods.as_bytes()) ^ 0x00A6_E175);
    let mut address = String::new();
    for line in &practice.address_lines {
        let _ = write!(
            address,
            "<streetAddressLine>{}</streetAddressLine>",
            esc(line)
        );
    }
    let _ = write!(
        address,
        "<postalCode>{}</postalCode>",
        esc(&practice.postcode)
    );
    for (given, family) in practice.clinicians() {
        let id = staff.uuid();
        let _ = write!(
            g.out,
            r#"<part typeCode="PART"><Agent classCode="AGNT"><id root="{id}"/><code nullFlavor="UNK"><originalText>General Medical Practitioner</originalText></code><agentPerson classCode="PSN" determinerCode="INSTANCE"><name><prefix>Dr</prefix><given>{}</given><family>{}</family></name></agentPerson><representedOrganization classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="{ods}"/><name>{}</name><telecom value="tel:{}" use="WP"/><addr use="WP">{address}</addr></representedOrganization></Agent></part>"#,
            esc(given),
            esc(family),
            g.site,
            esc(&practice.phone.replace(' ', "")),
        );
        g.out.push('\n');
        g.agents.push(id);
    }
    g.out.push_str("</agentDirectory></responsibleParty>\n");

    // The closing tags, so the size target accounts for them.
    let request_id = g.rng.uuid();
    let tail = format!(
        r#"</ehrFolder></component><inFulfillmentOf typeCode="FLFS"><priorEhrRequest classCode="EXTRACT" moodCode="RQO"><id root="{request_id}"/></priorEhrRequest></inFulfillmentOf><limitation typeCode="LIMIT" inversionInd="true"><limitingEhrExtractSpecification classCode="OBS" moodCode="DEF"><id root="{folder_id}"/><code code="37241000000102" codeSystem="{SNOMED}" displayName="Entire record available to originator (administrative concept)"/></limitingEhrExtractSpecification></limitation></EhrExtract></subject></ControlActEvent></RCMR_IN030000UK06>
"#
    );
    // Spread the steps over the history: about as many steps as the size calls for.
    let span = (as_of - start).max(1) as u64;
    let steps = (target / STEP_BYTES).max(1);
    let stride = (2 * span / steps).max(1);
    let documents = plan.planned_documents();
    let mut filed = 0usize;
    let mut first = true;
    while first || g.out.len() + tail.len() < target_bytes {
        first = false;
        g.day += 1 + g.rng.below(stride) as i64;
        if g.day > as_of {
            // Past the end of the history: start again (ids stay unique).
            g.day = start;
        }
        while let Some(&(day, code, display)) = g.immunisations.first() {
            if day > g.day {
                break;
            }
            g.immunisations.remove(0);
            let today = g.day;
            g.day = day;
            g.immunisation(code, display);
            g.day = today;
        }
        g.consultation();
        let roll = g.rng.below(100);
        let m = &g.mix;
        if roll < m.medication {
            g.medication();
        } else if roll < m.medication + m.results {
            g.lab_report();
        } else if roll < m.medication + m.results + m.allergy && g.allergies < m.max_allergies {
            g.allergies += 1;
            g.allergy();
        }
        // Documents are filed evenly through the record.
        let n = documents.len();
        while filed < n && g.out.len() * (n + 1) >= target_bytes * (filed + 1) {
            g.document(&documents[filed]);
            filed += 1;
        }
    }
    for d in &documents[filed..] {
        g.document(d);
    }
    g.out.push_str(&tail);
    g.out
}

/// The extract of [`record_xml`] translated to the GP Connect structured Bundle the
/// practice serves: the Patient carries `patient`'s demographics, the practice's
/// Organization its name, address and telephone, and each DocumentReference its
/// attachment's content type, size and title.
pub fn record_bundle(
    practice: &PracticeProfile,
    patient: &Demographics,
    plan: &RecordPlan,
) -> Result<fhir::Bundle, crate::TranslateError> {
    let xml = record_xml(practice, patient, plan);
    let msg = Message::parse(xml.as_bytes())
        .map_err(|e| crate::TranslateError::Invalid(e.to_string()))?;
    drop(xml);
    let (mut bundle, _) =
        crate::to_fhir::extract_to_bundle(&msg, &crate::to_fhir::ToFhirOptions::default())?;
    drop(msg);
    complete(&mut bundle, practice, patient, plan);
    Ok(bundle)
}

/// Fills in what an EhrExtract does not carry: demographics, the practice's details and
/// the attachments' sizes.
fn complete(
    bundle: &mut fhir::Bundle,
    practice: &PracticeProfile,
    patient: &Demographics,
    plan: &RecordPlan,
) {
    use fhir::Resource;
    let documents = plan.planned_documents();
    for entry in &mut bundle.entry {
        match entry.resource.as_mut() {
            Some(Resource::Patient(p)) => {
                if patient.family.is_some() || patient.given.is_some() {
                    p.name = vec![fhir::HumanName {
                        r#use: Some("official".into()),
                        family: patient.family.clone(),
                        given: patient.given.clone().into_iter().collect(),
                        prefix: patient.prefix.clone().into_iter().collect(),
                        ..fhir::HumanName::default()
                    }];
                }
                p.gender = patient.gender.clone();
                p.birth_date = patient.birth_date.as_deref().map(fhir::DateTime::new);
                if !patient.address_lines.is_empty() || patient.postcode.is_some() {
                    p.address = vec![fhir::Address {
                        r#use: Some("home".into()),
                        r#type: Some("physical".into()),
                        line: patient.address_lines.clone(),
                        postal_code: patient.postcode.clone(),
                        ..fhir::Address::default()
                    }];
                }
            }
            Some(Resource::Organization(o))
                if o.identifier.iter().any(|i| {
                    i.system.as_deref() == Some(fhir::systems::ODS_ORGANIZATION_CODE)
                        && i.value.as_deref() == Some(practice.ods.as_str())
                }) =>
            {
                o.name = Some(practice.name.clone());
                o.address = vec![fhir::Address {
                    r#use: Some("work".into()),
                    line: practice.address_lines.clone(),
                    postal_code: Some(practice.postcode.clone()),
                    ..fhir::Address::default()
                }];
                o.telecom = vec![fhir::ContactPoint {
                    system: Some("phone".into()),
                    value: Some(practice.phone.clone()),
                    r#use: Some("work".into()),
                    ..fhir::ContactPoint::default()
                }];
            }
            Some(Resource::DocumentReference(d)) => {
                let Some(doc) = documents.iter().find(|p| d.id.as_deref() == Some(&p.id)) else {
                    continue;
                };
                d.description = Some(doc.title.clone());
                for c in &mut d.content {
                    if let Some(a) = c.attachment.as_mut() {
                        a.content_type = Some(doc.kind.content_type().into());
                        a.size = Some(doc.bytes);
                        a.title = Some(doc.file_name());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The bytes of planned document `id` of a record: a PDF or PNG of exactly its planned
/// size, headed with the patient's name and NHS number; `None` when the plan has no such
/// document.
pub fn document_bytes(
    plan: &RecordPlan,
    patient: &Demographics,
    id: &str,
) -> Option<(PlannedDocument, Vec<u8>)> {
    let (i, doc) = plan
        .planned_documents()
        .into_iter()
        .enumerate()
        .find(|(_, d)| d.id.eq_ignore_ascii_case(id))?;
    let name = [patient.given.as_deref(), patient.family.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let caption = format!(
        "{}\nPatient: {}\nNHS number: {}\nDocument {}",
        doc.title, name, patient.nhs_number, doc.id
    );
    let seed = plan.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let bytes = match doc.kind {
        DocumentKind::Pdf => documents::pdf(seed, &caption, doc.bytes),
        DocumentKind::Png => documents::png(seed, &caption, doc.bytes),
    };
    Some((doc, bytes))
}

/// Writes a synthetic EhrExtract of about `target_bytes` (at least a small complete
/// record) from `seed`: the original entry point — practice B83002, an NHS number drawn
/// from the seed, no demographics, history from 2000 to January 2021, a few small
/// documents ([`RecordPlan::sized`]).
pub fn synthetic_extract_xml(target_bytes: usize, seed: u64) -> String {
    let patient = Demographics {
        nhs_number: nhs_number(seed),
        ..Demographics::default()
    };
    write_record(
        &PracticeProfile::legacy(),
        &patient,
        &RecordPlan::sized(seed, target_bytes as u64),
        target_bytes as u64,
        LEGACY_AS_OF,
    )
}

/// A valid NHS number from a seed (modulus 11 check digit).
fn nhs_number(seed: u64) -> String {
    let mut n = 900_000_000 + (seed % 99_999_999);
    loop {
        let digits: Vec<u64> = n.to_string().bytes().map(|b| u64::from(b - b'0')).collect();
        let sum: u64 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = 11 - sum % 11;
        match check {
            11 => return format!("{n}0"),
            10 => n += 1,
            c => return format!("{n}{c}"),
        }
    }
}

/// The synthetic extract read into the typed model.
pub fn synthetic_extract(target_bytes: usize, seed: u64) -> Result<Message, MessageError> {
    Message::parse(synthetic_extract_xml(target_bytes, seed).as_bytes())
}

/// The synthetic extract as a GP Connect Bundle.
pub fn synthetic_bundle(
    target_bytes: usize,
    seed: u64,
) -> Result<fhir::Bundle, crate::TranslateError> {
    let msg = synthetic_extract(target_bytes, seed)
        .map_err(|e| crate::TranslateError::Invalid(e.to_string()))?;
    let (mut bundle, _) =
        crate::to_fhir::extract_to_bundle(&msg, &crate::to_fhir::ToFhirOptions::default())?;
    let patient = Demographics {
        nhs_number: nhs_number(seed),
        ..Demographics::default()
    };
    let plan = RecordPlan::sized(seed, target_bytes as u64);
    complete(&mut bundle, &PracticeProfile::legacy(), &patient, &plan);
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_2000_both_ways() {
        assert_eq!(date(0), "20000101");
        assert_eq!(date(59), "20000229");
        assert_eq!(date(366), "20010101");
        assert_eq!(date(AS_OF), "20250101");
        assert_eq!(date(LEGACY_AS_OF), "20210119");
        assert_eq!(date(-1), "19991231");
        for d in [-40_000, -1, 0, 59, 60, 366, 7689, 9132, 20_000] {
            let s = date(d);
            let iso = format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]);
            assert_eq!(day_of(&iso), Some(d), "{iso}");
        }
        assert_eq!(day_of("2024-13-01"), None);
        assert_eq!(day_of("20240101"), None);
    }

    #[test]
    fn nhs_numbers_have_valid_check_digits() {
        for seed in 0..50 {
            let n = nhs_number(seed);
            assert_eq!(n.len(), 10);
            let d: Vec<u32> = n.bytes().map(|b| u32::from(b - b'0')).collect();
            let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(a, w)| a * w).sum();
            assert_eq!((11 - sum % 11) % 11, d[9], "{n}");
        }
    }

    #[test]
    fn same_seed_same_bytes_and_about_the_size_asked() {
        let a = synthetic_extract_xml(200_000, 7);
        assert_eq!(a, synthetic_extract_xml(200_000, 7));
        assert_ne!(a, synthetic_extract_xml(200_000, 8));
        assert!(a.len() >= 200_000 && a.len() < 240_000, "{}", a.len());
    }

    #[test]
    fn exp_from_basic_arithmetic_agrees_with_the_library() {
        for i in -400..=400 {
            let x = f64::from(i) / 40.0;
            let (ours, lib) = (exp(x), x.exp());
            assert!((ours - lib).abs() <= lib * 1e-13, "{x}: {ours} vs {lib}");
        }
    }

    #[test]
    fn typical_plans_centre_on_200_kb_with_a_long_tail() {
        let mut sizes: Vec<u64> = (0..20_000)
            .map(|s| RecordPlan::typical(s, Some(38), false).bytes)
            .collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        assert!((170_000..=230_000).contains(&median), "median {median}");
        let p99 = sizes[sizes.len() * 99 / 100];
        assert!(p99 > 1_500_000, "p99 {p99}");
        assert!(sizes[0] >= MIN_RECORD_BYTES);
        assert!(*sizes.last().unwrap() <= MAX_RECORD_BYTES);
        // Children's records are smaller than the old's.
        let child: u64 = (0..500)
            .map(|s| RecordPlan::typical(s, Some(3), false).bytes)
            .sum();
        let old: u64 = (0..500)
            .map(|s| RecordPlan::typical(s, Some(85), false).bytes)
            .sum();
        assert!(child * 2 < old, "{child} vs {old}");
    }

    #[test]
    fn plans_are_deterministic_and_their_text_reads_back() {
        for seed in 0..200 {
            let a = RecordPlan::typical(seed, Some(60), true);
            assert_eq!(a, RecordPlan::typical(seed, Some(60), true));
            let text = a.documents_text();
            assert_eq!(RecordPlan::parse_documents(&text).unwrap(), a.documents);
            for d in &a.documents {
                assert!((MIN_DOCUMENT_BYTES..=MAX_DOCUMENT_BYTES).contains(&d.bytes));
            }
            let ids: std::collections::HashSet<String> =
                a.planned_documents().into_iter().map(|d| d.id).collect();
            assert_eq!(ids.len(), a.documents.len());
        }
        assert_eq!(RecordPlan::parse_documents("").unwrap(), vec![]);
        assert!(RecordPlan::parse_documents("pdf:12,tiff:4").is_err());
        assert!(RecordPlan::parse_documents("pdf").is_err());
        assert!(RecordPlan::parse_documents("png:many").is_err());
    }

    fn child() -> Demographics {
        Demographics {
            nhs_number: "9990000018".into(),
            family: Some("Okonjo".into()),
            given: Some("Ada".into()),
            prefix: Some("Miss".into()),
            gender: Some("female".into()),
            birth_date: Some("2019-03-02".into()),
            address_lines: vec!["4 Mill Lane".into(), "Otley".into()],
            postcode: Some("LS21 1AB".into()),
        }
    }

    #[test]
    fn a_record_keeps_to_the_patients_life_and_files_every_planned_document() {
        let plan = RecordPlan {
            seed: 11,
            bytes: 150_000,
            documents: vec![
                DocumentPlan {
                    kind: DocumentKind::Pdf,
                    bytes: 5_000,
                },
                DocumentPlan {
                    kind: DocumentKind::Png,
                    bytes: 9_000,
                },
            ],
        };
        let xml = record_xml(&PracticeProfile::legacy(), &child(), &plan);
        assert_eq!(xml, record_xml(&PracticeProfile::legacy(), &child(), &plan));
        assert!(xml.contains(r#"extension="9990000018""#));
        for d in plan.planned_documents() {
            assert!(xml.contains(&format!("file://localhost/{}", d.file_name())));
        }
        // Vaccinations on the childhood schedule.
        assert!(xml.contains("414259000"), "first DTaP/IPV/Hib");
        // Nothing before birth: every center/low value is on or after 2019-03-02.
        for part in xml.split("<center value=\"").skip(1) {
            let d = &part[..8];
            assert!(("20190302"..="20250101").contains(&d), "{d}");
        }
    }

    /// A PDF's cross-reference table points at its objects, and the trailer at the table.
    fn check_pdf(bytes: &[u8]) {
        // Binary bytes (the header's marker, pixels) as '?', so offsets stay offsets.
        let ascii: Vec<u8> = bytes
            .iter()
            .map(|&b| if b < 0x80 { b } else { b'?' })
            .collect();
        let text = String::from_utf8(ascii).unwrap();
        assert!(text.starts_with("%PDF-1.4\n"));
        assert!(text.ends_with("%%EOF\n"));
        let sx = text.rfind("startxref\n").unwrap();
        let start: usize = text[sx + 10..].lines().next().unwrap().parse().unwrap();
        assert!(text[start..].starts_with("xref\n0 "));
        let mut lines = text[start..].lines().skip(1);
        let n: usize = lines.next().unwrap()[2..].parse().unwrap();
        assert!(lines.next().unwrap().starts_with("0000000000 65535 f"));
        for obj in 1..n {
            let off: usize = lines.next().unwrap()[..10].parse().unwrap();
            assert!(
                text[off..].starts_with(&format!("{obj} 0 obj\n")),
                "object {obj} at {off}"
            );
        }
        // Every stream is as long as it says.
        for (i, _) in text.match_indices("/Length ") {
            let len: usize = text[i + 8..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let s = i + text[i..].find("stream\n").unwrap() + 7;
            assert!(text[s + len..].trim_start().starts_with("endstream"));
        }
    }

    /// A PNG's chunks have right CRCs and its stored deflate stream holds exactly the
    /// image's rows, with the right Adler-32.
    fn check_png(bytes: &[u8]) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let mut at = 8;
        let mut idat = Vec::new();
        let (mut width, mut height) = (0usize, 0usize);
        let mut kinds = Vec::new();
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let kind = &bytes[at + 4..at + 8];
            let data = &bytes[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(bytes[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(documents::crc32(&bytes[at + 4..at + 8 + len]), crc);
            match kind {
                b"IHDR" => {
                    width = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
                    height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                    assert_eq!(&data[8..], &[8, 0, 0, 0, 0]);
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            kinds.push(String::from_utf8_lossy(kind).to_string());
            at += 12 + len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(kinds.first().map(String::as_str), Some("IHDR"));
        assert_eq!(kinds.last().map(String::as_str), Some("IEND"));
        // zlib header, stored blocks, Adler-32.
        assert_eq!(&idat[..2], &[0x78, 0x01]);
        let mut raw = Vec::new();
        let mut p = 2;
        loop {
            let last = idat[p] & 1 == 1;
            assert_eq!(idat[p] >> 1, 0, "stored blocks only");
            let len = u16::from_le_bytes([idat[p + 1], idat[p + 2]]) as usize;
            let nlen = u16::from_le_bytes([idat[p + 3], idat[p + 4]]) as usize;
            assert_eq!(len ^ 0xFFFF, nlen);
            raw.extend_from_slice(&idat[p + 5..p + 5 + len]);
            p += 5 + len;
            if last {
                break;
            }
        }
        assert_eq!(raw.len(), height * (width + 1));
        let adler = u32::from_be_bytes(idat[p..p + 4].try_into().unwrap());
        assert_eq!(adler, documents_adler(&raw));
        assert_eq!(p + 4, idat.len());
    }

    fn documents_adler(raw: &[u8]) -> u32 {
        let (mut a, mut b) = (1u64, 0u64);
        for &x in raw {
            a = (a + u64::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        ((b << 16) | a) as u32
    }

    #[test]
    fn documents_are_valid_and_exactly_the_planned_size() {
        for bytes in [
            1, 1024, 1025, 1500, 4_000, 65_000, 70_000, 250_000, 2_500_000, 3_700_001,
        ] {
            let pdf = documents::pdf(bytes, "Discharge summary\nPatient: (Ada) O\\kon", bytes);
            assert_eq!(
                pdf.len() as u64,
                bytes.max(MIN_DOCUMENT_BYTES),
                "pdf {bytes}"
            );
            check_pdf(&pdf);
            let png = documents::png(bytes, "Radiology report", bytes);
            assert_eq!(
                png.len() as u64,
                bytes.max(MIN_DOCUMENT_BYTES),
                "png {bytes}"
            );
            check_png(&png);
        }
    }

    #[test]
    fn document_bytes_are_found_by_id_and_never_change() {
        let plan = RecordPlan::typical(5, Some(70), true);
        let docs = plan.planned_documents();
        assert!(!docs.is_empty());
        for d in &docs {
            let (found, bytes) = document_bytes(&plan, &child(), &d.id).unwrap();
            assert_eq!(&found, d);
            assert_eq!(bytes.len() as u64, d.bytes);
            let again = document_bytes(&plan, &child(), &d.id.to_lowercase())
                .unwrap()
                .1;
            assert_eq!(bytes, again);
        }
        assert!(document_bytes(&plan, &child(), "not-a-document").is_none());
    }
}
