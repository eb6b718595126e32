//! A GP clinical system to run against.
//!
//! GP2GP and GP Connect are conversations between practices' clinical systems. To rehearse
//! them on one machine Lloyd needs practices: each [`Practice`] keeps its registered
//! patients and their records (GP Connect structured FHIR bundles), and an *integration
//! inbox* where records that arrive by GP2GP wait for a person to file them — or for the
//! practice's auto-integration rules to do it.
//!
//! Two promises matter more than anything else here:
//!
//! - **every read of a record is audited** ([`Practice::read_record`],
//!   [`Practice::inbox_record`]): who read whose record, when, and why, in
//!   `practice_audit`;
//! - **a decision is all or nothing**: accepting a record files it and closes the inbox
//!   item in one transaction, and deciding twice is refused.
//!
//! Many practices share one database (the embedded demo runs dozens); every table is keyed
//! by the practice's ODS code. Records live in the payload store, keyed
//! `practice/<ODS>/…`; the database holds the index.
//!
//! ## Seeded practices: records made when read
//!
//! A simulated population is too big to write out (100,000 records of 200 KB each is
//! 20 GB), so a seeded practice ([`Practice::seed`], what `lloyd seed` calls) stores for
//! each patient only a *record plan* — a seed, a size and the documents filed in it
//! ([`translate::synthetic::RecordPlan`]) — next to their demographics, and its own
//! details ([`PracticeProfile`]). [`Practice::read_record`] makes the record from those
//! when the patient has no stored one: the same plan always gives the same Bundle, byte
//! for byte, so to everyone reading it the record simply is there. Attachments are made
//! the same way by [`Practice::read_document`]: a PDF or PNG of exactly the planned size.
//! Both reads are audited like any other. A record that arrives by GP2GP and is filed is
//! stored, and from then on wins over the plan.

use bytes::Bytes;
use clock::SharedClock;
use serde::{Deserialize, Serialize};
use store::sqlx::{self, Row};
use store::{Database, Kind, Migration, PayloadStore};
pub use translate::synthetic::{Demographics, DocumentKind, PracticeProfile, RecordPlan};

/// The practice tables; only the audit trail's self-numbering id is said differently by
/// the two engines.
macro_rules! practice_schema {
    ($audit_id:literal) => {
        concat!(
            "CREATE TABLE practice_patients (
            ods TEXT NOT NULL, nhs_number TEXT NOT NULL, family TEXT, given TEXT,
            birth_date TEXT, gender TEXT, postcode TEXT, status TEXT NOT NULL,
            registered_at BIGINT NOT NULL, record_key TEXT,
            PRIMARY KEY (ods, nhs_number));
        CREATE TABLE practice_inbox (
            ods TEXT NOT NULL, conversation_id TEXT NOT NULL, nhs_number TEXT NOT NULL,
            received_at BIGINT NOT NULL, status TEXT NOT NULL, bundle_key TEXT NOT NULL,
            report TEXT NOT NULL, degrades BIGINT NOT NULL, unmapped BIGINT NOT NULL,
            decided_at BIGINT, decided_by TEXT, decision TEXT, reason TEXT,
            PRIMARY KEY (ods, conversation_id));
        CREATE INDEX practice_inbox_status ON practice_inbox (ods, status, received_at);
        CREATE TABLE practice_audit (
            ",
            $audit_id,
            ", ods TEXT NOT NULL, at BIGINT NOT NULL,
            who TEXT NOT NULL, action TEXT NOT NULL, nhs_number TEXT NOT NULL, detail TEXT NOT NULL);
        CREATE INDEX practice_audit_patient ON practice_audit (ods, nhs_number, at)"
        )
    };
}

/// What seeded practices need: each patient's record plan and address, the practice's
/// own details. The same on both engines.
const LAZY_RECORDS: &str = "ALTER TABLE practice_patients ADD COLUMN prefix TEXT;
    ALTER TABLE practice_patients ADD COLUMN address TEXT;
    ALTER TABLE practice_patients ADD COLUMN record_seed BIGINT;
    ALTER TABLE practice_patients ADD COLUMN record_bytes BIGINT;
    ALTER TABLE practice_patients ADD COLUMN documents TEXT;
    CREATE TABLE practice_profile (
        ods TEXT PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL,
        postcode TEXT NOT NULL, phone TEXT NOT NULL)";

