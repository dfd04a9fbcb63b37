//! The `client-cli` example against the interop server: invoke, stream, events, errors,
//! tokens, both protocols and every transport.
//!
//! The `client-cli` binary is not a dependency of this package, so build it first
//! (`cargo build -p client-cli`, or `cargo test --workspace`, which builds it for its own
//! tests); it is looked up next to this test's executable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::within;

/// `target/<profile>/client-cli`, next to the directory holding this test's executable.
fn cli_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory");
    let path = dir.join(format!("client-cli{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p client-cli` first (a plain `cargo test --workspace` builds it too)",
        path.display()
    );
    path
}

fn spawn(args: &[&str]) -> Child {
    Command::new(cli_path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run client-cli")
}

/// Runs the CLI to its end; kills it (by pid) after 20 seconds.
fn run(args: &[&str]) -> Output {
    let child = spawn(args);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(output) => output.expect("client-cli output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("client-cli {args:?} did not finish within 20 s");
        }
    }
}

/// Runs the CLI and expects success; returns its stdout lines.
fn ok(args: &[&str]) -> Vec<String> {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs the CLI and expects exit code 1; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    String::from_utf8(out.stderr).unwrap()
}

const TRANSPORTS: [(&str, bool); 5] = [
    ("websockets", false),
    ("websockets", true),
    ("sse", false),
    ("longpolling", false),
    ("longpolling", true),
];

fn with_transport<'a>(args: &[&'a str], transport: &'a str, messagepack: bool) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--transport", transport]);
    if messagepack {
        all.push("--messagepack");
    }
    all
}

#[test]
fn invoke_stream_and_events_on_every_transport() {
    let (_server, base) = common::server();
    let hub = format!("{base}/testhub");
    for (transport, messagepack) in TRANSPORTS {
        let label = format!("{transport} messagepack={messagepack}");
        let with = |args: &[&str]| ok(&with_transport(args, transport, messagepack));
        assert_eq!(with(&[&hub, "Add", "40", "2"]), ["42"], "{label}");
        assert_eq!(with(&[&hub, "Echo", "\"héllo\""]), ["\"héllo\""], "{label}");
        assert_eq!(with(&[&hub, "Echo", "null"]), ["null"], "{label}");
        assert_eq!(
            with(&[&hub, "GetActiveTransportName"]),
            [match transport {
                "websockets" => "\"WebSockets\"",
                "sse" => "\"ServerSentEvents\"",
                _ => "\"LongPolling\"",
            }],
            "{label}"
        );
        assert_eq!(
            with(&[&hub, "StreamCount", "3", "0", "--stream"]),
            ["0", "1", "2"],
            "{label}"
        );
        assert!(
            with(&[&hub, "EmptyStream", "--stream"]).is_empty(),
            "{label}"
        );
        // The event comes before the (void) result.
        assert_eq!(
            with(&[&hub, "InvokeWithString", "\"hi\"", "--on", "Message"]),
            ["Message [\"hi\"]", "null"],
            "{label}"
        );
        assert_eq!(
            with(&[
                &hub,
                "SendCustomObject",
                r#"{"Name":"n","Value":7}"#,
                "--on",
                "customObject",
            ]),
            [r#"customObject [{"Name":"n","Value":7}]"#, "null"],
            "{label}"
        );
        // The same JSON from both protocols: base64 bytes and ISO dates.
        let complex = with(&[&hub, "SendComplexObject"]);
        assert_eq!(complex.len(), 1, "{label}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&complex[0]).unwrap(),
            serde_json::json!({
                "ByteArray": "AQID",
                "DateTime": "2000-01-01T00:00:00Z",
                "Guid": "00010203-0405-0607-0706-050403020100",
                "IntArray": [1, 2, 3],
                "String": "hello world",
            }),
            "{label}"
        );
        let err = fails(&with_transport(
            &[&hub, "ThrowException", "\"boom\""],
            transport,
            messagepack,
        ));
        assert_eq!(
            err.trim_end(),
            "error: An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: boom",
            "{label}"
        );
        let err = fails(&with_transport(
            &[&hub, "StreamThrowException", "\"bad\"", "--stream"],
            transport,
            messagepack,
        ));
        assert_eq!(
            err.trim_end(),
            "error: An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: bad",
            "{label}"
        );
    }
}

#[test]
fn tokens_and_failures() {
    let (_server, base) = common::server();
    let token = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::get_text(&format!("{base}/generateJwtToken")));
    let hub = format!("{base}/authorizedhub");
    assert_eq!(
        ok(&[&hub, "GetUserIdentifier", "--token", &token]),
        ["\"testuser\""]
    );
    let err = fails(&[&hub, "GetUserIdentifier"]);
    assert!(err.contains("Unauthorized: Status code '401'"), "{err}");
    let err = fails(&[&format!("{base}/bad-negotiate"), "Echo", "\"x\""]);
    assert!(err.contains("Some response from server"), "{err}");
    // A method the hub does not have.
    let err = fails(&[&format!("{base}/testhub"), "NoSuchMethod"]);
    assert!(err.contains("Method does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_events_after_the_call() {
    let (_server, base) = common::server();
    let hub = format!("{base}/testhub");
    let mut child = spawn(&[
        &hub,
        "GetCallerConnectionId",
        "--on",
        "DirectMessage",
        "--wait",
        "2",
    ]);
    let stdout = child.stdout.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first line is the CLI's connection id; send it a message while it waits.
    let id: String = serde_json::from_str(&common::next(&mut lines).await).unwrap();
    let sender = common::connect(&base, signalr_client::TransportType::WebSockets, false).await;
    within(sender.invoke::<(), _>("SendToConnection", (id, "while waiting")))
        .await
        .unwrap();
    assert_eq!(
        common::next(&mut lines).await,
        "DirectMessage [\"while waiting\"]"
    );
    within(sender.stop()).await;
    let status = within(tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(lines.recv().await.is_none());
}
