//! Simulated practices served beside Spine: each one a GP clinical system (`practice`)
//! with its own MHS (`mhs`) and GP2GP service (`gp2gp`), on its own SQLite file and
//! payload directory under `DATA/practices/<ODS>/` (as `lloyd seed` writes them).
//!
//! Every practice sits under `/practices/<ODS>` on the one `lloyd serve` listener:
//!
//! - `/practices/<ODS>/mhs` — its MHS's inbound ebXML endpoint (what SDS names; the relay
//!   forwards there);
//! - `/practices/<ODS>/mhs-adaptor` — the NHS MHS adaptor's REST facade, for a GP system;
//! - the practice's own API (see [`api`]): patients, registrations (which start GP2GP),
//!   transfers and their status, the integration inbox.
//!
//! A practice learns who it is (ASID, party key) from SDS over HTTP, like a real system
//! configured with its ODS code, so practices start once Spine is listening.

pub mod api;
pub mod clinical;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use gp2gp::driver::{Driver, DriverConfig, Running};
use http::StatusCode;
use tower::ServiceExt;

pub use clinical::PracticeSystem;

/// How practices are run.
#[derive(Debug, Clone)]
pub struct Options {
    /// File records without a person when nothing degraded and the patient matches.
    pub auto_integrate: bool,
    /// How often each GP2GP driver looks at deadlines and decisions.
    pub tick: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auto_integrate: false,
            tick: Duration::from_secs(1),
        }
    }
}

/// One running practice.
pub struct Hosted {
    pub ods: String,
    pub asid: String,
    pub practice: practice::Practice,
    pub driver: Driver<PracticeSystem>,
    pub base_url: String,
    _running: Running<PracticeSystem>,
    mhs: mhs::Mhs,
}

impl std::fmt::Debug for Hosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosted")
            .field("ods", &self.ods)
            .finish_non_exhaustive()
    }
}

/// Every practice this server runs, and the router that reaches them.
#[derive(Default)]
pub struct Practices {
    hosted: RwLock<BTreeMap<String, Arc<Hosted>>>,
    router: RwLock<Option<Router>>,
}

impl std::fmt::Debug for Practices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Practices").finish_non_exhaustive()
    }
}

impl Practices {
    /// The practices running, by ODS code.
    pub fn list(&self) -> Vec<Arc<Hosted>> {
        match self.hosted.read() {
            Ok(h) => h.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        }
    }

    fn rebuild(&self) {
        let all = Arc::new(self.list());
        // Paths here are below `/practices` (the server nests this router there).
        let mut router = Router::new().route(
            "/",
            axum::routing::get(api::list_practices).with_state(all.clone()),
        );
        for h in all.iter() {
            let prefix = format!("/{}", h.ods);
            router = router
                .nest_service(&format!("{prefix}/mhs"), h.mhs.inbound_router())
                .nest_service(&format!("{prefix}/mhs-adaptor"), h.mhs.facade_router())
                .nest(&prefix, api::router(h.clone()));
        }
        match self.router.write() {
            Ok(mut r) => *r = Some(router),
            Err(p) => *p.into_inner() = Some(router),
        }
    }

    /// Stops every practice's MHS in order.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Hosted>> = match self.hosted.write() {
            Ok(mut h) => std::mem::take(&mut *h).into_values().collect(),
            Err(p) => std::mem::take(&mut *p.into_inner()).into_values().collect(),
        };
        drop(all);
    }
}

/// The routes that reach every practice (`/practices` and everything under it), to merge
/// into the server's router.
pub fn routes(practices: Arc<Practices>) -> Router {
    let service = tower::service_fn(move |request: Request| {
        let practices = practices.clone();
        async move { Ok::<_, std::convert::Infallible>(dispatch(practices, request).await) }
    });
    Router::new().nest_service("/practices", service)
}

