//! SDS, the Spine Directory Service: who is on the network and how to reach them.
//!
//! The directory holds [`Organisation`]s (an ODS code, a name, the supplier of its clinical
//! system) and, for each, the accredited [`System`]s it runs: an ASID, the party key of the
//! message handler (MHS) in front of it, the CPA id, the host name and URL messages go to,
//! the interactions it supports, and the reliability settings a sender must use
//! ([`Reliability`]). It is loaded from TOML ([`DirectoryFile`]), changed through the admin
//! endpoints, and kept in the `sds_*` tables.
//!
//! Senders ask it two questions, in the SDS FHIR API's shapes (see the conformance corpus
//! `gp2gp/sds/`):
//! - `GET /Device?organization=https://fhir.nhs.uk/Id/ods-organization-code|{ODS}&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|{interaction}`
//!   — which ASID and party key receive this interaction for this organisation
//!   (a searchset Bundle of Device);
//! - `GET /Endpoint?…` with the same parameters (or a party key identifier) — where to send
//!   it and how reliably (a searchset Bundle of Endpoint).
//!
//! No match is an empty searchset, not an error; a missing or malformed parameter is a 400
//! with an `OperationOutcome`.
//!
//! # Addresses, and the relay
//!
//! Like live Spine, GP2GP traffic goes MHS → Spine → MHS. When the message relay runs
//! ([`crate::relay`], on by default), an Endpoint for a forward-reliable GP2GP interaction
//! ([`forward_reliable`]) answers the relay's URL, `{base_url}/reliablemessaging/forwardreliable`,
//! as its `address`; the directory (and `GET /admin/organisations`) keeps each system's
//! own MHS address, which is where the relay forwards to. A system with no address of its
//! own keeps an empty one (nobody can deliver to it), and other interactions (GP Connect's,
//! or a system that asks for no acknowledgments) answer their own address as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::sqlx::{self, Row};
use store::{Database, Migration};

use crate::error::{Error, Result};

/// The identifier system of ODS organisation codes.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// The identifier system of interaction ids (`urn:nhs:names:services:gp2gp:RCMR_IN010000UK05`).
pub const INTERACTION_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsServiceInteractionId";
/// The identifier system of ASIDs.
pub const ASID_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsSpineASID";
/// The identifier system of MHS party keys.
pub const PARTY_KEY_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsMhsPartyKey";
/// The identifier system of MHS host names.
pub const FQDN_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsMhsFQDN";
/// The identifier system of CPA ids.
pub const CPA_ID_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsMhsCPAId";
/// The identifier system of MHS ids.
pub const MHS_ID_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsMHSId";
/// The reliability extension of an Endpoint.
pub const RELIABILITY_EXTENSION: &str =
    "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ReliabilityConfiguration";
/// The interaction extension of an Endpoint or Device.
pub const INTERACTION_EXTENSION: &str =
    "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-NhsServiceInteractionId";
/// The manufacturing-organisation extension of a Device.
pub const MANUFACTURER_EXTENSION: &str =
    "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ManufacturingOrganisation";

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "organisations and their party keys",
    sqlite: "CREATE TABLE sds_organisations (
                ods TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL, updated_ms BIGINT NOT NULL);
             CREATE TABLE sds_party_keys (
                party_key TEXT PRIMARY KEY, ods TEXT NOT NULL);
             CREATE INDEX sds_party_keys_ods ON sds_party_keys (ods)",
    postgres: "CREATE TABLE sds_organisations (
                ods TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL, updated_ms BIGINT NOT NULL);
             CREATE TABLE sds_party_keys (
                party_key TEXT PRIMARY KEY, ods TEXT NOT NULL);
             CREATE INDEX sds_party_keys_ods ON sds_party_keys (ods)",
}];

/// An organisation in the directory: a GP practice, the national repository, a hospital.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    /// The ODS code, e.g. `B86041`.
    pub ods: String,
    /// The organisation's name.
    pub name: String,
    /// The supplier of its clinical system (`EMIS`, `TPP`, `Lloyd`…), as the message log names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<String>,
    /// Its accredited systems, each behind a message handler.
    #[serde(default)]
    pub systems: Vec<System>,
}

