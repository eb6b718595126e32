//! Routing by SDS: which MHS receives an interaction for an organisation, and how
//! reliably to send to it.
//!
//! Two queries of the SDS FHIR API, both filtered by the organisation's ODS code and the
//! interaction (`{service}:{interaction}`):
//!
//! - `GET {sds}/Device?organization=…|{ODS}&identifier=…|{service}:{interaction}` → the
//!   receiving system's ASID (`https://fhir.nhs.uk/Id/nhsSpineASID`) and MHS party key
//!   (`https://fhir.nhs.uk/Id/nhsMhsPartyKey`);
//! - `GET {sds}/Endpoint?…` (the same filters) → the MHS's `address`, CPA id
//!   (`nhsMhsCPAId`), party key, and the reliability extension (`nhsMHSRetryInterval`,
//!   `nhsMHSRetries`, `nhsMHSPersistDuration`, …).
//!
//! Anything but exactly one usable answer is an [`SdsError`], which GP2GP reports with
//! reason code 24. Answers are cached for a time (by the [`clock::Clock`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clock::SharedClock;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::tls::HttpClient;

const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const INTERACTION_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsServiceInteractionId";
const ASID_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsSpineASID";
const PARTY_KEY_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsMhsPartyKey";
const CPA_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsMhsCPAId";
const FQDN_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhsMhsFQDN";
const RELIABILITY_URL: &str =
    "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ReliabilityConfiguration";

/// What went wrong asking SDS (every one is GP2GP reason code 24).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdsError {
    /// SDS found nothing.
    #[error(
        "SDS has no {resource} for ODS code {ods} and interaction {interaction}; check the organisation is GP2GP-enabled"
    )]
    NoResult {
        /// `Device` or `Endpoint`.
        resource: &'static str,
        /// The ODS code asked about.
        ods: String,
        /// `{service}:{interaction}`.
        interaction: String,
    },
    /// SDS found several, so the route is ambiguous.
    #[error(
        "SDS has {count} {resource}s for ODS code {ods} and interaction {interaction}; exactly one is needed to route a message"
    )]
    SeveralResults {
        /// `Device` or `Endpoint`.
        resource: &'static str,
        /// How many.
        count: usize,
        /// The ODS code asked about.
        ods: String,
        /// `{service}:{interaction}`.
        interaction: String,
    },
    /// SDS answered with an error (an OperationOutcome or an HTTP error status).
    #[error("SDS answered with an error (HTTP {status}): {detail}")]
    ErrorAnswer {
        /// The HTTP status.
        status: u16,
        /// The OperationOutcome's words, or the body.
        detail: String,
    },
    /// The answer lacks something needed.
    #[error("the SDS {resource} for {ods} has no {what}")]
    Missing {
        /// `Device` or `Endpoint`.
        resource: &'static str,
        /// The ODS code asked about.
        ods: String,
        /// What is missing.
        what: &'static str,
    },
    /// The answer is not the JSON expected.
    #[error("the SDS answer cannot be read: {0}")]
    Unreadable(String),
    /// SDS could not be reached.
    #[error("SDS at {url} cannot be reached: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// How reliably to send to a destination (SDS's reliability extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reliability {
    /// Wait between attempts (`nhsMHSRetryInterval`).
    pub retry_interval: Duration,
    /// Retries after the first attempt (`nhsMHSRetries`).
    pub retries: u32,
    /// How long the message is kept and retried at most, and how long the receiver
    /// remembers its id (`nhsMHSPersistDuration`).
    pub persist_duration: Duration,
}

impl Default for Reliability {
    /// GP2GP's usual values: retry every 2 minutes, 3 retries, keep for 8 minutes.
    fn default() -> Self {
        Reliability {
            retry_interval: Duration::from_secs(120),
            retries: 3,
            persist_duration: Duration::from_secs(8 * 60),
        }
    }
}

