//! PDS, the Personal Demographics Service: who a patient is and where they are registered.
//!
//! Each patient is a [`PatientRecord`] in the `pds_patients` table, served as a FHIR
//! `Patient` with an `ETag` of `W/"{version}"`:
//! - `GET /Patient/{nhs}` reads one. A malformed NHS number (wrong length, wrong check
//!   digit) is a 400 `INVALID_RESOURCE_ID`; an unknown one a 404 `RESOURCE_NOT_FOUND`; a
//!   superseded (merged) one answers with the record it was merged into, whose `id` is the
//!   current NHS number and whose URL is in `Content-Location`.
//! - `GET /Patient?family=&given=&birthdate=&gender=&address-postalcode=` traces by
//!   demographics (at least two of them; `family` may end in `*`) into a searchset.
//! - `PATCH /Patient/{nhs}` with `application/json-patch+json` and `If-Match: W/"n"` changes
//!   the registration: `generalPractitioner` and `managingOrganization`, nothing else. A
//!   stale or missing `If-Match` is a 412 `PRECONDITION_FAILED`; a malformed patch, a patch
//!   that touches another element or that changes nothing is a 400 `INVALID_UPDATE`.
//!   The update is one transaction: a refused patch writes nothing.
//! - Restricted (sensitive) patients carry the `R` confidentiality label and are served
//!   without address, telecom or registered practice; deceased ones carry
//!   `deceasedDateTime` and cannot be registered at a practice.
//! - Every request counts against a configurable rate (`[pds] rate_limit_per_second`),
//!   over which the answer is a 429 `TOO_MANY_REQUESTS`.
//!
//! When the registered practice changes, the patch's transaction also writes the change to
//! `pds_outbox`; a relay hands each change to a [`RegistrationListener`] (NEMS) and removes
//! it once accepted, so no change is lost if NEMS is briefly unavailable.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::sqlx::{self, Row};
use store::{Database, Migration};

use crate::error::{Error, Result};
use crate::sds::ODS_SYSTEM;

/// The identifier system of NHS numbers.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// The confidentiality code system of the security label.
pub const CONFIDENTIALITY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "patients and the registration-change outbox",
    sqlite: "CREATE TABLE pds_patients (
                nhs_number TEXT PRIMARY KEY, version BIGINT NOT NULL, last_updated BIGINT NOT NULL,
                family TEXT NOT NULL, family_norm TEXT NOT NULL, given TEXT NOT NULL, given_norm TEXT NOT NULL,
                gender TEXT NOT NULL, birth_date TEXT NOT NULL, address TEXT NOT NULL, postcode_norm TEXT,
                gp_ods TEXT, managing_ods TEXT, deceased TEXT, restricted INTEGER NOT NULL,
                superseded_by TEXT);
             CREATE INDEX pds_patients_trace ON pds_patients (family_norm, birth_date);
             CREATE INDEX pds_patients_postcode ON pds_patients (postcode_norm);
             CREATE TABLE pds_outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
                nhs_number TEXT NOT NULL, change TEXT NOT NULL, created_ms BIGINT NOT NULL)",
    postgres: "CREATE TABLE pds_patients (
                nhs_number TEXT PRIMARY KEY, version BIGINT NOT NULL, last_updated BIGINT NOT NULL,
                family TEXT NOT NULL, family_norm TEXT NOT NULL, given TEXT NOT NULL, given_norm TEXT NOT NULL,
                gender TEXT NOT NULL, birth_date TEXT NOT NULL, address TEXT NOT NULL, postcode_norm TEXT,
                gp_ods TEXT, managing_ods TEXT, deceased TEXT, restricted INTEGER NOT NULL,
                superseded_by TEXT);
             CREATE INDEX pds_patients_trace ON pds_patients (family_norm, birth_date);
             CREATE INDEX pds_patients_postcode ON pds_patients (postcode_norm);
             CREATE TABLE pds_outbox (
                seq BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
                nhs_number TEXT NOT NULL, change TEXT NOT NULL, created_ms BIGINT NOT NULL)",
}];

