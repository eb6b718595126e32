//! `lloyd serve`: run Spine in a box — SDS, PDS, NEMS, MESH, and the message relay with
//! the national message log — on one HTTP port.
//!
//! Configuration comes from one TOML file (`--config`), then `LLOYD_*` environment
//! variables, then `--listen`; every default works on one machine: `127.0.0.1:8080`, state in
//! a SQLite file and payloads on disk under `./lloyd-data`. Each service is an axum router
//! built by the `spine` crate and nested under its prefix; `/healthz` and `/metrics`
//! (Prometheus) sit beside them. Logs go to stderr (`log` / `LLOYD_LOG`, a tracing filter).
//! Once listening, one line `lloyd serve: listening on http://ADDR` goes to stdout. Ctrl-C
//! or SIGTERM stops accepting, lets requests in flight finish, and exits 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use serde::Deserialize;

/// Run Spine in a box (SDS, PDS, NEMS, MESH) over HTTP.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A TOML configuration file (every key optional; see the README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Address to listen on.
    listen: Option<String>,
    /// Directory for the SQLite file and payloads.
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://…
    database: Option<String>,
    /// Where payloads (MESH bodies…) are kept; default DATA_DIR/payloads.
    payload_dir: Option<PathBuf>,
    /// The public URL clients reach this server at (for fullUrl, Location…).
    base_url: Option<String>,
    /// A tracing filter (`info`, `spine=debug,info`).
    log: Option<String>,
    #[serde(default)]
    sds: spine::sds_config::SdsConfig,
    #[serde(default)]
    pds: spine::pds::PdsConfig,
    #[serde(default)]
    nems: spine::nems::NemsConfig,
    #[serde(default)]
    mesh: spine::mesh::MeshConfig,
    /// The message relay (`/reliablemessaging/forwardreliable`) and the national message
    /// log (`/spine/message-log`). On by default.
    #[serde(default)]
    relay: spine::relay::RelayConfig,
    /// A message handler beside Spine: reliable ebXML in and out, and the NHS MHS
    /// adaptor's REST facade for a GP system. Off unless `party_key` is set.
    #[serde(default)]
    mhs: MhsSection,
    /// The simulated practices found under `DATA_DIR/practices` (as `lloyd demo` writes
    /// them): each with its own MHS, GP2GP service and API under `/practices/<ODS>`.
    #[serde(default)]
    practices: PracticesSection,
}

/// `[practices]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PracticesSection {
    /// Serve the practices found in the data directory (default: yes).
    #[serde(default = "yes")]
    enabled: bool,
    /// File records without a person when nothing degraded and the patient matches
    /// (default: no — filing is a clinical decision).
    #[serde(default)]
    auto_integrate: bool,
    /// Serve only these of the practices in the data directory (default: all of them) —
    /// to run practices in processes of their own.
    #[serde(default)]
    only: Vec<String>,
    /// Use the Spine at this URL (another `lloyd serve`) instead of running one here: this
    /// server then runs practices only, and tells that Spine's SDS where they listen.
    spine_url: Option<String>,
}

