//! `loadgen redis-suite`: broadcast through the Redis backplane, beside one server alone,
//! in the same run. Three configurations:
//!
//! - **a**: one server, in-memory backplane (what `loadgen suite` measures);
//! - **b**: one server with the Redis backplane, publisher and receivers on it (each
//!   broadcast goes to Redis and comes back);
//! - **c**: two servers on one Redis, the receivers on server A and the publisher on
//!   server B (`--publish-url`), so every delivery crosses Redis.
//!
//! For every run, receiver count and scenario (saturated broadcast: `--window` messages in
//! flight, 16 by default, as with 2 a broadcast to 1,000 receivers leaves the server idle
//! part of the time, waiting for the next; and one broadcast per second), the three configurations run one after the other, in an order
//! rotated from run to run, so drifting machine load hits them alike. Every measurement
//! gets fresh processes: the servers (and, when `redis-server` exists, a Redis of its own on
//! a free loopback port, `--save "" --appendonly no`) pinned to core 0, the generator to
//! core 1; all are killed by pid afterwards. Without the binary it uses the Redis at
//! `--redis-url` (default `redis://127.0.0.1:6379/`), with a channel prefix of its own per
//! measurement, and cannot read that Redis's CPU time.
//!
//! Writes `redis-results.json` (every report, the load average before each run and each
//! measurement) and `redis-results.md` (a table per scenario: medians with min–max over the
//! runs, and the ratios b/a and c/a computed within each run) to `--out`.
//!
//! ```text
//! loadgen redis-suite [--runs 3] [--connections 1000,10000] [--window 16] [--out docs/benchmarks]
//!                     [--redis-url URL] [--only broadcast-max|broadcast-1hz] [--quick] [--replot]
//!                     [--build-note "what the binary was built from"]
//! ```

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::suite::{cell, median, pinned, pointer, sh, taskset};
use crate::{Args, BoxError};

/// A configuration of servers and backplane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Config {
    /// One server, in-memory backplane.
    Local,
    /// One server on Redis.
    Redis,
    /// Two servers on one Redis, publisher on B, receivers on A.
    Two,
}

const CONFIGS: [Config; 3] = [Config::Local, Config::Redis, Config::Two];

impl Config {
    fn label(self) -> &'static str {
        match self {
            Self::Local => "(a) 1 server, in-memory",
            Self::Redis => "(b) 1 server + Redis",
            Self::Two => "(c) 2 servers + Redis",
        }
    }

    fn letter(self) -> &'static str {
        match self {
            Self::Local => "a",
            Self::Redis => "b",
            Self::Two => "c",
        }
    }
}

/// One measurement.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct Sample {
    scenario: String,
    config: Config,
    run: usize,
    /// `/proc/loadavg` just before the measurement.
    loadavg: String,
    command_line: String,
    /// Whether the Redis was started for this measurement (so its CPU time is measured).
    own_redis: bool,
    report: Value,
}

/// A scenario: a `loadgen broadcast` command line without the targets.
#[derive(Debug, Clone)]
struct Scenario {
    name: String,
    title: String,
    args: Vec<String>,
}

fn scenarios(connections: &[usize], window: usize, quick: bool) -> Vec<Scenario> {
    let (max_dur, max_warm) = if quick { ("1", "0.3") } else { ("8", "2") };
    let (hz_dur, hz_warm) = if quick { ("2", "0.5") } else { ("20", "1") };
    let mut out = Vec::new();
    for &n in connections {
        let conns = n.to_string();
        let window = window.to_string();
        out.push(Scenario {
            name: format!("broadcast-max-{n}"),
            title: format!(
                "Saturated broadcast to {} receivers (window {window})",
                group(n)
            ),
            args: crate::suite::s(&[
                "--connections",
                &conns,
                "--window",
                &window,
                "--duration",
                max_dur,
                "--warmup",
                max_warm,
            ]),
        });
        out.push(Scenario {
            name: format!("broadcast-1hz-{n}"),
            title: format!("One broadcast per second to {} receivers", group(n)),
            args: crate::suite::s(&[
                "--connections",
                &conns,
                "--rate",
                "1",
                "--duration",
                hz_dur,
                "--warmup",
                hz_warm,
            ]),
        });
    }
    out
}