/// One patient as PDS holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientRecord {
    /// The NHS number (ten digits, valid check digit).
    pub nhs_number: String,
    /// Family name.
    pub family: String,
    /// Given names, first first.
    #[serde(default)]
    pub given: Vec<String>,
    /// `male`, `female`, `other` or `unknown`.
    pub gender: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// Address lines (without the postcode).
    #[serde(default)]
    pub address_lines: Vec<String>,
    /// The postcode, e.g. `LS1 6AE`.
    #[serde(default)]
    pub postcode: Option<String>,
    /// The ODS code of the practice the patient is registered at (`generalPractitioner`).
    #[serde(default)]
    pub gp_ods: Option<String>,
    /// The ODS code of the organisation managing the record (`managingOrganization`).
    #[serde(default)]
    pub managing_ods: Option<String>,
    /// When the patient died (a FHIR dateTime), if they have.
    #[serde(default)]
    pub deceased: Option<String>,
    /// A restricted (sensitive) record: served without address, telecom or practice.
    #[serde(default)]
    pub restricted: bool,
    /// The NHS number this one was merged into, if it was.
    #[serde(default)]
    pub superseded_by: Option<String>,
}

/// A patient as stored: the record, its version and when it last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPatient {
    /// The record.
    pub record: PatientRecord,
    /// 1 when inserted, one more at each change: the `ETag`.
    pub version: i64,
    /// Unix milliseconds of the last change.
    pub last_updated: i64,
}

impl PatientRecord {
    /// Checks the identifiers and codes are well formed.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Error::bad_request("INVALID_VALUE", m);
        nhsid::NhsNumber::parse(&self.nhs_number)
            .map_err(|e| bad(format!("patient '{}': {e}", self.nhs_number)))?;
        if !matches!(
            self.gender.as_str(),
            "male" | "female" | "other" | "unknown"
        ) {
            return Err(bad(format!(
                "patient {}: gender '{}' is not male, female, other or unknown",
                self.nhs_number, self.gender
            )));
        }
        if !is_date(&self.birth_date) {
            return Err(bad(format!(
                "patient {}: birth date '{}' is not YYYY-MM-DD",
                self.nhs_number, self.birth_date
            )));
        }
        for ods in self.gp_ods.iter().chain(self.managing_ods.iter()) {
            nhsid::OdsCode::parse(ods).map_err(|_| {
                bad(format!(
                    "patient {}: '{ods}' is not an ODS code",
                    self.nhs_number
                ))
            })?;
        }
        if let Some(s) = &self.superseded_by {
            nhsid::NhsNumber::parse(s).map_err(|e| {
                bad(format!(
                    "patient {}: superseded by '{s}': {e}",
                    self.nhs_number
                ))
            })?;
        }
        Ok(())
    }

    /// The FHIR Patient; `redact` leaves out what a restricted record hides.
    pub fn to_fhir(&self, version: i64, last_updated: i64, redact: bool) -> Value {
        let hide = redact && self.restricted;
        let (code, display) = if self.restricted {
            ("R", "restricted")
        } else {
            ("U", "unrestricted")
        };
        let mut p = json!({
            "resourceType": "Patient",
            "id": self.nhs_number,
            "meta": {
                "versionId": version.to_string(),
                "lastUpdated": crate::time::instant(last_updated),
                "security": [{"system": CONFIDENTIALITY_SYSTEM, "code": code, "display": display}],
            },
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": self.nhs_number}],
            "name": [{"use": "usual", "family": self.family, "given": self.given}],
            "gender": self.gender,
            "birthDate": self.birth_date,
        });
        if let Some(d) = &self.deceased {
            p["deceasedDateTime"] = json!(d);
        }
        if !hide && (!self.address_lines.is_empty() || self.postcode.is_some()) {
            let mut a = json!({"use": "home", "line": self.address_lines});
            if let Some(pc) = &self.postcode {
                a["postalCode"] = json!(pc);
            }
            p["address"] = json!([a]);
        }
        if let Some(gp) = &self.gp_ods
            && !hide
        {
            p["generalPractitioner"] = json!([{"identifier": {"system": ODS_SYSTEM, "value": gp}}]);
        }
        if let Some(m) = &self.managing_ods {
            p["managingOrganization"] = json!({"identifier": {"system": ODS_SYSTEM, "value": m}});
        }
        p
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn norm_name(s: &str) -> String {
    s.trim().to_lowercase()
}

fn norm_postcode(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase()
}

/// A change of registration, handed from PDS to NEMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationChange {
    /// A unique id, so that a change handed over twice is published once.
    pub event_id: String,
    /// The patient.
    pub nhs_number: String,
    /// The practice they were registered at before, if any.
    pub previous_gp: Option<String>,
    /// The practice they are registered at now, if any (none: a suspension).
    pub new_gp: Option<String>,
    /// The patient after the change (a FHIR Patient, restricted parts left out).
    pub patient: Value,
    /// When the change was made (Unix milliseconds): consumers drop older events.
    pub last_updated: i64,
}

