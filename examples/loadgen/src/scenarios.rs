//! The scenarios: idle connections, echo, and fan-out (broadcast, groups, churn).
//!
//! Everything runs on one thread (a current-thread runtime and a `LocalSet`), so the
//! state the connections share is an `Rc<RefCell<…>>` and one clock times everything.
//! Every loop ends by a deadline or a count.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use crate::proto::{self, COMPLETION, INVOCATION};
use crate::sys::{self, CpuReport, Latency};
use crate::ws::{Conn, Target};

static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the generator started: the one clock of a run.
fn now_ns() -> u64 {
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn instant_at(ns: u64) -> tokio::time::Instant {
    let start = *START.get_or_init(Instant::now);
    tokio::time::Instant::from_std(start + Duration::from_nanos(ns))
}

fn secs_to_ns(secs: f64) -> u64 {
    ns(Duration::from_secs_f64(secs.clamp(0.0, 1e9)))
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Options every scenario shares.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    pub(crate) target: Target,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    /// Connections being opened at once while ramping.
    pub(crate) concurrency: usize,
    /// The server processes whose CPU time (summed) and RSS the reports give.
    pub(crate) server_pids: Vec<String>,
    /// A Redis server process whose CPU time the reports give separately.
    pub(crate) redis_pid: Option<String>,
    /// The URL the connections (fan-out: the receivers) use, as given.
    pub(crate) url: String,
    /// Fan-out: where the publisher connects instead (`--publish-url`), as given and parsed.
    pub(crate) publish: Option<(String, Target)>,
}

/// How a ramp went.
#[derive(Debug, Default, Serialize, Clone)]
pub(crate) struct Ramp {
    pub(crate) opened: usize,
    pub(crate) failed: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) seconds: f64,
}

/// Opens connections `range` with at most `concurrency` in flight; `after` runs on each new
/// connection (joining a group, for example) before it counts as open.
async fn open_range<F, Fut>(
    target: &Target,
    range: std::ops::Range<usize>,
    concurrency: usize,
    after: F,
    ramp: &mut Ramp,
) -> Vec<(usize, Conn)>
where
    F: Fn(usize, Conn) -> Fut,
    Fut: Future<Output = Result<Conn, String>>,
{
    let started = Instant::now();
    let after = &after;
    let results: Vec<_> = futures_util::stream::iter(range)
        .map(|i| async move {
            let connect = async {
                let conn = Conn::connect(target, i).await.map_err(|e| e.to_string())?;
                after(i, conn).await
            };
            let result = tokio::time::timeout(Duration::from_secs(20), connect)
                .await
                .unwrap_or_else(|_| Err("timed out".to_owned()));
            (i, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut conns = Vec::with_capacity(results.len());
    for (i, result) in results {
        match result {
            Ok(conn) => conns.push((i, conn)),
            Err(err) => {
                ramp.failed += 1;
                ramp.first_error.get_or_insert(err);
            }
        }
    }
    ramp.opened += conns.len();
    ramp.seconds += started.elapsed().as_secs_f64();
    conns
}

async fn no_setup(_: usize, conn: Conn) -> Result<Conn, String> {
    Ok(conn)
}

// ---------------------------------------------------------------------------------------
// Idle
// ---------------------------------------------------------------------------------------

/// One sample while ramping.
#[derive(Debug, Serialize, Clone)]
pub(crate) struct MemPoint {
    pub(crate) connections: usize,
    pub(crate) server_rss: Option<u64>,
    pub(crate) kernel_tcp_mem: Option<u64>,
    pub(crate) kernel_slab: Option<u64>,
    pub(crate) loadgen_rss: Option<u64>,
}

/// What the idle scenario measured.
#[derive(Debug, Serialize, Clone)]
pub(crate) struct IdleReport {
    pub(crate) requested: usize,
    pub(crate) ramp: Ramp,
    pub(crate) points: Vec<MemPoint>,
    /// Least-squares slope of the server's RSS against open connections.
    pub(crate) server_rss_per_conn: Option<f64>,
    /// The same for kernel TCP buffer memory (both ends of each loopback connection).
    pub(crate) kernel_tcp_mem_per_conn: Option<f64>,
    /// The same for the kernel's slab memory (socket structures of both ends, and
    /// anything else the machine did meanwhile).
    pub(crate) kernel_slab_per_conn: Option<f64>,
    pub(crate) loadgen_rss_per_conn: Option<f64>,
    pub(crate) hold_s: f64,
    /// Connections the server closed during the hold.
    pub(crate) closed_during_hold: usize,
    pub(crate) hold_cpu: CpuReport,
}

fn sample(connections: usize, server_pids: &[String]) -> MemPoint {
    MemPoint {
        connections,
        server_rss: sys::rss_bytes_sum(server_pids),
        kernel_tcp_mem: sys::tcp_sockstat().map(|(mem, _)| mem),
        kernel_slab: sys::slab_bytes(),
        loadgen_rss: sys::rss_bytes("self"),
    }
}

fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn slope_of(points: &[MemPoint], field: impl Fn(&MemPoint) -> Option<u64>) -> Option<f64> {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.connections as f64, field(p)? as f64)))
        .collect();
    slope(&xy)
}