/// The practice service's tables.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "patients, inbox, audit",
        sqlite: practice_schema!("id INTEGER PRIMARY KEY AUTOINCREMENT"),
        postgres: practice_schema!("id BIGSERIAL PRIMARY KEY"),
    },
    Migration {
        version: 2,
        description: "records made when read: plans, addresses, the practice's details",
        sqlite: LAZY_RECORDS,
        postgres: LAZY_RECORDS,
    },
];

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PracticeError {
    #[error("{0} is not an ODS code a practice can have: {1}")]
    BadOds(String, nhsid::IdError),
    #[error("the record has no Patient with an NHS number: a record must say whose it is")]
    NoPatient,
    #[error("{0}")]
    BadNhsNumber(nhsid::IdError),
    #[error("patient {0} is not registered at this practice")]
    UnknownPatient(String),
    #[error("patient {0} has no record at this practice yet")]
    NoRecord(String),
    #[error("nothing in the inbox for conversation {0}")]
    UnknownInboxItem(String),
    #[error(
        "the record for conversation {conversation} was already {decision} on {at}: it cannot be decided twice"
    )]
    AlreadyDecided {
        conversation: String,
        decision: String,
        at: i64,
    },
    #[error("a stored record could not be read back: {0}")]
    Corrupt(String),
    #[error("patient {nhs} has no document {document} at this practice")]
    UnknownDocument { nhs: String, document: String },
    #[error(
        "practice {0} has seeded patients but no details of its own (name, address): seed it again with lloyd seed --force"
    )]
    NoProfile(String),
    #[error("the record of patient {nhs} could not be made from its plan: {reason}")]
    Generate { nhs: String, reason: String },
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("payload storage: {0}")]
    Payload(#[from] store::PayloadError),
}

/// A patient as the practice lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientSummary {
    pub nhs_number: String,
    pub family: Option<String>,
    pub given: Option<String>,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub postcode: Option<String>,
    /// `registered` or `left`.
    pub status: String,
    pub registered_at: i64,
    pub has_record: bool,
}

/// Who is registering (demographics as traced on PDS).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Registration {
    pub nhs_number: String,
    pub family: Option<String>,
    pub given: Option<String>,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub postcode: Option<String>,
}

impl Registration {
    /// The demographics of the Patient in a Bundle's JSON, reading only that resource: the
    /// Bundle's entries are skipped over as text, not parsed into the model.
    pub fn from_record_json(json: &[u8]) -> Result<Registration, PracticeError> {
        #[derive(Deserialize)]
        struct Entries<'a> {
            #[serde(borrow, default)]
            entry: Vec<Entry<'a>>,
        }
        #[derive(Deserialize)]
        struct Entry<'a> {
            #[serde(borrow, default)]
            resource: Option<&'a serde_json::value::RawValue>,
        }
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "resourceType", borrow, default)]
            resource_type: Option<std::borrow::Cow<'a, str>>,
        }
        let corrupt = |e: serde_json::Error| PracticeError::Corrupt(e.to_string());
        let entries: Entries = serde_json::from_slice(json).map_err(corrupt)?;
        for raw in entries.entry.iter().filter_map(|e| e.resource) {
            let kind: Kind = serde_json::from_str(raw.get()).map_err(corrupt)?;
            if kind.resource_type.as_deref() == Some("Patient") {
                let one = format!(
                    r#"{{"resourceType":"Bundle","type":"collection","entry":[{{"resource":{}}}]}}"#,
                    raw.get()
                );
                return Registration::from_record(&decode(one.as_bytes())?);
            }
        }
        Err(PracticeError::NoPatient)
    }

    /// The demographics of a record's Patient.
    pub fn from_record(record: &fhir::Bundle) -> Result<Registration, PracticeError> {
        let patient = record
            .resources_of::<fhir::Patient>()
            .next()
            .ok_or(PracticeError::NoPatient)?;
        let nhs = patient.nhs_number().ok_or(PracticeError::NoPatient)?;
        let name = patient.name.first();
        Ok(Registration {
            nhs_number: nhs.to_string(),
            family: name.and_then(|n| n.family.clone()),
            given: name.and_then(|n| n.given.first().cloned()),
            birth_date: patient.birth_date.as_ref().map(|d| d.as_str().to_string()),
            gender: patient.gender.clone(),
            postcode: patient.address.first().and_then(|a| a.postal_code.clone()),
        })
    }
}

/// Where an inbox item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxStatus {
    Pending,
    Accepted,
    Rejected,
}

impl InboxStatus {
    fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Pending => "pending",
            InboxStatus::Accepted => "accepted",
            InboxStatus::Rejected => "rejected",
        }
    }
    fn parse(s: &str) -> Option<InboxStatus> {
        match s {
            "pending" => Some(InboxStatus::Pending),
            "accepted" => Some(InboxStatus::Accepted),
            "rejected" => Some(InboxStatus::Rejected),
            _ => None,
        }
    }
}

