//! The synthetic population: practices and their patients, all drawn from one seed.
//!
//! Nothing here touches a disk or a clock: [`Population::draw`] turns `(practices,
//! patients, seed, attachments)` into the same practices, SDS entries, PDS demographics and
//! record plans every time. Each patient's draws come from their own generator (the seed
//! and their place in the population), so the population is the same however it is
//! produced.
//!
//! - Practices: ODS codes in the GP practice shape (a letter and five digits), a name and an
//!   address in one of England's towns with a postcode of that town's area, a telephone
//!   number in Ofcom's ranges for drama (never a real line), the supplier of their clinical
//!   system (five fictional ones, so that neighbouring practices mostly differ), one
//!   accredited system each with its ASID, party key and CPA id. List sizes vary the way
//!   real ones do (log-normal around the mean).
//! - Patients: NHS numbers in the `999` range — never issued to a person, kept for testing —
//!   in an order drawn from the seed; a name, sex, date of birth (an age mix like
//!   England's), an address near their practice, a date of registration, and the plan of
//!   their record ([`RecordPlan::typical`]).

use std::collections::HashSet;

use translate::synthetic::{Demographics, PracticeProfile, RecordPlan, Rng, log_normal};

/// The most patients the `999` range holds with room to spare (it has about 909,000 valid
/// numbers).
pub const MAX_PATIENTS: usize = 900_000;
/// The most practices a population may have.
pub const MAX_PRACTICES: usize = 10_000;

/// The suppliers of clinical systems (fictional), with their ODS codes and market shares
/// (percent).
pub const SUPPLIERS: &[(&str, &str, u64)] = &[
    ("Aldermoor Clinical Systems", "YAL01", 38),
    ("Brightwater Health Software", "YBW02", 27),
    ("Cobalt GP", "YCB03", 15),
    ("Dunmore Medical IT", "YDM04", 12),
    ("Elmstead Systems", "YES05", 8),
];

/// A practice of the population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPractice {
    pub profile: PracticeProfile,
    /// Index into [`SUPPLIERS`].
    pub supplier: usize,
    pub asid: String,
    pub party_key: String,
    pub cpa_id: String,
    /// Its patients: `patients[first..first + count]`.
    pub first: usize,
    pub count: usize,
}

/// A patient of the population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPatient {
    pub demographics: Demographics,
    /// Unix milliseconds.
    pub registered_at: i64,
    pub plan: RecordPlan,
    /// Index into the practices.
    pub practice: usize,
}

/// Everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    pub practices: Vec<SeedPractice>,
    /// In practice order.
    pub patients: Vec<SeedPatient>,
}

/// A town: name, postcode area, and a telephone area code with its drama range.
const TOWNS: &[(&str, &str, &str)] = &[
    ("Leeds", "LS", "0113 496 0"),
    ("Sheffield", "S", "0114 496 0"),
    ("Nottingham", "NG", "0115 496 0"),
    ("Leicester", "LE", "0116 496 0"),
    ("Bristol", "BS", "0117 496 0"),
    ("Reading", "RG", "0118 496 0"),
    ("Birmingham", "B", "0121 496 0"),
    ("Manchester", "M", "0161 496 0"),
    ("Newcastle upon Tyne", "NE", "0191 498 0"),
    ("London", "SE", "020 7946 0"),
    ("Halifax", "HX", "01632 960"),
    ("Harrogate", "HG", "01632 960"),
    ("Lancaster", "LA", "01632 960"),
    ("Norwich", "NR", "01632 960"),
    ("Exeter", "EX", "01632 960"),
];

const STREETS: &[&str] = &[
    "Church Road",
    "Station Road",
    "High Street",
    "Mill Lane",
    "Park Avenue",
    "Victoria Road",
    "Manor Way",
    "Chapel Street",
    "Queens Road",
    "Kings Drive",
    "Meadow Close",
    "Orchard Grove",
    "Bridge Street",
    "Albert Terrace",
    "Springfield Road",
    "Woodland View",
    "Castle Hill",
    "Market Place",
    "Green Lane",
    "Beech Crescent",
    "Canal Side",
    "Moor Lane",
    "Elm Walk",
    "Hawthorn Rise",
];

const PRACTICE_NAMES: &[&str] = &[
    "{street} Surgery",
    "{town} Medical Centre",
    "{street} Health Centre",
    "The {street} Practice",
    "{town} Family Practice",
    "{family} and Partners",
];

