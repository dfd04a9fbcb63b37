//! A few seconds of every scenario against the benchmark servers, so the harness keeps
//! working. Checks only that each run completed and produced numbers: no timing
//! assertions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// A server child, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(kind: &str) -> Server {
    let mut child = Command::new(LOADGEN)
        .args(["serve", "--kind", kind, "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the bench server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, addr }
}

fn run(server: &Server, args: &[&str]) -> Value {
    let url = format!("ws://{}/bench", server.addr);
    let pid = server.child.id().to_string();
    let output = Command::new(LOADGEN)
        .args(&args[..1])
        .args([
            "--url",
            &url,
            "--server-pid",
            &pid,
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ])
        .args(&args[1..])
        .output()
        .expect("run loadgen");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadgen {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("loadgen {args:?}: no JSON report ({e}): {stderr}"))
}

fn number(report: &Value, path: &str) -> f64 {
    report
        .pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {path} in {report}"))
}

#[test]
fn every_scenario_runs_against_signalr_server() {
    let server = serve("signalr");

    let idle = run(
        &server,
        &[
            "idle",
            "--connections",
            "40",
            "--steps",
            "2",
            "--hold",
            "0.5",
        ],
    );
    assert_eq!(number(&idle, "/ramp/opened"), 40.0, "{idle}");
    assert!(
        idle["points"].as_array().is_some_and(|p| p.len() == 4),
        "{idle}"
    );

    for protocol in ["json", "msgpack"] {
        let closed = run(
            &server,
            &["echo", "--protocol", protocol, "--connections", "4"],
        );
        assert!(number(&closed, "/received") > 0.0, "{closed}");
        number(&closed, "/latency/p99_us");
        let open = run(
            &server,
            &[
                "echo",
                "--protocol",
                protocol,
                "--connections",
                "4",
                "--rate",
                "200",
            ],
        );
        assert!(number(&open, "/received") > 0.0, "{open}");
        number(&open, "/wire_latency/p99_us");
    }

    let broadcast = run(
        &server,
        &["broadcast", "--connections", "20", "--rate", "20"],
    );
    assert!(number(&broadcast, "/deliveries") > 0.0, "{broadcast}");
    number(&broadcast, "/fanout_completion/p99_us");

    let max = run(
        &server,
        &["broadcast", "--connections", "20", "--protocol", "msgpack"],
    );
    assert!(number(&max, "/deliveries") > 0.0, "{max}");

    let groups = run(
        &server,
        &[
            "groups",
            "--connections",
            "20",
            "--group-size",
            "5",
            "--rate",
            "50",
        ],
    );
    assert!(number(&groups, "/deliveries") > 0.0, "{groups}");

    let churn = run(
        &server,
        &[
            "churn",
            "--connections",
            "10",
            "--churn",
            "5",
            "--churn-hold-ms",
            "200",
            "--rate",
            "20",
        ],
    );
    assert!(number(&churn, "/deliveries") > 0.0, "{churn}");
    assert!(number(&churn, "/churn_connects") > 0.0, "{churn}");
}

#[test]
fn bare_websocket_baseline_echoes_and_broadcasts() {
    let server = serve("bare");
    let echo = run(
        &server,
        &["echo", "--negotiate", "false", "--connections", "4"],
    );
    assert!(number(&echo, "/received") > 0.0, "{echo}");
    let broadcast = run(
        &server,
        &[
            "broadcast",
            "--negotiate",
            "false",
            "--connections",
            "10",
            "--rate",
            "20",
        ],
    );
    assert!(number(&broadcast, "/deliveries") > 0.0, "{broadcast}");
}

#[test]
fn suite_writes_results_and_tables() {
    let out = std::env::temp_dir().join(format!("loadgen-smoke-{}", std::process::id()));
    let output = Command::new(LOADGEN)
        .args([
            "suite",
            "--quick",
            "--runs",
            "1",
            "--aiosignalr",
            "false",
            "--sweep",
            "false",
        ])
        .args(["--only", "echo-closed-json", "--out"])
        .arg(&out)
        .output()
        .expect("run the suite");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        results["samples"].as_array().map(Vec::len),
        Some(2),
        "{results}"
    );
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(table.contains("echoes/s"), "{table}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Starts `loadgen serve --kind signalr` on the Redis backplane at `url`.
fn serve_on_redis(url: &str, prefix: &str) -> Server {
    let mut child = Command::new(LOADGEN)
        .args(["serve", "--kind", "signalr", "--addr", "127.0.0.1:0"])
        .args(["--redis", url, "--redis-prefix", prefix])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the bench server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, addr }
}

#[test]
fn broadcast_crosses_redis_between_two_servers() {
    let Some(redis) = signalr_tests::require(signalr_tests::redis_server()) else {
        return;
    };
    let prefix = format!("loadgen-smoke-{}", std::process::id());
    let a = serve_on_redis(redis.url(), &prefix);
    let b = serve_on_redis(redis.url(), &prefix);
    let publish_url = format!("ws://{}/bench", b.addr);
    let pids = format!("{},{}", a.child.id(), b.child.id());
    for extra in [["--rate", "20"], ["--window", "4"]] {
        // The receivers on A (`run` gives A's URL), the publisher on B; `--server-pid`
        // here overrides the one `run` passes, so the CPU time is of both servers.
        let mut args = vec![
            "broadcast",
            "--connections",
            "20",
            "--publish-url",
            &publish_url,
            "--server-pid",
            &pids,
        ];
        args.extend_from_slice(&extra);
        let report = run(&a, &args);
        assert!(number(&report, "/deliveries") > 0.0, "{report}");
        assert_eq!(report["publisher_url"], publish_url.as_str(), "{report}");
        assert_eq!(
            report["receivers_url"],
            format!("ws://{}/bench", a.addr).as_str(),
            "{report}"
        );
        assert_eq!(number(&report, "/cpu/server_processes"), 2.0, "{report}");
        number(&report, "/fanout_completion/p99_us");
    }

    // The suite, briefly: one run of each configuration, saturated broadcast only.
    let out = std::env::temp_dir().join(format!("loadgen-redis-smoke-{}", std::process::id()));
    let mut suite = Command::new(LOADGEN);
    suite.args([
        "redis-suite",
        "--quick",
        "--runs",
        "1",
        "--connections",
        "20",
        "--only",
        "broadcast-max",
    ]);
    if !redis.is_owned() {
        // No redis-server binary here: the suite must use the running Redis too.
        suite.args(["--redis-url", redis.url()]);
    }
    let output = suite
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run the redis suite");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("redis-results.json")).unwrap()).unwrap();
    assert_eq!(
        results["samples"].as_array().map(Vec::len),
        Some(3),
        "{results}"
    );
    let table = std::fs::read_to_string(out.join("redis-results.md")).unwrap();
    assert!(table.contains("(c) / (a)"), "{table}");
    let _ = std::fs::remove_dir_all(&out);
}
