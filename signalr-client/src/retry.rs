//! When to try reconnecting after a lost connection.

use std::time::Duration;

/// What a retry policy knows when asked for the next delay.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryContext {
    /// Reconnect attempts made so far in this reconnect (0 before the first).
    pub previous_retry_count: u32,
    /// Time since the connection was lost.
    pub elapsed: Duration,
    /// Why the last attempt (or the connection) failed.
    pub reason: String,
}

/// Decides whether and when to try reconnecting.
pub trait RetryPolicy: Send + Sync + 'static {
    /// The delay before the next attempt, or `None` to give up.
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration>;
}

/// The official clients' default: retry after 0, 2, 10 and 30 seconds, then give up.
#[derive(Debug, Clone)]
pub struct DefaultRetryPolicy {
    delays: Vec<Duration>,
}

impl Default for DefaultRetryPolicy {
    fn default() -> Self {
        Self::new(
            [0, 2, 10, 30]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl DefaultRetryPolicy {
    /// Retries after each of `delays`, then gives up.
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }
}

impl RetryPolicy for DefaultRetryPolicy {
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration> {
        self.delays
            .get(context.previous_retry_count as usize)
            .copied()
    }
}

/// Exponential back-off: `initial`, doubled each attempt up to `cap`, for at most
/// `max_elapsed` in total (forever when `None`).
#[derive(Debug, Clone)]
pub struct ExponentialBackoff {
    initial: Duration,
    cap: Duration,
    max_elapsed: Option<Duration>,
}

impl ExponentialBackoff {
    /// Back-off from `initial` doubling up to `cap`, without a total limit.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        Self {
            initial,
            cap,
            max_elapsed: None,
        }
    }

    /// Gives up once the connection has been lost for `limit`.
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = Some(limit);
        self
    }
}

impl RetryPolicy for ExponentialBackoff {
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration> {
        if self
            .max_elapsed
            .is_some_and(|limit| context.elapsed >= limit)
        {
            return None;
        }
        let factor = 2u32.saturating_pow(context.previous_retry_count.min(20));
        Some(self.initial.saturating_mul(factor).min(self.cap))
    }
}

impl<F> RetryPolicy for F
where
    F: Fn(&RetryContext) -> Option<Duration> + Send + Sync + 'static,
{
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration> {
        self(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(n: u32, elapsed: u64) -> RetryContext {
        RetryContext {
            previous_retry_count: n,
            elapsed: Duration::from_secs(elapsed),
            reason: String::new(),
        }
    }

    #[test]
    fn default_policy_matches_the_official_clients() {
        let p = DefaultRetryPolicy::default();
        let delays: Vec<_> = (0..5).map(|n| p.next_retry_delay(&context(n, 0))).collect();
        assert_eq!(
            delays,
            [Some(0), Some(2), Some(10), Some(30), None].map(|d| d.map(Duration::from_secs))
        );
    }

    #[test]
    fn exponential_policy_caps_and_stops() {
        let p = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1))
            .max_elapsed(Duration::from_secs(60));
        assert_eq!(
            p.next_retry_delay(&context(0, 0)),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            p.next_retry_delay(&context(3, 0)),
            Some(Duration::from_millis(800))
        );
        assert_eq!(
            p.next_retry_delay(&context(10, 0)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(p.next_retry_delay(&context(1, 61)), None);
    }
}
