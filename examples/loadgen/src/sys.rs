//! What `/proc` says about a process and the kernel's sockets.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// User plus system CPU seconds of a process (`"self"` or a pid).
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based 11, 12).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLK_TCK)
}

/// Resident set size of a process, in bytes.
pub(crate) fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Kernel TCP memory (`/proc/net/sockstat` "TCP: … mem N", in pages) in bytes, and the
/// number of TCP sockets in use.
pub(crate) fn tcp_sockstat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let value = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    Some((value("mem")? * 4096, value("inuse")?))
}

/// The kernel's slab memory (`/proc/meminfo` "Slab"), in bytes: socket structures live
/// there. System-wide, so other activity shows in it too.
pub(crate) fn slab_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("Slab:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Summed user plus system CPU seconds of several processes; `None` if any is unreadable.
pub(crate) fn cpu_seconds_sum(pids: &[String]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| cpu_seconds(pid)).sum()
}

/// Summed resident set size of several processes; `None` if any is unreadable.
pub(crate) fn rss_bytes_sum(pids: &[String]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| rss_bytes(pid)).sum()
}

/// CPU use of this process and, if known, of the server processes (summed) and of Redis,
/// over a measured window.
#[derive(Debug)]
pub(crate) struct CpuWindow {
    start: Instant,
    own: Option<f64>,
    server_pids: Vec<String>,
    server: Option<f64>,
    redis_pid: Option<String>,
    redis: Option<f64>,
}

/// What a [`CpuWindow`] measured.
#[derive(Debug, Default, Serialize, Clone)]
pub(crate) struct CpuReport {
    pub(crate) wall_s: f64,
    /// This load generator's CPU use, as a percentage of one core.
    pub(crate) loadgen_cpu_pct: Option<f64>,
    pub(crate) loadgen_cpu_s: Option<f64>,
    /// The server's CPU use (all `--server-pid` processes together), as a percentage of
    /// one core.
    pub(crate) server_cpu_pct: Option<f64>,
    pub(crate) server_cpu_s: Option<f64>,
    /// How many server processes `server_cpu_s` sums.
    pub(crate) server_processes: usize,
    /// The Redis server's CPU use (`--redis-pid`), as a percentage of one core.
    pub(crate) redis_cpu_pct: Option<f64>,
    pub(crate) redis_cpu_s: Option<f64>,
    /// True when the load generator used more than 90 % of its core: then it, not the
    /// server, may have set the pace.
    pub(crate) loadgen_bound: bool,
}

impl CpuWindow {
    pub(crate) fn start(server_pids: &[String], redis_pid: Option<&str>) -> Self {
        Self {
            start: Instant::now(),
            own: cpu_seconds("self"),
            server_pids: server_pids.to_vec(),
            server: cpu_seconds_sum(server_pids),
            redis_pid: redis_pid.map(str::to_owned),
            redis: redis_pid.and_then(cpu_seconds),
        }
    }

    pub(crate) fn finish(&self) -> CpuReport {
        let wall_s = self.start.elapsed().as_secs_f64();
        let delta = |before: Option<f64>, after: Option<f64>| match (before, after) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let own = delta(self.own, cpu_seconds("self"));
        let server = delta(self.server, cpu_seconds_sum(&self.server_pids));
        let redis = delta(self.redis, self.redis_pid.as_deref().and_then(cpu_seconds));
        let pct = |s: Option<f64>| s.map(|s| 100.0 * s / wall_s.max(1e-9));
        CpuReport {
            wall_s,
            loadgen_cpu_pct: pct(own),
            loadgen_cpu_s: own,
            server_cpu_pct: pct(server),
            server_cpu_s: server,
            server_processes: self.server_pids.len(),
            redis_cpu_pct: pct(redis),
            redis_cpu_s: redis,
            loadgen_bound: pct(own).is_some_and(|p| p > 90.0),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Default, Serialize, Clone)]
pub(crate) struct Latency {
    pub(crate) count: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    pub(crate) mean_us: f64,
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant digits. The bounds are constants that the crate
    // accepts; fall back to an auto-resizing histogram if it ever did not.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[allow(clippy::unwrap_used)]
fn unreachable_histogram() -> Histogram<u64> {
    // Histogram::new(3) only fails for more than 5 significant digits.
    Histogram::new(2).unwrap()
}

pub(crate) fn record(hist: &mut Histogram<u64>, micros: u64) {
    hist.saturating_record(micros.max(1));
}

pub(crate) fn latency(hist: &Histogram<u64>) -> Latency {
    Latency {
        count: hist.len(),
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        mean_us: hist.mean(),
    }
}