/// Who is told about registration changes (NEMS).
pub trait RegistrationListener: Send + Sync + std::fmt::Debug {
    /// Accepts a change; an error means "try again later". Must be idempotent by `event_id`.
    fn registration_changed<'a>(
        &'a self,
        change: &'a RegistrationChange,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

/// The patients in the database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    clock: clock::SharedClock,
}

const COLUMNS: &str = "nhs_number, version, last_updated, family, family_norm, given, given_norm, gender, birth_date, address, postcode_norm, gp_ods, managing_ods, deceased, restricted, superseded_by";
const NCOLS: usize = 16;
/// Rows per multi-row insert: 16 parameters a row, under SQLite's 32,766.
const BATCH: usize = 1000;

/// What a successful patch did.
#[derive(Debug, Clone, PartialEq)]
pub struct Patched {
    /// The patient after the change.
    pub patient: StoredPatient,
    /// The change of practice, when there was one.
    pub change: Option<RegistrationChange>,
}

impl Store {
    /// The patients in `db`, the tables created or brought up to date.
    pub async fn open(db: Database, clock: clock::SharedClock) -> Result<Store> {
        db.migrate("pds", MIGRATIONS).await?;
        Ok(Store { db, clock })
    }

    /// Inserts one patient (version 1).
    pub async fn insert(&self, record: &PatientRecord) -> Result<()> {
        self.insert_many(std::slice::from_ref(record)).await
    }

    /// Inserts many patients in one transaction with multi-row inserts: a bulk loader's way
    /// in (100,000 patients take seconds). All are checked first; if any is malformed or
    /// already present, nothing is written.
    pub async fn insert_many(&self, records: &[PatientRecord]) -> Result<()> {
        for r in records {
            r.validate()?;
        }
        let now = self.clock.now_ms();
        let mut tx = self.db.pool().begin().await?;
        for chunk in records.chunks(BATCH) {
            let mut sql = format!("INSERT INTO pds_patients ({COLUMNS}) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..NCOLS {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&store::placeholder(self.db.kind(), i * NCOLS + c + 1));
                }
                sql.push(')');
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                let address = serde_json::to_string(&r.address_lines)
                    .map_err(|e| Error::Corrupt(e.to_string()))?;
                q = q
                    .bind(r.nhs_number.clone())
                    .bind(1_i64)
                    .bind(now)
                    .bind(r.family.clone())
                    .bind(norm_name(&r.family))
                    .bind(r.given.join(" "))
                    .bind(format!(
                        "|{}|",
                        r.given
                            .iter()
                            .map(|g| norm_name(g))
                            .collect::<Vec<_>>()
                            .join("|")
                    ))
                    .bind(r.gender.clone())
                    .bind(r.birth_date.clone())
                    .bind(address)
                    .bind(r.postcode.as_deref().map(norm_postcode))
                    .bind(r.gp_ods.clone())
                    .bind(r.managing_ods.clone())
                    .bind(r.deceased.clone())
                    .bind(i64::from(r.restricted))
                    .bind(r.superseded_by.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The patient stored under exactly this NHS number (superseded or not).
    pub async fn get(&self, nhs: &str) -> Result<Option<StoredPatient>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM pds_patients WHERE nhs_number = $1"
        )))
        .bind(nhs)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The current record for an NHS number, following supersessions.
    pub async fn current(&self, nhs: &str) -> Result<Option<StoredPatient>> {
        let mut number = nhs.to_string();
        for _ in 0..8 {
            match self.get(&number).await? {
                Some(p) => match &p.record.superseded_by {
                    Some(next) => number = next.clone(),
                    None => return Ok(Some(p)),
                },
                None => return Ok(None),
            }
        }
        Err(Error::Corrupt(format!(
            "NHS number {nhs} is superseded in a loop"
        )))
    }

