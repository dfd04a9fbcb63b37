//! The `conduit-client` binary against the `conduit` server: follows a task type and the
//! tasks it announces to completion, survives a server restart (reconnects with backoff,
//! subscribes again) and follows a task on the new server; follows an image task by id over
//! MessagePack; refuses an unknown key.
//!
//! The `conduit` binary is not a dependency of this package: it is looked up next to this
//! test's executable (`cargo build -p conduit` puts it there; `.ci/test` does) and built
//! with `cargo build -p conduit` when missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stderr)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{create_key, http, start_conduit, start_conduit_scaled, start_task};
use serde_json::json;
use signalr_tests::free_addr;

/// The client binary, its stdout lines arriving on a channel.
struct Client {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Client {
    fn spawn(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_conduit-client"));
        command.args(args).stdout(Stdio::piped());
        let mut child = command.stdin(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("client: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; returns it.
    fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Reads until stdout closes (the process exited); returns everything seen.
    fn finish(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "the client did not exit within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Kills the client this test started, by its own pid, and reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn follows_task_types_across_a_server_restart() {
    let addr = free_addr();
    let server = start_conduit(addr);
    let key = create_key(addr, None);
    let url = format!("http://{addr}");
    let mut client = Client::spawn(&[
        "--url",
        &url,
        "--key",
        &key,
        "--task-type",
        "batch_embedding",
        "--exit-after-completed",
        "2",
        "--notify",
        "provider_health",
    ]);
    for hub in [
        "tasks",
        "image-generation",
        "video-generation",
        "notifications",
        "spend",
        "webhooks",
    ] {
        client.wait_for(&format!("connected hub={hub} "), Duration::from_secs(30));
    }
    client.wait_for(
        "subscribed hub=tasks task-type=batch_embedding",
        Duration::from_secs(10),
    );
    client.wait_for(
        r#"subscribed hub=notifications preferences={"enabledTypes":["provider_health"],"minimumPriority":0}"#,
        Duration::from_secs(10),
    );
    client.wait_for("ready hubs=", Duration::from_secs(10));

    // A task of the type: announced, followed, completed.
    let first = start_task(
        addr,
        &key,
        "/api/tasks",
        json!({"taskType": "batch_embedding", "items": 60}),
    );
    client.wait_for(
        &format!("event hub=tasks name=TaskStarted args=[\"{first}\",\"batch_embedding\","),
        Duration::from_secs(10),
    );
    client.wait_for(
        &format!("subscribed hub=tasks task={first}"),
        Duration::from_secs(10),
    );
    client.wait_for(
        &format!("event hub=tasks name=TaskProgress args=[\"{first}\","),
        Duration::from_secs(10),
    );
    client.wait_for(
        &format!("done task={first} outcome=completed"),
        Duration::from_secs(30),
    );

    // Spend reaches the client's spend hub.
    let (status, _) = http(
        addr,
        "POST",
        "/api/spend",
        &key,
        &json!({"amount": 0.5, "model": "gpt-4o", "provider": "openai"}),
    );
    assert_eq!(status, 200);
    client.wait_for(
        "event hub=spend name=SpendUpdate args=[{",
        Duration::from_secs(10),
    );

    // The server restarts (keys live in memory: the same key is created again); the client
    // reconnects and renews its subscriptions.
    drop(server);
    client.wait_for("reconnecting hub=tasks ", Duration::from_secs(30));
    let server = start_conduit(addr);
    assert_eq!(create_key(addr, Some(&key)), key);
    client.wait_for(
        "resubscribed hub=tasks task-type=batch_embedding",
        Duration::from_secs(60),
    );
    client.wait_for(
        "resubscribed hub=notifications preferences=",
        Duration::from_secs(60),
    );
    // The renewed preferences apply on the new server: an announcement (not enabled) does
    // not arrive, provider health (enabled) does, in that order on the connection.
    let (status, _) = http(
        addr,
        "POST",
        "/api/announcements",
        common::MASTER_KEY,
        &json!({"message": "hello", "priority": 2}),
    );
    assert_eq!(status, 200);
    let (status, _) = http(
        addr,
        "PUT",
        "/api/providers/1/health",
        common::MASTER_KEY,
        &json!({"status": "Degraded", "responseTimeMs": 300}),
    );
    assert_eq!(status, 200);
    client.wait_for(
        "event hub=notifications name=OnProviderHealthChanged args=[{",
        Duration::from_secs(10),
    );
    assert!(
        !client
            .seen
            .iter()
            .any(|l| l.contains("name=SystemAnnouncement")),
        "{:#?}",
        client.seen
    );
    let second = start_task(
        addr,
        &key,
        "/api/tasks",
        json!({"taskType": "batch_embedding", "items": 60}),
    );
    client.wait_for(
        &format!("done task={second} outcome=completed"),
        Duration::from_secs(30),
    );
    // Two completions: the client exits by itself.
    let lines = client.finish(Duration::from_secs(15));
    assert_eq!(lines.last().map(String::as_str), Some("stopped"));
    // The finished first task is not subscribed to again on the new server.
    assert!(
        !lines.iter().any(|l| l.starts_with("subscribe-failed")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("decode-failed")),
        "{lines:#?}"
    );
    drop(server);
}

#[test]
fn follows_an_image_task_over_messagepack() {
    let addr = free_addr();
    // Slower, so the task is still running when the client has connected (10 images: ~6 s).
    let _server = start_conduit_scaled(addr, "0.2");
    let key = create_key(addr, None);
    let task = start_task(
        addr,
        &key,
        "/api/images/generations",
        json!({"prompt": "a cat", "n": 10, "size": "1024x1024", "model": "dall-e-3"}),
    );
    let url = format!("http://{addr}");
    let mut client = Client::spawn(&[
        "--url",
        &url,
        "--key",
        &key,
        "--hubs",
        "image-generation",
        "--messagepack",
        "--task",
        &task,
        "--exit-after-completed",
        "1",
    ]);
    client.wait_for(
        &format!("subscribed hub=image-generation task={task}"),
        Duration::from_secs(30),
    );
    client.wait_for(
        "event hub=image-generation name=ImageGenerationProgress args=[{",
        Duration::from_secs(30),
    );
    let line = client.wait_for(
        "event hub=image-generation name=ImageGenerationCompleted",
        Duration::from_secs(30),
    );
    assert!(line.contains(&task), "{line}");
    client.wait_for(
        &format!("done task={task} outcome=completed"),
        Duration::from_secs(10),
    );
    let lines = client.finish(Duration::from_secs(15));
    assert!(
        !lines.iter().any(|l| l.starts_with("decode-failed")),
        "{lines:#?}"
    );
}

#[test]
fn an_unknown_key_is_refused() {
    let addr = free_addr();
    let _server = start_conduit(addr);
    let output = signalr_tests::output_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_conduit-client")).args([
            "--url",
            &format!("http://{addr}"),
            "--key",
            &format!("condt_{}", "x".repeat(32)),
            "--hubs",
            "tasks",
        ]),
        "conduit-client",
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
}