impl Default for PracticesSection {
    fn default() -> Self {
        PracticesSection {
            enabled: true,
            auto_integrate: false,
            only: Vec::new(),
            spine_url: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// `[mhs]`: the practice-side message handler.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MhsSection {
    /// This handler's party key (`ODS-NNNNNNN`); setting it turns the handler on.
    party_key: Option<String>,
    /// The organisation it serves (default: the party key's ODS part).
    ods_code: Option<String>,
    /// This system's ASID.
    asid: Option<String>,
    /// Inbound ebXML (mutual TLS unless loopback). Default 127.0.0.1:8443.
    listen: Option<String>,
    /// The MHS adaptor REST facade for the GP system. Default 127.0.0.1:8081.
    facade_listen: Option<String>,
    /// PEM files for mutual TLS: this system's certificate chain, its key, and the CA that
    /// signs its peers. Required unless both addresses are loopback.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    /// The SDS FHIR API to route by (default: this server's own `/sds`).
    sds_url: Option<String>,
    /// POST inbound messages (adaptor JSON) here instead of waiting to be pulled.
    webhook: Option<String>,
}

/// How an environment variable's text becomes a TOML value.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Bool,
    List,
}

/// The `LLOYD_*` variables `lloyd serve` reads: (variable, section, key, kind).
const ENV: &[(&str, Option<&str>, &str, Kind)] = &[
    ("LLOYD_LISTEN", None, "listen", Kind::Text),
    ("LLOYD_DATA_DIR", None, "data_dir", Kind::Text),
    ("LLOYD_DATABASE", None, "database", Kind::Text),
    ("LLOYD_PAYLOAD_DIR", None, "payload_dir", Kind::Text),
    ("LLOYD_BASE_URL", None, "base_url", Kind::Text),
    ("LLOYD_LOG", None, "log", Kind::Text),
    ("LLOYD_SDS_DIRECTORY", Some("sds"), "directory", Kind::Text),
    (
        "LLOYD_PDS_RATE_LIMIT_PER_SECOND",
        Some("pds"),
        "rate_limit_per_second",
        Kind::Integer,
    ),
    (
        "LLOYD_NEMS_RETRY_INTERVAL_SECS",
        Some("nems"),
        "retry_interval_secs",
        Kind::Integer,
    ),
    (
        "LLOYD_NEMS_MAX_ATTEMPTS",
        Some("nems"),
        "max_attempts",
        Kind::Integer,
    ),
    (
        "LLOYD_MESH_MAX_MESSAGE_BYTES",
        Some("mesh"),
        "max_message_bytes",
        Kind::Integer,
    ),
    (
        "LLOYD_MESH_MAILBOXES",
        Some("mesh"),
        "mailboxes",
        Kind::List,
    ),
    ("LLOYD_RELAY_ENABLED", Some("relay"), "enabled", Kind::Bool),
    (
        "LLOYD_PRACTICES_ENABLED",
        Some("practices"),
        "enabled",
        Kind::Bool,
    ),
    (
        "LLOYD_PRACTICES_AUTO_INTEGRATE",
        Some("practices"),
        "auto_integrate",
        Kind::Bool,
    ),
    (
        "LLOYD_PRACTICES_ONLY",
        Some("practices"),
        "only",
        Kind::List,
    ),
    (
        "LLOYD_PRACTICES_SPINE_URL",
        Some("practices"),
        "spine_url",
        Kind::Text,
    ),
    (
        "LLOYD_RELAY_ATTEMPT_TIMEOUT_SECS",
        Some("relay"),
        "attempt_timeout_secs",
        Kind::Integer,
    ),
    (
        "LLOYD_RELAY_MAX_IN_FLIGHT",
        Some("relay"),
        "max_in_flight",
        Kind::Integer,
    ),
    (
        "LLOYD_RELAY_REMEMBER_HOURS",
        Some("relay"),
        "remember_hours",
        Kind::Integer,
    ),
    (
        "LLOYD_RELAY_TLS_CERT",
        Some("relay"),
        "tls_cert",
        Kind::Text,
    ),
    ("LLOYD_RELAY_TLS_KEY", Some("relay"), "tls_key", Kind::Text),
    ("LLOYD_RELAY_TLS_CA", Some("relay"), "tls_ca", Kind::Text),
    ("LLOYD_MHS_PARTY_KEY", Some("mhs"), "party_key", Kind::Text),
    ("LLOYD_MHS_ODS_CODE", Some("mhs"), "ods_code", Kind::Text),
    ("LLOYD_MHS_ASID", Some("mhs"), "asid", Kind::Text),
    ("LLOYD_MHS_LISTEN", Some("mhs"), "listen", Kind::Text),
    (
        "LLOYD_MHS_FACADE_LISTEN",
        Some("mhs"),
        "facade_listen",
        Kind::Text,
    ),
    ("LLOYD_MHS_TLS_CERT", Some("mhs"), "tls_cert", Kind::Text),
    ("LLOYD_MHS_TLS_KEY", Some("mhs"), "tls_key", Kind::Text),
    ("LLOYD_MHS_TLS_CA", Some("mhs"), "tls_ca", Kind::Text),
    ("LLOYD_MHS_SDS_URL", Some("mhs"), "sds_url", Kind::Text),
    ("LLOYD_MHS_WEBHOOK", Some("mhs"), "webhook", Kind::Text),
];

/// Starts the message handler `[mhs]` describes, if it describes one.
async fn start_mhs(
    section: &MhsSection,
    own_base_url: &str,
    db: &store::Database,
    payloads: &store::PayloadStore,
    clock: &clock::SharedClock,
) -> Result<Option<mhs::Mhs>, String> {
    let Some(party_key) = section.party_key.clone() else {
        return Ok(None);
    };
    let party = nhsid::PartyKey::parse(&party_key).map_err(|e| format!("[mhs] party_key: {e}"))?;
    let ods = match &section.ods_code {
        Some(o) => o.clone(),
        None => party
            .as_str()
            .split_once('-')
            .map(|(o, _)| o.to_string())
            .unwrap_or_default(),
    };
    let addr = |text: &Option<String>, default: &str, what: &str| -> Result<SocketAddr, String> {
        let t = text.as_deref().unwrap_or(default);
        t.parse()
            .map_err(|_| format!("[mhs] {what} '{t}' is not an address like 127.0.0.1:8443"))
    };
    let mut cfg = mhs::MhsConfig::new(party.as_str(), ods);
    cfg.asid = section.asid.clone();
    cfg.listen = Some(addr(&section.listen, "127.0.0.1:8443", "listen")?);
    cfg.facade_listen = Some(addr(
        &section.facade_listen,
        "127.0.0.1:8081",
        "facade_listen",
    )?);
    cfg.webhook = section.webhook.clone();
    cfg.sds = Some(mhs::SdsConfig {
        base_url: section
            .sds_url
            .clone()
            .unwrap_or_else(|| format!("{own_base_url}/sds")),
        api_key: None,
        cache_ttl: std::time::Duration::from_secs(300),
    });
    cfg.tls = match (&section.tls_cert, &section.tls_key, &section.tls_ca) {
        (None, None, None) => None,
        (Some(cert), Some(key), Some(ca)) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p)
                    .map_err(|e| format!("[mhs] cannot read {}: {e}", p.display()))
            };
            Some(mhs::TlsConfig {
                cert_chain_pem: read(cert)?,
                key_pem: read(key)?,
                ca_pem: read(ca)?,
            })
        }
        _ => return Err("[mhs] mutual TLS needs all three of tls_cert, tls_key and tls_ca".into()),
    };
    let started = mhs::Mhs::start(cfg, db.clone(), payloads.clone(), clock.clone())
        .await
        .map_err(|e| format!("cannot start the message handler: {e}"))?;
    Ok(Some(started))
}

