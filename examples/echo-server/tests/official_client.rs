//! The official JavaScript client against the echo server, over WebSockets, JSON and
//! MessagePack.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use signalr_tests::{ChildGuard, free_addr, node, require, run_node_script, wait_for_port};

#[test]
fn official_js_client_talks_to_echo_server() {
    let Some(_) = require(node()) else { return };
    let addr = free_addr();
    let _server =
        ChildGuard::spawn(Command::new(env!("CARGO_BIN_EXE_echo-server")).arg(addr.to_string()))
            .expect("start echo-server");
    wait_for_port(addr, Duration::from_secs(10)).unwrap();

    let output = run_node_script(
        "echo-client.mjs",
        &[format!("http://{addr}/")],
        Duration::from_secs(30),
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON results");
    for protocol in ["json", "messagepack"] {
        let r = &results[protocol];
        assert_eq!(
            r["echo"],
            serde_json::json!({"text": "héllo \u{1e}", "n": [1, 2.5, null]}),
            "{protocol}"
        );
        assert_eq!(r["add"], 42, "{protocol}");
        assert_eq!(r["countdown"], serde_json::json!([3, 2, 1]), "{protocol}");
        assert_eq!(
            r["missing"],
            "Failed to invoke 'Missing' due to an error on the server. HubException: Method does not exist.",
            "{protocol}"
        );
    }
}