/// One accredited system of an organisation (a Device in SDS), with the message handler
/// (an Endpoint in SDS) that receives for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    /// The Accredited System ID, e.g. `200000000359`.
    pub asid: String,
    /// The MHS party key, `{ODS}-{number}`.
    pub party_key: String,
    /// The CPA id; derived from the party key when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpa_id: Option<String>,
    /// The MHS host name; `localhost` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// The URL messages are sent to (empty when the system only receives through Spine).
    #[serde(default)]
    pub address: String,
    /// The interactions it receives, e.g. `urn:nhs:names:services:gp2gp:RCMR_IN010000UK05`.
    #[serde(default)]
    pub interactions: Vec<String>,
    /// How senders must send to it; GP2GP's forward-reliable settings when not given.
    #[serde(default)]
    pub reliability: Reliability,
    /// The ODS code of the system's manufacturer (supplier), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer_ods: Option<String>,
}

/// The reliability settings of a message handler, as SDS publishes them. A setting left out
/// is left out of the Endpoint too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reliability {
    /// `nhsMHSSyncReplyMode`: `MSHSignalsOnly`, `SignalsAndResponse`, `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_reply_mode: Option<String>,
    /// `nhsMHSRetryInterval`, an ISO 8601 duration (`PT2M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
    /// `nhsMHSRetries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// `nhsMHSPersistDuration`, an ISO 8601 duration (`PT5M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_duration: Option<String>,
    /// `nhsMHSDuplicateElimination`: `always` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_elimination: Option<String>,
    /// `nhsMHSAckRequested`: `always` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_requested: Option<String>,
}

impl Default for Reliability {
    /// GP2GP's forward-reliable settings.
    fn default() -> Reliability {
        Reliability {
            sync_reply_mode: Some("MSHSignalsOnly".into()),
            retry_interval: Some("PT2M".into()),
            retries: Some(2),
            persist_duration: Some("PT5M".into()),
            duplicate_elimination: Some("always".into()),
            ack_requested: Some("always".into()),
        }
    }
}

/// A directory file: `[[organisations]]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    /// The organisations.
    #[serde(default)]
    pub organisations: Vec<Organisation>,
}

impl DirectoryFile {
    /// Reads a directory from TOML text.
    pub fn from_toml(text: &str) -> Result<DirectoryFile> {
        toml::from_str(text)
            .map_err(|e| Error::Config(format!("the SDS directory is not valid: {e}")))
    }
}

impl Organisation {
    /// Checks the codes are well formed; the message says which one is not.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Error::bad_request("INVALID_VALUE", m);
        nhsid::OdsCode::parse(&self.ods).map_err(|_| {
            bad(format!(
                "'{}' is not an ODS code (3 to 10 capital letters and digits)",
                self.ods
            ))
        })?;
        if self.name.trim().is_empty() {
            return Err(bad(format!("organisation {} has no name", self.ods)));
        }
        for s in &self.systems {
            nhsid::Asid::parse(&s.asid)
                .map_err(|_| bad(format!("'{}' is not an ASID (up to 18 digits)", s.asid)))?;
            nhsid::PartyKey::parse(&s.party_key)
                .map_err(|_| bad(format!("'{}' is not a party key (ODS-number)", s.party_key)))?;
            if s.interactions.iter().any(|i| i.trim().is_empty()) {
                return Err(bad(format!(
                    "system {} lists an empty interaction id",
                    s.asid
                )));
            }
        }
        Ok(())
    }
}

impl System {
    fn cpa_id(&self) -> String {
        self.cpa_id.clone().unwrap_or_else(|| {
            let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, self.party_key.as_bytes());
            id.simple().to_string()[..20].to_string()
        })
    }

    fn fqdn(&self) -> &str {
        self.fqdn.as_deref().unwrap_or("localhost")
    }
}

/// The directory: organisations in the database.
#[derive(Debug, Clone)]
pub struct Directory {
    db: Database,
    clock: clock::SharedClock,
}

/// Rows per multi-row insert (4 parameters a row; far below both engines' limits).
const BATCH: usize = 500;

impl Directory {
    /// The directory in `db`, its tables created or brought up to date.
    pub async fn open(db: Database, clock: clock::SharedClock) -> Result<Directory> {
        db.migrate("sds", MIGRATIONS).await?;
        Ok(Directory { db, clock })
    }