/// `[relay]`, forwarding over mutual TLS with the `[mhs]` identity when the relay has
/// none of its own.
fn relay_config(config: &Config) -> spine::relay::RelayConfig {
    let mut relay = config.relay.clone();
    let own = relay.tls_cert.is_some() || relay.tls_key.is_some() || relay.tls_ca.is_some();
    if !own {
        relay.tls_cert = config.mhs.tls_cert.clone();
        relay.tls_key = config.mhs.tls_key.clone();
        relay.tls_ca = config.mhs.tls_ca.clone();
    }
    relay
}

fn load_config(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, String> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the configuration {}: {e}", path.display()))?;
            text.parse::<toml::Table>()
                .map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?
        }
        None => toml::Table::new(),
    };
    for (var, section, key, kind) in ENV {
        let Some(text) = env(var) else { continue };
        let value = match kind {
            Kind::Text => toml::Value::String(text),
            Kind::Integer => toml::Value::Integer(
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{var}={text} is not a whole number"))?,
            ),
            Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => return Err(format!("{var}={text} is not true or false")),
            },
            Kind::List => toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
        };
        let target = match section {
            None => &mut table,
            Some(s) => match table
                .entry(s.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            {
                toml::Value::Table(t) => t,
                _ => return Err(format!("[{s}] in the configuration must be a table")),
            },
        };
        target.insert(key.to_string(), value);
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| format!("the configuration is not valid: {e}"))
}