async fn keep_idle(
    mut conn: Conn,
    index: usize,
    end: tokio::time::Instant,
    closed: Rc<Cell<usize>>,
) {
    let ping = conn.protocol().ping();
    // Clients ping every 15 s so the server's 30 s client timeout never fires; spread the
    // pings over the interval.
    let period = Duration::from_secs(15);
    let offset = Duration::from_millis(u64::try_from(index % 15_000).unwrap_or(0));
    let mut next = tokio::time::Instant::now() + offset;
    loop {
        tokio::select! {
            ready = conn.readable() => {
                if ready.is_err() || conn.read_ready(&mut |_| {}).is_err() || conn.is_closed() {
                    closed.set(closed.get() + 1);
                    return;
                }
            }
            () = sleep_until(next) => {
                if conn.send(&ping).await.is_err() {
                    closed.set(closed.get() + 1);
                    return;
                }
                next += period;
            }
            () = sleep_until(end) => return,
        }
    }
}

/// Ramps `connections` idle connections in `steps`, sampling memory after each, then
/// holds them.
pub(crate) async fn idle(common: &Common, steps: usize, hold: Duration) -> IdleReport {
    let pid = &common.server_pids;
    let mut points = vec![sample(0, pid)];
    let mut ramp = Ramp::default();
    let closed = Rc::new(Cell::new(0usize));
    let far = tokio::time::Instant::now() + Duration::from_secs(24 * 3600);
    let mut tasks = JoinSet::new();
    let steps = steps.max(1);
    let mut opened = 0;
    for step in 1..=steps {
        let upto = common.connections * step / steps;
        let conns = open_range(
            &common.target,
            opened..upto,
            common.concurrency,
            no_setup,
            &mut ramp,
        )
        .await;
        opened = upto;
        for (i, conn) in conns {
            tasks.spawn_local(keep_idle(conn, i, far, closed.clone()));
        }
        // Let the server finish setting the connections up before sampling.
        tokio::time::sleep(Duration::from_millis(300)).await;
        points.push(sample(ramp.opened - closed.get(), pid));
        eprintln!(
            "idle: {} open, {} failed, server RSS {:?}",
            ramp.opened - closed.get(),
            ramp.failed,
            points.last().and_then(|p| p.server_rss)
        );
    }
    let closed_before_hold = closed.get();
    let cpu = sys::CpuWindow::start(pid, common.redis_pid.as_deref());
    tokio::time::sleep(hold).await;
    let hold_cpu = cpu.finish();
    points.push(sample(ramp.opened - closed.get(), pid));
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    IdleReport {
        requested: common.connections,
        server_rss_per_conn: slope_of(&points[..points.len() - 1], |p| p.server_rss),
        kernel_tcp_mem_per_conn: slope_of(&points[..points.len() - 1], |p| p.kernel_tcp_mem),
        kernel_slab_per_conn: slope_of(&points[..points.len() - 1], |p| p.kernel_slab),
        loadgen_rss_per_conn: slope_of(&points[..points.len() - 1], |p| p.loadgen_rss),
        ramp,
        points,
        hold_s: hold.as_secs_f64(),
        closed_during_hold: closed.get() - closed_before_hold,
        hold_cpu,
    }
}

// ---------------------------------------------------------------------------------------
// Echo
// ---------------------------------------------------------------------------------------

