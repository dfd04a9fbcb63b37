//! The official JavaScript client (`@microsoft/signalr` and
//! `@microsoft/signalr-protocol-msgpack` 10.0.11) against interop-server on every transport:
//! starts the server on a free loopback port and runs every Node test file in `tests/node`
//! (`*.test.mjs`) with `node --test`, the server's URL in `SIGNALR_SERVER_URL`, all files at
//! once (they mostly wait on the network; the longest, the keep-alive checks, takes ~16 s).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stderr)]

use std::process::Command;
use std::time::{Duration, Instant};

use signalr_tests::{ChildGuard, node, node_test_files, require, run_node_tests_with_args};

/// Test files that must be among those found, so that a rename does not silently drop them.
const EXPECTED_FILES: &[&str] = &[
    "interop-auth.test.mjs",
    "interop-keepalive.test.mjs",
    "interop-sse-lp-hub.test.mjs",
    "interop-stateful.test.mjs",
    "interop-transports.test.mjs",
    "interop-ws-endpoints.test.mjs",
    "interop-ws-hub.test.mjs",
];

#[test]
fn official_js_client_against_interop_server() {
    let Some(_) = require(node()) else { return };
    let files = node_test_files(".test.mjs").unwrap();
    for expected in EXPECTED_FILES {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} not in {files:?}"
        );
    }
    let (server, url) = ChildGuard::spawn_until_line(
        Command::new(env!("CARGO_BIN_EXE_interop-server")).args(["--bind", "127.0.0.1:0"]),
        "listening on ",
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    // All files at once, and a test stuck for a minute fails by name. (Not
    // `--test-force-exit`: with Node 20 it sometimes ends a file's process while its tests
    // still run, and the runner reports success for the tests it saw.)
    let concurrency = format!("--test-concurrency={}", files.len());
    let started = Instant::now();
    let output = run_node_tests_with_args(
        &[&concurrency, "--test-timeout=60000"],
        &files,
        &[("SIGNALR_SERVER_URL", url.as_str())],
        Duration::from_secs(180),
    )
    .unwrap();
    let elapsed = started.elapsed();
    drop(server);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    // TAP summary lines, e.g. `# tests 180`, `# fail 0`, `# todo 1`.
    let count = |name: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {name} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `# {name}` line in node's output:\n{stdout}"))
    };
    assert!(count("tests") > 0, "node ran no tests:\n{stdout}");
    assert_eq!(count("fail"), 0, "{stdout}");
    // Tests marked `todo` are known server gaps: show them.
    for line in stdout.lines().filter(|l| l.contains("# TODO")) {
        eprintln!("known gap: {}", line.trim());
    }
    eprintln!(
        "node --test ({} files in {elapsed:.1?}): {} tests, {} passed, {} skipped, {} todo",
        files.len(),
        count("tests"),
        count("pass"),
        count("skipped"),
        count("todo")
    );
}