    /// How many patients are stored.
    pub async fn count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM pds_patients")
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Patients matching a trace, current records only, by NHS number, at most `limit`.
    pub async fn search(&self, t: &Trace, limit: usize) -> Result<Vec<StoredPatient>> {
        let mut sql = format!("SELECT {COLUMNS} FROM pds_patients WHERE superseded_by IS NULL");
        let mut binds: Vec<String> = Vec::new();
        let mut add = |clause: &str, value: String, sql: &mut String| {
            binds.push(value);
            sql.push_str(&format!(" AND {clause} ${}", binds.len()));
        };
        if let Some(f) = &t.family {
            match f.strip_suffix('*') {
                Some(prefix) => add(
                    "family_norm LIKE",
                    format!("{}%", like_escape(&norm_name(prefix))),
                    &mut sql,
                ),
                None => add("family_norm =", norm_name(f), &mut sql),
            }
        }
        if let Some(g) = &t.given {
            add(
                "given_norm LIKE",
                format!("%|{}|%", like_escape(&norm_name(g))),
                &mut sql,
            );
        }
        if let Some(b) = &t.birthdate {
            add("birth_date =", b.clone(), &mut sql);
        }
        if let Some(g) = &t.gender {
            add("gender =", g.clone(), &mut sql);
        }
        if let Some(p) = &t.postcode {
            add("postcode_norm =", norm_postcode(p), &mut sql);
        }
        sql.push_str(&format!(" ORDER BY nhs_number LIMIT {}", limit));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// Applies a JSON Patch to the registration of `nhs` if its version is still
    /// `if_match`, in one transaction with the outbox entry for NEMS.
    pub async fn patch(&self, nhs: &str, if_match: i64, patch_body: &[u8]) -> Result<Patched> {
        let patch = parse_patch(patch_body)?;
        let mut tx = self.db.pool().begin().await?;
        // Take the write lock first (SQLite) / lock the row (PostgreSQL), so the version
        // check and the update see the same row.
        let lock = match self.db.kind() {
            store::Kind::Postgres => " FOR UPDATE",
            store::Kind::Sqlite => "",
        };
        if self.db.kind() == store::Kind::Sqlite {
            sqlx::query("UPDATE pds_patients SET version = version WHERE nhs_number = $1")
                .bind(nhs)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM pds_patients WHERE nhs_number = $1{lock}"
        )))
        .bind(nhs)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(current) = row.as_ref().map(from_row).transpose()? else {
            return Err(Error::NotFound(format!("no patient with NHS number {nhs}")));
        };
        if let Some(to) = &current.record.superseded_by {
            return Err(Error::bad_request(
                "INVALID_UPDATE",
                format!("NHS number {nhs} is superseded by {to}: update {to} instead"),
            ));
        }
        if current.version != if_match {
            return Err(Error::PreconditionFailed(format!(
                "the patient has changed since it was read: If-Match is W/\"{if_match}\" but the current version is W/\"{}\"; read it again",
                current.version
            )));
        }
        let before = current
            .record
            .to_fhir(current.version, current.last_updated, false);
        let mut after = before.clone();
        json_patch::patch(&mut after, &patch).map_err(|e| {
            Error::bad_request(
                "INVALID_UPDATE",
                format!("the patch cannot be applied: {e}"),
            )
        })?;
        let (gp, managing) = registration_of(&before, &after)?;
        let record = &current.record;
        if gp == record.gp_ods && managing == record.managing_ods {
            return Err(Error::bad_request(
                "INVALID_UPDATE",
                "the patch changes nothing: the registration is already as requested",
            ));
        }
        if record.deceased.is_some() && gp.is_some() && gp != record.gp_ods {
            return Err(Error::bad_request(
                "INVALID_UPDATE",
                format!("patient {nhs} is deceased and cannot be registered at a practice"),
            ));
        }
        let now = self.clock.now_ms().max(current.last_updated + 1);
        let version = current.version + 1;
        sqlx::query("UPDATE pds_patients SET gp_ods = $1, managing_ods = $2, version = $3, last_updated = $4 WHERE nhs_number = $5 AND version = $6")
            .bind(gp.clone())
            .bind(managing.clone())
            .bind(version)
            .bind(now)
            .bind(nhs)
            .bind(current.version)
            .execute(&mut *tx)
            .await?;
        let mut updated = current.record.clone();
        updated.gp_ods = gp;
        updated.managing_ods = managing;
        let change = if updated.gp_ods != current.record.gp_ods {
            let change = RegistrationChange {
                event_id: uuid::Uuid::new_v4().to_string(),
                nhs_number: nhs.to_string(),
                previous_gp: current.record.gp_ods.clone(),
                new_gp: updated.gp_ods.clone(),
                patient: event_patient(&updated, version, now),
                last_updated: now,
            };
            let text = serde_json::to_string(&change).map_err(|e| Error::Corrupt(e.to_string()))?;
            sqlx::query("INSERT INTO pds_outbox (event_id, nhs_number, change, created_ms) VALUES ($1, $2, $3, $4)")
                .bind(change.event_id.clone())
                .bind(nhs)
                .bind(text)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Some(change)
        } else {
            None
        };
        tx.commit().await?;
        Ok(Patched {
            patient: StoredPatient {
                record: updated,
                version,
                last_updated: now,
            },
            change,
        })
    }

    /// The changes waiting to be handed to NEMS, oldest first.
    pub async fn outbox(&self, limit: i64) -> Result<Vec<(i64, RegistrationChange)>> {
        let rows = sqlx::query("SELECT seq, change FROM pds_outbox ORDER BY seq LIMIT $1")
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                let text: String = r.try_get("change")?;
                let change = serde_json::from_str(&text)
                    .map_err(|e| Error::Corrupt(format!("an outbox entry: {e}")))?;
                Ok((seq, change))
            })
            .collect()
    }

    /// Removes an outbox entry once NEMS has it.
    pub async fn outbox_done(&self, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM pds_outbox WHERE seq = $1")
            .bind(seq)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

/// The Patient an event carries: the registration always (NEMS consumers need it, even for a
/// restricted record), but never a restricted patient's address.
fn event_patient(record: &PatientRecord, version: i64, now: i64) -> Value {
    let mut p = record.to_fhir(version, now, false);
    if record.restricted
        && let Some(o) = p.as_object_mut()
    {
        o.remove("address");
        o.remove("telecom");
    }
    p
}

fn like_escape(s: &str) -> String {
    // `%` and `_` are wildcards in LIKE; a name never needs them, so they are dropped.
    s.replace(['%', '_'], "")
}

fn from_row(r: &store::sqlx::any::AnyRow) -> Result<StoredPatient> {
    let given: String = r.try_get("given")?;
    let address: String = r.try_get("address")?;
    let restricted: i64 = r.try_get("restricted")?;
    let record = PatientRecord {
        nhs_number: r.try_get("nhs_number")?,
        family: r.try_get("family")?,
        given: given.split_whitespace().map(str::to_string).collect(),
        gender: r.try_get("gender")?,
        birth_date: r.try_get("birth_date")?,
        address_lines: serde_json::from_str(&address)
            .map_err(|e| Error::Corrupt(format!("an address: {e}")))?,
        postcode: None,
        gp_ods: r.try_get("gp_ods")?,
        managing_ods: r.try_get("managing_ods")?,
        deceased: r.try_get("deceased")?,
        restricted: restricted != 0,
        superseded_by: r.try_get("superseded_by")?,
    };
    let postcode: Option<String> = r.try_get("postcode_norm")?;
    Ok(StoredPatient {
        record: PatientRecord {
            postcode: postcode.map(format_postcode),
            ..record
        },
        version: r.try_get("version")?,
        last_updated: r.try_get("last_updated")?,
    })
}

/// `LS16AE` → `LS1 6AE` (the inward code is always the last three characters).
fn format_postcode(p: String) -> String {
    if p.len() > 3 && p.is_ascii() {
        format!("{} {}", &p[..p.len() - 3], &p[p.len() - 3..])
    } else {
        p
    }
}

/// Reads a JSON Patch: an array of operations, or PDS's `{"patches": [...]}` form.
fn parse_patch(body: &[u8]) -> Result<json_patch::Patch> {
    let bad = |m: String| Error::bad_request("INVALID_UPDATE", m);
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the patch is not JSON: {e}")))?;
    let ops = match value {
        Value::Object(mut o) if o.contains_key("patches") => {
            o.remove("patches").unwrap_or_default()
        }
        v => v,
    };
    let patch: json_patch::Patch = serde_json::from_value(ops)
        .map_err(|e| bad(format!("the patch is not a JSON Patch (RFC 6902): {e}")))?;
    if patch.0.is_empty() {
        return Err(bad("the patch has no operations".into()));
    }
    Ok(patch)
}

/// The registration a patched Patient asks for, after checking nothing else changed.
fn registration_of(before: &Value, after: &Value) -> Result<(Option<String>, Option<String>)> {
    let bad = |m: String| Error::bad_request("INVALID_UPDATE", m);
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("generalPractitioner");
            o.remove("managingOrganization");
        }
        v
    };
    if strip(before) != strip(after) {
        return Err(bad(
            "only generalPractitioner and managingOrganization can be changed here".into(),
        ));
    }
    let ods_of = |r: &Value, what: &str| -> Result<String> {
        let id = &r["identifier"];
        if id["system"] != ODS_SYSTEM {
            return Err(bad(format!(
                "{what} must be a reference with an identifier in {ODS_SYSTEM}"
            )));
        }
        let code = id["value"].as_str().unwrap_or_default();
        nhsid::OdsCode::parse(code)
            .map_err(|_| bad(format!("{what}: '{code}' is not an ODS code")))?;
        Ok(code.to_string())
    };
    let gp = match after.get("generalPractitioner") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(Value::Array(a)) if a.len() == 1 => Some(ods_of(&a[0], "generalPractitioner")?),
        Some(_) => {
            return Err(bad(
                "generalPractitioner must be a list of one practice".into()
            ));
        }
    };
    let managing = match after.get("managingOrganization") {
        None | Some(Value::Null) => None,
        Some(r) => Some(ods_of(r, "managingOrganization")?),
    };
    Ok((gp, managing))
}

