//! Test harness shared by the workspace's interop tests: finding Node and the official
//! client, starting and stopping server processes on loopback, and skipping with a printed
//! reason when a prerequisite is missing (or failing instead, when `SIGNALR_REQUIRE_ALL=1`,
//! as `.ci/run` sets it).

// Test support: failing loudly is the point here.
#![allow(clippy::print_stderr, clippy::panic, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The folder holding `package.json` and the Node scripts.
pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// Returns `Some(value)`, or skips: prints the reason and returns `None`. When the
/// environment has `SIGNALR_REQUIRE_ALL=1`, a missing prerequisite fails the test instead.
pub fn require<T>(prerequisite: Result<T, String>) -> Option<T> {
    match prerequisite {
        Ok(value) => Some(value),
        Err(reason) => {
            if std::env::var("SIGNALR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("required test prerequisite missing: {reason}");
            }
            eprintln!("SKIPPED: {reason}");
            None
        }
    }
}

/// Node with the official client installed under `tests/node/node_modules`.
pub fn node() -> Result<PathBuf, String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node not found ({e})"))?;
    if !version.status.success() {
        return Err("node --version failed".into());
    }
    if !node_dir().join("node_modules/@microsoft/signalr").exists() {
        return Err(format!(
            "@microsoft/signalr is not installed: run `npm ci` in {}",
            node_dir().display()
        ));
    }
    Ok(PathBuf::from("node"))
}

/// A child process that is killed (by its own pid) when dropped.
#[derive(Debug)]
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Starts `command` with stdout and stderr inherited.
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        command.stdin(Stdio::null()).spawn().map(ChildGuard)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listened on {addr} within {timeout:?}"))
}

/// Runs a script from `tests/node` with arguments, failing after `timeout`.
pub fn run_node_script(script: &str, args: &[String], timeout: Duration) -> Result<Output, String> {
    let child = Command::new("node")
        .arg(node_dir().join(script))
        .args(args)
        .current_dir(node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn node: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.map_err(|e| format!("node: {e}")),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            Err(format!("node {script} did not finish within {timeout:?}"))
        }
    }
}