/// Where and how to send one interaction to one organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The receiving MHS's URL (`Endpoint.address`).
    pub address: String,
    /// Its party key (`eb:To/eb:PartyId`).
    pub party_key: String,
    /// The CPA id (`eb:CPAId`).
    pub cpa_id: String,
    /// The receiving system's ASID, when known (from the Device).
    pub asid: Option<String>,
    /// Reliability settings.
    pub reliability: Reliability,
}

/// The parts of an Endpoint answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// `address` (may be empty in SDS; [`SdsClient`] refuses that).
    pub address: String,
    /// `nhsMhsPartyKey`.
    pub party_key: Option<String>,
    /// `nhsMhsCPAId`.
    pub cpa_id: Option<String>,
    /// `nhsMhsFQDN`.
    pub fqdn: Option<String>,
    /// `nhsMHSRetryInterval`, when given.
    pub retry_interval: Option<Duration>,
    /// `nhsMHSRetries`, when given.
    pub retries: Option<u32>,
    /// `nhsMHSPersistDuration`, when given.
    pub persist_duration: Option<Duration>,
    /// `nhsMHSAckRequested` (`always`, `never`), when given.
    pub ack_requested: Option<String>,
    /// `nhsMHSDuplicateElimination`, when given.
    pub duplicate_elimination: Option<String>,
    /// `nhsMHSSyncReplyMode`, when given.
    pub sync_reply_mode: Option<String>,
}

/// The parts of a Device answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `nhsSpineASID`.
    pub asid: String,
    /// `nhsMhsPartyKey`.
    pub party_key: Option<String>,
}

/// Reads an ISO 8601 duration as SDS writes them (`PT2M`, `PT1H30M`, `P1DT2H`, `PT0.5S`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.trim().strip_prefix('P')?;
    let mut ms: f64 = 0.0;
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            unit => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                any = true;
                let factor = match (unit, in_time) {
                    ('W', false) => 7.0 * 86_400_000.0,
                    ('D', false) => 86_400_000.0,
                    ('H', true) => 3_600_000.0,
                    ('M', true) => 60_000.0,
                    ('S', true) => 1_000.0,
                    _ => return None,
                };
                ms += n * factor;
            }
        }
    }
    if !number.is_empty() || !any || !ms.is_finite() || ms < 0.0 {
        return None;
    }
    Some(Duration::from_millis(ms as u64))
}

fn operation_outcome(v: &Value) -> Option<String> {
    if v.get("resourceType")?.as_str()? != "OperationOutcome" {
        return None;
    }
    let words: Vec<String> = v
        .get("issue")
        .and_then(Value::as_array)
        .map(|issues| {
            issues
                .iter()
                .map(|i| {
                    let coding = i.pointer("/details/coding/0");
                    let code = coding.and_then(|c| c.get("code")).and_then(Value::as_str);
                    let display = coding
                        .and_then(|c| c.get("display"))
                        .and_then(Value::as_str);
                    let diag = i.get("diagnostics").and_then(Value::as_str);
                    [code, display, diag]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": ")
                })
                .collect()
        })
        .unwrap_or_default();
    Some(if words.is_empty() {
        "OperationOutcome".to_string()
    } else {
        words.join("; ")
    })
}

/// The one resource of a search Bundle, refusing zero or several.
fn single<'a>(
    bundle: &'a Value,
    resource: &'static str,
    ods: &str,
    interaction: &str,
) -> Result<&'a Value, SdsError> {
    if let Some(detail) = operation_outcome(bundle) {
        return Err(SdsError::ErrorAnswer {
            status: 200,
            detail,
        });
    }
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(SdsError::Unreadable(format!(
            "expected a Bundle of {resource}"
        )));
    }
    let entries: Vec<&Value> = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(|e| e.get("resource"))
                .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(resource))
                .collect()
        })
        .unwrap_or_default();
    match entries.as_slice() {
        [] => Err(SdsError::NoResult {
            resource,
            ods: ods.to_string(),
            interaction: interaction.to_string(),
        }),
        [one] => Ok(one),
        several => Err(SdsError::SeveralResults {
            resource,
            count: several.len(),
            ods: ods.to_string(),
            interaction: interaction.to_string(),
        }),
    }
}