    /// The organisation with this ODS code.
    pub async fn get(&self, ods: &str) -> Result<Option<Organisation>> {
        let row = sqlx::query("SELECT doc FROM sds_organisations WHERE ods = $1")
            .bind(ods)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| decode(&r.try_get::<String, _>("doc")?))
            .transpose()
    }

    /// Every organisation, by ODS code.
    pub async fn list(&self) -> Result<Vec<Organisation>> {
        let rows = sqlx::query("SELECT doc FROM sds_organisations ORDER BY ods")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| decode(&r.try_get::<String, _>("doc")?))
            .collect()
    }

    /// The organisation whose system has this party key.
    pub async fn by_party_key(&self, party_key: &str) -> Result<Option<Organisation>> {
        let row = sqlx::query("SELECT ods FROM sds_party_keys WHERE party_key = $1")
            .bind(party_key)
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            Some(r) => self.get(&r.try_get::<String, _>("ods")?).await,
            None => Ok(None),
        }
    }

    /// Adds or replaces one organisation. Returns whether it was new.
    pub async fn upsert(&self, org: &Organisation) -> Result<bool> {
        let existed = self.get(&org.ods).await?.is_some();
        self.upsert_many(std::slice::from_ref(org)).await?;
        Ok(!existed)
    }

    /// Adds or replaces many organisations in one transaction, with multi-row inserts: a
    /// bulk loader's way in. All are checked first; one bad entry writes nothing.
    pub async fn upsert_many(&self, orgs: &[Organisation]) -> Result<()> {
        for org in orgs {
            org.validate()?;
        }
        let now = self.clock.now_ms();
        let mut tx = self.db.pool().begin().await?;
        for chunk in orgs.chunks(BATCH) {
            let mut sql =
                String::from("INSERT INTO sds_organisations (ods, name, doc, updated_ms) VALUES ");
            for i in 0..chunk.len() {
                let p = i * 4;
                if i > 0 {
                    sql.push(',');
                }
                let ph = |n| store::placeholder(self.db.kind(), n);
                sql.push_str(&format!(
                    "({}, {}, {}, {})",
                    ph(p + 1),
                    ph(p + 2),
                    ph(p + 3),
                    ph(p + 4)
                ));
            }
            sql.push_str(
                " ON CONFLICT (ods) DO UPDATE SET name = excluded.name, doc = excluded.doc, updated_ms = excluded.updated_ms",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for org in chunk {
                let doc = serde_json::to_string(org).map_err(|e| Error::Corrupt(e.to_string()))?;
                q = q
                    .bind(org.ods.clone())
                    .bind(org.name.clone())
                    .bind(doc)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
            // Party keys: the organisation's rows are replaced whole.
            let mut delete = String::from("DELETE FROM sds_party_keys WHERE ods IN (");
            for i in 0..chunk.len() {
                if i > 0 {
                    delete.push(',');
                }
                delete.push_str(&store::placeholder(self.db.kind(), i + 1));
            }
            delete.push(')');
            let mut q = sqlx::query(sqlx::AssertSqlSafe(delete));
            for org in chunk {
                q = q.bind(org.ods.clone());
            }
            q.execute(&mut *tx).await?;
            let keys: Vec<(&str, &str)> = chunk
                .iter()
                .flat_map(|o| {
                    o.systems
                        .iter()
                        .map(move |s| (s.party_key.as_str(), o.ods.as_str()))
                })
                .collect();
            for keys in keys.chunks(BATCH) {
                let mut sql = String::from("INSERT INTO sds_party_keys (party_key, ods) VALUES ");
                for i in 0..keys.len() {
                    if i > 0 {
                        sql.push(',');
                    }
                    let ph = |n| store::placeholder(self.db.kind(), n);
                    sql.push_str(&format!("({}, {})", ph(2 * i + 1), ph(2 * i + 2)));
                }
                sql.push_str(" ON CONFLICT (party_key) DO UPDATE SET ods = excluded.ods");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (key, ods) in keys {
                    q = q.bind(key.to_string()).bind(ods.to_string());
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes an organisation. Returns whether it was there.
    pub async fn delete(&self, ods: &str) -> Result<bool> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM sds_party_keys WHERE ods = $1")
            .bind(ods)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM sds_organisations WHERE ods = $1")
            .bind(ods)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many organisations the directory holds.
    pub async fn count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sds_organisations")
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}

fn decode(doc: &str) -> Result<Organisation> {
    serde_json::from_str(doc).map_err(|e| Error::Corrupt(format!("an SDS entry: {e}")))
}

/// What the SDS router needs.
#[derive(Debug, Clone)]
pub struct SdsState {
    /// The directory.
    pub directory: Directory,
    /// The public base URL of the SDS service (`http://127.0.0.1:8080/sds`), for `fullUrl`s.
    pub base_url: Arc<str>,
    /// The message relay's URL, when the relay runs: the `address` answered for
    /// forward-reliable GP2GP interactions.
    pub relay_url: Option<Arc<str>>,
}

/// The service of GP2GP's interactions.
const GP2GP_SERVICE: &str = "urn:nhs:names:services:gp2gp:";

/// Whether messages of `interaction` to `sys` travel forward-reliably through the relay:
/// a GP2GP interaction (all of GP2GP is forward-reliable) to a system that has not
/// declared `ack_requested = "never"`.
pub fn forward_reliable(sys: &System, interaction: &str) -> bool {
    interaction.starts_with(GP2GP_SERVICE)
        && !sys
            .reliability
            .ack_requested
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("never"))
}

/// The SDS service: the FHIR API and the admin endpoints.
pub fn router(state: SdsState) -> Router {
    Router::new()
        .route("/Device", get(search_devices))
        .route("/Endpoint", get(search_endpoints))
        .route("/admin/organisations", get(admin_list).post(admin_create))
        .route(
            "/admin/organisations/{ods}",
            get(admin_get).put(admin_put).delete(admin_delete),
        )
        .with_state(state)
}

/// A parsed SDS search.
#[derive(Debug, Default, PartialEq)]
struct Search {
    ods: Option<String>,
    interaction: Option<String>,
    party_key: Option<String>,
}

fn parse_search(params: &[(String, String)], need_org: bool) -> Result<Search> {
    let bad = |m: String| Error::bad_request("INVALID_SEARCH_DATA", m);
    let mut s = Search::default();
    for (name, value) in params {
        match name.as_str() {
            "organization" => {
                let code = value
                    .strip_prefix(ODS_SYSTEM)
                    .and_then(|v| v.strip_prefix('|'))
                    .ok_or_else(|| {
                        bad(format!(
                            "organization must be {ODS_SYSTEM}|{{ODS code}}, not '{value}'"
                        ))
                    })?;
                nhsid::OdsCode::parse(code)
                    .map_err(|_| bad(format!("'{code}' in organization is not an ODS code")))?;
                s.ods = Some(code.to_string());
            }
            "identifier" => {
                let (system, v) = value.split_once('|').ok_or_else(|| {
                    bad(format!("identifier must be system|value, not '{value}'"))
                })?;
                if v.is_empty() {
                    return Err(bad(format!("identifier '{value}' has no value")));
                }
                match system {
                    INTERACTION_SYSTEM => s.interaction = Some(v.to_string()),
                    PARTY_KEY_SYSTEM => s.party_key = Some(v.to_string()),
                    other => {
                        return Err(bad(format!(
                            "identifier system '{other}' is not searchable: use {INTERACTION_SYSTEM} or {PARTY_KEY_SYSTEM}"
                        )));
                    }
                }
            }
            n if n.starts_with('_') => {}
            other => return Err(bad(format!("unknown search parameter '{other}'"))),
        }
    }
    if s.interaction.is_none() {
        return Err(bad(format!(
            "missing identifier={INTERACTION_SYSTEM}|{{interaction id}}"
        )));
    }
    if s.ods.is_none() && (need_org || s.party_key.is_none()) {
        return Err(bad(format!(
            "missing organization={ODS_SYSTEM}|{{ODS code}}"
        )));
    }
    Ok(s)
}

/// The (organisation, system) pairs a search matches.
async fn matches(dir: &Directory, s: &Search) -> Result<Vec<(Organisation, System)>> {
    let org = match (&s.ods, &s.party_key) {
        (Some(ods), _) => dir.get(ods).await?,
        (None, Some(key)) => dir.by_party_key(key).await?,
        (None, None) => None,
    };
    let Some(org) = org else {
        return Ok(Vec::new());
    };
    let interaction = s.interaction.as_deref().unwrap_or_default();
    let systems: Vec<System> = org
        .systems
        .iter()
        .filter(|sys| sys.interactions.iter().any(|i| i == interaction))
        .filter(|sys| s.party_key.as_ref().is_none_or(|k| &sys.party_key == k))
        .cloned()
        .collect();
    Ok(systems.into_iter().map(|sys| (org.clone(), sys)).collect())
}

fn stable_id(parts: &[&str]) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, parts.join("|").as_bytes())
        .hyphenated()
        .to_string()
        .to_uppercase()
}

fn ods_reference(ods: &str) -> Value {
    json!({"identifier": {"system": ODS_SYSTEM, "value": ods}})
}

fn interaction_extension(interaction: &str) -> Value {
    json!({
        "url": INTERACTION_EXTENSION,
        "valueReference": {"identifier": {"system": INTERACTION_SYSTEM, "value": interaction}}
    })
}

/// The Device resource for a system and interaction.
pub fn device(org: &Organisation, sys: &System, interaction: &str) -> Value {
    let mut extension = vec![interaction_extension(interaction)];
    if let Some(m) = &sys.manufacturer_ods {
        extension.insert(
            0,
            json!({"url": MANUFACTURER_EXTENSION, "valueReference": ods_reference(m)}),
        );
    }
    json!({
        "resourceType": "Device",
        "id": stable_id(&["Device", &sys.asid, interaction]),
        "extension": extension,
        "identifier": [
            {"system": ASID_SYSTEM, "value": sys.asid},
            {"system": PARTY_KEY_SYSTEM, "value": sys.party_key},
        ],
        "owner": ods_reference(&org.ods),
    })
}

/// The Endpoint resource for a system and interaction.
pub fn endpoint(org: &Organisation, sys: &System, interaction: &str) -> Value {
    let r = &sys.reliability;
    let mut reliability = Vec::new();
    let mut string = |url: &str, v: &Option<String>| {
        if let Some(v) = v {
            reliability.push(json!({"url": url, "valueString": v}));
        }
    };
    string("nhsMHSSyncReplyMode", &r.sync_reply_mode);
    string("nhsMHSRetryInterval", &r.retry_interval);
    if let Some(n) = r.retries {
        reliability.push(json!({"url": "nhsMHSRetries", "valueInteger": n}));
    }
    let mut string = |url: &str, v: &Option<String>| {
        if let Some(v) = v {
            reliability.push(json!({"url": url, "valueString": v}));
        }
    };
    string("nhsMHSPersistDuration", &r.persist_duration);
    string("nhsMHSDuplicateElimination", &r.duplicate_elimination);
    string("nhsMHSAckRequested", &r.ack_requested);
    let cpa = sys.cpa_id();
    json!({
        "resourceType": "Endpoint",
        "id": stable_id(&["Endpoint", &sys.party_key, interaction]),
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "hl7-fhir-msg",
            "display": "HL7 FHIR Messaging"
        },
        "payloadType": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
            "code": "any",
            "display": "Any"
        }]}],
        "address": sys.address,
        "managingOrganization": ods_reference(&org.ods),
        "identifier": [
            {"system": FQDN_SYSTEM, "value": sys.fqdn()},
            {"system": PARTY_KEY_SYSTEM, "value": sys.party_key},
            {"system": CPA_ID_SYSTEM, "value": cpa},
            {"system": MHS_ID_SYSTEM, "value": cpa},
        ],
        "extension": [
            {"url": RELIABILITY_EXTENSION, "extension": reliability},
            interaction_extension(interaction),
        ],
    })
}

