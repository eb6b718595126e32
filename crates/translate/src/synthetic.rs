//! A deterministic synthetic GP record, of any size, for benchmarks, property tests and
//! for seeding simulated patients.
//!
//! [`synthetic_extract_xml`] writes an `RCMR_IN030000UK06` EhrExtract shaped after the
//! conformance corpus: an agent directory of clinicians at one practice, then year after
//! year of consultations (coded observations with values, free-text notes, blood
//! pressures, recalls, referrals), repeat and acute medication with their issues and the
//! odd discontinuation, problems linking to the observations about them, drug and non-drug
//! allergies, pathology reports (specimen, test group, results with reference ranges and
//! comments) and scanned documents. The same `(target_bytes, seed)` always gives the same
//! bytes; the text is written straight into one buffer, so a 100 MB record takes well
//! under a second. [`synthetic_extract`] reads it into the typed model and
//! [`synthetic_bundle`] translates that to a GP Connect Bundle.

use std::fmt::Write;

use hl7v3::{Message, MessageError};

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        let i = self.below(items.len() as u64) as usize;
        &items[i.min(items.len().saturating_sub(1))]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn uuid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
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

const FAMILY: &[&str] = &[
    "Whitcombe",
    "McAvenue",
    "Patel",
    "Okafor",
    "Nguyen",
    "Smith",
];
const GIVEN: &[&str] = &["Peter", "David", "Asha", "Chidi", "Linh", "Sarah"];