/// A trace: the demographics searched on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Family name; a trailing `*` matches any ending.
    pub family: Option<String>,
    /// A given name.
    pub given: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthdate: Option<String>,
    /// `male`, `female`, `other`, `unknown`.
    pub gender: Option<String>,
    /// Postcode (spaces and case ignored).
    pub postcode: Option<String>,
}

/// Most matches a trace returns.
pub const MAX_RESULTS: usize = 50;

fn parse_trace(params: &[(String, String)]) -> Result<(Trace, usize)> {
    let bad = |m: String| Error::bad_request("INVALID_SEARCH_DATA", m);
    let mut t = Trace::default();
    let mut max = MAX_RESULTS;
    for (name, value) in params {
        let value = value.trim().to_string();
        match name.as_str() {
            "family" => {
                if value.trim_end_matches('*').chars().count() < 2 {
                    return Err(bad(
                        "family needs at least two characters before a wildcard".into(),
                    ));
                }
                t.family = Some(value)
            }
            "given" => t.given = Some(value),
            "birthdate" => {
                let d = value.strip_prefix("eq").unwrap_or(&value);
                if !is_date(d) {
                    return Err(bad(format!(
                        "birthdate '{value}' must be YYYY-MM-DD or eqYYYY-MM-DD"
                    )));
                }
                t.birthdate = Some(d.to_string());
            }
            "gender" => {
                if !matches!(value.as_str(), "male" | "female" | "other" | "unknown") {
                    return Err(bad(format!(
                        "gender '{value}' is not male, female, other or unknown"
                    )));
                }
                t.gender = Some(value);
            }
            "address-postalcode" => t.postcode = Some(value),
            "_max-results" => {
                max = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_RESULTS).contains(n))
                    .ok_or_else(|| bad(format!("_max-results must be 1 to {MAX_RESULTS}")))?;
            }
            "_fuzzy-match" | "_exact-match" | "_history" => {}
            other => return Err(bad(format!("unknown search parameter '{other}'"))),
        }
    }
    let given = [&t.family, &t.given, &t.birthdate, &t.gender, &t.postcode]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given < 2 || (t.family.is_none() && t.birthdate.is_none()) {
        return Err(bad(
            "a trace needs at least two of family, given, birthdate, gender and address-postalcode, one of them family or birthdate".into(),
        ));
    }
    Ok((t, max))
}