/// Echo options.
#[derive(Clone, Debug)]
pub(crate) struct EchoOptions {
    /// Messages per second over all connections; `None` for closed loop.
    pub(crate) rate: Option<f64>,
    /// Closed loop: invocations outstanding per connection.
    pub(crate) depth: usize,
    pub(crate) payload: usize,
    /// Open loop: reach each send time by yielding instead of on the timer wheel, whose
    /// millisecond ticks would send in bursts up to 2 ms late. Keeps the generator's core
    /// busy (its CPU figure then means nothing).
    pub(crate) spin: bool,
}

/// Waits until `until_ns`: on the timer up to 1.5 ms before it, then, with `spin`, by
/// yielding (the other connections and the reads go on meanwhile).
async fn pace(until_ns: u64, spin: bool) {
    if !spin {
        return sleep_until(instant_at(until_ns)).await;
    }
    let early = until_ns.saturating_sub(1_500_000);
    if now_ns() < early {
        sleep_until(instant_at(early)).await;
    }
    while now_ns() < until_ns {
        tokio::task::yield_now().await;
    }
}

/// What the echo scenario measured.
#[derive(Debug, Serialize, Clone)]
pub(crate) struct EchoReport {
    pub(crate) mode: &'static str,
    pub(crate) protocol: &'static str,
    pub(crate) connections: usize,
    pub(crate) target_rate: Option<f64>,
    pub(crate) ramp: Ramp,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    /// Replies received during the measured window, per second.
    pub(crate) throughput: f64,
    /// Sent but never answered by the end of the drain.
    pub(crate) unanswered: u64,
    pub(crate) closed_connections: usize,
    /// From the time each invocation was due (open loop) or sent (closed loop) to its
    /// completion.
    pub(crate) latency: Latency,
    /// From the time each invocation was written to the socket to its completion: without
    /// the generator's own lateness (its timers tick every millisecond).
    pub(crate) wire_latency: Latency,
    /// How late the generator wrote each invocation, against when it was due.
    pub(crate) send_lag: Latency,
    /// Open loop paced by yielding (`EchoOptions::spin`): the generator's CPU is busy by
    /// design.
    pub(crate) spin: bool,
    pub(crate) cpu: CpuReport,
    /// Server CPU time per echoed message, in microseconds.
    pub(crate) server_cpu_us_per_msg: Option<f64>,
}

#[derive(Debug)]
struct EchoStats {
    hist: Histogram<u64>,
    wire: Histogram<u64>,
    lag: Histogram<u64>,
    sent: u64,
    received: u64,
    in_window: u64,
    unanswered: u64,
    closed: usize,
}

struct EchoClock {
    measure_from: u64,
    end: u64,
    drain_end: u64,
}

