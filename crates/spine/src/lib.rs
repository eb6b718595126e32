//! Spine in a box: the national services GP2GP and GP Connect lean on, each an HTTP service
//! speaking the real API's shapes, so that a practice system cannot tell it from the real
//! thing on the wire.
//!
//! | module | service | what it answers |
//! |---|---|---|
//! | [`sds`] | the Spine Directory Service | which ASID, party key and URL receive an interaction for an organisation, and how reliably to send (FHIR `Device` and `Endpoint` searches) |
//! | [`pds`] | the Personal Demographics Service | who a patient is and where they are registered (FHIR `Patient` read, trace, JSON Patch of the registration) |
//! | [`nems`] | the National Events Management Service | change-of-GP events, pushed to subscribers' callback URLs or pulled |
//! | [`mesh`] | Message Exchange for Social Care and Health | mailboxes: send, poll, download, acknowledge |
//! | [`relay`] | the Spine MHS (message relay) | every GP2GP message, MHS → Spine → MHS: acknowledged, forwarded to the receiving system with retries, and logged |
//! | [`message_log`] | the national message log | one line per message, retry and error, read as JSON lines |
//!
//! Each module owns its tables (`sds_*`, `pds_*`, `nems_*`, `mesh_*`, `relay_*`) in one
//! [`store::Database`] — SQLite on one machine, PostgreSQL when scaled — and builds an axum
//! [`Router`] (`sds::router`, …) that the `lloyd serve` command nests under its prefix
//! (`/sds`, `/pds`, `/nems`, `/mesh`; the relay answers at `/reliablemessaging/forwardreliable`
//! and `/spine/message-log`). [`Spine::start`] opens everything with one [`Config`] and one
//! clock and gives back [`Spine::router`] with all of them mounted.
//!
//! Handlers are thin: they parse the request, call the module's store, and shape the answer.
//! Every failure is one [`Error`], turned into a FHIR `OperationOutcome` with Spine's error
//! code and HTTP status in one place (its `IntoResponse`); MESH answers in its own JSON
//! error shape.
//!
//! PDS and NEMS are linked the way the real services are: when a registration changes,
//! PDS writes the change to its own outbox in the same transaction as the patient, and a
//! relay hands it to NEMS ([`pds::RegistrationListener`]), which stores the
//! `pds-change-of-gp-1` event and delivers it to subscribers with retries on the clock.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub mod error;
pub mod mesh;
pub mod message_log;
pub mod nems;
pub mod pds;
pub mod relay;
pub mod sds;
pub mod time;

pub use error::{Error, Result};

/// The configuration of the services (the `[sds]`, `[pds]`, `[nems]`, `[mesh]` and
/// `[relay]` sections of `lloyd serve`'s file). Every default works on one machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// SDS.
    #[serde(default)]
    pub sds: sds_config::SdsConfig,
    /// PDS.
    #[serde(default)]
    pub pds: pds::PdsConfig,
    /// NEMS.
    #[serde(default)]
    pub nems: nems::NemsConfig,
    /// MESH.
    #[serde(default)]
    pub mesh: mesh::MeshConfig,
    /// The message relay and the national message log.
    #[serde(default)]
    pub relay: relay::RelayConfig,
}

/// SDS's configuration.
pub mod sds_config {
    use serde::{Deserialize, Serialize};

    /// `[sds]`
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SdsConfig {
        /// A directory file (TOML, `[[organisations]]`) loaded into the directory at start:
        /// its entries are added or replaced, others are kept.
        #[serde(default)]
        pub directory: Option<std::path::PathBuf>,
    }
}

/// The services, opened and running.
#[derive(Debug, Clone)]
pub struct Spine {
    /// SDS.
    pub sds: sds::SdsState,
    /// PDS.
    pub pds: pds::PdsState,
    /// NEMS.
    pub nems: nems::NemsState,
    /// MESH.
    pub mesh: mesh::MeshState,
    /// The message relay, unless it is switched off. Its forwarding stops when the last
    /// clone of this `Spine` is dropped.
    pub relay: Option<Arc<relay::Relay>>,
}

impl Spine {
    /// Opens the services on `db` (creating their tables), loads the configured SDS
    /// directory, and starts NEMS delivery, the PDS→NEMS relay and (unless switched off)
    /// the message relay's forwarding in the background.
    /// `base_url` is the public address of the server (`http://127.0.0.1:8080`).
    pub async fn start(
        db: store::Database,
        payloads: store::PayloadStore,
        clock: clock::SharedClock,
        config: &Config,
        base_url: &str,
    ) -> Result<Spine> {
        let base = base_url.trim_end_matches('/');
        let directory = sds::Directory::open(db.clone(), clock.clone()).await?;
        if let Some(path) = &config.sds.directory {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read the SDS directory {}: {e}",
                    path.display()
                ))
            })?;
            let file = sds::DirectoryFile::from_toml(&text)?;
            directory.upsert_many(&file.organisations).await?;
            tracing::info!(path = %path.display(), organisations = file.organisations.len(), "SDS directory loaded");
        }
        let nems = nems::NemsState::open(
            db.clone(),
            clock.clone(),
            config.nems.clone(),
            &format!("{base}/nems"),
        )
        .await?;
        let store = pds::Store::open(db.clone(), clock.clone()).await?;
        let pds = pds::PdsState::new(
            store,
            clock.clone(),
            config.pds.clone(),
            &format!("{base}/pds"),
            Arc::new(nems.clone()),
        );
        pds.spawn_relay();
        nems.spawn_delivery();
        let relay = if config.relay.enabled {
            let r = relay::Relay::start(
                db.clone(),
                payloads.clone(),
                clock.clone(),
                directory.clone(),
                &config.relay,
                base,
            )
            .await?;
            Some(Arc::new(r))
        } else {
            None
        };
        let mesh = mesh::MeshState::open(db, payloads, clock, config.mesh.clone()).await?;
        Ok(Spine {
            sds: sds::SdsState {
                directory,
                base_url: Arc::from(format!("{base}/sds")),
                relay_url: relay.as_ref().map(|r| Arc::from(r.url())),
            },
            pds,
            nems,
            mesh,
            relay,
        })
    }

    /// All the services, each nested under its prefix (the relay at its own paths) and
    /// counted in the `spine_requests_total` metric.
    pub fn router(&self) -> Router {
        let relay = match &self.relay {
            Some(r) => with_metrics("relay", r.router()),
            None => Router::new(),
        };
        Router::new()
            .nest("/sds", with_metrics("sds", sds::router(self.sds.clone())))
            .nest("/pds", with_metrics("pds", pds::router(self.pds.clone())))
            .nest(
                "/nems",
                with_metrics("nems", nems::router(self.nems.clone())),
            )
            .nest(
                "/mesh",
                with_metrics("mesh", mesh::router(self.mesh.clone())),
            )
            .merge(relay)
    }
}

/// Counts a service's requests by status in `spine_requests_total{service, status}`.
pub fn with_metrics(service: &'static str, router: Router) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| async move {
            let response = next.run(req).await;
            metrics::counter!(
                "spine_requests_total",
                "service" => service,
                "status" => response.status().as_u16().to_string()
            )
            .increment(1);
            response
        },
    ))
}

/// A FHIR JSON response.
pub fn fhir_json(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    response
}