/// Hands a request under `/practices` to the current router of practices.
async fn dispatch(practices: Arc<Practices>, request: Request) -> Response {
    let router = match practices.router.read() {
        Ok(r) => r.clone(),
        Err(p) => p.into_inner().clone(),
    };
    match router {
        Some(router) => match router.oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": "the practices are still starting; try again in a moment"})),
        )
            .into_response(),
    }
}

/// The ODS codes of the practices seeded under `data_dir/practices`.
pub fn seeded(data_dir: &Path) -> Result<Vec<String>, String> {
    let dir = data_dir.join("practices");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().join("practice.db").exists() && nhsid::OdsCode::parse(&name).is_ok() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Starts every seeded practice (Spine must already be answering at `base_url`).
pub async fn start_all(
    practices: &Practices,
    data_dir: &Path,
    base_url: &str,
    clock: clock::SharedClock,
    options: &Options,
) -> Result<usize, String> {
    let codes = seeded(data_dir)?;
    start_some(practices, data_dir, &codes, base_url, clock, options).await
}

/// Starts the practices `codes` of those seeded under `data_dir/practices` (Spine must
/// already be answering at `base_url`).
pub async fn start_some(
    practices: &Practices,
    data_dir: &Path,
    codes: &[String],
    base_url: &str,
    clock: clock::SharedClock,
    options: &Options,
) -> Result<usize, String> {
    for ods in codes {
        let hosted = start_one(
            ods,
            &data_dir.join("practices").join(ods),
            base_url,
            clock.clone(),
            options,
        )
        .await
        .map_err(|e| format!("practice {ods}: {e}"))?;
        match practices.hosted.write() {
            Ok(mut h) => h.insert(ods.clone(), Arc::new(hosted)),
            Err(p) => p.into_inner().insert(ods.clone(), Arc::new(hosted)),
        };
    }
    practices.rebuild();
    Ok(codes.len())
}

async fn start_one(
    ods: &str,
    dir: &Path,
    base_url: &str,
    clock: clock::SharedClock,
    options: &Options,
) -> Result<Hosted, String> {
    let (db, payloads) = crate::commands::open_local_stores(dir, "practice.db").await?;
    let sds = mhs::SdsConfig {
        base_url: format!("{base_url}/sds"),
        api_key: None,
        cache_ttl: Duration::from_secs(300),
    };
    // Who are we? SDS knows this practice's GP2GP system.
    let http = mhs::tls::http_client(None).map_err(|e| e.to_string())?;
    let directory = mhs::SdsClient::new(
        sds.clone(),
        http,
        clock.clone(),
        mhs::Reliability::default(),
    );
    let me = directory
        .lookup(ods, ebxml::SERVICE_GP2GP, "RCMR_IN030000UK06")
        .await
        .map_err(|e| format!("not usable for GP2GP in SDS: {e}"))?;
    let asid = me.asid.clone().unwrap_or_default();
    let mut config = mhs::MhsConfig::new(me.party_key.clone(), ods);
    config.asid = Some(asid.clone());
    config.sds = Some(sds);
    let mhs = mhs::Mhs::start(config, db.clone(), payloads.clone(), clock.clone())
        .await
        .map_err(|e| e.to_string())?;
    let practice = practice::Practice::open(
        ods,
        db.clone(),
        payloads.clone(),
        clock.clone(),
        practice::AutoIntegration {
            enabled: options.auto_integrate,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut driver_config = DriverConfig::new(ods, asid.clone());
    driver_config.pds_url = Some(format!("{base_url}/pds"));
    driver_config.tick = options.tick;
    let system = PracticeSystem {
        practice: practice.clone(),
        payloads: payloads.clone(),
    };
    let driver = Driver::open(driver_config, db, payloads, clock, mhs.handle(), system)
        .await
        .map_err(|e| e.to_string())?;
    let running = driver.clone().start();
    Ok(Hosted {
        ods: ods.to_string(),
        asid,
        practice,
        driver,
        base_url: base_url.to_string(),
        _running: running,
        mhs,
    })
}

/// A JSON error answer.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}
