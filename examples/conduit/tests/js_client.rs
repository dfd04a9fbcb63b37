//! The official JavaScript client (`@microsoft/signalr`, JSON and MessagePack) against the
//! `conduit` example: starts the server on a free loopback port with `--time-scale 0.05`
//! and runs the Node tests in `tests/node/conduit/`: `tasks.test.mjs` (tasks started over
//! HTTP and followed to completion on the TaskHub and the media hubs, task types, refusals,
//! isolation between virtual keys) and `hubs.test.mjs` (webhook deliveries, notification
//! preferences, the public video hub, cancelling, disabling keys, connection and rate
//! limits, budgets, the metrics stream).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stderr)]

use std::process::Command;
use std::time::{Duration, Instant};

use signalr_tests::{ChildGuard, free_addr, node, require, run_node_tests_with_args};

const MASTER_KEY: &str = "conduit-test-master-key";

/// The counts of node's TAP summary (`# tests 9`, `# fail 0`, ...).
fn tap_count(stdout: &str, name: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {name} ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `# {name}` line in node's output:\n{stdout}"))
}

#[test]
fn official_js_client_follows_conduit_tasks() {
    let Some(_) = require(node()) else { return };
    let addr = free_addr();
    let (server, url) = ChildGuard::spawn_until_line(
        Command::new(env!("CARGO_BIN_EXE_conduit")).args([
            "--bind",
            &addr.to_string(),
            "--time-scale",
            "0.05",
            "--master-key",
            MASTER_KEY,
        ]),
        "conduit listening on ",
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let started = Instant::now();
    let output = run_node_tests_with_args(
        &["--test-concurrency=1", "--test-timeout=60000"],
        &["conduit/tasks.test.mjs", "conduit/hubs.test.mjs"],
        &[
            ("CONDUIT_URL", url.as_str()),
            ("CONDUIT_MASTER_KEY", MASTER_KEY),
        ],
        Duration::from_secs(240),
    )
    .unwrap();
    drop(server);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    assert!(tap_count(&stdout, "tests") >= 20, "{stdout}");
    assert_eq!(tap_count(&stdout, "fail"), 0, "{stdout}");
    eprintln!(
        "conduit/tasks.test.mjs and hubs.test.mjs in {:.1?}: {} tests, {} passed, {} skipped",
        started.elapsed(),
        tap_count(&stdout, "tests"),
        tap_count(&stdout, "pass"),
        tap_count(&stdout, "skipped"),
    );
}