/// A searchset Bundle of `resources`, each with its `fullUrl` under `base`.
pub fn searchset(base: &str, resources: Vec<Value>) -> Value {
    let entry: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let ty = r["resourceType"].as_str().unwrap_or_default().to_string();
            let id = r["id"].as_str().unwrap_or_default().to_string();
            json!({"fullUrl": format!("{base}/{ty}/{id}"), "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase(),
        "type": "searchset",
        "total": entry.len(),
        "entry": entry,
    })
}

async fn search_devices(
    State(state): State<SdsState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let search = parse_search(&params, true)?;
    let found = matches(&state.directory, &search).await?;
    let interaction = search.interaction.unwrap_or_default();
    let resources = found
        .iter()
        .map(|(o, s)| device(o, s, &interaction))
        .collect();
    Ok(crate::fhir_json(
        StatusCode::OK,
        &searchset(&state.base_url, resources),
    ))
}

async fn search_endpoints(
    State(state): State<SdsState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let search = parse_search(&params, false)?;
    let found = matches(&state.directory, &search).await?;
    let interaction = search.interaction.unwrap_or_default();
    let resources = found
        .iter()
        .map(|(o, s)| match &state.relay_url {
            Some(relay) if !s.address.trim().is_empty() && forward_reliable(s, &interaction) => {
                let through_relay = System {
                    address: relay.to_string(),
                    ..s.clone()
                };
                endpoint(o, &through_relay, &interaction)
            }
            _ => endpoint(o, s, &interaction),
        })
        .collect();
    Ok(crate::fhir_json(
        StatusCode::OK,
        &searchset(&state.base_url, resources),
    ))
}