/// 10000 -> "10,000".
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// (label, JSON pointer) of each table row.
const METRICS: [(&str, &str); 17] = [
    ("deliveries/s", "/deliveries_per_s"),
    ("delivery ratio", "/delivery_ratio"),
    ("incomplete messages", "/incomplete_messages"),
    ("messages in window", "/published_in_window"),
    ("delivery p50 µs", "/delivery_latency/p50_us"),
    ("delivery p99 µs", "/delivery_latency/p99_us"),
    ("delivery p99.9 µs", "/delivery_latency/p999_us"),
    ("fan-out p50 µs", "/fanout_completion/p50_us"),
    ("fan-out p99 µs", "/fanout_completion/p99_us"),
    (
        "server CPU µs/delivery (sum)",
        "/server_cpu_us_per_delivery",
    ),
    ("Redis CPU µs/delivery", "/redis_cpu_us_per_delivery"),
    (
        "servers + Redis CPU µs/delivery",
        "/total_cpu_us_per_delivery",
    ),
    ("server CPU % (sum)", "/cpu/server_cpu_pct"),
    ("Redis CPU %", "/cpu/redis_cpu_pct"),
    ("loadgen CPU %", "/cpu/loadgen_cpu_pct"),
    ("loadgen CPU ms/message", "/loadgen_cpu_ms_per_message"),
    ("closed receivers", "/closed_receivers"),
];

/// A started process, killed by its pid when stopped or dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Redis is: started here (and killed when dropped) or already running.
struct RedisHandle {
    url: String,
    proc: Option<Proc>,
}

