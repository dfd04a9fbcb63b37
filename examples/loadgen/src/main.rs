//! `loadgen`: a load generator for SignalR servers over WebSockets, and the benchmark
//! servers it is measured against.
//!
//! ```text
//! loadgen serve     --kind signalr|bare [--addr 127.0.0.1:0] [--reuse-port] [--read-buffer 1024] [--redis URL [--redis-prefix P]]
//! loadgen idle      --url ws://127.0.0.1:5000/bench --connections 10000 [--steps 10] [--hold 10]
//! loadgen echo      --url … [--protocol json|msgpack] [--connections 50] [--rate 20000 [--spin false] | --depth 1]
//! loadgen broadcast --url … --connections 10000 [--rate 1 | --window 4] [--spin true]
//! loadgen groups    --url … --connections 1000 --group-size 10 [--rate 1000]
//! loadgen churn     --url … --connections 1000 --churn 100 --churn-hold-ms 500 [--rate 10]
//! loadgen suite     [--out docs/benchmarks] [--runs 3] [--quick]
//! loadgen redis-suite [--out docs/benchmarks] [--runs 3] [--connections 1000,10000] [--quick]
//! loadgen replot    [--out docs/benchmarks]   (tables and plots again from results.json)
//! ```
//!
//! Common options: `--protocol json|msgpack` (default json), `--negotiate true|false`
//! (default true; false connects straight to the WebSocket, as `skipNegotiation` does),
//! `--duration S` (default 10), `--warmup S` (default 2), `--concurrency N` (connections
//! opened at once, default 256), `--sources N` (loopback source addresses 127.0.0.1 ..
//! 127.0.0.N; default one per 4,000 connections), `--server-pid PID[,PID…]` (read the
//! server's CPU time and RSS from /proc; with several, their sum), `--redis-pid PID`
//! (Redis's CPU time, reported apart), `--json FILE` (write the report there; it is
//! printed on stdout as well).
//!
//! Fan-out (`broadcast`, `groups`, `churn`) also takes `--publish-url URL`: the publisher
//! connects there instead of `--url`, where the receivers stay. With two servers sharing
//! a Redis backplane, every delivery then crosses Redis.
//!
//! `serve --kind signalr --redis redis://127.0.0.1:6379/` gives the Bench hub the Redis
//! backplane (`signalr-redis`; `--redis-prefix` sets its channel prefix) and prints
//! `listening on` once the backplane is subscribed. `redis-suite` compares one server
//! alone, one server on Redis, and two servers on one Redis (see `redis_suite.rs`).
//!
//! The target must be a loopback address. The generator runs on one thread; pin it and
//! the server to different cores (`taskset -c 1 loadgen …`). Each report says how busy
//! the generator itself was (`loadgen_cpu_pct`); above 90 % it, not the server, may have
//! set the pace (`loadgen_bound`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod plot;
mod proto;
mod redis_suite;
mod scenarios;
mod server;
mod suite;
mod sys;
mod ws;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use crate::proto::Protocol;
use crate::scenarios::{Common, EchoOptions, FanoutOptions};
use crate::ws::Target;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `--key value` pairs after the subcommand.
#[derive(Debug)]
struct Args {
    values: HashMap<String, String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let key = args[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {}", args[i]))?;
            if let Some((k, v)) = key.split_once('=') {
                values.insert(k.to_owned(), v.to_owned());
                i += 1;
            } else if args.get(i + 1).is_some_and(|v| !v.starts_with("--")) {
                values.insert(key.to_owned(), args[i + 1].clone());
                i += 2;
            } else {
                values.insert(key.to_owned(), "true".to_owned());
                i += 1;
            }
        }
        Ok(Self { values })
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: cannot read {v:?}")),
        }
    }

    fn opt_num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        self.values
            .get(key)
            .map(|v| v.parse().map_err(|_| format!("--{key}: cannot read {v:?}")))
            .transpose()
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.str(key).map_or(default, |v| v != "false" && v != "0")
    }
}

