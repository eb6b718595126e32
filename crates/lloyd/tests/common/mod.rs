//! What the `lloyd` binary's test files share: the binary itself, the conformance corpus,
//! free loopback ports, and `lloyd serve` processes that are killed when a test ends.
//!
//! Each test file is its own crate and uses only some of these, hence `dead_code`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `lloyd` binary cargo built for these tests.
pub fn lloyd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lloyd"))
}

/// The shared conformance corpus (`../shared/conformance` beside the project).
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

/// A port free on loopback now, for a process that must be restarted on the same one.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed (SIGKILL: no shutdown code runs) and reaped when dropped,
/// so a failing test never leaves a server behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `lloyd serve` and the base URL it printed.
pub struct Served {
    pub process: KillOnDrop,
    pub base: String,
}

/// Spawns `command` (a `lloyd serve …` already given its arguments, environment and
/// stderr), waits for its first stdout line, `lloyd serve: listening on URL`, and keeps
/// reading stdout in the background so the server never blocks on a full pipe. `what`
/// names the server in the failure message, with anything that helps find out why.
pub fn start_serve(mut command: Command, what: &str) -> Served {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let process = KillOnDrop(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("lloyd serve: listening on ")
        .unwrap_or_else(|| panic!("{what} did not start: its first line was {line:?}"))
        .to_string();
    std::thread::spawn(move || for _ in out.lines() {});
    Served { process, base }
}