async fn echo_conn(
    mut conn: Conn,
    index: usize,
    frame: Rc<Vec<u8>>,
    options: EchoOptions,
    connections: usize,
    clock: Rc<EchoClock>,
    stats: Rc<RefCell<EchoStats>>,
) {
    let mut fifo: VecDeque<(u64, u64)> = VecDeque::with_capacity(options.depth.max(4));
    let interval_ns = options
        .rate
        .map(|rate| secs_to_ns(connections as f64 / rate.max(1e-3)))
        .map(|i| i.max(1));
    let mut next = match interval_ns {
        // Spread the connections' first sends over one interval.
        Some(interval) => {
            now_ns()
                + interval * u64::try_from(index % connections.max(1)).unwrap_or(0)
                    / u64::try_from(connections.max(1)).unwrap_or(1)
        }
        None => now_ns(),
    };
    // Closed loop: the invocations that go out together are written together, as a client
    // that pipelines them would.
    let mut burst = Vec::new();
    if interval_ns.is_none() {
        let depth = options.depth.max(1);
        if send_burst(&mut conn, &frame, depth, &mut burst)
            .await
            .is_err()
        {
            stats.borrow_mut().closed += 1;
            return;
        }
        let now = now_ns();
        fifo.extend(std::iter::repeat_n((now, now), depth));
        stats.borrow_mut().sent += depth as u64;
    }
    loop {
        let now = now_ns();
        if now >= clock.end && fifo.is_empty() {
            break;
        }
        let (wake, spin) = match interval_ns {
            Some(_) if next < clock.end => (next, options.spin),
            _ => (clock.drain_end, false),
        };
        tokio::select! {
            ready = conn.readable() => {
                let mut replies = 0u64;
                let read = if ready.is_ok() {
                    let protocol = conn.protocol();
                    let mut stats = stats.borrow_mut();
                    let result = conn.read_ready(&mut |record| {
                        let kind = protocol.message_type(record);
                        if kind != COMPLETION && kind != INVOCATION {
                            return;
                        }
                        let Some((due, sent)) = fifo.pop_front() else { return };
                        let now = now_ns();
                        if due >= clock.measure_from && due < clock.end {
                            sys::record(&mut stats.hist, now.saturating_sub(due) / 1000);
                            sys::record(&mut stats.wire, now.saturating_sub(sent) / 1000);
                            sys::record(&mut stats.lag, sent.saturating_sub(due) / 1000);
                        }
                        if now >= clock.measure_from && now < clock.end {
                            stats.in_window += 1;
                        }
                        stats.received += 1;
                        replies += 1;
                    });
                    result.is_ok()
                } else {
                    false
                };
                if !read || conn.is_closed() {
                    let mut stats = stats.borrow_mut();
                    stats.closed += 1;
                    stats.unanswered += fifo.len() as u64;
                    return;
                }
                if interval_ns.is_none() && replies > 0 && now_ns() < clock.end {
                    // Closed loop: one new invocation per reply, until the end.
                    let count = usize::try_from(replies).unwrap_or(1);
                    if send_burst(&mut conn, &frame, count, &mut burst).await.is_err() {
                        stats.borrow_mut().closed += 1;
                        return;
                    }
                    let now = now_ns();
                    fifo.extend(std::iter::repeat_n((now, now), count));
                    stats.borrow_mut().sent += replies;
                }
            }
            () = pace(wake, spin) => {
                let Some(interval) = interval_ns else { break };
                if now_ns() >= clock.drain_end {
                    break;
                }
                // Open loop: everything due is sent now, stamped with when it was due.
                let now = now_ns();
                while next <= now && next < clock.end {
                    if conn.send(&frame).await.is_err() {
                        stats.borrow_mut().closed += 1;
                        return;
                    }
                    fifo.push_back((next, now_ns()));
                    stats.borrow_mut().sent += 1;
                    next += interval;
                }
                if next >= clock.end && now_ns() >= clock.drain_end {
                    break;
                }
            }
        }
    }
    stats.borrow_mut().unanswered += fifo.len() as u64;
}

/// Writes `count` copies of `frame` in one write (`burst` is the reused buffer).
async fn send_burst(
    conn: &mut Conn,
    frame: &[u8],
    count: usize,
    burst: &mut Vec<u8>,
) -> std::io::Result<()> {
    if count == 1 {
        return conn.send(frame).await;
    }
    burst.clear();
    for _ in 0..count {
        burst.extend_from_slice(frame);
    }
    conn.send(burst).await
}

/// Echo: each connection invokes `Echo(payload)` and waits for the completion, closed loop
/// (a fixed number outstanding) or open loop (at a fixed rate, latency from the time each
/// message was due).
pub(crate) async fn echo(common: &Common, options: EchoOptions) -> EchoReport {
    let mut ramp = Ramp::default();
    let conns = open_range(
        &common.target,
        0..common.connections,
        common.concurrency,
        no_setup,
        &mut ramp,
    )
    .await;
    let payload = "x".repeat(options.payload);
    let frame = Rc::new(
        common
            .target
            .protocol
            .invocation(Some("1"), "Echo", &[&payload]),
    );
    let start = now_ns();
    let measure_from = start + ns(common.warmup);
    let end = measure_from + ns(common.duration);
    let clock = Rc::new(EchoClock {
        measure_from,
        end,
        drain_end: end + ns(Duration::from_secs(3)),
    });
    let stats = Rc::new(RefCell::new(EchoStats {
        hist: sys::histogram(),
        wire: sys::histogram(),
        lag: sys::histogram(),
        sent: 0,
        received: 0,
        in_window: 0,
        unanswered: 0,
        closed: 0,
    }));
    let n = conns.len();
    let mut tasks = JoinSet::new();
    for (i, conn) in conns {
        tasks.spawn_local(echo_conn(
            conn,
            i,
            frame.clone(),
            options.clone(),
            n,
            clock.clone(),
            stats.clone(),
        ));
    }
    sleep_until(instant_at(measure_from)).await;
    let cpu = sys::CpuWindow::start(&common.server_pids, common.redis_pid.as_deref());
    sleep_until(instant_at(end)).await;
    let mut cpu = cpu.finish();
    if options.spin && options.rate.is_some() {
        // Busy by design: not a sign that the generator set the pace.
        cpu.loadgen_bound = false;
    }
    while tasks.join_next().await.is_some() {}
    let stats = stats.borrow();
    let server_cpu_us_per_msg = cpu
        .server_cpu_s
        .filter(|_| stats.in_window > 0)
        .map(|s| 1e6 * s / stats.in_window as f64);
    EchoReport {
        mode: if options.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        protocol: common.target.protocol.name(),
        connections: n,
        target_rate: options.rate,
        ramp,
        sent: stats.sent,
        received: stats.received,
        throughput: stats.in_window as f64 / common.duration.as_secs_f64(),
        unanswered: stats.unanswered,
        closed_connections: stats.closed,
        latency: sys::latency(&stats.hist),
        wire_latency: sys::latency(&stats.wire),
        send_lag: sys::latency(&stats.lag),
        spin: options.spin && options.rate.is_some(),
        cpu,
        server_cpu_us_per_msg,
    }
}

