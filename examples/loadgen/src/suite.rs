//! `loadgen suite`: every scenario against signalr-server and the baselines, several runs,
//! in one go. Each server runs in its own process pinned to core 0, each scenario in its
//! own `loadgen` process pinned to core 1 (with `taskset`, when it exists); a fresh server
//! for every scenario. Writes `results.json`, `results.md` and the plots to `--out`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::{Args, BoxError};

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Server {
    Ours,
    Bare,
    Aiosignalr,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Self::Ours => "signalr-server",
            Self::Bare => "bare WebSocket",
            Self::Aiosignalr => "aiosignalr",
        }
    }
}

/// One scenario of the suite.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    command: &'static str,
    args: Vec<String>,
    servers: Vec<Server>,
    /// (label, JSON pointer into the report, higher is better)
    metrics: Vec<(&'static str, &'static str)>,
}

/// One measurement.
#[derive(Debug, Serialize, serde::Deserialize, Clone)]
struct Sample {
    case: String,
    server: Server,
    run: usize,
    command_line: String,
    report: Value,
}

struct Running {
    child: Child,
    pid: u32,
    addr: String,
}

fn taskset_path() -> Option<&'static str> {
    ["/usr/bin/taskset", "/bin/taskset"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

pub(crate) fn taskset() -> bool {
    taskset_path().is_some()
}

pub(crate) fn pinned(core: &str, program: &Path) -> Command {
    if let Some(taskset) = taskset_path() {
        let mut command = Command::new(taskset);
        command.arg("-c").arg(core).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start_server(server: Server, python: &Path, script: &Path) -> Result<Running, BoxError> {
    let exe = std::env::current_exe()?;
    let mut command = match server {
        Server::Ours | Server::Bare => {
            let mut c = pinned("0", &exe);
            c.args([
                "serve",
                "--kind",
                if server == Server::Ours {
                    "signalr"
                } else {
                    "bare"
                },
            ]);
            c
        }
        Server::Aiosignalr => {
            let mut c = pinned("0", python);
            c.arg(script).args(["--port", "0"]);
            c
        }
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    let Some(addr) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{} did not start ({read:?}): {line:?}", server.label()).into());
    };
    // Let it settle before measuring its memory.
    std::thread::sleep(Duration::from_millis(300));
    Ok(Running { child, pid, addr })
}

fn stop(mut running: Running) {
    let _ = running.child.kill();
    let _ = running.child.wait();
}

/// Runs one scenario in a pinned `loadgen` child; kills it if it overstays `limit`.
fn run_case(
    case: &Case,
    server: Server,
    running: &Running,
    limit: Duration,
    scratch: &Path,
) -> Result<(Value, String), BoxError> {
    let exe = std::env::current_exe()?;
    let json = scratch.join(format!("{}-{server:?}.json", case.name));
    let _ = std::fs::remove_file(&json);
    let mut args: Vec<String> = vec![
        case.command.to_owned(),
        "--url".to_owned(),
        format!("ws://{}/bench", running.addr),
        "--server-pid".to_owned(),
        running.pid.to_string(),
    ];
    if server == Server::Bare {
        args.extend(["--negotiate".to_owned(), "false".to_owned()]);
    }
    args.extend(case.args.iter().cloned());
    let line = format!("loadgen {}", args.join(" "));
    args.extend(["--json".to_owned(), json.display().to_string()]);
    let mut child = pinned("1", &exe)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{line}: killed after {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&json)?;
    Ok((serde_json::from_str(&text)?, line))
}

pub(crate) fn pointer(value: &Value, path: &str) -> Option<f64> {
    value.pointer(path).and_then(Value::as_f64)
}

pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        f64::midpoint(values[mid - 1], values[mid])
    } else {
        values[mid]
    })
}

pub(crate) fn fmt(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if abs >= 1e4 {
        format!("{:.1} k", value / 1e3)
    } else if abs >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if abs >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

pub(crate) fn sh(command: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_owned())
        .unwrap_or_default()
}

pub(crate) fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// Invocations in flight per connection in the pipelined echo.
const PIPELINE_DEPTH: &str = "16";