/// `[pds]` configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdsConfig {
    /// Requests a second PDS answers before it answers 429; 0 (the default) is no limit.
    #[serde(default)]
    pub rate_limit_per_second: u32,
}

/// A one-second fixed window on the clock.
#[derive(Debug, Default)]
struct Window {
    second: i64,
    count: u32,
}

/// What the PDS router needs.
#[derive(Debug, Clone)]
pub struct PdsState {
    /// The patients.
    pub store: Store,
    clock: clock::SharedClock,
    config: PdsConfig,
    base_url: Arc<str>,
    listener: Arc<dyn RegistrationListener>,
    window: Arc<Mutex<Window>>,
    relay_wake: Arc<tokio::sync::Notify>,
    relay_lock: Arc<tokio::sync::Mutex<()>>,
}

impl PdsState {
    /// PDS over `store`, telling `listener` of registration changes. `base_url` is the public
    /// URL of the service (`http://127.0.0.1:8080/pds`).
    pub fn new(
        store: Store,
        clock: clock::SharedClock,
        config: PdsConfig,
        base_url: &str,
        listener: Arc<dyn RegistrationListener>,
    ) -> PdsState {
        PdsState {
            store,
            clock,
            config,
            base_url: Arc::from(base_url),
            listener,
            window: Arc::default(),
            relay_wake: Arc::default(),
            relay_lock: Arc::default(),
        }
    }

