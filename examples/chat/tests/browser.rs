//! The chat example as a browser uses it: the page, the official client's bundle it
//! serves, and two official JavaScript clients chatting through the hub.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use signalr_tests::{ChildGuard, node, node_dir, node_fetch, require, run_node_script};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the chat binary on a free loopback port; returns it and its base URL.
fn start_chat(args: &[&str]) -> (ChildGuard, String) {
    ChildGuard::spawn_until_line(
        Command::new(env!("CARGO_BIN_EXE_chat"))
            .args(["--bind", "127.0.0.1:0"])
            .args(args),
        "chat listening on ",
        TIMEOUT,
    )
    .unwrap()
}

/// The `text` of each message a client saw, after checking its timestamp looks like one.
fn texts(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let timestamp = m["timestamp"].as_str().unwrap();
            assert!(
                timestamp.len() >= 20 && timestamp.contains('T') && timestamp.ends_with('Z'),
                "{timestamp}"
            );
            m["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn page_bundle_and_two_official_clients() {
    let Some(_) = require(node()) else { return };
    let (_chat, base) = start_chat(&[]);

    // The page, and the npm bundle it loads.
    let page = node_fetch(&format!("{base}/"), TIMEOUT).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
    assert!(page.body.contains(r#"<script src="/signalr.min.js">"#));
    let bundle = node_fetch(&format!("{base}/signalr.min.js"), TIMEOUT).unwrap();
    assert_eq!(bundle.status, 200);
    assert!(
        bundle.content_type.contains("javascript"),
        "{}",
        bundle.content_type
    );
    assert!(!bundle.body.is_empty() && bundle.body.contains("signalR"));
    let npm = std::fs::read_to_string(
        node_dir().join("node_modules/@microsoft/signalr/dist/browser/signalr.min.js"),
    )
    .unwrap();
    assert!(bundle.body == npm, "/signalr.min.js is not npm's bundle");

    // Two official clients: broadcast, rooms, user count, the clock stream.
    let output = run_node_script("chat-client.mjs", &[base], TIMEOUT).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stdout}\n{stderr}");
    assert!(stderr.is_empty(), "the client logged: {stderr}");
    let seen: Value = serde_json::from_str(stdout.trim()).expect("JSON results");
    let (alice, bob) = (&seen["alice"], &seen["bob"]);

    assert_eq!(alice["counts"], json!([1, 2, 1]));
    assert_eq!(bob["counts"], json!([2]));

    assert_eq!(
        texts(&alice["messages"]),
        ["hello everyone", "done", "still here"]
    );
    assert_eq!(texts(&bob["messages"])[..2], ["hello everyone", "done"]);
    assert_eq!(alice["messages"][0]["user"], "alice");
    assert_eq!(alice["messages"][1]["user"], "bob");

    assert_eq!(
        texts(&alice["room"]),
        ["both hear this", "only alice hears this"]
    );
    assert_eq!(
        texts(&bob["room"]),
        ["only bob hears this", "both hear this"]
    );
    for message in alice["room"]
        .as_array()
        .unwrap()
        .iter()
        .chain(bob["room"].as_array().unwrap())
    {
        assert_eq!(message["room"], "rust");
    }

    // Three ticks about 100 ms apart, then a cancel that leaves the connection usable.
    let ticks: Vec<i64> = seen["clockMs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().expect("a parseable timestamp"))
        .collect();
    assert_eq!(ticks.len(), 3, "{seen}");
    for pair in ticks.windows(2) {
        assert!((50..2000).contains(&(pair[1] - pair[0])), "{ticks:?}");
    }
    assert_eq!(seen["afterCancel"], "ok");
}

#[test]
fn page_explains_a_missing_client_bundle() {
    let Some(_) = require(node()) else { return };
    let missing = std::env::temp_dir().join("chat-test-no-such-dir/signalr.min.js");
    let (_chat, base) = start_chat(&["--client-js", missing.to_str().unwrap()]);

    let page = node_fetch(&format!("{base}/"), TIMEOUT).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("npm ci"), "the page explains what to do");

    let bundle = node_fetch(&format!("{base}/signalr.min.js"), TIMEOUT).unwrap();
    assert_eq!(bundle.status, 404);
    assert!(
        bundle.body.contains("npm ci")
            && bundle.body.contains("tests/node")
            && bundle.body.contains(missing.to_str().unwrap()),
        "{}",
        bundle.body
    );
}