fn common(args: &Args, default_connections: usize) -> Result<Common, String> {
    let protocol = Protocol::parse(args.str("protocol").unwrap_or("json"))
        .ok_or("--protocol: json or msgpack")?;
    let url = args
        .str("url")
        .ok_or("--url is required (ws://127.0.0.1:PORT/bench)")?;
    let negotiate = args.flag("negotiate", true);
    let mut target = Target::parse(url, protocol, negotiate)?;
    let connections: usize = args.num("connections", default_connections)?;
    // One source address per 4,000 connections: binding is quicker with free ports.
    let default_sources = connections / 4_000 + 1;
    target.sources = args.num("sources", u8::try_from(default_sources).unwrap_or(250))?;
    let publish = match args.str("publish-url") {
        Some(publish_url) => {
            let mut publish = Target::parse(publish_url, protocol, negotiate)?;
            publish.sources = target.sources;
            Some((publish_url.to_owned(), publish))
        }
        None => None,
    };
    Ok(Common {
        target,
        connections,
        duration: Duration::from_secs_f64(args.num("duration", 10.0)?),
        warmup: Duration::from_secs_f64(args.num("warmup", 2.0)?),
        concurrency: args.num("concurrency", 256)?,
        server_pids: args
            .str("server-pid")
            .map(|pids| {
                pids.split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        redis_pid: args.str("redis-pid").map(str::to_owned),
        url: url.to_owned(),
        publish,
    })
}

fn emit(args: &Args, report: &impl serde::Serialize) -> Result<(), BoxError> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(path) = args.str("json") {
        std::fs::write(path, &json)?;
    }
    println!("{json}");
    Ok(())
}

/// Raises the soft file-descriptor limit to the hard limit; returns the new soft limit.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            eprintln!("could not raise the file-descriptor limit: {err}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
        }
    }
}

fn local_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn run_local<F: Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = local_runtime()?;
    let local = tokio::task::LocalSet::new();
    Ok(local.block_on(&runtime, future))
}

fn main() -> Result<(), BoxError> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = argv.first().cloned() else {
        eprintln!(
            "usage: loadgen serve|idle|echo|broadcast|groups|churn|suite|redis-suite|replot [options]; see the crate docs"
        );
        std::process::exit(2);
    };
    let args = Args::parse(&argv[1..])?;
    let fd_limit = raise_fd_limit();
    match command.as_str() {
        "serve" => {
            let kind = server::Kind::parse(args.str("kind").unwrap_or("signalr"))
                .ok_or("--kind: signalr or bare")?;
            let addr = args.str("addr").unwrap_or("127.0.0.1:0").to_owned();
            let redis = match args.str("redis") {
                Some(url) if kind == server::Kind::SignalR => Some(server::RedisOptions {
                    url: url.to_owned(),
                    prefix: args.str("redis-prefix").unwrap_or("").to_owned(),
                }),
                Some(_) => return Err("--redis needs --kind signalr".into()),
                None => None,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let reuse_port = args.flag("reuse-port", false);
            let read_buffer = args.num("read-buffer", server::READ_BUFFER)?;
            runtime.block_on(server::run(kind, &addr, redis, reuse_port, read_buffer))?;
        }
        "idle" => {
            let common = common(&args, 1000)?;
            if common.connections + 64 > usize::try_from(fd_limit).unwrap_or(usize::MAX) {
                eprintln!(
                    "warning: {} connections need more file descriptors than the limit of {fd_limit}",
                    common.connections
                );
            }
            let steps = args.num("steps", 10)?;
            let hold = Duration::from_secs_f64(args.num("hold", 10.0)?);
            let report = run_local(scenarios::idle(&common, steps, hold))?;
            emit(&args, &report)?;
        }
        "echo" => {
            let common = common(&args, 50)?;
            let options = EchoOptions {
                rate: args.opt_num("rate")?,
                depth: args.num("depth", 1)?,
                payload: args.num("payload", 32)?,
                spin: args.flag("spin", true),
            };
            let report = run_local(scenarios::echo(&common, options))?;
            emit(&args, &report)?;
        }
        "broadcast" | "groups" | "churn" => {
            let common = common(&args, 1000)?;
            let options = FanoutOptions {
                rate: args.opt_num("rate")?,
                window: args.num("window", 4)?,
                group_size: match command.as_str() {
                    "groups" => Some(args.num("group-size", 10)?),
                    _ => None,
                },
                churn: match command.as_str() {
                    "churn" => args.num("churn", 100)?,
                    _ => 0,
                },
                churn_hold: Duration::from_millis(args.num("churn-hold-ms", 1000)?),
                max_messages: args.num("max-messages", 1_000_000)?,
                spin: args.flag("spin", false),
            };
            let report = run_local(scenarios::fanout(&common, options))?;
            emit(&args, &report)?;
        }
        "suite" => suite::run(&args)?,
        "redis-suite" => redis_suite::run(&args)?,
        "replot" => suite::replot(&args)?,
        other => {
            eprintln!("unknown command {other}");
            std::process::exit(2);
        }
    }
    Ok(())
}