    fn admit(&self) -> Result<()> {
        let limit = self.config.rate_limit_per_second;
        if limit == 0 {
            return Ok(());
        }
        let second = self.clock.now_ms().div_euclid(1000);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.second != second {
            *w = Window { second, count: 0 };
        }
        if w.count >= limit {
            return Err(Error::TooManyRequests(limit));
        }
        w.count += 1;
        Ok(())
    }

    /// Hands every waiting change to the listener, oldest first; stops at the first refusal.
    pub async fn relay_once(&self) -> Result<usize> {
        let _one_at_a_time = self.relay_lock.lock().await;
        let mut done = 0;
        loop {
            let batch = self.store.outbox(100).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            for (seq, change) in batch {
                self.listener.registration_changed(&change).await?;
                self.store.outbox_done(seq).await?;
                done += 1;
            }
        }
    }

    /// Runs the relay in the background: after each change, and every few seconds of the
    /// clock to retry what the listener refused.
    pub fn spawn_relay(&self) {
        let state = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = state.relay_once().await {
                    tracing::warn!(error = %e, "PDS could not hand a registration change to NEMS; will retry");
                }
                tokio::select! {
                    _ = state.relay_wake.notified() => {}
                    _ = state.clock.sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
        });
    }
}

/// The PDS service.
pub fn router(state: PdsState) -> Router {
    Router::new()
        .route("/Patient", get(search))
        .route("/Patient/{nhs}", get(read).patch(patch))
        .route("/admin/patients", post(admin_insert))
        .with_state(state)
}

fn parse_nhs(nhs: &str) -> Result<()> {
    nhsid::NhsNumber::parse(nhs).map(|_| ()).map_err(|e| {
        Error::bad_request(
            "INVALID_RESOURCE_ID",
            format!("'{nhs}' is not a valid NHS number: {e}"),
        )
    })
}

fn patient_response(state: &PdsState, p: &StoredPatient, asked: &str) -> Response {
    let mut response = crate::fhir_json(
        StatusCode::OK,
        &p.record.to_fhir(p.version, p.last_updated, true),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", p.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if asked != p.record.nhs_number
        && let Ok(location) = HeaderValue::from_str(&format!(
            "{}/Patient/{}",
            state.base_url, p.record.nhs_number
        ))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, location);
    }
    response
}

async fn read(State(state): State<PdsState>, Path(nhs): Path<String>) -> Result<Response> {
    state.admit()?;
    parse_nhs(&nhs)?;
    let p = state
        .store
        .current(&nhs)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no patient with NHS number {nhs}")))?;
    Ok(patient_response(&state, &p, &nhs))
}

async fn search(
    State(state): State<PdsState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    state.admit()?;
    let (trace, max) = parse_trace(&params)?;
    let found = state.store.search(&trace, max + 1).await?;
    if found.len() > max {
        return Err(Error::bad_request(
            "TOO_MANY_MATCHES",
            format!("more than {max} patients match: give more demographics"),
        ));
    }
    let entries: Vec<Value> = found
        .iter()
        .map(|p| {
            json!({
                "fullUrl": format!("{}/Patient/{}", state.base_url, p.record.nhs_number),
                "search": {"score": 1},
                "resource": p.record.to_fhir(p.version, p.last_updated, true),
            })
        })
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": crate::time::instant(state.clock.now_ms()),
        "total": entries.len(),
        "entry": entries,
    });
    Ok(crate::fhir_json(StatusCode::OK, &bundle))
}