// ---------------------------------------------------------------------------------------
// Fan-out: broadcast, groups, churn
// ---------------------------------------------------------------------------------------

/// Fan-out options.
#[derive(Clone, Debug)]
pub(crate) struct FanoutOptions {
    /// Messages per second from the publisher; `None`: as fast as `window` allows.
    pub(crate) rate: Option<f64>,
    /// Max mode: messages published but not yet delivered to every recipient.
    pub(crate) window: usize,
    /// `Some(size)`: groups of `size` receivers, `SendToGroup` round robin over them;
    /// `None`: `Broadcast` to all.
    pub(crate) group_size: Option<usize>,
    /// Extra connections that connect, stay `churn_hold`, disconnect, and again.
    pub(crate) churn: usize,
    pub(crate) churn_hold: Duration,
    pub(crate) max_messages: usize,
    /// Keep the generator's thread from sleeping between messages (it yields instead).
    pub(crate) spin: bool,
}

/// What a fan-out scenario measured.
#[derive(Debug, Serialize, Clone)]
pub(crate) struct FanoutReport {
    pub(crate) kind: &'static str,
    pub(crate) protocol: &'static str,
    /// Where the receivers (and churning connections) connected.
    pub(crate) receivers_url: String,
    /// Where the publisher connected: `receivers_url` unless `--publish-url` was given.
    pub(crate) publisher_url: String,
    pub(crate) receivers: usize,
    pub(crate) group_size: Option<usize>,
    pub(crate) target_rate: Option<f64>,
    pub(crate) ramp: Ramp,
    pub(crate) published: u64,
    pub(crate) published_in_window: u64,
    /// Deliveries to the measured receivers of messages published in the window.
    pub(crate) deliveries: u64,
    pub(crate) expected_deliveries: u64,
    /// `deliveries / expected_deliveries`.
    pub(crate) delivery_ratio: f64,
    pub(crate) deliveries_per_s: f64,
    /// Publish (intended time) to each recipient.
    pub(crate) delivery_latency: Latency,
    /// Publish (intended time) to the last recipient, for messages that reached all.
    pub(crate) fanout_completion: Latency,
    pub(crate) incomplete_messages: u64,
    pub(crate) closed_receivers: usize,
    pub(crate) churn_connects: u64,
    pub(crate) churn_failures: u64,
    pub(crate) churn_first_error: Option<String>,
    pub(crate) cpu: CpuReport,
    /// Server CPU time (all server processes together) per delivered message, in
    /// microseconds.
    pub(crate) server_cpu_us_per_delivery: Option<f64>,
    /// Redis's CPU time per delivered message, in microseconds (with `--redis-pid`).
    pub(crate) redis_cpu_us_per_delivery: Option<f64>,
    /// Servers and Redis together, per delivered message, in microseconds.
    pub(crate) total_cpu_us_per_delivery: Option<f64>,
    /// Server CPU time per published message (all its deliveries), in milliseconds: when
    /// close to the fan-out completion time, the server's CPU set it.
    pub(crate) server_cpu_ms_per_message: Option<f64>,
    /// The generator's CPU time per published message, in milliseconds: receiving one
    /// message on every connection. When close to the completion time, the generator may
    /// have set it.
    pub(crate) loadgen_cpu_ms_per_message: Option<f64>,
}

