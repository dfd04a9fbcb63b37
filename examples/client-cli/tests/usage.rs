//! `client-cli` on its own: help, usage errors, and a server that is not there. (The tests
//! against a real hub are in `examples/interop-server/tests/client_cli.rs`; this test also
//! makes `cargo test --workspace` build the `client-cli` binary they run.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output, Stdio};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_client-cli"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run client-cli")
}

#[test]
fn help_and_usage_errors() {
    let help = cli(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: client-cli URL METHOD"));

    for args in [
        &[][..],
        &["http://127.0.0.1:1/hub"],
        &["http://127.0.0.1:1/hub", "Echo", "not json"],
        &[
            "http://127.0.0.1:1/hub",
            "Echo",
            "--transport",
            "smoke-signals",
        ],
        &["http://127.0.0.1:1/hub", "Echo", "--no-such-option"],
    ] {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
    }
}

#[test]
fn no_server() {
    // A port that was free a moment ago.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = cli(&[&format!("http://{addr}/hub"), "Echo", "\"x\""]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: Failed to complete negotiation with the server"),
        "{stderr}"
    );
}