/// Where the SDS directory this server's practices are listed in can be changed.
enum SdsAdmin {
    /// Spine runs in this process.
    Here(spine::sds::Directory),
    /// Spine is another `lloyd serve`: its SDS admin API.
    Remote { url: String, http: reqwest::Client },
}

impl SdsAdmin {
    /// Makes SDS give `address` for `ods`'s practice message handler (a system whose
    /// address ends in `/practices/<ODS>/mhs`, as `lloyd seed` and `lloyd demo` write it).
    async fn point_at(&self, ods: &str, address: &str) -> Result<(), String> {
        let suffix = format!("/practices/{ods}/mhs");
        let repoint = |org: &mut spine::sds::Organisation| {
            let mut changed = false;
            for system in &mut org.systems {
                if system.address.ends_with(&suffix) && system.address != address {
                    system.address = address.to_string();
                    changed = true;
                }
            }
            changed
        };
        match self {
            SdsAdmin::Here(directory) => {
                if let Some(mut org) = directory.get(ods).await.map_err(|e| e.to_string())?
                    && repoint(&mut org)
                {
                    directory.upsert(&org).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            SdsAdmin::Remote { url, http } => {
                let at = format!("{url}/sds/admin/organisations/{ods}");
                let unreachable = |e: reqwest::Error| {
                    format!("cannot reach Spine's SDS at {at}: {e} (is the Spine server running?)")
                };
                let r = http.get(&at).send().await.map_err(unreachable)?;
                if r.status() == reqwest::StatusCode::NOT_FOUND {
                    return Err(format!(
                        "Spine's SDS at {url} does not know practice {ods}: seed it into the Spine server's data directory"
                    ));
                }
                if !r.status().is_success() {
                    return Err(format!("{at} answered {}", r.status()));
                }
                let mut org: spine::sds::Organisation = r
                    .json()
                    .await
                    .map_err(|e| format!("{at} did not answer an organisation: {e}"))?;
                if repoint(&mut org) {
                    let r = http.put(&at).json(&org).send().await.map_err(unreachable)?;
                    if !r.status().is_success() {
                        return Err(format!("{at} refused the new address: {}", r.status()));
                    }
                }
                Ok(())
            }
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    let config = match load_config(args.config.as_deref(), |v| std::env::var(v).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lloyd serve: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(config.log.as_deref().unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
    let runtime = match super::runtime("serve") {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(serve(config, args.listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lloyd serve: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, listen_flag: Option<String>) -> Result<(), String> {
    let listen = listen_flag
        .or(config.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let data_dir = config
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./lloyd-data"));
    let database = config
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("lloyd.db").display()));
    let payload_dir = config
        .payload_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("payloads"));

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot start the metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let base_url = config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));

    let clock: clock::SharedClock = Arc::new(clock::SystemClock);
    let remote_spine = config
        .practices
        .spine_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_string());
    // Spine here, unless the practices use one elsewhere; the server's own database is
    // only opened when something here needs it.
    let own = if remote_spine.is_none() || config.mhs.party_key.is_some() {
        let db = store::Database::open(&database)
            .await
            .map_err(|e| e.to_string())?;
        let payloads = store::PayloadStore::on_disk(&payload_dir).map_err(|e| e.to_string())?;
        Some((db, payloads))
    } else {
        None
    };
    let spine = match (&own, &remote_spine) {
        (Some((db, payloads)), None) => {
            let spine_config = spine::Config {
                sds: config.sds.clone(),
                pds: config.pds.clone(),
                nems: config.nems.clone(),
                mesh: config.mesh.clone(),
                relay: relay_config(&config),
            };
            Some(
                spine::Spine::start(
                    db.clone(),
                    payloads.clone(),
                    clock.clone(),
                    &spine_config,
                    &base_url,
                )
                .await
                .map_err(|e| e.to_string())?,
            )
        }
        _ => None,
    };
    let handler = match &own {
        Some((db, payloads)) => start_mhs(&config.mhs, &base_url, db, payloads, &clock).await?,
        None => None,
    };

    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        );
    if let Some(spine) = &spine {
        // The Spine services: /sds, /pds, /nems, /mesh, and the relay's
        // /reliablemessaging/forwardreliable and /spine/message-log.
        app = app.merge(spine.router());
    }
    let practices = Arc::new(crate::practices::Practices::default());
    let app = app.merge(crate::practices::routes(practices.clone()));
    if config.practices.enabled {
        let mut codes = crate::practices::seeded(&data_dir)?;
        if !config.practices.only.is_empty() {
            let only = &config.practices.only;
            for ods in only {
                if !codes.iter().any(|c| c.eq_ignore_ascii_case(ods)) {
                    return Err(format!(
                        "[practices] only names {ods}, which is not a practice in {} (run lloyd seed first)",
                        data_dir.join("practices").display()
                    ));
                }
            }
            codes.retain(|c| only.iter().any(|o| o.eq_ignore_ascii_case(c)));
        }
        // The practices' MHS endpoints are on this listener: SDS must say so, whatever
        // address the data directory was written for.
        let sds = match (&spine, &remote_spine) {
            (Some(spine), _) => SdsAdmin::Here(spine.sds.directory.clone()),
            (None, Some(url)) => SdsAdmin::Remote {
                url: url.clone(),
                http: reqwest::Client::new(),
            },
            (None, None) => return Err("no Spine to serve the practices with".into()),
        };
        for ods in &codes {
            sds.point_at(ods, &format!("{base_url}/practices/{ods}/mhs"))
                .await?;
        }
        // Practices learn who they are from SDS over HTTP: started once the listener runs.
        let spine_base = remote_spine.clone().unwrap_or_else(|| base_url.clone());
        let (practices, data_dir, clock) = (practices.clone(), data_dir.clone(), clock.clone());
        let options = crate::practices::Options {
            auto_integrate: config.practices.auto_integrate,
            ..crate::practices::Options::default()
        };
        tokio::spawn(async move {
            match crate::practices::start_some(
                &practices,
                &data_dir,
                &codes,
                &spine_base,
                clock,
                &options,
            )
            .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(practices = n, "practices started"),
                Err(e) => tracing::error!(error = %e, "the practices could not start"),
            }
        });
    }

    tracing::info!(%addr, %database, "lloyd serve started");
    println!("lloyd serve: listening on http://{addr}");
    if let Some(h) = &handler {
        println!(
            "lloyd serve: message handler for {} listening on {} (ebXML) and {} (MHS adaptor facade)",
            config.mhs.party_key.as_deref().unwrap_or_default(),
            h.inbound_addr()
                .map_or_else(|| "-".to_string(), |a| a.to_string()),
            h.facade_addr()
                .map_or_else(|| "-".to_string(), |a| a.to_string()),
        );
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("the server failed: {e}"))?;
    if let Some(h) = handler {
        h.shutdown().await;
    }
    practices.shutdown().await;
    if let Some((db, _)) = own {
        db.close().await;
    }
    tracing::info!("lloyd serve stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_file_and_typos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lloyd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[pds]\nrate_limit_per_second = 5\n",
        )
        .unwrap();
        let env = |v: &str| match v {
            "LLOYD_PDS_RATE_LIMIT_PER_SECOND" => Some("7".to_string()),
            "LLOYD_MESH_MAILBOXES" => Some("A1, B2".to_string()),
            "LLOYD_RELAY_ENABLED" => Some("off".to_string()),
            _ => None,
        };
        let c = load_config(Some(&path), env).unwrap();
        assert!(!c.relay.enabled);
        assert!(load_config(None, |_| None).unwrap().relay.enabled);
        let bad = |v: &str| (v == "LLOYD_RELAY_ENABLED").then(|| "maybe".to_string());
        assert!(load_config(None, bad).is_err());
        assert_eq!(c.listen.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(c.pds.rate_limit_per_second, 7);
        assert_eq!(c.mesh.mailboxes, vec!["A1", "B2"]);
        assert_eq!(c.nems.max_attempts, 10);
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(load_config(Some(&path), |_| None).is_err());
        let bad = |v: &str| (v == "LLOYD_NEMS_MAX_ATTEMPTS").then(|| "many".to_string());
        assert!(load_config(None, bad).is_err());
    }
}
