//! The dashboard in a real browser: starts `conduit` on a free loopback port with
//! `--time-scale 0.05` and runs `tests/node/conduit/dashboard.test.mjs`, which drives
//! Debian's chromium with `playwright-core`: a refused key, then a good one (kept across a
//! reload), every hub connected, tasks started from the page whose progress bars complete,
//! a webhook's deliveries, spend, a budget alert and a provider health change; then it stops
//! the server (by the pid given here) and sees the status turn to reconnecting, then
//! disconnected once automatic reconnect gives up, restarts the server on the same address
//! and sees the page connect again by itself and follow a new task. Screenshots
//! (`conduit-dashboard.png`, `conduit-dashboard-down.png`) go to the temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use signalr_tests::{ChildGuard, free_addr, node, node_dir, require, run_node_tests_with_args};

const MASTER_KEY: &str = "conduit-test-master-key";

/// Chromium (`CHROMIUM`, else `/usr/bin/chromium`) and `playwright-core` installed next to
/// the official client.
fn chromium() -> Result<PathBuf, String> {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !path.exists() {
        return Err(format!(
            "{} not found: install Debian's chromium (apt-get install chromium) or set CHROMIUM",
            path.display()
        ));
    }
    if !node_dir().join("node_modules/playwright-core").exists() {
        return Err(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            node_dir().display()
        ));
    }
    Ok(path)
}

fn tap_count(stdout: &str, name: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {name} ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `# {name}` line in node's output:\n{stdout}"))
}

#[test]
fn dashboard_in_chromium() {
    let Some(_) = require(node()) else { return };
    let Some(chromium) = require(chromium()) else {
        return;
    };
    let addr = free_addr();
    let bin = env!("CARGO_BIN_EXE_conduit");
    let args: Vec<String> = [
        "--bind",
        &addr.to_string(),
        "--time-scale",
        "0.05",
        "--master-key",
        MASTER_KEY,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (server, url) = ChildGuard::spawn_until_line(
        Command::new(bin).args(&args),
        "conduit listening on ",
        Duration::from_secs(60),
    )
    .unwrap();
    let pid = server.id().to_string();
    let args_json = serde_json::to_string(&args).unwrap();
    let screenshots = std::env::temp_dir();

    let started = Instant::now();
    let output = run_node_tests_with_args(
        &["--test-concurrency=1", "--test-timeout=170000"],
        &["conduit/dashboard.test.mjs"],
        &[
            ("CONDUIT_URL", url.as_str()),
            ("CONDUIT_MASTER_KEY", MASTER_KEY),
            ("CONDUIT_PID", pid.as_str()),
            ("CONDUIT_BIN", bin),
            ("CONDUIT_ARGS", args_json.as_str()),
            ("CHROMIUM", chromium.to_str().unwrap()),
            ("SCREENSHOT_DIR", screenshots.to_str().unwrap()),
        ],
        Duration::from_secs(240),
    )
    .unwrap();
    // The node test killed this server; dropping the guard reaps it.
    drop(server);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    assert_eq!(tap_count(&stdout, "fail"), 0, "{stdout}");
    assert_eq!(tap_count(&stdout, "pass"), 1, "{stdout}");
    eprintln!(
        "conduit/dashboard.test.mjs in {:.1?}; screenshots in {}",
        started.elapsed(),
        screenshots.display()
    );
}