#[derive(Debug)]
struct Fanout {
    measure_from: u64,
    end: u64,
    /// Per message: intended publish time, recipients expected, delivered, last arrival.
    intended: Vec<u64>,
    expected: Vec<u32>,
    delivered: Vec<u32>,
    last: Vec<u64>,
    completed: u64,
    latency: Histogram<u64>,
    closed_receivers: usize,
    churn_connects: u64,
    churn_failures: u64,
    churn_first_error: Option<String>,
}

impl Fanout {
    fn deliver(&mut self, record: &[u8], notify: &tokio::sync::Notify) {
        let Some((seq, intended)) = proto::read_marker(record) else {
            return;
        };
        let Ok(seq) = usize::try_from(seq) else {
            return;
        };
        if seq >= self.delivered.len() {
            return;
        }
        let now = now_ns();
        if intended >= self.measure_from && intended < self.end {
            sys::record(&mut self.latency, now.saturating_sub(intended) / 1000);
        }
        self.delivered[seq] += 1;
        self.last[seq] = now;
        if self.delivered[seq] == self.expected[seq] {
            self.completed += 1;
            notify.notify_one();
        }
    }
}

async fn receive(
    mut conn: Conn,
    end: tokio::time::Instant,
    state: Option<Rc<RefCell<Fanout>>>,
    notify: Rc<tokio::sync::Notify>,
) -> bool {
    let protocol = conn.protocol();
    let ping = protocol.ping();
    let mut next_ping = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::select! {
            ready = conn.readable() => {
                let ok = ready.is_ok() && conn.read_ready(&mut |record| {
                    if let Some(state) = &state {
                        if protocol.message_type(record) == INVOCATION {
                            state.borrow_mut().deliver(record, &notify);
                        }
                    }
                }).is_ok();
                if !ok || conn.is_closed() {
                    return false;
                }
            }
            () = sleep_until(next_ping) => {
                if conn.send(&ping).await.is_err() {
                    return false;
                }
                next_ping += Duration::from_secs(15);
            }
            () = sleep_until(end) => {
                conn.close().await;
                return true;
            }
        }
    }
}

