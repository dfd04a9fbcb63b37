//! The official JavaScript client (`@microsoft/signalr` and
//! `@microsoft/signalr-protocol-msgpack` 10.0.11) against interop-server over WebSockets:
//! starts the server on a free loopback port and runs the Node test files in `tests/node`
//! with `node --test`, the server's URL in `SIGNALR_SERVER_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stderr)]

use std::process::Command;
use std::time::Duration;

use signalr_tests::{ChildGuard, node, require, run_node_tests};

/// The Node test files (in `tests/node`) this test runs.
const NODE_TEST_FILES: &[&str] = &["interop-ws-hub.test.mjs", "interop-ws-endpoints.test.mjs"];

#[test]
fn official_js_client_against_interop_server_over_websockets() {
    let Some(_) = require(node()) else { return };
    let (server, url) = ChildGuard::spawn_until_line(
        Command::new(env!("CARGO_BIN_EXE_interop-server")).args(["--bind", "127.0.0.1:0"]),
        "listening on ",
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let output = run_node_tests(
        NODE_TEST_FILES,
        &[("SIGNALR_SERVER_URL", url.as_str())],
        Duration::from_secs(120),
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
        "node --test: {} tests, {} passed, {} todo",
        count("tests"),
        count("pass"),
        count("todo")
    );
}
