//! The subcommands, one module each.
pub mod demo;
pub mod ebxml;
pub mod inspect;
pub mod loadgen;
pub mod rehearsal;
pub mod seed;
pub mod serve;
pub mod transfer;
pub mod translate;
pub mod validate;

/// Logs go to stderr, warnings and worse unless `LLOYD_LOG` (a tracing filter) asks for more.
pub fn log_warnings() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLOYD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

/// The async runtime a command runs on; if it cannot start, says so as `lloyd <command>`
/// and gives the exit code to return.
pub fn runtime(command: &str) -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("lloyd {command}: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        })
}

/// Opens the SQLite database `db_file` and the on-disk payload store `payloads/` kept in
/// `dir` — the layout Spine (`lloyd.db`) and every practice (`practice.db`) use under the data
/// directory.
pub async fn open_local_stores(
    dir: &std::path::Path,
    db_file: &str,
) -> Result<(store::Database, store::PayloadStore), String> {
    let path = dir.join(db_file);
    let db = store::Database::open(&format!("sqlite://{}", path.display()))
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let payloads = store::PayloadStore::on_disk(&dir.join("payloads"))
        .map_err(|e| format!("cannot open {}: {e}", dir.join("payloads").display()))?;
    Ok((db, payloads))
}
