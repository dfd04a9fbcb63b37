//! Helpers shared by the conduit tests: starting the real binary, the HTTP API, hub
//! connections and bounded waits.

#![allow(dead_code)]

use std::future::Future;
use std::process::Command;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use signalr_client::{HubConnection, HubConnectionBuilder};
use signalr_tests::ChildGuard;
use tokio::sync::mpsc;

/// The master key the tests start the server with.
pub(crate) const MASTER: &str = "test-master-key-0123456789";

/// A running `conduit` process (killed when dropped) and its base URL.
pub(crate) struct Server {
    _guard: ChildGuard,
    pub(crate) base: String,
}

/// Starts `conduit` on a free loopback port with `--time-scale 0.05` and `extra` flags.
pub(crate) fn server(extra: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_conduit"));
    command
        .args([
            "--bind",
            "127.0.0.1:0",
            "--master-key",
            MASTER,
            "--time-scale",
            "0.05",
        ])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("CONDUIT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        );
    let (guard, base) = ChildGuard::spawn_until_line(
        &mut command,
        "conduit listening on ",
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("start conduit: {e}"));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    Server {
        _guard: guard,
        base,
    }
}

/// Fails the test when `future` takes longer than 30 seconds.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("timed out after 30 s waiting for {what}"))
}

/// An HTTP request with a bearer token; returns the status and the JSON body (`null` when
/// empty or not JSON).
pub(crate) async fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    within(&format!("{method} {url}"), async {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = client.request(method, url);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
}

/// POST with a bearer token, expecting `expected`; returns the JSON body.
pub(crate) async fn post_ok(url: &str, token: &str, body: Value, expected: u16) -> Value {
    let (status, reply) = http("POST", url, Some(token), Some(body)).await;
    assert_eq!(status, expected, "POST {url}: {reply}");
    reply
}

/// Creates a virtual key with the master key; returns (id, key).
pub(crate) async fn create_key(base: &str, body: Value) -> (u64, String) {
    let reply = post_ok(&format!("{base}/api/keys"), MASTER, body, 201).await;
    (
        reply["id"].as_u64().expect("key id"),
        reply["key"].as_str().expect("key").to_owned(),
    )
}

/// Creates a plain key named `name`.
pub(crate) async fn key(base: &str, name: &str) -> (u64, String) {
    create_key(base, json!({ "name": name })).await
}

/// A hub connection to `{base}{path}` with `token` as the bearer token (not started).
pub(crate) fn hub(base: &str, path: &str, token: &str) -> HubConnection {
    let token = token.to_owned();
    HubConnectionBuilder::new(format!("{base}{path}"))
        .access_token_provider(move || {
            let token = token.clone();
            async move { Ok(token) }
        })
        .build()
        .unwrap()
}

/// A started hub connection.
pub(crate) async fn connect(base: &str, path: &str, token: &str) -> HubConnection {
    let connection = hub(base, path, token);
    within(&format!("connect {path}"), connection.start())
        .await
        .unwrap_or_else(|e| panic!("connect {path}: {e}"));
    connection
}

/// Forwards the one-argument event `event` to a channel.
pub(crate) fn forward<T>(connection: &HubConnection, event: &str) -> mpsc::UnboundedReceiver<T>
where
    T: DeserializeOwned + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    connection.on(event, move |value: T| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(value);
        }
    });
    rx
}

/// The next value on `rx`, within 30 seconds.
pub(crate) async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    within(what, rx.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: channel closed"))
}

/// Everything already received on `rx`.
pub(crate) fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(value) = rx.try_recv() {
        out.push(value);
    }
    out
}

/// The hub error text of an invocation that must fail.
pub(crate) async fn invoke_err<M>(
    connection: &HubConnection,
    method: &str,
    args: impl signalr_client::Arguments<M>,
) -> String {
    let result: Result<Value, _> = within(method, connection.invoke(method, args)).await;
    match result {
        Ok(value) => panic!("{method} succeeded ({value}) but should have failed"),
        Err(err) => err.to_string(),
    }
}