const FAMILY: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Khan", "Wood", "Jackson", "Clarke", "Hussain", "Lewis", "Harris", "Martin", "Cooper", "Hill",
    "Ward", "Hughes", "Moore", "Clark", "King", "Harrison", "Morgan", "Baker", "Begum", "Ali",
    "Nowak", "Kowalski", "Okafor", "Mensah", "Nguyen", "Chen", "Murphy", "O'Connor", "Kelly",
    "Campbell", "Stewart", "Ahmed", "Shah", "Singh", "Kaur", "Ibrahim", "Rossi", "Silva", "Santos",
    "Novak", "Adeyemi", "Owusu",
];

const GIVEN_FEMALE: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophia", "Lily", "Freya", "Emily",
    "Margaret", "Susan", "Patricia", "Jean", "Linda", "Helen", "Sarah", "Claire", "Emma",
    "Rebecca", "Fatima", "Aisha", "Priya", "Zofia", "Chioma", "Mei", "Siobhan", "Ewa",
];

const GIVEN_MALE: &[&str] = &[
    "Oliver", "George", "Noah", "Arthur", "Leo", "Harry", "Oscar", "Jack", "Muhammad", "Charlie",
    "John", "David", "Michael", "Peter", "Robert", "Paul", "Andrew", "James", "Mark", "Daniel",
    "Thomas", "Imran", "Rahul", "Tomasz", "Chidi", "Wei", "Sean", "Kwame",
];

/// Letters for the inward part of a postcode (never C, I, K, M, O or V).
const INWARD: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// Days after 1970-01-01 of 2025-01-01, the day records are written up to.
const AS_OF_UNIX_DAY: i64 = 20_089;
const DAY_MS: i64 = 86_400_000;