async fn churn_slot(
    target: Target,
    slot: usize,
    index_base: usize,
    hold: Duration,
    end: tokio::time::Instant,
    state: Rc<RefCell<Fanout>>,
    notify: Rc<tokio::sync::Notify>,
) {
    let mut round = 0usize;
    // Start the slots spread over one hold period.
    tokio::time::sleep(hold.mul_f64((slot % 100) as f64 / 100.0)).await;
    while tokio::time::Instant::now() < end {
        let index = index_base + slot + round * 7919;
        round += 1;
        match tokio::time::timeout(Duration::from_secs(10), Conn::connect(&target, index)).await {
            Ok(Ok(conn)) => {
                state.borrow_mut().churn_connects += 1;
                let until = (tokio::time::Instant::now() + hold).min(end);
                receive(conn, until, None, notify.clone()).await;
            }
            Ok(Err(err)) => {
                {
                    let mut s = state.borrow_mut();
                    s.churn_failures += 1;
                    s.churn_first_error.get_or_insert_with(|| err.to_string());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {
                let mut s = state.borrow_mut();
                s.churn_failures += 1;
                s.churn_first_error
                    .get_or_insert_with(|| "connect timed out".to_owned());
            }
        }
    }
}

/// Fan-out: a publisher and `connections` receivers in this process. `Broadcast` reaches
/// every connection; `SendToGroup` reaches one group. Each message carries its sequence
/// number and intended publish time, so one clock gives publish-to-recipient and
/// publish-to-last-recipient times.
pub(crate) async fn fanout(common: &Common, options: FanoutOptions) -> FanoutReport {
    let target = &common.target;
    let protocol = target.protocol;
    let mut ramp = Ramp::default();
    let group_size = options.group_size.map(|g| g.max(1));
    let join = |i: usize, mut conn: Conn| async move {
        let Some(size) = group_size else {
            return Ok(conn);
        };
        let group = format!("g{}", i / size);
        conn.send(&protocol.invocation(Some("j"), "JoinGroup", &[&group]))
            .await
            .map_err(|e| e.to_string())?;
        let mut done = false;
        while !done {
            conn.readable().await.map_err(|e| e.to_string())?;
            conn.read_ready(&mut |record| done |= protocol.message_type(record) == COMPLETION)
                .map_err(|e| e.to_string())?;
            if conn.is_closed() {
                return Err("closed while joining".to_owned());
            }
        }
        Ok(conn)
    };
    let receivers = open_range(
        target,
        0..common.connections,
        common.concurrency,
        join,
        &mut ramp,
    )
    .await;
    let mut publisher_ramp = Ramp::default();
    let publish_target = common.publish.as_ref().map_or(target, |(_, t)| t);
    let publisher = open_range(
        publish_target,
        common.connections..common.connections + 1,
        1,
        no_setup,
        &mut publisher_ramp,
    )
    .await
    .pop();
    let n = receivers.len();
    // Group membership as it ended up (some joins may have failed).
    let mut members: Vec<u32> = Vec::new();
    if let Some(size) = group_size {
        members = vec![0; common.connections.div_ceil(size)];
        for (i, _) in &receivers {
            members[i / size] += 1;
        }
    }
    let start = now_ns();
    let measure_from = start + ns(common.warmup);
    let end = measure_from + ns(common.duration);
    let drain_end = end + ns(Duration::from_secs(3));
    let state = Rc::new(RefCell::new(Fanout {
        measure_from,
        end,
        intended: Vec::new(),
        expected: Vec::new(),
        delivered: Vec::new(),
        last: Vec::new(),
        completed: 0,
        latency: sys::histogram(),
        closed_receivers: 0,
        churn_connects: 0,
        churn_failures: 0,
        churn_first_error: None,
    }));
    let notify = Rc::new(tokio::sync::Notify::new());
    let mut tasks = JoinSet::new();
    for (_, conn) in receivers {
        let state = state.clone();
        let notify = notify.clone();
        tasks.spawn_local(async move {
            if !receive(conn, instant_at(drain_end), Some(state.clone()), notify).await {
                state.borrow_mut().closed_receivers += 1;
            }
        });
    }
    if options.spin {
        let until = drain_end;
        tasks.spawn_local(async move {
            while now_ns() < until {
                tokio::task::yield_now().await;
            }
        });
    }
    for slot in 0..options.churn {
        tasks.spawn_local(churn_slot(
            target.clone(),
            slot,
            common.connections + 1,
            options.churn_hold,
            instant_at(end),
            state.clone(),
            notify.clone(),
        ));
    }
    let mut cpu = None;
    let mut published = 0u64;
    if let Some(mut publisher) = publisher.map(|(_, c)| c) {
        let mut seq = 0usize;
        loop {
            let now = now_ns();
            if cpu.is_none() && now >= measure_from {
                cpu = Some(sys::CpuWindow::start(
                    &common.server_pids,
                    common.redis_pid.as_deref(),
                ));
            }
            if now >= end || seq >= options.max_messages {
                break;
            }
            // When the next message is due.
            let due = match options.rate {
                Some(rate) => start + secs_to_ns(seq as f64 / rate.max(1e-3)),
                None => {
                    let in_flight = seq as u64 - state.borrow().completed;
                    if in_flight >= options.window.max(1) as u64 {
                        u64::MAX
                    } else {
                        now
                    }
                }
            };
            if due > now {
                let wake = if due == u64::MAX {
                    instant_at(end)
                } else {
                    instant_at(due.min(end))
                };
                tokio::select! {
                    ready = publisher.readable() => {
                        // The publisher receives broadcasts too; read and drop them.
                        if ready.is_err() || publisher.read_ready(&mut |_| {}).is_err() || publisher.is_closed() {
                            break;
                        }
                    }
                    () = notify.notified(), if due == u64::MAX => {}
                    () = sleep_until(wake) => {}
                    // Wake at the window start to take the CPU sample on time.
                    () = sleep_until(instant_at(measure_from)), if cpu.is_none() => {}
                }
                continue;
            }
            let expected = match group_size {
                Some(_) => members
                    .get(seq % members.len().max(1))
                    .copied()
                    .unwrap_or(0),
                None => u32::try_from(n).unwrap_or(u32::MAX),
            };
            let payload = proto::marker(seq as u64, due);
            let frame = match group_size {
                Some(_) => {
                    let group = format!("g{}", seq % members.len().max(1));
                    protocol.invocation(None, "SendToGroup", &[&group, &payload])
                }
                None => protocol.invocation(None, "Broadcast", &[&payload]),
            };
            {
                let mut s = state.borrow_mut();
                s.intended.push(due);
                s.expected.push(expected);
                s.delivered.push(0);
                s.last.push(0);
                if expected == 0 {
                    s.completed += 1;
                }
            }
            if publisher.send(&frame).await.is_err() {
                break;
            }
            seq += 1;
            published += 1;
        }
        // Drain: wait for the last messages to arrive, reading the publisher's socket.
        let drain = instant_at(drain_end);
        while state.borrow().completed < published && tokio::time::Instant::now() < drain {
            tokio::select! {
                ready = publisher.readable() => {
                    if ready.is_err() || publisher.read_ready(&mut |_| {}).is_err() || publisher.is_closed() {
                        break;
                    }
                }
                () = notify.notified() => {}
                () = sleep_until(drain) => {}
            }
        }
        publisher.close().await;
    } else {
        ramp.failed += 1;
        ramp.first_error = publisher_ramp.first_error.clone();
    }
    let cpu = cpu.map(|c| c.finish()).unwrap_or_default();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let s = state.borrow();
    let mut completion = sys::histogram();
    let (mut deliveries, mut expected, mut in_window, mut incomplete) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..s.intended.len() {
        if s.intended[i] < measure_from || s.intended[i] >= end {
            continue;
        }
        in_window += 1;
        deliveries += u64::from(s.delivered[i]);
        expected += u64::from(s.expected[i]);
        if s.delivered[i] >= s.expected[i] {
            if s.expected[i] > 0 {
                sys::record(
                    &mut completion,
                    s.last[i].saturating_sub(s.intended[i]) / 1000,
                );
            }
        } else {
            incomplete += 1;
        }
    }
    let per_message = |seconds: Option<f64>| {
        seconds
            .filter(|_| in_window > 0)
            .map(|c| 1e3 * c / in_window as f64)
    };
    let server_cpu_ms_per_message = per_message(cpu.server_cpu_s);
    let loadgen_cpu_ms_per_message = per_message(cpu.loadgen_cpu_s);
    let per_delivery = |seconds: Option<f64>| {
        seconds
            .filter(|_| deliveries > 0)
            .map(|c| 1e6 * c / deliveries as f64)
    };
    let server_cpu_us_per_delivery = per_delivery(cpu.server_cpu_s);
    let redis_cpu_us_per_delivery = per_delivery(cpu.redis_cpu_s);
    let total_cpu_us_per_delivery = match (server_cpu_us_per_delivery, redis_cpu_us_per_delivery) {
        (Some(s), Some(r)) => Some(s + r),
        (s, _) => s,
    };
    FanoutReport {
        kind: match (group_size, options.churn) {
            (Some(_), _) => "groups",
            (None, 0) => "broadcast",
            (None, _) => "churn",
        },
        protocol: protocol.name(),
        receivers_url: common.url.clone(),
        publisher_url: common
            .publish
            .as_ref()
            .map_or_else(|| common.url.clone(), |(url, _)| url.clone()),
        receivers: n,
        group_size,
        target_rate: options.rate,
        ramp,
        published,
        published_in_window: in_window,
        deliveries,
        expected_deliveries: expected,
        delivery_ratio: if expected > 0 {
            deliveries as f64 / expected as f64
        } else {
            0.0
        },
        deliveries_per_s: deliveries as f64 / common.duration.as_secs_f64(),
        delivery_latency: sys::latency(&s.latency),
        fanout_completion: sys::latency(&completion),
        incomplete_messages: incomplete,
        closed_receivers: s.closed_receivers,
        churn_connects: s.churn_connects,
        churn_failures: s.churn_failures,
        churn_first_error: s.churn_first_error.clone(),
        cpu,
        server_cpu_us_per_delivery,
        redis_cpu_us_per_delivery,
        total_cpu_us_per_delivery,
        server_cpu_ms_per_message,
        loadgen_cpu_ms_per_message,
    }
}
