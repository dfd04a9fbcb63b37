//! Shared by the integration tests: the `conduit` server on loopback and its HTTP API.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use signalr_tests::ChildGuard;

pub(crate) const MASTER_KEY: &str = "conduit-test-master-key";

/// `target/<profile>/conduit`, built first when missing.
pub(crate) fn conduit_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory");
    let path = dir.join(format!("conduit{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "conduit"])
            .status()
            .expect("run cargo build -p conduit");
        assert!(status.success(), "cargo build -p conduit failed");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path
}

pub(crate) fn start_conduit(addr: SocketAddr) -> ChildGuard {
    start_conduit_scaled(addr, "0.05")
}

/// The server with simulated durations multiplied by `time_scale`.
pub(crate) fn start_conduit_scaled(addr: SocketAddr, time_scale: &str) -> ChildGuard {
    let (guard, url) = ChildGuard::spawn_until_line(
        Command::new(conduit_path()).args([
            "--bind",
            &addr.to_string(),
            "--time-scale",
            time_scale,
            "--master-key",
            MASTER_KEY,
        ]),
        "conduit listening on ",
        Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(url, format!("http://{addr}"));
    guard
}

/// A JSON request over a plain HTTP/1.1 connection; returns the status and the body.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked response: {head}"
    );
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

pub(crate) fn create_key(addr: SocketAddr, key: Option<&str>) -> String {
    let (status, body) = http(
        addr,
        "POST",
        "/api/keys",
        MASTER_KEY,
        &json!({"name": "cli", "key": key}),
    );
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

pub(crate) fn start_task(addr: SocketAddr, key: &str, path: &str, body: Value) -> String {
    let (status, reply) = http(addr, "POST", path, key, &body);
    assert_eq!(status, 202, "{reply}");
    reply["taskId"].as_str().unwrap().to_owned()
}