/// The suite's cases. `quick` shrinks them to seconds, for the smoke test.
fn cases(quick: bool, idle_conns: usize, fan_conns: usize, with_python: bool) -> Vec<Case> {
    let all = if with_python {
        vec![Server::Ours, Server::Bare, Server::Aiosignalr]
    } else {
        vec![Server::Ours, Server::Bare]
    };
    let two = vec![Server::Ours, Server::Bare];
    let (dur, warm) = if quick { ("1", "0.3") } else { ("8", "2") };
    let echo_metrics = vec![
        ("echoes/s", "/throughput"),
        ("p50 µs", "/latency/p50_us"),
        ("p99 µs", "/latency/p99_us"),
        ("p99.9 µs", "/latency/p999_us"),
        ("server CPU µs/echo", "/server_cpu_us_per_msg"),
        ("loadgen CPU %", "/cpu/loadgen_cpu_pct"),
    ];
    let fan_metrics = vec![
        ("deliveries/s", "/deliveries_per_s"),
        ("delivery ratio", "/delivery_ratio"),
        ("delivery p99 µs", "/delivery_latency/p99_us"),
        ("fan-out p50 µs", "/fanout_completion/p50_us"),
        ("fan-out p99 µs", "/fanout_completion/p99_us"),
        ("fan-out max µs", "/fanout_completion/max_us"),
        ("server CPU µs/delivery", "/server_cpu_us_per_delivery"),
        ("server CPU ms/message", "/server_cpu_ms_per_message"),
        ("loadgen CPU ms/message", "/loadgen_cpu_ms_per_message"),
        ("loadgen CPU %", "/cpu/loadgen_cpu_pct"),
    ];
    let idle = idle_conns.to_string();
    let fan = fan_conns.to_string();
    let small = (fan_conns / 2).max(10).to_string();
    let mut out = vec![Case {
        name: "idle".into(),
        command: "idle",
        args: s(&[
            "--connections",
            &idle,
            "--steps",
            "10",
            "--hold",
            if quick { "1" } else { "5" },
        ]),
        servers: all.clone(),
        metrics: vec![
            ("connections opened", "/ramp/opened"),
            ("connect failures", "/ramp/failed"),
            ("server RSS B/conn (slope)", "/server_rss_per_conn"),
            (
                "kernel TCP buffers B/conn (both ends)",
                "/kernel_tcp_mem_per_conn",
            ),
            ("kernel slab B/conn (both ends)", "/kernel_slab_per_conn"),
            ("loadgen RSS B/conn", "/loadgen_rss_per_conn"),
            ("closed during hold", "/closed_during_hold"),
            ("server CPU % holding", "/hold_cpu/server_cpu_pct"),
        ],
    }];
    // Closed loop with one invocation in flight per connection, then pipelined: 16 in
    // flight, written together, so that the generator is not what sets the pace.
    for (mode, depth) in [("closed", "1"), ("pipelined", PIPELINE_DEPTH)] {
        for protocol in ["json", "msgpack"] {
            out.push(Case {
                name: format!("echo-{mode}-{protocol}"),
                command: "echo",
                args: s(&[
                    "--protocol",
                    protocol,
                    "--connections",
                    "50",
                    "--depth",
                    depth,
                    "--duration",
                    dur,
                    "--warmup",
                    warm,
                ]),
                servers: all.clone(),
                metrics: echo_metrics.clone(),
            });
        }
    }
    out.push(Case {
        name: "broadcast-1hz".into(),
        command: "broadcast",
        args: s(&[
            "--connections",
            &fan,
            "--rate",
            "1",
            "--duration",
            if quick { "2" } else { "20" },
            "--warmup",
            "1",
        ]),
        servers: all.clone(),
        metrics: fan_metrics.clone(),
    });
    out.push(Case {
        name: "broadcast-max".into(),
        command: "broadcast",
        args: s(&[
            "--connections",
            &fan,
            "--window",
            "2",
            "--duration",
            dur,
            "--warmup",
            warm,
        ]),
        servers: all,
        metrics: fan_metrics.clone(),
    });
    out.push(Case {
        name: "groups".into(),
        command: "groups",
        args: s(&[
            "--connections",
            &fan,
            "--group-size",
            "10",
            "--window",
            "64",
            "--duration",
            dur,
            "--warmup",
            warm,
        ]),
        servers: if with_python {
            vec![Server::Ours, Server::Aiosignalr]
        } else {
            vec![Server::Ours]
        },
        metrics: fan_metrics.clone(),
    });
    let mut churn_metrics = fan_metrics;
    churn_metrics.insert(0, ("churn connects", "/churn_connects"));
    churn_metrics.insert(1, ("churn failures", "/churn_failures"));
    out.push(Case {
        name: "churn".into(),
        command: "churn",
        args: s(&[
            "--connections",
            &small,
            "--churn",
            "100",
            "--churn-hold-ms",
            "500",
            "--rate",
            "10",
            "--duration",
            dur,
            "--warmup",
            warm,
        ]),
        servers: two,
        metrics: churn_metrics,
    });
    out
}