/// What the practice decided about a record; each maps to a GP2GP final acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Filed as the patient's record (AA).
    Integrated,
    /// The patient already had a record here (a returning patient): the one received was
    /// filed beside it as an attachment (26).
    FiledAsAttachment,
    /// Not this patient's record (28).
    WrongPatient,
    /// Could not be filed (11).
    FailedToIntegrate,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Integrated => "integrated",
            Decision::FiledAsAttachment => "filed_as_attachment",
            Decision::WrongPatient => "wrong_patient",
            Decision::FailedToIntegrate => "failed_to_integrate",
        }
    }
    fn parse(s: &str) -> Option<Decision> {
        match s {
            "integrated" => Some(Decision::Integrated),
            "filed_as_attachment" => Some(Decision::FiledAsAttachment),
            "wrong_patient" => Some(Decision::WrongPatient),
            "failed_to_integrate" => Some(Decision::FailedToIntegrate),
            _ => None,
        }
    }
}

/// Why a person rejected a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    WrongPatient,
    FailedToIntegrate,
}

/// A record waiting in (or decided from) the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxItem {
    pub conversation_id: String,
    pub nhs_number: String,
    pub received_at: i64,
    pub status: InboxStatus,
    /// The translation report (counts, degrades, unmapped items) as it came.
    pub report: serde_json::Value,
    pub degrades: i64,
    pub unmapped: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub decision: Option<Decision>,
    pub reason: Option<String>,
}

/// When records are filed without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AutoIntegration {
    /// Off unless asked for: filing is a clinical decision.
    pub enabled: bool,
}

/// A record arriving for the inbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub conversation_id: String,
    /// The record: a GP Connect structured Bundle's JSON. It is stored as it comes; only
    /// its Patient is read here (a large record is never parsed whole on arrival).
    pub record: Bytes,
    /// The translation report, as JSON (`translate::Report`).
    pub report: serde_json::Value,
}

impl Delivery {
    /// A delivery of a record held as a Bundle.
    pub fn of_bundle(
        conversation_id: impl Into<String>,
        record: &fhir::Bundle,
        report: serde_json::Value,
    ) -> Result<Delivery, PracticeError> {
        Ok(Delivery {
            conversation_id: conversation_id.into(),
            record: encode(record)?,
            report,
        })
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    pub who: String,
    pub action: String,
    pub nhs_number: String,
    pub detail: String,
}

/// A patient of a seeded practice: who they are, since when they are registered, and the
/// plan their record is made from when it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededPatient {
    pub demographics: Demographics,
    /// Unix milliseconds.
    pub registered_at: i64,
    pub plan: RecordPlan,
}

/// An attachment of a patient's record, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The id of the `DocumentReference` that files it.
    pub id: String,
    /// `application/pdf`, `image/png`.
    pub content_type: String,
    /// `{id}.pdf`, `{id}.png`: the attachment's title.
    pub file_name: String,
    /// What it is, e.g. `Discharge summary`.
    pub title: String,
    pub bytes: Bytes,
}

/// Rows per multi-row insert when seeding: 14 parameters a row, under SQLite's 32,766.
const SEED_BATCH: usize = 1000;

/// What `practice_patients` knows about a patient's record.
struct RecordSource {
    key: Option<String>,
    seeded: Option<(Demographics, RecordPlan)>,
}

/// One practice's clinical system.
#[derive(Debug, Clone)]
pub struct Practice {
    ods: String,
    db: Database,
    payloads: PayloadStore,
    clock: SharedClock,
    auto: AutoIntegration,
}

const SYSTEM: &str = "system:auto-integration";

impl Practice {
    /// Opens practice `ods` on a shared database (creating the tables on first use).
    pub async fn open(
        ods: &str,
        db: Database,
        payloads: PayloadStore,
        clock: SharedClock,
        auto: AutoIntegration,
    ) -> Result<Practice, PracticeError> {
        let ods =
            nhsid::OdsCode::parse(ods).map_err(|e| PracticeError::BadOds(ods.to_string(), e))?;
        db.migrate("practice", MIGRATIONS).await?;
        Ok(Practice {
            ods: ods.to_string(),
            db,
            payloads,
            clock,
            auto,
        })
    }

    pub fn ods(&self) -> &str {
        &self.ods
    }

    fn record_key(&self, nhs: &str, suffix: &str) -> String {
        format!("practice/{}/records/{nhs}/{suffix}", self.ods)
    }

    /// Registers a patient (with no record yet: it comes by GP2GP). Registering someone
    /// already registered updates their demographics and keeps their record.
    pub async fn register(&self, r: &Registration) -> Result<PatientSummary, PracticeError> {
        let nhs = nhsid::NhsNumber::parse(&r.nhs_number)
            .map_err(PracticeError::BadNhsNumber)?
            .to_string();
        let now = self.clock.now_ms();
        sqlx::query(
            "INSERT INTO practice_patients
                (ods, nhs_number, family, given, birth_date, gender, postcode, status, registered_at, record_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'registered', $8, NULL)
             ON CONFLICT (ods, nhs_number) DO UPDATE SET
                family = $3, given = $4, birth_date = $5, gender = $6, postcode = $7, status = 'registered'",
        )
        .bind(&self.ods)
        .bind(&nhs)
        .bind(&r.family)
        .bind(&r.given)
        .bind(&r.birth_date)
        .bind(&r.gender)
        .bind(&r.postcode)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        self.patient(&nhs)
            .await?
            .ok_or_else(|| PracticeError::UnknownPatient(nhs.clone()))
    }

