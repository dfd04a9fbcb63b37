//! Scale-out with real processes: a private `redis-server`, several `interop-server --redis
//! URL` processes on it, and the official JavaScript client (JSON and MessagePack, several
//! transports) spread across them, running `tests/node/scaleout.mjs`: every targeting kind
//! across servers, group changes of connections on other servers, users connected to several
//! servers, client results across servers, and nothing delivered twice. A second test stops
//! Redis while clients on two servers keep invoking, and checks that local sends keep
//! working and cross-server delivery comes back once Redis does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stderr)]

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use signalr_tests::{
    ChildGuard, RedisGuard, node, node_dir, redis_server, require, run_node_tests_with_args,
};

/// The Node file, not a `*.test.mjs` so that `official_client.rs` does not run it.
const NODE_FILE: &str = "scaleout.mjs";

/// Starts `n` interop-servers on `redis`; returns their guards, base URLs, and a count of
/// the "message lost" errors they logged (their stderr is copied to the test's, less those
/// lines, which a Redis outage produces one per lost message).
#[allow(clippy::type_complexity)]
fn start_servers(
    redis: &RedisGuard,
    n: usize,
) -> (
    Vec<ChildGuard>,
    Vec<String>,
    Arc<AtomicU64>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let lost = Arc::new(AtomicU64::new(0));
    let mut guards = Vec::new();
    let mut urls = Vec::new();
    let mut readers = Vec::new();
    for i in 0..n {
        let (mut guard, url) = ChildGuard::spawn_until_line(
            Command::new(env!("CARGO_BIN_EXE_interop-server"))
                .args(["--bind", "127.0.0.1:0", "--redis", redis.url()])
                .stderr(Stdio::piped()),
            "listening on ",
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let stderr = guard.take_stderr().expect("piped stderr");
        let lost = Arc::clone(&lost);
        readers.push(std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("message lost: Redis is unavailable") {
                    lost.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("server {i}: {line}");
                }
            }
        }));
        guards.push(guard);
        urls.push(url);
    }
    (guards, urls, lost, readers)
}

#[test]
fn official_js_clients_across_three_servers_on_redis() {
    let Some(_) = require(node()) else { return };
    let Some(redis) = require(redis_server()) else {
        return;
    };
    let (servers, urls, _, _) = start_servers(&redis, 3);
    let urls = urls.join(",");

    let started = Instant::now();
    let output = run_node_tests_with_args(
        &["--test-timeout=30000"],
        &[NODE_FILE],
        &[("SIGNALR_SERVER_URLS", urls.as_str())],
        Duration::from_secs(90),
    )
    .unwrap();
    let elapsed = started.elapsed();
    // Killed by their pids, servers first.
    drop(servers);
    drop(redis);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test {NODE_FILE} failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    let count = |name: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {name} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `# {name}` line in node's output:\n{stdout}"))
    };
    assert!(count("tests") >= 10, "node ran too few tests:\n{stdout}");
    assert_eq!(count("fail"), 0, "{stdout}");
    for line in stdout.lines().filter(|l| l.contains("# TODO")) {
        eprintln!("known gap: {}", line.trim());
    }
    eprintln!("{} scale-out tests passed in {elapsed:.1?}", count("pass"));
}

/// Redis goes away for about a second while a client on each of two servers sends to
/// itself (local, no Redis needed) and broadcasts, every 50 ms; the Node side
/// (`SCALEOUT_FAULT=1`) reports what happened as `RESULT {json}`.
#[test]
fn redis_outage_with_clients_on_two_servers() {
    let Some(_) = require(node()) else { return };
    let Some(mut redis) = require(redis_server()) else {
        return;
    };
    if !redis.is_owned() {
        eprintln!("SKIPPED: the Redis in use was not started by the test, so it cannot be stopped");
        return;
    }
    let (servers, urls, server_lost, readers) = start_servers(&redis, 2);
    let urls = urls.join(",");

    let mut child = Command::new("node")
        .arg(NODE_FILE)
        .env("SIGNALR_SERVER_URLS", &urls)
        .env("SCALEOUT_FAULT", "1")
        .current_dir(node_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr_text = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let deadline = Instant::now() + Duration::from_secs(40);
    let mut result = None;
    let mut transcript = Vec::new();
    let mut failure = None;
    while result.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                failure = Some(format!("no RESULT from node ({e})"));
                break;
            }
        };
        transcript.push(line.clone());
        match line.as_str() {
            "READY" => {
                redis.stop();
                writeln!(stdin, "STOPPED").unwrap();
            }
            "START" => {
                if let Err(e) = redis.restart() {
                    failure = Some(format!("restart redis: {e}"));
                    break;
                }
                writeln!(stdin, "STARTED").unwrap();
            }
            other => {
                if let Some(json) = other.strip_prefix("RESULT ") {
                    result = Some(serde_json::from_str::<serde_json::Value>(json).unwrap());
                }
            }
        }
    }
    drop(stdin);
    let exited = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill(); // by its pid
    }
    let _ = child.wait();
    drop(servers);
    drop(redis);
    for reader in readers {
        let _ = reader.join();
    }
    let server_lost = server_lost.load(Ordering::Relaxed);
    let stderr_text = stderr_text.join().unwrap_or_default();
    if let Some(failure) = failure {
        panic!(
            "{failure} (node pid {pid})\n--- stdout ---\n{}\n--- stderr ---\n{stderr_text}",
            transcript.join("\n")
        );
    }
    let result = result.unwrap();
    let num = |path: &[&str]| -> u64 {
        path.iter()
            .fold(&result, |v, k| &v[*k])
            .as_u64()
            .unwrap_or_else(|| panic!("no {path:?} in {result}"))
    };
    eprintln!(
        "Redis outage of {} ms: {} of {} broadcasts lost ({} sent during the outage), \
         {} published but missed by a server not yet resubscribed, \
         local sends {} ok / {} failed, cross-server delivery back {} ms after restart",
        num(&["outageMs"]),
        num(&["broadcastsLost"]),
        num(&["broadcastAttempts"]),
        num(&["broadcastsDuringOutage"]),
        num(&["okButMissing"]),
        num(&["local", "sent"]),
        num(&["local", "failed"]),
        num(&["recoveryMs"]),
    );
    eprintln!(
        "the servers logged {server_lost} lost messages \
         ({} failed broadcasts + {} failed recovery probes)",
        num(&["broadcast", "failed"]),
        num(&["probeFailed"]),
    );
    eprintln!("details: {result}");
    let problems = result["problems"].as_array().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    // Local invocations keep working through the outage, and every one is delivered.
    assert_eq!(num(&["local", "failed"]), 0, "{result}");
    assert_eq!(num(&["localReceived"]), num(&["local", "sent"]), "{result}");
    // Broadcasts during the outage fail (they are lost); every one that succeeded arrived
    // on both servers, and none that failed did.
    assert!(num(&["broadcastsDuringOutage"]) > 0, "{result}");
    assert!(num(&["broadcast", "failedDuringOutage"]) > 0, "{result}");
    // (A broadcast published right after Redis returned, while the other server had not
    // resubscribed yet, is silently missed there, as with ASP.NET Core: `okButMissing`,
    // reported, not asserted. Once both were seen delivering, nothing is missed: `problems`.)
    assert!(num(&["broadcastsAfterRecovery"]) > 0, "{result}");
    assert_eq!(num(&["failedButArrived"]), 0, "{result}");
    // Each failed send is one message the sending server counted as lost, and no other.
    assert_eq!(
        server_lost,
        num(&["broadcast", "failed"]) + num(&["probeFailed"]),
        "{result}"
    );
}