/// A civil date from days after 1970-01-01, as `YYYY-MM-DD`.
fn iso_date(unix_day: i64) -> String {
    let z = unix_day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A generator for one thing of the population: the seed, what it is, and which.
fn rng_for(seed: u64, what: u64, index: u64) -> Rng {
    let mut r = Rng::new(seed ^ what.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mix = r.next_u64() ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    Rng::new(mix)
}

const PRACTICE: u64 = 1;
const PATIENT: u64 = 2;
const NUMBERS: u64 = 3;
const SIZES: u64 = 4;

/// An outward code in the town's area: the area letters and a district number.
fn outward(area: &str, rng: &mut Rng) -> String {
    format!("{area}{}", 1 + rng.below(20))
}

fn postcode(outward: &str, rng: &mut Rng) -> String {
    let a = char::from(*rng.pick(INWARD));
    let b = char::from(*rng.pick(INWARD));
    format!("{outward} {}{a}{b}", rng.below(10))
}

impl Population {
    /// Draws the population. `practices` must be at least 1; `patients` at most
    /// [`MAX_PATIENTS`].
    pub fn draw(
        practices: usize,
        patients: usize,
        seed: u64,
        large_attachments: bool,
    ) -> Population {
        let practices = practices.clamp(1, MAX_PRACTICES);
        let patients = patients.min(MAX_PATIENTS);

        // List sizes: log-normal weights, then whole numbers adding up to `patients`, each
        // practice at least one patient when there are enough.
        let mut sizes = rng_for(seed, SIZES, 0);
        let weights: Vec<u64> = (0..practices)
            .map(|_| log_normal(&mut sizes, 1000.0, 0.5, 200, 5000))
            .collect();
        let total: u64 = weights.iter().sum();
        let floor = usize::from(patients >= practices);
        let spare = patients - floor * practices;
        let mut counts: Vec<usize> = weights
            .iter()
            .map(|w| floor + (spare as u128 * u128::from(*w) / u128::from(total)) as usize)
            .collect();
        let mut short = patients - counts.iter().sum::<usize>();
        let mut i = 0;
        while short > 0 {
            counts[i % practices] += 1;
            short -= 1;
            i += 1;
        }

        let mut used_ods = HashSet::new();
        let mut used_asid = HashSet::new();
        let mut previous_supplier = usize::MAX;
        let mut list = Vec::with_capacity(practices);
        let mut first = 0;
        for (p, &count) in counts.iter().enumerate() {
            let mut r = rng_for(seed, PRACTICE, p as u64);
            let ods = loop {
                let letter = char::from(*r.pick(b"ABCDEFGHJKLMNPY"));
                let code = format!("{letter}{}", 10_000 + r.below(90_000));
                // Keep clear of the practices the conformance corpus names.
                let known = ["A82038", "B86041", "B83002", "C81007", "B86047"];
                if !known.contains(&code.as_str()) && used_ods.insert(code.clone()) {
                    break code;
                }
            };
            let asid = loop {
                let a = (200_000_000_000 + r.below(700_000_000_000)).to_string();
                if used_asid.insert(a.clone()) {
                    break a;
                }
            };
            // Neighbours mostly run different systems: draw again (twice at most) when the
            // supplier is the previous practice's.
            let mut supplier = draw_supplier(&mut r);
            for _ in 0..2 {
                if supplier != previous_supplier {
                    break;
                }
                supplier = draw_supplier(&mut r);
            }
            previous_supplier = supplier;
            let &(town, area, phone) = r.pick(TOWNS);
            let street = *r.pick(STREETS);
            let partner = *r.pick(FAMILY);
            let name = r
                .pick(PRACTICE_NAMES)
                .replace(
                    "{street}",
                    street.trim_end_matches(" Road").trim_end_matches(" Street"),
                )
                .replace("{town}", town)
                .replace("{family}", partner);
            let out = outward(area, &mut r);
            let profile = PracticeProfile {
                ods: ods.clone(),
                name,
                address_lines: vec![format!("{} {street}", 1 + r.below(200)), town.to_string()],
                postcode: postcode(&out, &mut r),
                phone: format!("{phone}{:03}", r.below(1000)),
            };
            list.push(SeedPractice {
                profile,
                supplier,
                asid,
                party_key: format!("{ods}-{}", 800_000 + r.below(200_000)),
                cpa_id: format!("S{:05}A{:06}", 20_000 + p, r.below(1_000_000)),
                first,
                count,
            });
            first += count;
        }

        // NHS numbers: an affine walk over the million stems 999 000 000 to 999 999 999
        // (a multiplier prime to 10^6 makes it a permutation), skipping the stems no check
        // digit fits.
        let mut n = rng_for(seed, NUMBERS, 0);
        let multiplier = loop {
            let m = 1 + n.below(999_999);
            if !m.is_multiple_of(2) && !m.is_multiple_of(5) {
                break m;
            }
        };
        let offset = n.below(1_000_000);
        let mut k = 0u64;
        let mut numbers = Vec::with_capacity(patients);
        while numbers.len() < patients && k < 1_000_000 {
            let stem = 999_000_000 + (multiplier * k + offset) % 1_000_000;
            k += 1;
            if let Some(nhs) = u32::try_from(stem)
                .ok()
                .and_then(nhsid::NhsNumber::from_stem)
            {
                numbers.push(nhs.to_string());
            }
        }

        let mut people = Vec::with_capacity(patients);
        for (p, practice) in list.iter().enumerate() {
            let area = practice
                .profile
                .postcode
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .to_string();
            let town = practice
                .profile
                .address_lines
                .last()
                .cloned()
                .unwrap_or_default();
            for i in practice.first..practice.first + practice.count {
                let nhs = numbers.get(i).cloned().unwrap_or_default();
                people.push(patient(
                    seed,
                    i as u64,
                    nhs,
                    &area,
                    &town,
                    p,
                    large_attachments,
                ));
            }
        }
        Population {
            practices: list,
            patients: people,
        }
    }
}

fn draw_supplier(r: &mut Rng) -> usize {
    let mut roll = r.below(100);
    for (i, &(_, _, share)) in SUPPLIERS.iter().enumerate() {
        if roll < share {
            return i;
        }
        roll -= share;
    }
    0
}

/// An age in years with England's mix: about 6% under 5, 15% 5–17, 36% 18–44, 25% 45–64,
/// 13% 65–79, 5% 80 and over.
fn age(r: &mut Rng) -> u32 {
    let (low, high) = match r.below(100) {
        0..=5 => (0, 5),
        6..=20 => (5, 18),
        21..=56 => (18, 45),
        57..=81 => (45, 65),
        82..=94 => (65, 80),
        _ => (80, 101),
    };
    low + r.below(u64::from(high - low)) as u32
}

fn patient(
    seed: u64,
    index: u64,
    nhs_number: String,
    area: &str,
    town: &str,
    practice: usize,
    large_attachments: bool,
) -> SeedPatient {
    let mut r = rng_for(seed, PATIENT, index);
    let female = r.chance(51);
    let years = age(&mut r);
    let birth =
        AS_OF_UNIX_DAY - i64::from(years) * 365 - i64::from(years / 4) - r.below(365) as i64;
    let given = if female {
        *r.pick(GIVEN_FEMALE)
    } else {
        *r.pick(GIVEN_MALE)
    };
    let prefix = match (years, female) {
        (0..=15, _) => None,
        (_, false) => Some("Mr"),
        (_, true) => Some(*r.pick(&["Mrs", "Ms", "Miss"])),
    };
    let out = format!("{area}{}", 1 + r.below(20));
    // Registered here at some point between birth (or 1995) and the end of 2024.
    let since = birth.max(9131);
    let registered = since + r.below((AS_OF_UNIX_DAY - since).max(1) as u64) as i64;
    SeedPatient {
        demographics: Demographics {
            nhs_number,
            family: Some((*r.pick(FAMILY)).to_string()),
            given: Some(given.to_string()),
            prefix: prefix.map(str::to_string),
            gender: Some(if female { "female" } else { "male" }.to_string()),
            birth_date: Some(iso_date(birth)),
            address_lines: vec![
                format!("{} {}", 1 + r.below(250), r.pick(STREETS)),
                town.to_string(),
            ],
            postcode: Some(postcode(&out, &mut r)),
        },
        registered_at: registered * DAY_MS + (8 + r.below(9)) as i64 * 3_600_000,
        plan: RecordPlan::typical(r.next_u64(), Some(years), large_attachments),
        practice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_unix_days() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(AS_OF_UNIX_DAY), "2025-01-01");
        assert_eq!(iso_date(9131), "1995-01-01");
        assert_eq!(iso_date(-1), "1969-12-31");
    }

    #[test]
    fn the_same_seed_draws_the_same_population_and_another_seed_another() {
        let a = Population::draw(7, 900, 42, false);
        assert_eq!(a, Population::draw(7, 900, 42, false));
        let b = Population::draw(7, 900, 43, false);
        assert_ne!(a.patients[0].demographics, b.patients[0].demographics);
        assert_ne!(a.practices[0].profile.ods, b.practices[0].profile.ods);
    }

    #[test]
    fn nhs_numbers_are_valid_unique_and_in_the_test_range() {
        let pop = Population::draw(20, 50_000, 9, false);
        assert_eq!(pop.patients.len(), 50_000);
        let mut seen = HashSet::new();
        for p in &pop.patients {
            let n = &p.demographics.nhs_number;
            assert!(nhsid::NhsNumber::parse(n).is_ok(), "{n}");
            assert!(n.starts_with("999"), "{n}");
            assert!(seen.insert(n.clone()), "{n} twice");
        }
    }

    #[test]
    fn the_range_holds_the_most_patients_allowed() {
        let pop = Population::draw(1, MAX_PATIENTS, 3, false);
        assert_eq!(pop.patients.len(), MAX_PATIENTS);
        assert!(
            pop.patients
                .iter()
                .all(|p| p.demographics.nhs_number.len() == 10)
        );
    }

    #[test]
    fn practices_are_well_formed_differ_from_neighbours_and_share_everyone_out() {
        let pop = Population::draw(50, 100_000, 1, false);
        assert_eq!(pop.practices.len(), 50);
        let counts: Vec<usize> = pop.practices.iter().map(|p| p.count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 100_000);
        assert!(counts.iter().all(|&c| c > 0));
        let (least, most) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(most > &(least * 2), "{counts:?}");
        let mut same = 0;
        for (i, p) in pop.practices.iter().enumerate() {
            assert!(nhsid::OdsCode::parse(&p.profile.ods).is_ok());
            assert_eq!(p.profile.ods.len(), 6);
            assert_eq!(p.asid.len(), 12);
            assert!(nhsid::PartyKey::parse(&p.party_key).is_ok());
            assert!(p.party_key.starts_with(&format!("{}-", p.profile.ods)));
            if i > 0 && pop.practices[i - 1].supplier == p.supplier {
                same += 1;
            }
            for patient in &pop.patients[p.first..p.first + p.count] {
                assert_eq!(patient.practice, i);
                let area: String = p
                    .profile
                    .postcode
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                assert!(
                    patient
                        .demographics
                        .postcode
                        .as_deref()
                        .unwrap()
                        .starts_with(&area)
                );
            }
        }
        assert!(
            same <= 5,
            "{same} practices share their neighbour's supplier"
        );
        let suppliers: HashSet<usize> = pop.practices.iter().map(|p| p.supplier).collect();
        assert!(suppliers.len() >= 4);
    }

    #[test]
    fn ages_and_record_sizes_look_like_a_population() {
        let pop = Population::draw(10, 20_000, 5, false);
        let mut sizes: Vec<u64> = pop.patients.iter().map(|p| p.plan.bytes).collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        assert!((150_000..=260_000).contains(&median), "median {median}");
        let children = pop
            .patients
            .iter()
            .filter(|p| p.demographics.birth_date.as_deref().unwrap() > "2007-01-01")
            .count();
        assert!((3000..=5500).contains(&children), "{children} children");
        for p in &pop.patients {
            let born = p.demographics.birth_date.as_deref().unwrap();
            assert!(("1923-01-01"..="2025-01-01").contains(&born), "{born}");
            let registered = iso_date(p.registered_at.div_euclid(DAY_MS));
            assert!(registered.as_str() >= born && registered.as_str() <= "2025-01-01");
        }
    }
}