fn has_redis_server() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> Result<u16, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while started.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Starts `redis-server` on a free loopback port, pinned to core 0.
fn start_redis() -> Result<RedisHandle, BoxError> {
    let port = free_port()?;
    let child = pinned("0", Path::new("redis-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let proc = Proc { child };
    if !wait_for_port(port, Duration::from_secs(10)) {
        return Err(format!("redis-server did not listen on port {port} within 10 s").into());
    }
    Ok(RedisHandle {
        url: format!("redis://127.0.0.1:{port}/"),
        proc: Some(proc),
    })
}

/// A `loadgen serve --kind signalr` pinned to core 0, with the Redis backplane when
/// `redis` is `Some((url, prefix))`; returns it and its address.
fn start_server(redis: Option<(&str, &str)>) -> Result<(Proc, String), BoxError> {
    let exe = std::env::current_exe()?;
    let mut command = pinned("0", &exe);
    command.args(["serve", "--kind", "signalr", "--addr", "127.0.0.1:0"]);
    if let Some((url, prefix)) = redis {
        command.args(["--redis", url, "--redis-prefix", prefix]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let proc = Proc { child };
    let mut line = String::new();
    // With --redis the line comes once the backplane is subscribed; the server gives up
    // after 10 s by itself, closing its stdout.
    let read = BufReader::new(stdout).read_line(&mut line);
    let Some(addr) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
        return Err(format!("the server did not start ({read:?}): {line:?}").into());
    };
    // Let it settle.
    std::thread::sleep(Duration::from_millis(300));
    Ok((proc, addr))
}

/// What a run of the suite needs.
struct Ctx {
    scratch: PathBuf,
    limit: Duration,
    pause: Duration,
    own_redis: bool,
    redis_url: String,
    counter: std::cell::Cell<usize>,
}

/// One measurement: fresh processes for `config`, the scenario in a pinned generator.
fn measure(ctx: &Ctx, scenario: &Scenario, config: Config, run: usize) -> Result<Sample, BoxError> {
    ctx.counter.set(ctx.counter.get() + 1);
    let prefix = format!("loadgen{}-{}", std::process::id(), ctx.counter.get());
    let redis = match config {
        Config::Local => None,
        Config::Redis | Config::Two if ctx.own_redis => Some(start_redis()?),
        Config::Redis | Config::Two => Some(RedisHandle {
            url: ctx.redis_url.clone(),
            proc: None,
        }),
    };
    let backplane = redis.as_ref().map(|r| (r.url.as_str(), prefix.as_str()));
    let (a, a_addr) = start_server(backplane)?;
    let b = match config {
        Config::Two => Some(start_server(backplane)?),
        Config::Local | Config::Redis => None,
    };
    let mut pids = a.pid().to_string();
    let mut args: Vec<String> = vec![
        "broadcast".to_owned(),
        "--url".to_owned(),
        format!("ws://{a_addr}/bench"),
    ];
    if let Some((b, b_addr)) = &b {
        args.extend(["--publish-url".to_owned(), format!("ws://{b_addr}/bench")]);
        pids = format!("{pids},{}", b.pid());
    }
    args.extend(["--server-pid".to_owned(), pids]);
    if let Some(pid) = redis.as_ref().and_then(|r| r.proc.as_ref()).map(Proc::pid) {
        args.extend(["--redis-pid".to_owned(), pid.to_string()]);
    }
    args.extend(scenario.args.iter().cloned());
    let command_line = format!("loadgen {}", args.join(" "));
    let json = ctx
        .scratch
        .join(format!("{}-{}.json", scenario.name, config.letter()));
    let _ = std::fs::remove_file(&json);
    args.extend(["--json".to_owned(), json.display().to_string()]);
    let loadavg = sh("cat /proc/loadavg");
    eprintln!("run {run}: {} on {}", scenario.name, config.label());
    let exe = std::env::current_exe()?;
    let child = pinned("1", &exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut generator = Proc { child };
    let started = Instant::now();
    let finished = loop {
        if generator.child.try_wait()?.is_some() {
            break true;
        }
        if started.elapsed() > ctx.limit {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(generator);
    drop(b);
    drop(a);
    let own_redis = redis.as_ref().is_some_and(|r| r.proc.is_some());
    drop(redis);
    if !finished {
        return Err(format!("{command_line}: killed after {:?}", ctx.limit).into());
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    Ok(Sample {
        scenario: scenario.name.clone(),
        config,
        run,
        loadavg,
        command_line,
        own_redis,
        report,
    })
}

fn parse_connections(text: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|n| {
            n.trim()
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--connections: cannot read {n:?}"))
        })
        .collect()
}

pub(crate) fn run(args: &Args) -> Result<(), BoxError> {
    let out = PathBuf::from(args.str("out").unwrap_or("docs/benchmarks"));
    std::fs::create_dir_all(&out)?;
    if args.flag("replot", false) {
        return replot(&out);
    }
    let quick = args.flag("quick", false);
    let runs: usize = args.num("runs", if quick { 1 } else { 3 })?;
    let connections = parse_connections(args.str("connections").unwrap_or(if quick {
        "20"
    } else {
        "1000,10000"
    }))?;
    let window: usize = args.num("window", 16)?;
    // Our own Redis when the binary exists, unless --redis-url names one to use.
    let own_redis = args.str("redis-url").is_none() && has_redis_server();
    let redis_url = args
        .str("redis-url")
        .unwrap_or("redis://127.0.0.1:6379/")
        .to_owned();
    let scratch = std::env::temp_dir().join(format!("loadgen-redis-suite-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let ctx = Ctx {
        scratch,
        limit: Duration::from_secs(if quick { 60 } else { 300 }),
        pause: Duration::from_secs(if quick { 0 } else { 2 }),
        own_redis,
        redis_url,
        counter: std::cell::Cell::new(0),
    };
    let mut scenarios = scenarios(&connections, window, quick);
    if let Some(only) = args.str("only") {
        // `--only broadcast-max` keeps the scenarios whose names start with it.
        scenarios.retain(|s| s.name.starts_with(only));
    }
    let mut machine = serde_json::json!({
        "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        "nproc": sh("nproc"),
        "lscpu": sh("lscpu | head -12"),
        "free": sh("free -h"),
        "uname": sh("uname -sr"),
        "redis_server": if own_redis { sh("redis-server --version") } else { format!("running, at {}", ctx.redis_url) },
        "git_head": sh("git rev-parse --short HEAD 2>/dev/null"),
        "git_dirty_libraries": sh("git status --short signalr-core signalr-server signalr-redis 2>/dev/null"),
        "build_note": args.str("build-note").unwrap_or_default(),
        "loadavg_start": sh("cat /proc/loadavg"),
        "taskset": taskset(),
        "fd_limit": sh("ulimit -n"),
    });
    eprintln!(
        "redis-suite: {runs} run(s), receivers {connections:?}, {} Redis, out {}",
        if own_redis {
            "own"
        } else {
            ctx.redis_url.as_str()
        },
        out.display()
    );
    let mut samples: Vec<Sample> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut run_load: Vec<Value> = Vec::new();
    for run in 1..=runs {
        run_load.push(serde_json::json!({
            "run": run,
            "date": sh("date -u +%H:%M:%S"),
            "uptime": sh("uptime"),
            "top": sh("top -bn1 | head -15"),
        }));
        eprintln!("run {run}: {}", sh("uptime"));
        // Rotate the order of the configurations from run to run.
        let order: Vec<Config> = (0..CONFIGS.len())
            .map(|i| CONFIGS[(i + run - 1) % CONFIGS.len()])
            .collect();
        for scenario in &scenarios {
            for &config in &order {
                match measure(&ctx, scenario, config, run) {
                    Ok(sample) => samples.push(sample),
                    Err(err) => {
                        eprintln!("  failed: {err}");
                        errors.push(format!(
                            "run {run}, {} on {}: {err}",
                            scenario.name,
                            config.label()
                        ));
                    }
                }
                std::thread::sleep(ctx.pause);
            }
        }
    }
    machine["loadavg_end"] = Value::String(sh("cat /proc/loadavg"));
    let results = serde_json::json!({
        "machine": machine,
        "runs": runs,
        "connections": connections,
        "window": window,
        "quick": quick,
        "run_load": run_load,
        "errors": errors,
        "samples": samples,
    });
    std::fs::write(
        out.join("redis-results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let _ = std::fs::remove_dir_all(&ctx.scratch);
    replot(&out)
}

/// The tables again from `redis-results.json`.
fn replot(out: &Path) -> Result<(), BoxError> {
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("redis-results.json"))?)?;
    let samples: Vec<Sample> = serde_json::from_value(results["samples"].clone())?;
    let connections: Vec<usize> =
        serde_json::from_value(results["connections"].clone()).unwrap_or_default();
    let window = usize::try_from(results["window"].as_u64().unwrap_or(16)).unwrap_or(16);
    let quick = results["quick"].as_bool().unwrap_or(false);
    let markdown = tables(&scenarios(&connections, window, quick), &samples, &results);
    std::fs::write(out.join("redis-results.md"), &markdown)?;
    let points: Vec<(String, Vec<(f64, f64)>)> = CONFIGS
        .iter()
        .map(|&config| {
            let points = connections
                .iter()
                .filter_map(|&n| {
                    let mut v = values(
                        &samples,
                        &format!("broadcast-max-{n}"),
                        config,
                        "/deliveries_per_s",
                    );
                    Some((n as f64, median(&mut v)?))
                })
                .collect();
            (config.label().to_owned(), points)
        })
        .collect();
    if connections.len() > 1 {
        crate::plot::deliveries_vs_receivers(&points, &out.join("redis-deliveries.svg"))?;
    }
    println!("{markdown}");
    Ok(())
}

fn values(samples: &[Sample], scenario: &str, config: Config, path: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.scenario == scenario && s.config == config)
        .filter_map(|s| pointer(&s.report, path))
        .collect()
}

/// Per run, `config` / (a); then the median (min–max) of those ratios.
fn ratio(samples: &[Sample], scenario: &str, config: Config, path: &str) -> String {
    let mut ratios: Vec<f64> = samples
        .iter()
        .filter(|s| s.scenario == scenario && s.config == config)
        .filter_map(|s| {
            let value = pointer(&s.report, path)?;
            let base = samples
                .iter()
                .find(|b| b.scenario == scenario && b.config == Config::Local && b.run == s.run)
                .and_then(|b| pointer(&b.report, path))?;
            (base != 0.0).then(|| value / base)
        })
        .collect();
    let Some(med) = median(&mut ratios) else {
        return "–".to_owned();
    };
    if ratios.len() == 1 {
        format!("{med:.2}")
    } else {
        format!(
            "{med:.2} ({:.2}–{:.2})",
            ratios[0],
            ratios[ratios.len() - 1]
        )
    }
}

fn tables(scenarios: &[Scenario], samples: &[Sample], results: &Value) -> String {
    let machine = &results["machine"];
    let runs = results["runs"].as_u64().unwrap_or(1);
    let mut md = String::new();
    let build = match machine["build_note"].as_str() {
        Some(note) if !note.is_empty() => note.to_owned(),
        _ => format!(
            "commit {}{}",
            machine["git_head"].as_str().unwrap_or("?"),
            match machine["git_dirty_libraries"].as_str() {
                Some(dirty) if !dirty.is_empty() => format!(
                    ", with uncommitted changes in the libraries' working tree ({})",
                    dirty.lines().map(str::trim).collect::<Vec<_>>().join("; ")
                ),
                _ => String::new(),
            }
        ),
    };
    md.push_str(&format!(
        "Generated by `loadgen redis-suite` on {}: {runs} run(s); median (min–max) over runs; ratios to (a) computed within each run, then their median (min–max). Redis: {}. Built from {build}.\n\n",
        machine["date"].as_str().unwrap_or("?"),
        machine["redis_server"].as_str().unwrap_or("?"),
    ));
    md.push_str("Load before each run (`uptime`):\n\n");
    for load in results["run_load"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "- run {} ({} UTC): `{}`\n",
            load["run"],
            load["date"].as_str().unwrap_or("?"),
            load["uptime"].as_str().unwrap_or("?").trim()
        ));
    }
    md.push_str(&format!(
        "- at the end: `{}` (`/proc/loadavg`)\n\n",
        machine["loadavg_end"].as_str().unwrap_or("?")
    ));
    for scenario in scenarios {
        if !samples.iter().any(|s| s.scenario == scenario.name) {
            continue;
        }
        md.push_str(&format!("#### {}\n\n", scenario.title));
        for config in CONFIGS {
            if let Some(s) = samples
                .iter()
                .find(|s| s.scenario == scenario.name && s.config == config)
            {
                md.push_str(&format!("- {}: `{}`\n", config.label(), s.command_line));
            }
        }
        md.push_str("\n| Metric |");
        for config in CONFIGS {
            md.push_str(&format!(" {} |", config.label()));
        }
        md.push_str(" (b) / (a) | (c) / (a) |\n|---|");
        for _ in 0..CONFIGS.len() + 2 {
            md.push_str("---:|");
        }
        md.push('\n');
        for (label, path) in METRICS {
            let cells: Vec<String> = CONFIGS
                .iter()
                .map(|&c| cell(values(samples, &scenario.name, c, path)))
                .collect();
            if cells.iter().all(|c| c == "–") {
                continue;
            }
            md.push_str(&format!("| {label} |"));
            for c in cells {
                md.push_str(&format!(" {c} |"));
            }
            for config in [Config::Redis, Config::Two] {
                md.push_str(&format!(
                    " {} |",
                    ratio(samples, &scenario.name, config, path)
                ));
            }
            md.push('\n');
        }
        let bound: Vec<String> = samples
            .iter()
            .filter(|s| {
                s.scenario == scenario.name
                    && s.report
                        .pointer("/cpu/loadgen_bound")
                        .and_then(Value::as_bool)
                        == Some(true)
            })
            .map(|s| format!("{} run {}", s.config.letter(), s.run))
            .collect();
        md.push_str(&format!(
            "\nLoad generator above 90 % CPU (it may have set the pace): {}.\n",
            if bound.is_empty() {
                "none".to_owned()
            } else {
                bound.join(", ")
            }
        ));
        let loads: Vec<String> = samples
            .iter()
            .filter(|s| s.scenario == scenario.name)
            .map(|s| {
                format!(
                    "{}{} {}",
                    s.config.letter(),
                    s.run,
                    s.loadavg.split_whitespace().next().unwrap_or("?")
                )
            })
            .collect();
        md.push_str(&format!(
            "1-minute load average before each measurement (configuration, run): {}.\n\n",
            loads.join(", ")
        ));
    }
    if let Some(errors) = results["errors"].as_array().filter(|e| !e.is_empty()) {
        md.push_str("#### Errors\n\n");
        for e in errors {
            md.push_str(&format!("- {}\n", e.as_str().unwrap_or("?")));
        }
        md.push('\n');
    }
    md
}
