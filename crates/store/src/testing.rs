//! A throwaway PostgreSQL server for tests.
//!
//! [`TempPostgres::start`] runs `initdb` into a fresh temporary directory and starts
//! `postgres` on a free loopback port, with its socket in that directory and durability
//! switched off (it is thrown away); dropping the value stops the server and removes the
//! directory. PostgreSQL refuses to run as root, so when the tests run as root (as CI
//! does) the server runs as the `postgres` user. PostgreSQL 15's binaries are looked up in
//! `LLOYD_PG_BIN`, then `/usr/lib/postgresql/15/bin`, then `PATH`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running PostgreSQL server that is stopped and deleted on drop.
pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    databases: std::sync::atomic::AtomicUsize,
}

fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("LLOYD_PG_BIN") {
        return PathBuf::from(dir);
    }
    let debian = Path::new("/usr/lib/postgresql/15/bin");
    if debian.join("initdb").exists() {
        return debian.to_path_buf();
    }
    PathBuf::new()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(mut cmd: Command, what: &str) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| {
        format!("cannot run {what}: {e} (is PostgreSQL 15 installed? set LLOYD_PG_BIN)")
    })?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

impl TempPostgres {
    /// Starts a server. Takes a second or two.
    pub fn start() -> Result<TempPostgres, String> {
        let bin = pg_bin();
        let as_postgres = is_root();
        let base = std::env::temp_dir();
        let dir = base.join(format!(
            "lloyd-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut pg = TempPostgres {
            dir,
            bin,
            port: 0,
            as_postgres,
            databases: std::sync::atomic::AtomicUsize::new(0),
        };
        if as_postgres {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("-R").arg("postgres:postgres").arg(&pg.dir);
                    c
                },
                "chown",
            )?;
        }
        let data = pg.dir.join("data");
        let mut initdb = pg.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
        run(initdb, "initdb")?;
        pg.port = free_port()?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            pg.port,
            pg.dir.display()
        );
        let mut start = pg.command("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(pg.dir.join("log"))
            .args(["-w", "-t", "60", "start"]);
        if let Err(e) = run(start, "pg_ctl start") {
            let log = std::fs::read_to_string(pg.dir.join("log")).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{log}"));
        }
        Ok(pg)
    }

    fn command(&self, program: &str) -> Command {
        let path = if self.bin.as_os_str().is_empty() {
            PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// The address of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a fresh, empty database and returns its address: one per test keeps tests
    /// independent on one server.
    pub async fn fresh_database(&self) -> Result<String, String> {
        let n = self
            .databases
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("t{n}");
        let db = crate::Database::open(&self.url())
            .await
            .map_err(|e| e.to_string())?;
        // The name is ours (t0, t1, …), never outside input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(db.pool())
            .await
            .map_err(|e| e.to_string())?;
        db.close().await;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