fn identifier<'a>(resource: &'a Value, system: &str) -> Option<&'a str> {
    resource
        .get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(system))?
        .get("value")?
        .as_str()
        .filter(|v| !v.trim().is_empty())
}

/// Reads a Device search answer (a Bundle): exactly one Device with an ASID.
pub fn parse_device(bundle: &Value, ods: &str, interaction: &str) -> Result<DeviceInfo, SdsError> {
    let device = single(bundle, "Device", ods, interaction)?;
    let asid = identifier(device, ASID_SYSTEM).ok_or_else(|| SdsError::Missing {
        resource: "Device",
        ods: ods.to_string(),
        what: "ASID (nhsSpineASID identifier)",
    })?;
    Ok(DeviceInfo {
        asid: asid.to_string(),
        party_key: identifier(device, PARTY_KEY_SYSTEM).map(str::to_string),
    })
}

/// Reads an Endpoint search answer (a Bundle): exactly one Endpoint.
pub fn parse_endpoint(
    bundle: &Value,
    ods: &str,
    interaction: &str,
) -> Result<EndpointInfo, SdsError> {
    let endpoint = single(bundle, "Endpoint", ods, interaction)?;
    let mut info = EndpointInfo {
        address: endpoint
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string(),
        party_key: identifier(endpoint, PARTY_KEY_SYSTEM).map(str::to_string),
        cpa_id: identifier(endpoint, CPA_SYSTEM).map(str::to_string),
        fqdn: identifier(endpoint, FQDN_SYSTEM).map(str::to_string),
        retry_interval: None,
        retries: None,
        persist_duration: None,
        ack_requested: None,
        duplicate_elimination: None,
        sync_reply_mode: None,
    };
    let reliability = endpoint
        .get("extension")
        .and_then(Value::as_array)
        .and_then(|e| {
            e.iter()
                .find(|x| x.get("url").and_then(Value::as_str) == Some(RELIABILITY_URL))
        })
        .and_then(|x| x.get("extension"))
        .and_then(Value::as_array);
    for item in reliability.into_iter().flatten() {
        let value = item
            .get("valueString")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                item.get("valueInteger")
                    .and_then(Value::as_i64)
                    .map(|n| n.to_string())
            });
        let Some(value) = value else { continue };
        match item.get("url").and_then(Value::as_str).unwrap_or_default() {
            "nhsMHSRetryInterval" => info.retry_interval = parse_duration(&value),
            "nhsMHSRetries" => info.retries = value.trim().parse().ok(),
            "nhsMHSPersistDuration" => info.persist_duration = parse_duration(&value),
            "nhsMHSAckRequested" => info.ack_requested = Some(value),
            "nhsMHSDuplicateElimination" => info.duplicate_elimination = Some(value),
            "nhsMHSSyncReplyMode" => info.sync_reply_mode = Some(value),
            _ => {}
        }
    }
    Ok(info)
}

/// Answers by (ODS code, `service:interaction`), with their expiry time.
type Cache = HashMap<(String, String), (i64, Destination)>;

/// How to reach SDS.
#[derive(Debug, Clone)]
pub struct SdsConfig {
    /// The FHIR API's base URL, e.g. `http://127.0.0.1:7001/sds` (no trailing slash needed).
    pub base_url: String,
    /// Sent as the `apikey` header when set (the national API wants one).
    pub api_key: Option<String>,
    /// How long an answer is reused.
    pub cache_ttl: Duration,
}