fn sweep_case(i: usize, rate: &str, duration: &str) -> Case {
    Case {
        name: format!("echo-open-{i}"),
        command: "echo",
        args: s(&[
            "--protocol",
            "json",
            "--connections",
            "50",
            "--rate",
            rate,
            "--duration",
            duration,
            "--warmup",
            "1",
        ]),
        servers: vec![Server::Ours, Server::Bare],
        metrics: vec![
            ("offered msgs/s", "/target_rate"),
            ("echoes/s", "/throughput"),
            ("p50 µs", "/latency/p50_us"),
            ("p99 µs", "/latency/p99_us"),
            ("p99.9 µs", "/latency/p999_us"),
            ("max µs", "/latency/max_us"),
            ("wire p50 µs", "/wire_latency/p50_us"),
            ("wire p99 µs", "/wire_latency/p99_us"),
            ("send lag p99 µs", "/send_lag/p99_us"),
            ("loadgen CPU %", "/cpu/loadgen_cpu_pct"),
        ],
    }
}

/// `loadgen replot [--out DIR]`: the tables and plots again from `DIR/results.json`.
pub(crate) fn replot(args: &Args) -> Result<(), BoxError> {
    let out = PathBuf::from(args.str("out").unwrap_or("docs/benchmarks"));
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json"))?)?;
    let samples: Vec<Sample> = serde_json::from_value(results["samples"].clone())?;
    let runs = usize::try_from(results["runs"].as_u64().unwrap_or(1)).unwrap_or(1);
    let errors: Vec<String> = serde_json::from_value(results["errors"].clone()).unwrap_or_default();
    let with_python = samples.iter().any(|s| s.server == Server::Aiosignalr);
    let mut table_cases = cases(false, 0, 0, with_python);
    for i in 0..SWEEP.len() {
        table_cases.push(sweep_case(i, "", ""));
    }
    let markdown = tables(&table_cases, &samples, runs, &results["machine"], &errors);
    std::fs::write(out.join("results.md"), &markdown)?;
    crate::plot::latency_vs_load(
        &samples_for_plot(&samples),
        &out.join("echo-latency-vs-load.svg"),
    )?;
    crate::plot::memory_vs_connections(
        &memory_points(&samples),
        &out.join("memory-vs-connections.svg"),
    )?;
    println!("{markdown}");
    Ok(())
}

/// Offered loads of the open-loop echo sweep, as fractions of ours' closed-loop maximum.
const SWEEP: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

