//! A minimal `metrics` recorder so that `/metrics` also shows what `signalr-server` itself
//! measures through the `metrics` facade (`signalr_connections_active`,
//! `signalr_messages_received_total`, `signalr_invocation_duration_seconds`, ...): counters
//! and gauges as they are, histograms as `_sum` and `_count`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

use crate::app::lock;

/// A histogram's running sum (as f64 bits) and count.
#[derive(Debug, Default)]
struct Summary {
    sum: AtomicU64,
    count: AtomicU64,
}

impl HistogramFn for Summary {
    fn record(&self, value: f64) {
        // A compare-and-swap loop: adds `value` to the f64 stored as bits.
        let mut current = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Registry {
    counters: BTreeMap<String, Arc<AtomicU64>>,
    gauges: BTreeMap<String, Arc<AtomicU64>>,
    histograms: BTreeMap<String, Arc<Summary>>,
}

/// The process-wide recorder; see [`install`].
#[derive(Debug, Default)]
pub(crate) struct PromRecorder {
    registry: Mutex<Registry>,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `name{label="value",...}` with `suffix` appended to the name.
fn series(key: &Key, suffix: &str) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}=\"{}\"", l.key(), escape(l.value())))
        .collect();
    if labels.is_empty() {
        format!("{}{suffix}", key.name())
    } else {
        format!("{}{suffix}{{{}}}", key.name(), labels.join(","))
    }
}

impl Recorder for PromRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut registry = lock(&self.registry);
        Counter::from_arc(
            registry
                .counters
                .entry(series(key, ""))
                .or_default()
                .clone(),
        )
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut registry = lock(&self.registry);
        Gauge::from_arc(registry.gauges.entry(series(key, "")).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut registry = lock(&self.registry);
        let base = key.name().to_owned();
        let labels = series(key, "").trim_start_matches(base.as_str()).to_owned();
        Histogram::from_arc(
            registry
                .histograms
                .entry(format!("{base}\u{0}{labels}"))
                .or_default()
                .clone(),
        )
    }
}

impl PromRecorder {
    /// Prometheus text for everything recorded.
    pub(crate) fn render(&self) -> String {
        use std::fmt::Write as _;
        let registry = lock(&self.registry);
        let mut out = String::new();
        for (series, value) in &registry.counters {
            let _ = writeln!(out, "{series} {}", value.load(Ordering::Relaxed));
        }
        for (series, value) in &registry.gauges {
            let _ = writeln!(
                out,
                "{series} {}",
                f64::from_bits(value.load(Ordering::Relaxed))
            );
        }
        for (key, summary) in &registry.histograms {
            let (name, labels) = key.split_once('\u{0}').unwrap_or((key, ""));
            let sum = f64::from_bits(summary.sum.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}_sum{labels} {sum}");
            let _ = writeln!(
                out,
                "{name}_count{labels} {}",
                summary.count.load(Ordering::Relaxed)
            );
        }
        out
    }
}

static RECORDER: OnceLock<&'static PromRecorder> = OnceLock::new();

/// The installed recorder, if [`install`] succeeded.
pub(crate) fn installed() -> Option<&'static PromRecorder> {
    RECORDER.get().copied()
}

/// Installs the recorder as the process's `metrics` recorder (once; later calls, or another
/// recorder installed first, leave things as they are) and returns it.
pub(crate) fn install() -> Option<&'static PromRecorder> {
    if let Some(recorder) = installed() {
        return Some(recorder);
    }
    let recorder: &'static PromRecorder = Box::leak(Box::new(PromRecorder::default()));
    match metrics::set_global_recorder(recorder) {
        Ok(()) => {
            let _ = RECORDER.set(recorder);
            Some(recorder)
        }
        Err(_) => {
            tracing::warn!(
                "another metrics recorder is installed; /metrics shows conduit's own series only"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let recorder = PromRecorder::default();
        let key = Key::from_parts(
            "signalr_connections_active",
            vec![metrics::Label::new("hub", "Tasks")],
        );
        let gauge = recorder.register_gauge(&key, &Metadata::new("t", metrics::Level::INFO, None));
        gauge.increment(2.0);
        gauge.decrement(1.0);
        let counter = recorder.register_counter(
            &Key::from_name("signalr_messages_received_total"),
            &Metadata::new("t", metrics::Level::INFO, None),
        );
        counter.increment(3);
        let histogram = recorder.register_histogram(
            &Key::from_parts(
                "signalr_invocation_duration_seconds",
                vec![metrics::Label::new("method", "A")],
            ),
            &Metadata::new("t", metrics::Level::INFO, None),
        );
        histogram.record(0.5);
        histogram.record(0.25);
        let text = recorder.render();
        assert!(
            text.contains("signalr_connections_active{hub=\"Tasks\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("signalr_messages_received_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("signalr_invocation_duration_seconds_sum{method=\"A\"} 0.75\n"),
            "{text}"
        );
        assert!(
            text.contains("signalr_invocation_duration_seconds_count{method=\"A\"} 2\n"),
            "{text}"
        );
    }
}