/// The SDS FHIR API client, with its cache.
#[derive(Clone)]
pub struct SdsClient {
    config: SdsConfig,
    http: HttpClient,
    clock: SharedClock,
    defaults: Reliability,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for SdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdsClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl SdsClient {
    /// A client; `defaults` fill in reliability settings SDS leaves out.
    pub fn new(
        config: SdsConfig,
        http: HttpClient,
        clock: SharedClock,
        defaults: Reliability,
    ) -> SdsClient {
        SdsClient {
            config,
            http,
            clock,
            defaults,
            cache: Arc::default(),
        }
    }

    async fn get(&self, resource: &str, ods: &str, interaction: &str) -> Result<Value, SdsError> {
        let url = format!(
            "{}/{resource}?organization={}&identifier={}",
            self.config.base_url.trim_end_matches('/'),
            encode_query_value(&format!("{ODS_SYSTEM}|{ods}")),
            encode_query_value(&format!("{INTERACTION_SYSTEM}|{interaction}")),
        );
        let unreachable = |reason: String| SdsError::Unreachable {
            url: url.clone(),
            reason,
        };
        let mut req = http::Request::get(&url).header("accept", "application/fhir+json");
        if let Some(key) = &self.config.api_key {
            req = req.header("apikey", key);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), 4 * 1024 * 1024)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        let value: Result<Value, _> = serde_json::from_slice(&body);
        if !(200..300).contains(&status) {
            let detail = value
                .ok()
                .and_then(|v| operation_outcome(&v))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect());
            return Err(SdsError::ErrorAnswer { status, detail });
        }
        value.map_err(|e| SdsError::Unreadable(e.to_string()))
    }

    /// Where to send `interaction` (e.g. `RCMR_IN010000UK05`) of `service` (e.g.
    /// `urn:nhs:names:services:gp2gp`) for the organisation `ods`.
    pub async fn lookup(
        &self,
        ods: &str,
        service: &str,
        interaction: &str,
    ) -> Result<Destination, SdsError> {
        let key = format!("{service}:{interaction}");
        let now = self.clock.now_ms();
        if let Ok(cache) = self.cache.lock()
            && let Some((expires, dest)) = cache.get(&(ods.to_string(), key.clone()))
            && *expires > now
        {
            return Ok(dest.clone());
        }
        let device = parse_device(&self.get("Device", ods, &key).await?, ods, &key)?;
        let endpoint = parse_endpoint(&self.get("Endpoint", ods, &key).await?, ods, &key)?;
        if endpoint.address.is_empty() {
            return Err(SdsError::Missing {
                resource: "Endpoint",
                ods: ods.to_string(),
                what: "address",
            });
        }
        let party_key = endpoint
            .party_key
            .clone()
            .or(device.party_key.clone())
            .ok_or_else(|| SdsError::Missing {
                resource: "Endpoint",
                ods: ods.to_string(),
                what: "party key (nhsMhsPartyKey)",
            })?;
        let cpa_id = endpoint.cpa_id.clone().ok_or_else(|| SdsError::Missing {
            resource: "Endpoint",
            ods: ods.to_string(),
            what: "CPA id (nhsMhsCPAId)",
        })?;
        let dest = Destination {
            address: endpoint.address.clone(),
            party_key,
            cpa_id,
            asid: Some(device.asid),
            reliability: Reliability {
                retry_interval: endpoint
                    .retry_interval
                    .unwrap_or(self.defaults.retry_interval),
                retries: endpoint.retries.unwrap_or(self.defaults.retries),
                persist_duration: endpoint
                    .persist_duration
                    .unwrap_or(self.defaults.persist_duration),
            },
        };
        let ttl = i64::try_from(self.config.cache_ttl.as_millis()).unwrap_or(i64::MAX);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                (ods.to_string(), key),
                (now.saturating_add(ttl), dest.clone()),
            );
        }
        Ok(dest)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations_as_sds_writes_them() {
        assert_eq!(parse_duration("PT2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("PT1H30M"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("P1DT1S"), Some(Duration::from_secs(86_401)));
        assert_eq!(parse_duration("PT0.5S"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2M"), None);
        assert_eq!(parse_duration("P"), None);
        assert_eq!(parse_duration("PT5X"), None);
    }

    #[test]
    fn query_values_are_percent_encoded_but_keep_urls_readable() {
        assert_eq!(
            encode_query_value("https://fhir.nhs.uk/Id/ods-organization-code|A 1"),
            "https://fhir.nhs.uk/Id/ods-organization-code%7CA%201"
        );
    }
}