pub(crate) fn run(args: &Args) -> Result<(), BoxError> {
    let out = PathBuf::from(args.str("out").unwrap_or("docs/benchmarks"));
    std::fs::create_dir_all(&out)?;
    let scratch = std::env::temp_dir().join(format!("loadgen-suite-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let quick = args.flag("quick", false);
    let runs: usize = args.num("runs", if quick { 1 } else { 3 })?;
    let idle_conns: usize = args.num("idle-connections", if quick { 200 } else { 19_000 })?;
    let fan_conns: usize = args.num("fanout-connections", if quick { 50 } else { 10_000 })?;
    let python = PathBuf::from(
        args.str("python")
            .unwrap_or("target/python-venv/bin/python"),
    );
    let script = PathBuf::from(
        args.str("aiosignalr-script")
            .unwrap_or("examples/loadgen/aiosignalr_bench.py"),
    );
    let with_python = args.flag("aiosignalr", python.exists() && script.exists());
    let only: Option<Vec<String>> = args
        .str("only")
        .map(|o| o.split(',').map(str::to_owned).collect());
    let sweep = args.flag("sweep", true);

    let machine = serde_json::json!({
        "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        "nproc": sh("nproc"),
        "lscpu": sh("lscpu | head -12"),
        "free": sh("free -h"),
        "uname": sh("uname -sr"),
        "loadavg_start": sh("cat /proc/loadavg"),
        "taskset": taskset(),
        "fd_limit": sh("ulimit -n"),
    });
    eprintln!("suite: {runs} run(s), out {}", out.display());
    let mut samples: Vec<Sample> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut all_cases = cases(quick, idle_conns, fan_conns, with_python);
    if let Some(only) = &only {
        all_cases.retain(|c| only.contains(&c.name));
    }
    let sweep_dur = if quick { "1" } else { "6" };
    let limit = Duration::from_secs(if quick { 60 } else { 300 });
    let ctx = Ctx {
        python: &python,
        script: &script,
        scratch: &scratch,
        limit,
        pause: Duration::from_secs(if quick { 0 } else { 2 }),
    };
    let mut table_cases = all_cases.clone();
    let mut sweep_added = false;
    for run in 1..=runs {
        for case in &all_cases {
            run_servers(&ctx, case, run, &mut samples, &mut errors);
            if case.name != "echo-closed-json" || !sweep {
                continue;
            }
            // The open-loop sweep, at fractions of ours' closed-loop maximum of this run.
            let max = samples
                .iter()
                .rev()
                .find(|s| s.run == run && s.case == case.name && s.server == Server::Ours)
                .and_then(|s| pointer(&s.report, "/throughput"));
            let Some(max) = max else { continue };
            for (i, fraction) in SWEEP.iter().enumerate() {
                let rate = (max * fraction).round().max(10.0).to_string();
                let sweep_case = sweep_case(i, &rate, sweep_dur);
                run_servers(&ctx, &sweep_case, run, &mut samples, &mut errors);
                if !sweep_added {
                    table_cases.push(sweep_case);
                }
            }
            sweep_added = true;
        }
    }
    let mut machine = machine;
    machine["loadavg_end"] = Value::String(sh("cat /proc/loadavg"));
    let results = serde_json::json!({
        "machine": machine,
        "runs": runs,
        "errors": errors,
        "samples": samples,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let markdown = tables(&table_cases, &samples, runs, &machine, &errors);
    std::fs::write(out.join("results.md"), &markdown)?;
    crate::plot::latency_vs_load(
        &samples_for_plot(&samples),
        &out.join("echo-latency-vs-load.svg"),
    )?;
    crate::plot::memory_vs_connections(
        &memory_points(&samples),
        &out.join("memory-vs-connections.svg"),
    )?;
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{markdown}");
    Ok(())
}

/// What running a case needs.
struct Ctx<'a> {
    python: &'a Path,
    script: &'a Path,
    scratch: &'a Path,
    limit: Duration,
    pause: Duration,
}

/// Runs `case` against each of its servers, a fresh server each time.
fn run_servers(
    ctx: &Ctx<'_>,
    case: &Case,
    run: usize,
    samples: &mut Vec<Sample>,
    errors: &mut Vec<String>,
) {
    for &server in &case.servers {
        let running = match start_server(server, ctx.python, ctx.script) {
            Ok(r) => r,
            Err(err) => {
                errors.push(err.to_string());
                continue;
            }
        };
        eprintln!("run {run}: {} on {}", case.name, server.label());
        let result = run_case(case, server, &running, ctx.limit, ctx.scratch);
        stop(running);
        match result {
            Ok((report, command_line)) => samples.push(Sample {
                case: case.name.clone(),
                server,
                run,
                command_line,
                report,
            }),
            Err(err) => {
                eprintln!("  failed: {err}");
                errors.push(format!(
                    "run {run}, {} on {}: {err}",
                    case.name,
                    server.label()
                ));
            }
        }
        // Let sockets in TIME_WAIT and the CPU settle between servers.
        std::thread::sleep(ctx.pause);
    }
}

fn values(samples: &[Sample], case: &str, server: Server, path: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.case == case && s.server == server)
        .filter_map(|s| pointer(&s.report, path))
        .collect()
}

pub(crate) fn cell(mut v: Vec<f64>) -> String {
    let Some(med) = median(&mut v) else {
        return "–".to_owned();
    };
    if v.len() == 1 {
        return fmt(med);
    }
    format!("{} ({}–{})", fmt(med), fmt(v[0]), fmt(v[v.len() - 1]))
}

/// Per-run ratio ours / other, then the median and range of those ratios.
fn ratio(samples: &[Sample], case: &str, other: Server, path: &str) -> String {
    let ours: Vec<(usize, f64)> = samples
        .iter()
        .filter(|s| s.case == case && s.server == Server::Ours)
        .filter_map(|s| Some((s.run, pointer(&s.report, path)?)))
        .collect();
    let mut ratios: Vec<f64> = ours
        .iter()
        .filter_map(|(run, o)| {
            let b = samples
                .iter()
                .find(|s| s.case == case && s.server == other && s.run == *run)
                .and_then(|s| pointer(&s.report, path))?;
            (b != 0.0).then(|| o / b)
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

fn tables(
    cases: &[Case],
    samples: &[Sample],
    runs: usize,
    machine: &Value,
    errors: &[String],
) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Generated by `loadgen suite` on {}: {runs} run(s) per scenario; median (min–max) over runs; ratios computed per run, then their median (min–max).\nLoad average at start: {}; at end: {}.\n\n",
        machine["date"].as_str().unwrap_or("?"),
        machine["loadavg_start"].as_str().unwrap_or("?"),
        machine["loadavg_end"].as_str().unwrap_or("?"),
    ));
    for case in cases {
        if !samples.iter().any(|s| s.case == case.name) {
            continue;
        }
        md.push_str(&format!("#### {}\n\n", case.name));
        if let Some(line) = samples
            .iter()
            .find(|s| s.case == case.name && s.server == Server::Ours)
        {
            md.push_str(&format!("`{}`\n\n", line.command_line));
        }
        let others: Vec<Server> = case
            .servers
            .iter()
            .copied()
            .filter(|s| *s != Server::Ours)
            .collect();
        md.push_str("| Metric |");
        for server in &case.servers {
            md.push_str(&format!(" {} |", server.label()));
        }
        for other in &others {
            md.push_str(&format!(" ours / {} |", other.label()));
        }
        md.push_str("\n|---|");
        for _ in 0..case.servers.len() + others.len() {
            md.push_str("---:|");
        }
        md.push('\n');
        for (label, path) in &case.metrics {
            md.push_str(&format!("| {label} |"));
            for server in &case.servers {
                md.push_str(&format!(
                    " {} |",
                    cell(values(samples, &case.name, *server, path))
                ));
            }
            for other in &others {
                md.push_str(&format!(" {} |", ratio(samples, &case.name, *other, path)));
            }
            md.push('\n');
        }
        let bound: Vec<String> = samples
            .iter()
            .filter(|s| {
                s.case == case.name
                    && s.report
                        .pointer("/cpu/loadgen_bound")
                        .and_then(Value::as_bool)
                        == Some(true)
            })
            .map(|s| format!("{} run {}", s.server.label(), s.run))
            .collect();
        if !bound.is_empty() {
            md.push_str(&format!(
                "\nLoad generator above 90 % CPU (it may have set the pace): {}.\n",
                bound.join(", ")
            ));
        }
        md.push('\n');
    }
    if !errors.is_empty() {
        md.push_str("#### Errors\n\n");
        for e in errors {
            md.push_str(&format!("- {e}\n"));
        }
    }
    md
}

/// (server label, [(offered rate, p50, p99, p99.9, wire p99)]) from the open-loop sweep, medians
/// over runs.
fn samples_for_plot(samples: &[Sample]) -> Vec<(String, Vec<[f64; 5]>)> {
    let mut out = Vec::new();
    for server in [Server::Ours, Server::Bare] {
        let mut points = Vec::new();
        for i in 0..SWEEP.len() {
            let case = format!("echo-open-{i}");
            let get = |path| median(&mut values(samples, &case, server, path));
            if let (Some(rate), Some(p50), Some(p99), Some(p999), Some(wire)) = (
                get("/target_rate"),
                get("/latency/p50_us"),
                get("/latency/p99_us"),
                get("/latency/p999_us"),
                get("/wire_latency/p99_us"),
            ) {
                points.push([rate, p50, p99, p999, wire]);
            }
        }
        if !points.is_empty() {
            out.push((server.label().to_owned(), points));
        }
    }
    out
}

/// (series label, [(connections, MiB)]) from the first run's idle ramp.
fn memory_points(samples: &[Sample]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out = Vec::new();
    for server in [Server::Ours, Server::Bare, Server::Aiosignalr] {
        let Some(sample) = samples
            .iter()
            .find(|s| s.case == "idle" && s.server == server)
        else {
            continue;
        };
        let Some(points) = sample.report.get("points").and_then(Value::as_array) else {
            continue;
        };
        let series = |field: &str| -> Vec<(f64, f64)> {
            points
                .iter()
                .filter_map(|p| {
                    Some((
                        p.get("connections")?.as_f64()?,
                        p.get(field)?.as_f64()? / (1024.0 * 1024.0),
                    ))
                })
                .collect()
        };
        out.push((format!("{} RSS", server.label()), series("server_rss")));
        if server == Server::Ours {
            out.push((
                "kernel slab, system-wide (both ends)".to_owned(),
                series("kernel_slab"),
            ));
        }
    }
    out
}