/// A date `days` days after 1 January 2000, as HL7 `YYYYMMDD`.
fn date(days: u64) -> String {
    // Civil-from-days (Howard Hinnant), from 2000-03-01 based arithmetic.
    let z = days as i64 + 10957 + 719_468; // days since 1970 + epoch shift
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

struct Gen {
    rng: Rng,
    out: String,
    agents: Vec<String>,
    day: u64,
    ods: &'static str,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Gen {
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
            self.out.push_str(r#"<location typeCode="LOC"><locatedEntity classCode="LOCE"><code code="394730007" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Healthcare related organisation"/><locatedPlace classCode="PLC" determinerCode="INSTANCE"><name>Main Surgery</name></locatedPlace></locatedEntity></location>"#);
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

    fn consultation(&mut self) {
        let when = format!(
            "{}{:02}{:02}00",
            date(self.day),
            8 + self.rng.below(10),
            self.rng.below(60)
        );
        let later = date(self.day + 90 + self.rng.below(200));
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
        if self.rng.chance(8) {
            self.referral(&when);
        }
        if self.rng.chance(20) && !linked.is_empty() {
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
        let end = date(start + 28 * issues);
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
            let on = date(start + 28 * i);
            self.composition_start("196391000000103", "Non-consultation medication data", &on);
            let ms = self.rng.uuid();
            let pid = self.rng.uuid();
            let _ = write!(
                self.out,
                r#"<component typeCode="COMP"><MedicationStatement classCode="SBADM" moodCode="ORD"><id root="{ms}"/><statusCode code="COMPLETE"/><effectiveTime><low value="{on}"/><high value="{}"/></effectiveTime><availabilityTime value="{on}"/><consumable typeCode="CSM"><manufacturedProduct classCode="MANU"><manufacturedMaterial determinerCode="KIND" classCode="MMAT">"#,
                date(start + 28 * i + 28)
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

    fn document(&mut self) {
        let when = date(self.day);
        self.composition_start("24591000000103", "Other report", &when);
        let id = self.rng.uuid();
        let _ = write!(
            self.out,
            r#"<component typeCode="COMP"><NarrativeStatement classCode="OBS" moodCode="EVN"><id root="{id}"/><text>Type: Referral Letter Custodian Org: Main Surgery</text><statusCode code="COMPLETE"/><availabilityTime value="{when}"/>"#
        );
        self.participant("AUT");
        let _ = write!(
            self.out,
            r#"<reference typeCode="REFR"><referredToExternalDocument classCode="DOC" moodCode="EVN"><id root="{id}"/><code code="37251000000104" codeSystem="{SNOMED}" displayName="Other digital signal"/><text mediaType="application/pdf"><reference value="file://localhost/{id}_letter.pdf"/></text></referredToExternalDocument></reference>"#
        );
        self.out.push_str("</NarrativeStatement></component>");
        self.composition_end();
    }
}

/// Writes a synthetic EhrExtract of about `target_bytes` (at least a small complete
/// record) from `seed`.
pub fn synthetic_extract_xml(target_bytes: usize, seed: u64) -> String {
    let mut g = Gen {
        rng: Rng(seed ^ 0x5EED_0F11_0C4A_11ED),
        out: String::with_capacity(target_bytes + 64 * 1024),
        agents: Vec::new(),
        day: 0,
        ods: "B83002",
    };
    let nhs = nhs_number(seed);
    let (msg_id, extract_id, folder_id) = (g.rng.uuid(), g.rng.uuid(), g.rng.uuid());
    let ods = g.ods;
    let _ = write!(
        g.out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<RCMR_IN030000UK06 xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><id root="{msg_id}"/><creationTime value="20210119101500"/><versionCode code="V3NPfIT3.1.10"/><interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="RCMR_IN030000UK06"/><processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/><communicationFunctionRcv typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="200000000205"/></device></communicationFunctionRcv><communicationFunctionSnd typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="200000000359"/></device></communicationFunctionSnd><ControlActEvent classCode="CACT" moodCode="EVN"><author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT"><agentSystemSDS classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="200000000359"/></agentSystemSDS></AgentSystemSDS></author1><subject typeCode="SUBJ" contextConductionInd="false"><EhrExtract classCode="EXTRACT" moodCode="EVN"><id root="{extract_id}"/><statusCode code="COMPLETE"/><availabilityTime value="20210119101500"/><recordTarget typeCode="RCT"><patient classCode="PAT"><id root="2.16.840.1.113883.2.1.4.1" extension="{nhs}"/></patient></recordTarget><author typeCode="AUT"><time value="20210119101500"/><AgentOrgSDS classCode="AGNT"><agentOrganizationSDS classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="{ods}"/></agentOrganizationSDS></AgentOrgSDS></author><destination typeCode="DST"><AgentOrgSDS classCode="AGNT"><agentOrganizationSDS classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="A82038"/></agentOrganizationSDS></AgentOrgSDS></destination><component typeCode="COMP"><ehrFolder classCode="FOLDER" moodCode="EVN"><id root="{folder_id}"/><statusCode code="COMPLETE"/><effectiveTime><low value="20000101"/><high value="20210119"/></effectiveTime><availabilityTime value="20210119101500"/><author typeCode="AUT"><time value="20210119101500"/><AgentOrgSDS classCode="AGNT"><agentOrganizationSDS classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="{ods}"/></agentOrganizationSDS></AgentOrgSDS></author><responsibleParty typeCode="RESP"><agentDirectory classCode="AGNT">
"#
    );
    for i in 0..FAMILY.len() {
        let id = g.rng.uuid();
        let _ = write!(
            g.out,
            r#"<part typeCode="PART"><Agent classCode="AGNT"><id root="{id}"/><code nullFlavor="UNK"><originalText>General Medical Practitioner</originalText></code><agentPerson classCode="PSN" determinerCode="INSTANCE"><name><prefix>Dr</prefix><given>{}</given><family>{}</family></name></agentPerson><representedOrganization classCode="ORG" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.1.10" extension="{ods}"/><name>Main Surgery</name><telecom value="tel:01133800000" use="WP"/><addr use="WP"><streetAddressLine>1 High Street</streetAddressLine><streetAddressLine>Leeds</streetAddressLine><postalCode>LS1 1AA</postalCode></addr></representedOrganization></Agent></part>"#,
            GIVEN[i], FAMILY[i]
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
    let mut first = true;
    while first || g.out.len() + tail.len() < target_bytes {
        first = false;
        g.day += 3 + g.rng.below(20);
        g.consultation();
        match g.rng.below(20) {
            0..=5 => g.medication(),
            6..=8 => g.lab_report(),
            9 => g.allergy(),
            10 | 11 => g.document(),
            _ => {}
        }
        if g.day > 8000 {
            // Over twenty years of history: start again (ids stay unique).
            g.day = 0;
        }
    }
    g.out.push_str(&tail);
    g.out
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
    crate::to_fhir::extract_to_bundle(&msg, &crate::to_fhir::ToFhirOptions::default())
        .map(|(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_2000() {
        assert_eq!(date(0), "20000101");
        assert_eq!(date(59), "20000229");
        assert_eq!(date(366), "20010101");
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
}
