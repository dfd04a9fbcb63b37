//! Counters behind `/metrics`, `/health/signalr` and the metrics hub: connections per hub,
//! messages in and out (with per-minute rates), reconnections, latency.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use signalr_server::{
    Caller, HubError, HubFilter, InvocationContext, InvokeResult, LifecycleNext, Next,
};

use crate::secure::Guard;

/// How long after a key's connection to a hub dropped with an error a new connection of
/// that key to that hub counts as a reconnection.
const RECONNECT_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    active: Mutex<BTreeMap<&'static str, i64>>,
    connections_total: AtomicU64,
    received: AtomicU64,
    sent: AtomicU64,
    send_errors: AtomicU64,
    dropped_notifications: AtomicU64,
    reconnections: AtomicU64,
    /// Sum of invocation durations, in microseconds, and their count.
    invoke_micros: AtomicU64,
    invokes: AtomicU64,
    /// Sum of send durations (serialize and hand to the backplane), in microseconds.
    send_micros: AtomicU64,
    /// (key, hub) to when one of its connections last dropped with an error.
    dropped: Mutex<HashMap<(String, &'static str), Instant>>,
    /// (when, received, sent) samples, one per few seconds over the last minute.
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Rates and totals at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rates {
    pub(crate) sent_per_minute: f64,
    pub(crate) received_per_minute: f64,
}

impl Telemetry {
    pub(crate) fn register_hub(&self, hub: &'static str) {
        lock(&self.active).entry(hub).or_insert(0);
    }

    pub(crate) fn active(&self) -> BTreeMap<&'static str, i64> {
        lock(&self.active).clone()
    }

    pub(crate) fn active_total(&self) -> i64 {
        lock(&self.active).values().sum()
    }

    pub(crate) fn record_sent(&self, took: Duration, ok: bool) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.send_micros.fetch_add(micros(took), Ordering::Relaxed);
        if !ok {
            self.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_dropped_notification(&self) {
        self.dropped_notifications.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a sample for the per-minute rates; call every few seconds.
    pub(crate) fn sample(&self) {
        let now = Instant::now();
        let mut samples = lock(&self.samples);
        samples.push_back((
            now,
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        ));
        while samples
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > Duration::from_secs(65))
        {
            samples.pop_front();
        }
    }

    pub(crate) fn rates(&self) -> Rates {
        let samples = lock(&self.samples);
        // The oldest sample of the last minute.
        let Some(&(at, received, sent)) = samples
            .iter()
            .find(|(t, _, _)| t.elapsed() <= Duration::from_secs(60))
        else {
            return Rates::default();
        };
        let per_minute = 60.0 / at.elapsed().as_secs_f64().max(1.0);
        Rates {
            received_per_minute: self
                .received
                .load(Ordering::Relaxed)
                .saturating_sub(received) as f64
                * per_minute,
            sent_per_minute: self.sent.load(Ordering::Relaxed).saturating_sub(sent) as f64
                * per_minute,
        }
    }

    fn average_ms(total_micros: &AtomicU64, count: u64) -> f64 {
        if count == 0 {
            0.0
        } else {
            total_micros.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0
        }
    }

    /// Prometheus text exposition.
    pub(crate) fn prometheus(&self, guard: &Guard, tasks_running: usize, lost: u64) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let rates = self.rates();
        let _ = writeln!(
            out,
            "# HELP conduit_signalr_connections_active Active SignalR connections per hub."
        );
        let _ = writeln!(out, "# TYPE conduit_signalr_connections_active gauge");
        for (hub, n) in self.active() {
            let _ = writeln!(
                out,
                "conduit_signalr_connections_active{{hub=\"{hub}\"}} {n}"
            );
        }
        let counters: [(&str, &str, u64); 8] = [
            (
                "conduit_signalr_connections_total",
                "SignalR connections accepted.",
                self.connections_total.load(Ordering::Relaxed),
            ),
            (
                "conduit_signalr_messages_received_total",
                "Hub invocations received.",
                self.received.load(Ordering::Relaxed),
            ),
            (
                "conduit_signalr_messages_sent_total",
                "Events sent to clients (one per send, whatever the number of recipients).",
                self.sent.load(Ordering::Relaxed),
            ),
            (
                "conduit_signalr_send_errors_total",
                "Sends that failed (backplane unavailable).",
                self.send_errors.load(Ordering::Relaxed),
            ),
            (
                "conduit_signalr_reconnections_total",
                "Connections of a key to a hub within a minute of one of its connections dropping with an error.",
                self.reconnections.load(Ordering::Relaxed),
            ),
            (
                "conduit_signalr_authentication_failures_total",
                "Requests refused for bad credentials.",
                guard.auth_failures(),
            ),
            (
                "conduit_signalr_rate_limited_total",
                "Invocations refused by a key's rate limit.",
                guard.rate_limited(),
            ),
            (
                "conduit_notifications_dropped_total",
                "Notifications dropped by the per-type rate limit.",
                self.dropped_notifications.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let invokes = self.invokes.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        let gauges: [(&str, &str, f64); 6] = [
            (
                "conduit_signalr_messages_received_per_minute",
                "Hub invocations received over the last minute.",
                rates.received_per_minute,
            ),
            (
                "conduit_signalr_messages_sent_per_minute",
                "Events sent over the last minute.",
                rates.sent_per_minute,
            ),
            (
                "conduit_signalr_invocation_latency_ms_avg",
                "Average time from an invocation's arrival to its completion.",
                Self::average_ms(&self.invoke_micros, invokes),
            ),
            (
                "conduit_signalr_message_latency_ms_avg",
                "Average time to serialize an event and hand it to every recipient's queue or the backplane.",
                Self::average_ms(&self.send_micros, sent),
            ),
            (
                "conduit_tasks_running",
                "Simulated tasks running.",
                tasks_running as f64,
            ),
            (
                "conduit_backplane_lost_messages",
                "Messages the Redis backplane could not publish.",
                lost as f64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }

    pub(crate) fn invocation_latency_ms(&self) -> f64 {
        Self::average_ms(&self.invoke_micros, self.invokes.load(Ordering::Relaxed))
    }

    pub(crate) fn message_latency_ms(&self) -> f64 {
        Self::average_ms(&self.send_micros, self.sent.load(Ordering::Relaxed))
    }

    pub(crate) fn reconnections(&self) -> u64 {
        self.reconnections.load(Ordering::Relaxed)
    }

    pub(crate) fn filter(self: &std::sync::Arc<Self>, hub: &'static str) -> MetricsFilter {
        self.register_hub(hub);
        MetricsFilter {
            telemetry: self.clone(),
            hub,
        }
    }
}

/// Counts connections, invocations and their durations for one hub.
#[derive(Debug, Clone)]
pub(crate) struct MetricsFilter {
    telemetry: std::sync::Arc<Telemetry>,
    hub: &'static str,
}

fn who(caller: &Caller) -> String {
    caller.user_id().unwrap_or("anonymous").to_owned()
}

impl HubFilter for MetricsFilter {
    fn on_connected<'a>(
        &'a self,
        caller: &'a Caller,
        next: LifecycleNext<'a>,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        Box::pin(async move {
            let result = next.run().await;
            if result.is_ok() {
                let t = &self.telemetry;
                *lock(&t.active).entry(self.hub).or_insert(0) += 1;
                t.connections_total.fetch_add(1, Ordering::Relaxed);
                let dropped = lock(&t.dropped).remove(&(who(caller), self.hub));
                if dropped.is_some_and(|at| at.elapsed() < RECONNECT_WINDOW) {
                    t.reconnections.fetch_add(1, Ordering::Relaxed);
                }
            }
            result
        })
    }

    fn on_disconnected<'a>(
        &'a self,
        caller: &'a Caller,
        error: Option<&'a str>,
        next: LifecycleNext<'a>,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        Box::pin(async move {
            let t = &self.telemetry;
            {
                let mut active = lock(&t.active);
                let n = active.entry(self.hub).or_insert(0);
                *n = (*n - 1).max(0);
            }
            if error.is_some() {
                let mut dropped = lock(&t.dropped);
                dropped.retain(|_, at| at.elapsed() < RECONNECT_WINDOW);
                dropped.insert((who(caller), self.hub), Instant::now());
            }
            next.run().await
        })
    }

    fn on_invoke<'a>(
        &'a self,
        _invocation: &'a InvocationContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, InvokeResult> {
        Box::pin(async move {
            let started = Instant::now();
            self.telemetry.received.fetch_add(1, Ordering::Relaxed);
            let result = next.run().await;
            self.telemetry
                .invoke_micros
                .fetch_add(micros(started.elapsed()), Ordering::Relaxed);
            self.telemetry.invokes.fetch_add(1, Ordering::Relaxed);
            result
        })
    }
}