fn parse_if_match(headers: &HeaderMap) -> Result<i64> {
    let raw = headers.get(header::IF_MATCH).ok_or_else(|| {
        Error::PreconditionFailed(
            "If-Match is required: send the ETag of the version you read, W/\"n\"".into(),
        )
    })?;
    let text = raw.to_str().unwrap_or_default().trim();
    let inner = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    inner.parse::<i64>().map_err(|_| {
        Error::PreconditionFailed(format!(
            "If-Match '{text}' is not an ETag of the form W/\"n\""
        ))
    })
}

async fn patch(
    State(state): State<PdsState>,
    Path(nhs): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    state.admit()?;
    parse_nhs(&nhs)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json-patch+json")
        && !content_type.starts_with("application/json")
    {
        return Err(Error::bad_request(
            "UNSUPPORTED_MEDIA_TYPE",
            format!("a patch must be sent as application/json-patch+json, not '{content_type}'"),
        ));
    }
    let version = parse_if_match(&headers)?;
    let done = state.store.patch(&nhs, version, &body).await?;
    if let Some(change) = &done.change {
        tracing::info!(nhs = %nhs, previous = ?change.previous_gp, new = ?change.new_gp, "PDS registration changed");
        metrics::counter!("pds_registration_changes_total").increment(1);
        // Hand the change to NEMS now, so that it is published before the client hears
        // back; the background relay retries if NEMS refuses.
        if let Err(e) = state.relay_once().await {
            tracing::warn!(error = %e, "NEMS did not take the change yet; the relay will retry");
            state.relay_wake.notify_one();
        }
    }
    Ok(patient_response(&state, &done.patient, &nhs))
}

async fn admin_insert(
    State(state): State<PdsState>,
    Json(records): Json<Vec<PatientRecord>>,
) -> Result<Response> {
    state.store.insert_many(&records).await?;
    tracing::info!(patients = records.len(), "PDS patients added");
    Ok(crate::fhir_json(
        StatusCode::CREATED,
        &json!({"inserted": records.len()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registration_may_change() {
        let before = json!({"resourceType": "Patient", "gender": "female",
            "generalPractitioner": [{"identifier": {"system": ODS_SYSTEM, "value": "A12345"}}]});
        let mut after = before.clone();
        after["generalPractitioner"] = json!([]);
        assert_eq!(registration_of(&before, &after).unwrap(), (None, None));
        after["gender"] = json!("male");
        assert!(registration_of(&before, &after).is_err());
        let two = json!({"resourceType": "Patient", "gender": "female", "generalPractitioner": [
            {"identifier": {"system": ODS_SYSTEM, "value": "A12345"}},
            {"identifier": {"system": ODS_SYSTEM, "value": "B12345"}}]});
        assert!(registration_of(&before, &two).is_err());
        let bad_code = json!({"resourceType": "Patient", "gender": "female",
            "managingOrganization": {"identifier": {"system": ODS_SYSTEM, "value": "not ods"}}});
        assert!(registration_of(&before, &bad_code).is_err());
    }

    #[test]
    fn a_trace_needs_two_demographics() {
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(parse_trace(&p(&[("family", "Smith")])).is_err());
        assert!(parse_trace(&p(&[("family", "Smith"), ("gender", "female")])).is_ok());
        assert!(parse_trace(&p(&[("gender", "female"), ("given", "Jane")])).is_err());
        assert!(parse_trace(&p(&[("family", "S*"), ("gender", "female")])).is_err());
        assert!(parse_trace(&p(&[("family", "Sm*"), ("birthdate", "eq2010-10-22")])).is_ok());
        assert!(parse_trace(&p(&[("family", "Sm*"), ("birthdate", "22/10/2010")])).is_err());
        assert!(
            parse_trace(&p(&[
                ("family", "Sm"),
                ("birthdate", "2010-10-22"),
                ("colour", "x")
            ]))
            .is_err()
        );
    }

    #[test]
    fn postcodes_are_stored_without_spaces_and_shown_with_one() {
        assert_eq!(norm_postcode(" ls1 6ae"), "LS16AE");
        assert_eq!(format_postcode("LS16AE".into()), "LS1 6AE");
    }
}