    /// Registers a patient together with their record (how a seeded practice starts).
    pub async fn add_patient(
        &self,
        record: &fhir::Bundle,
    ) -> Result<PatientSummary, PracticeError> {
        let r = Registration::from_record(record)?;
        self.register(&r).await?;
        let key = self.record_key(&r.nhs_number, "record.json");
        self.payloads.put(&key, encode(record)?).await?;
        sqlx::query(
            "UPDATE practice_patients SET record_key = $3 WHERE ods = $1 AND nhs_number = $2",
        )
        .bind(&self.ods)
        .bind(&r.nhs_number)
        .bind(&key)
        .execute(self.db.pool())
        .await?;
        self.patient(&r.nhs_number)
            .await?
            .ok_or_else(|| PracticeError::UnknownPatient(r.nhs_number.clone()))
    }

    /// Marks a patient as having left (their record stays, for GP2GP to send).
    pub async fn mark_left(&self, nhs: &str) -> Result<(), PracticeError> {
        let done = sqlx::query(
            "UPDATE practice_patients SET status = 'left' WHERE ods = $1 AND nhs_number = $2",
        )
        .bind(&self.ods)
        .bind(nhs)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(PracticeError::UnknownPatient(nhs.to_string()));
        }
        Ok(())
    }

    /// One patient.
    pub async fn patient(&self, nhs: &str) -> Result<Option<PatientSummary>, PracticeError> {
        let row = sqlx::query(
            "SELECT nhs_number, family, given, birth_date, gender, postcode, status, registered_at, record_key, record_seed
             FROM practice_patients WHERE ods = $1 AND nhs_number = $2",
        )
        .bind(&self.ods)
        .bind(nhs)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| patient_from_row(&r)).transpose()
    }

    /// Every patient, by NHS number.
    pub async fn patients(&self) -> Result<Vec<PatientSummary>, PracticeError> {
        let rows = sqlx::query(
            "SELECT nhs_number, family, given, birth_date, gender, postcode, status, registered_at, record_key, record_seed
             FROM practice_patients WHERE ods = $1 ORDER BY nhs_number",
        )
        .bind(&self.ods)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(patient_from_row).collect()
    }

    /// Reads a patient's record, writing who read it and why to the audit trail first. A
    /// stored record is read back; a seeded patient's record is made from its plan.
    pub async fn read_record(
        &self,
        nhs: &str,
        who: &str,
        purpose: &str,
    ) -> Result<fhir::Bundle, PracticeError> {
        let source = self.record_source(nhs).await?;
        if let Some(key) = source.key {
            // The audit line is written before the record is handed out: a read that is
            // not recorded does not happen.
            self.audit(who, "read-record", nhs, purpose).await?;
            return decode(&self.payloads.get(&key).await?);
        }
        self.make_seeded(nhs, source, who, purpose).await
    }

    /// A seeded patient's record made from its plan (the read audited first).
    async fn make_seeded(
        &self,
        nhs: &str,
        source: RecordSource,
        who: &str,
        purpose: &str,
    ) -> Result<fhir::Bundle, PracticeError> {
        let (patient, plan) = source
            .seeded
            .ok_or_else(|| PracticeError::NoRecord(nhs.to_string()))?;
        let profile = self
            .profile()
            .await?
            .ok_or_else(|| PracticeError::NoProfile(self.ods.clone()))?;
        self.audit(who, "read-record", nhs, purpose).await?;
        // Making a large record takes a while: off the async threads.
        let made = spawn_blocking(nhs, move || {
            translate::synthetic::record_bundle(&profile, &patient, &plan)
                .map_err(|e| e.to_string())
        })
        .await?;
        made.map_err(|reason| PracticeError::Generate {
            nhs: nhs.to_string(),
            reason,
        })
    }

    /// Like [`Practice::read_record`] (audited the same way), the record as its Bundle's
    /// JSON: a stored record as it is stored, without parsing it; a seeded one made from
    /// its plan and written out. What a sender translates from, as a stream.
    pub async fn read_record_json(
        &self,
        nhs: &str,
        who: &str,
        purpose: &str,
    ) -> Result<Bytes, PracticeError> {
        let source = self.record_source(nhs).await?;
        if let Some(key) = source.key {
            self.audit(who, "read-record", nhs, purpose).await?;
            return Ok(self.payloads.get(&key).await?);
        }
        let bundle = self.make_seeded(nhs, source, who, purpose).await?;
        spawn_blocking(nhs, move || encode(&bundle)).await?
    }

    /// Reads one attachment of a seeded patient's record (by the id of the
    /// `DocumentReference` that files it, or its file name), writing who read it to the
    /// audit trail first: a PDF or PNG of exactly the size the record says.
    pub async fn read_document(
        &self,
        nhs: &str,
        document_id: &str,
        who: &str,
    ) -> Result<Document, PracticeError> {
        let unknown = || PracticeError::UnknownDocument {
            nhs: nhs.to_string(),
            document: document_id.to_string(),
        };
        let (patient, plan) = self.record_source(nhs).await?.seeded.ok_or_else(unknown)?;
        let wanted = document_id.trim();
        let doc = plan
            .planned_documents()
            .into_iter()
            .find(|d| {
                d.id.eq_ignore_ascii_case(wanted) || d.file_name().eq_ignore_ascii_case(wanted)
            })
            .ok_or_else(unknown)?;
        self.audit(who, "read-document", nhs, &doc.id).await?;
        let id = doc.id.clone();
        let made = spawn_blocking(nhs, move || {
            translate::synthetic::document_bytes(&plan, &patient, &id)
        })
        .await?;
        let (doc, bytes) = made.ok_or_else(unknown)?;
        Ok(Document {
            content_type: doc.kind.content_type().to_string(),
            file_name: doc.file_name(),
            id: doc.id,
            title: doc.title,
            bytes: Bytes::from(bytes),
        })
    }

    /// The plan a seeded patient's record is made from — its seed, size and documents (ids,
    /// kinds and sizes; nothing clinical) — or `None` for a patient without one.
    pub async fn record_plan(&self, nhs: &str) -> Result<Option<RecordPlan>, PracticeError> {
        Ok(self.record_source(nhs).await?.seeded.map(|(_, plan)| plan))
    }

    /// Where a patient's record comes from.
    async fn record_source(&self, nhs: &str) -> Result<RecordSource, PracticeError> {
        let row = sqlx::query(
            "SELECT nhs_number, record_key, record_seed, record_bytes, documents, family, given, prefix,
                    birth_date, gender, postcode, address
             FROM practice_patients WHERE ods = $1 AND nhs_number = $2",
        )
        .bind(&self.ods)
        .bind(nhs)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| PracticeError::UnknownPatient(nhs.to_string()))?;
        let key: Option<String> = row.try_get("record_key")?;
        let Some(seed) = row.try_get::<Option<i64>, _>("record_seed")? else {
            return Ok(RecordSource { key, seeded: None });
        };
        let documents: Option<String> = row.try_get("documents")?;
        let documents = translate::synthetic::RecordPlan::parse_documents(
            documents.as_deref().unwrap_or_default(),
        )
        .map_err(|e| PracticeError::Corrupt(format!("the document plan of {nhs}: {e}")))?;
        let plan = RecordPlan {
            // Stored as the same 64 bits, signed.
            seed: seed as u64,
            bytes: u64::try_from(row.try_get::<Option<i64>, _>("record_bytes")?.unwrap_or(0))
                .unwrap_or(0),
            documents,
        };
        let address: Option<String> = row.try_get("address")?;
        let patient = Demographics {
            nhs_number: row.try_get("nhs_number")?,
            family: row.try_get("family")?,
            given: row.try_get("given")?,
            prefix: row.try_get("prefix")?,
            gender: row.try_get("gender")?,
            birth_date: row.try_get("birth_date")?,
            address_lines: match address {
                Some(a) => serde_json::from_str(&a)
                    .map_err(|e| PracticeError::Corrupt(format!("the address of {nhs}: {e}")))?,
                None => Vec::new(),
            },
            postcode: row.try_get("postcode")?,
        };
        Ok(RecordSource {
            key,
            seeded: Some((patient, plan)),
        })
    }

    /// The practice's own details (name, address, telephone), once seeded.
    pub async fn profile(&self) -> Result<Option<PracticeProfile>, PracticeError> {
        let row = sqlx::query(
            "SELECT name, address, postcode, phone FROM practice_profile WHERE ods = $1",
        )
        .bind(&self.ods)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let address: String = row.try_get("address")?;
        Ok(Some(PracticeProfile {
            ods: self.ods.clone(),
            name: row.try_get("name")?,
            address_lines: serde_json::from_str(&address)
                .map_err(|e| PracticeError::Corrupt(format!("the practice's address: {e}")))?,
            postcode: row.try_get("postcode")?,
            phone: row.try_get("phone")?,
        }))
    }

    /// Seeds the practice: its details, and patients whose records are made when read
    /// (a bulk loader: multi-row inserts in one transaction). All or nothing: a malformed
    /// NHS number, or a patient already registered here, writes nothing at all.
    pub async fn seed(
        &self,
        profile: &PracticeProfile,
        patients: &[SeededPatient],
    ) -> Result<(), PracticeError> {
        if profile.ods != self.ods {
            return Err(PracticeError::BadOds(
                profile.ods.clone(),
                nhsid::IdError::OdsCode(format!("{} (this practice is {})", profile.ods, self.ods)),
            ));
        }
        let mut rows = Vec::with_capacity(patients.len());
        for p in patients {
            let nhs = nhsid::NhsNumber::parse(&p.demographics.nhs_number)
                .map_err(PracticeError::BadNhsNumber)?
                .to_string();
            let address = serde_json::to_string(&p.demographics.address_lines)
                .map_err(|e| PracticeError::Corrupt(e.to_string()))?;
            rows.push((nhs, address, p));
        }
        let address = serde_json::to_string(&profile.address_lines)
            .map_err(|e| PracticeError::Corrupt(e.to_string()))?;
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO practice_profile (ods, name, address, postcode, phone) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (ods) DO UPDATE SET name = $2, address = $3, postcode = $4, phone = $5",
        )
        .bind(&self.ods)
        .bind(&profile.name)
        .bind(address)
        .bind(&profile.postcode)
        .bind(&profile.phone)
        .execute(&mut *tx)
        .await?;
        const COLUMNS: usize = 14;
        for chunk in rows.chunks(SEED_BATCH) {
            let mut sql = String::from(
                "INSERT INTO practice_patients (ods, nhs_number, family, given, prefix, birth_date, gender,
                    postcode, address, status, registered_at, record_seed, record_bytes, documents) VALUES ",
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "(" } else { ",(" });
                for c in 0..COLUMNS {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&store::placeholder(self.db.kind(), i * COLUMNS + c + 1));
                }
                sql.push(')');
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (nhs, address, p) in chunk {
                let d = &p.demographics;
                q = q
                    .bind(self.ods.clone())
                    .bind(nhs.clone())
                    .bind(d.family.clone())
                    .bind(d.given.clone())
                    .bind(d.prefix.clone())
                    .bind(d.birth_date.clone())
                    .bind(d.gender.clone())
                    .bind(d.postcode.clone())
                    .bind(address.clone())
                    .bind("registered")
                    .bind(p.registered_at)
                    // The seed's 64 bits, stored signed.
                    .bind(p.plan.seed as i64)
                    .bind(i64::try_from(p.plan.bytes).unwrap_or(i64::MAX))
                    .bind(p.plan.documents_text());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit(
        &self,
        who: &str,
        action: &str,
        nhs: &str,
        detail: &str,
    ) -> Result<(), PracticeError> {
        sqlx::query("INSERT INTO practice_audit (ods, at, who, action, nhs_number, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&self.ods)
            .bind(self.clock.now_ms())
            .bind(who)
            .bind(action)
            .bind(nhs)
            .bind(detail)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The audit trail, oldest first, for one patient or everyone.
    pub async fn audit_log(&self, nhs: Option<&str>) -> Result<Vec<AuditEntry>, PracticeError> {
        let rows = match nhs {
            Some(n) => {
                sqlx::query(
                    "SELECT at, who, action, nhs_number, detail FROM practice_audit
                     WHERE ods = $1 AND nhs_number = $2 ORDER BY at, id",
                )
                .bind(&self.ods)
                .bind(n)
                .fetch_all(self.db.pool())
                .await?
            }
            None => {
                sqlx::query("SELECT at, who, action, nhs_number, detail FROM practice_audit WHERE ods = $1 ORDER BY at, id")
                    .bind(&self.ods)
                    .fetch_all(self.db.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    who: r.try_get("who")?,
                    action: r.try_get("action")?,
                    nhs_number: r.try_get("nhs_number")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// A record has arrived by GP2GP: put it in the inbox (once per conversation: a second
    /// delivery of the same conversation returns the item as it stands). With
    /// auto-integration on, a record for a registered patient whose demographics match
    /// and that arrived with nothing degraded or left behind is filed at once.
    pub async fn deliver(&self, d: Delivery) -> Result<InboxItem, PracticeError> {
        let received = Registration::from_record_json(&d.record)?;
        if let Some(existing) = self.inbox_item(&d.conversation_id).await? {
            return Ok(existing);
        }
        let key = self.record_key(
            &received.nhs_number,
            &format!("inbox-{}.json", d.conversation_id),
        );
        self.payloads.put(&key, d.record).await?;
        let count = |field: &str| {
            d.report
                .get(field)
                .and_then(|v| v.as_array())
                .map_or(0, |a| i64::try_from(a.len()).unwrap_or(i64::MAX))
        };
        let (degrades, unmapped) = (count("degrades"), count("unmapped"));
        sqlx::query(
            "INSERT INTO practice_inbox
                (ods, conversation_id, nhs_number, received_at, status, bundle_key, report, degrades, unmapped)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8)
             ON CONFLICT (ods, conversation_id) DO NOTHING",
        )
        .bind(&self.ods)
        .bind(&d.conversation_id)
        .bind(&received.nhs_number)
        .bind(self.clock.now_ms())
        .bind(&key)
        .bind(d.report.to_string())
        .bind(degrades)
        .bind(unmapped)
        .execute(self.db.pool())
        .await?;
        if self.auto.enabled
            && degrades == 0
            && unmapped == 0
            && self.demographics_match(&received).await?
        {
            match self.decide(&d.conversation_id, SYSTEM, None).await {
                // A clinician filed it between the insert and now: their decision stands.
                Ok(_) | Err(PracticeError::AlreadyDecided { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.inbox_item(&d.conversation_id)
            .await?
            .ok_or_else(|| PracticeError::UnknownInboxItem(d.conversation_id.clone()))
    }

    async fn demographics_match(&self, received: &Registration) -> Result<bool, PracticeError> {
        let Some(p) = self.patient(&received.nhs_number).await? else {
            return Ok(false);
        };
        let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
            _ => true,
        };
        Ok(p.status == "registered"
            && same(&p.family, &received.family)
            && same(&p.birth_date, &received.birth_date))
    }

    /// The inbox, newest first, optionally only items of one status.
    pub async fn inbox(
        &self,
        status: Option<InboxStatus>,
    ) -> Result<Vec<InboxItem>, PracticeError> {
        let rows = sqlx::query(
            "SELECT conversation_id, nhs_number, received_at, status, report, degrades, unmapped,
                    decided_at, decided_by, decision, reason
             FROM practice_inbox WHERE ods = $1 AND ($2 = '' OR status = $2)
             ORDER BY received_at DESC, conversation_id",
        )
        .bind(&self.ods)
        .bind(status.map_or("", InboxStatus::as_str))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(inbox_from_row).collect()
    }

    /// One inbox item, without its record.
    pub async fn inbox_item(
        &self,
        conversation_id: &str,
    ) -> Result<Option<InboxItem>, PracticeError> {
        let row = sqlx::query(
            "SELECT conversation_id, nhs_number, received_at, status, report, degrades, unmapped,
                    decided_at, decided_by, decision, reason
             FROM practice_inbox WHERE ods = $1 AND conversation_id = $2",
        )
        .bind(&self.ods)
        .bind(conversation_id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(inbox_from_row).transpose()
    }

    /// The record of an inbox item, for a person deciding about it (audited).
    pub async fn inbox_record(
        &self,
        conversation_id: &str,
        who: &str,
    ) -> Result<fhir::Bundle, PracticeError> {
        let row = sqlx::query("SELECT nhs_number, bundle_key FROM practice_inbox WHERE ods = $1 AND conversation_id = $2")
            .bind(&self.ods)
            .bind(conversation_id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| PracticeError::UnknownInboxItem(conversation_id.to_string()))?;
        let nhs: String = row.try_get("nhs_number")?;
        let key: String = row.try_get("bundle_key")?;
        self.audit(who, "read-inbox-record", &nhs, conversation_id)
            .await?;
        decode(&self.payloads.get(&key).await?)
    }

    /// Files an inbox record: it becomes the patient's record, or — when they already
    /// have one here — is filed beside it as an attachment.
    pub async fn accept(
        &self,
        conversation_id: &str,
        who: &str,
    ) -> Result<Decision, PracticeError> {
        self.decide(conversation_id, who, None).await
    }

    /// Rejects an inbox record.
    pub async fn reject(
        &self,
        conversation_id: &str,
        who: &str,
        why: Rejection,
        note: &str,
    ) -> Result<Decision, PracticeError> {
        self.decide(conversation_id, who, Some((why, note))).await
    }

    async fn decide(
        &self,
        conversation_id: &str,
        who: &str,
        rejection: Option<(Rejection, &str)>,
    ) -> Result<Decision, PracticeError> {
        // The write lock first on SQLite (a read-then-write transaction would fail, not
        // wait, if another writer came in between); the item's row lock on PostgreSQL.
        let mut tx = self.db.begin_write().await?;
        let select = match self.db.kind() {
            Kind::Postgres => {
                "SELECT nhs_number, status, bundle_key, decision, decided_at FROM practice_inbox
                 WHERE ods = $1 AND conversation_id = $2 FOR UPDATE"
            }
            Kind::Sqlite => {
                "SELECT nhs_number, status, bundle_key, decision, decided_at FROM practice_inbox
                 WHERE ods = $1 AND conversation_id = $2"
            }
        };
        let row = sqlx::query(select)
            .bind(&self.ods)
            .bind(conversation_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| PracticeError::UnknownInboxItem(conversation_id.to_string()))?;
        let status: String = row.try_get("status")?;
        if status != "pending" {
            return Err(PracticeError::AlreadyDecided {
                conversation: conversation_id.to_string(),
                decision: row
                    .try_get::<Option<String>, _>("decision")?
                    .unwrap_or(status),
                at: row.try_get::<Option<i64>, _>("decided_at")?.unwrap_or(0),
            });
        }
        let nhs: String = row.try_get("nhs_number")?;
        let bundle_key: String = row.try_get("bundle_key")?;
        let (decision, new_status, reason) = match rejection {
            Some((Rejection::WrongPatient, note)) => (
                Decision::WrongPatient,
                InboxStatus::Rejected,
                note.to_string(),
            ),
            Some((Rejection::FailedToIntegrate, note)) => (
                Decision::FailedToIntegrate,
                InboxStatus::Rejected,
                note.to_string(),
            ),
            None => {
                let existing = sqlx::query("SELECT record_key, record_seed, status FROM practice_patients WHERE ods = $1 AND nhs_number = $2")
                    .bind(&self.ods)
                    .bind(&nhs)
                    .fetch_optional(&mut *tx)
                    .await?;
                match existing {
                    None => (
                        Decision::WrongPatient,
                        InboxStatus::Rejected,
                        format!("patient {nhs} is not registered here"),
                    ),
                    // A seeded patient's record is theirs here as much as a stored one.
                    Some(p) => match p.try_get::<Option<String>, _>("record_key")?.or(p
                        .try_get::<Option<i64>, _>("record_seed")?
                        .map(|s| s.to_string()))
                    {
                        Some(_) => (
                            Decision::FiledAsAttachment,
                            InboxStatus::Accepted,
                            String::new(),
                        ),
                        None => {
                            sqlx::query("UPDATE practice_patients SET record_key = $3 WHERE ods = $1 AND nhs_number = $2")
                                .bind(&self.ods)
                                .bind(&nhs)
                                .bind(&bundle_key)
                                .execute(&mut *tx)
                                .await?;
                            (Decision::Integrated, InboxStatus::Accepted, String::new())
                        }
                    },
                }
            }
        };
        let now = self.clock.now_ms();
        sqlx::query(
            "UPDATE practice_inbox SET status = $3, decided_at = $4, decided_by = $5, decision = $6, reason = $7
             WHERE ods = $1 AND conversation_id = $2",
        )
        .bind(&self.ods)
        .bind(conversation_id)
        .bind(new_status.as_str())
        .bind(now)
        .bind(who)
        .bind(decision.as_str())
        .bind(&reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO practice_audit (ods, at, who, action, nhs_number, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&self.ods)
            .bind(now)
            .bind(who)
            .bind(format!("decide:{}", decision.as_str()))
            .bind(&nhs)
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(decision)
    }
}

/// Runs CPU-heavy work (making a record or a document) on tokio's blocking threads.
async fn spawn_blocking<T: Send + 'static>(
    nhs: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PracticeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PracticeError::Generate {
            nhs: nhs.to_string(),
            reason: e.to_string(),
        })
}

fn encode(record: &fhir::Bundle) -> Result<Bytes, PracticeError> {
    fhir::to_vec(record)
        .map(Bytes::from)
        .map_err(|e| PracticeError::Corrupt(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<fhir::Bundle, PracticeError> {
    fhir::from_slice(bytes).map_err(|e| PracticeError::Corrupt(e.to_string()))
}

fn patient_from_row(r: &store::sqlx::any::AnyRow) -> Result<PatientSummary, PracticeError> {
    Ok(PatientSummary {
        nhs_number: r.try_get("nhs_number")?,
        family: r.try_get("family")?,
        given: r.try_get("given")?,
        birth_date: r.try_get("birth_date")?,
        gender: r.try_get("gender")?,
        postcode: r.try_get("postcode")?,
        status: r.try_get("status")?,
        registered_at: r.try_get("registered_at")?,
        has_record: r.try_get::<Option<String>, _>("record_key")?.is_some()
            || r.try_get::<Option<i64>, _>("record_seed")?.is_some(),
    })
}

fn inbox_from_row(r: &store::sqlx::any::AnyRow) -> Result<InboxItem, PracticeError> {
    let status: String = r.try_get("status")?;
    let report: String = r.try_get("report")?;
    Ok(InboxItem {
        conversation_id: r.try_get("conversation_id")?,
        nhs_number: r.try_get("nhs_number")?,
        received_at: r.try_get("received_at")?,
        status: InboxStatus::parse(&status)
            .ok_or_else(|| PracticeError::Corrupt(format!("inbox status '{status}'")))?,
        report: serde_json::from_str(&report).map_err(|e| PracticeError::Corrupt(e.to_string()))?,
        degrades: r.try_get("degrades")?,
        unmapped: r.try_get("unmapped")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        decision: r
            .try_get::<Option<String>, _>("decision")?
            .as_deref()
            .and_then(Decision::parse),
        reason: r
            .try_get::<Option<String>, _>("reason")?
            .filter(|s| !s.is_empty()),
    })
}