async fn admin_list(
    State(state): State<SdsState>,
) -> Result<Json<BTreeMap<String, Vec<Organisation>>>> {
    let orgs = state.directory.list().await?;
    Ok(Json(BTreeMap::from([("organisations".to_string(), orgs)])))
}

async fn admin_get(
    State(state): State<SdsState>,
    Path(ods): Path<String>,
) -> Result<Json<Organisation>> {
    state
        .directory
        .get(&ods)
        .await?
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("no organisation {ods} in the directory")))
}

fn parse_body(body: &[u8]) -> Result<Organisation> {
    serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(
            "INVALID_VALUE",
            format!("the organisation is not valid JSON for SDS: {e}"),
        )
    })
}

async fn admin_create(State(state): State<SdsState>, body: axum::body::Bytes) -> Result<Response> {
    let org = parse_body(&body)?;
    org.validate()?;
    if state.directory.get(&org.ods).await?.is_some() {
        return Err(Error::Conflict(format!(
            "organisation {} is already in the directory: PUT it to change it",
            org.ods
        )));
    }
    state.directory.upsert(&org).await?;
    tracing::info!(ods = %org.ods, "SDS organisation added");
    Ok((StatusCode::CREATED, Json(org)).into_response())
}

async fn admin_put(
    State(state): State<SdsState>,
    Path(ods): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let org = parse_body(&body)?;
    if org.ods != ods {
        return Err(Error::bad_request(
            "INVALID_VALUE",
            format!(
                "the body is organisation {} but the path says {ods}",
                org.ods
            ),
        ));
    }
    let created = state.directory.upsert(&org).await?;
    tracing::info!(%ods, created, "SDS organisation stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(org)).into_response())
}

async fn admin_delete(
    State(state): State<SdsState>,
    Path(ods): Path<String>,
) -> Result<StatusCode> {
    if state.directory.delete(&ods).await? {
        tracing::info!(%ods, "SDS organisation removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!(
            "no organisation {ods} in the directory"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_search_needs_an_interaction_and_an_organisation() {
        let org = format!("{ODS_SYSTEM}|B86041");
        let int = format!("{INTERACTION_SYSTEM}|urn:x");
        assert!(parse_search(&p(&[("organization", &org)]), true).is_err());
        assert!(parse_search(&p(&[("identifier", &int)]), true).is_err());
        let key = format!("{PARTY_KEY_SYSTEM}|B86041-1");
        assert!(parse_search(&p(&[("identifier", &int), ("identifier", &key)]), false).is_ok());
        assert!(parse_search(&p(&[("identifier", &int), ("identifier", &key)]), true).is_err());
        let s = parse_search(&p(&[("organization", &org), ("identifier", &int)]), true).unwrap();
        assert_eq!(s.ods.as_deref(), Some("B86041"));
        assert!(
            parse_search(
                &p(&[("organization", "B86041"), ("identifier", &int)]),
                true
            )
            .is_err()
        );
        assert!(
            parse_search(
                &p(&[
                    ("organization", &org),
                    ("identifier", &int),
                    ("colour", "red")
                ]),
                true
            )
            .is_err()
        );
    }
}
