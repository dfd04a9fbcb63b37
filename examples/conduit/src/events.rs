//! Every event the server pushes, and to whom: the only place that sends to clients. Each
//! event goes to a group scoped by task, key or notification preference, never to all
//! connections of a hub, so no event crosses virtual keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use signalr_server::{Arguments, ClientProxy, HubContext};

use crate::app::{lock, now, uuid};
use crate::secure::key_group;
use crate::telemetry::Telemetry;

/// Notification types of the notifications hub.
pub(crate) const NOTIFICATION_TYPES: [&str; 8] = [
    PROVIDER_HEALTH,
    RATE_LIMIT,
    SYSTEM_ANNOUNCEMENT,
    SERVICE_DEGRADATION,
    SERVICE_RESTORATION,
    MODEL_MAPPING_CHANGED,
    MODEL_AVAILABILITY_CHANGED,
    MODEL_DISCOVERY,
];
pub(crate) const PROVIDER_HEALTH: &str = "provider_health";
pub(crate) const RATE_LIMIT: &str = "rate_limit";
pub(crate) const SYSTEM_ANNOUNCEMENT: &str = "system_announcement";
pub(crate) const SERVICE_DEGRADATION: &str = "service_degradation";
pub(crate) const SERVICE_RESTORATION: &str = "service_restoration";
pub(crate) const MODEL_MAPPING_CHANGED: &str = "model_mapping_changed";
pub(crate) const MODEL_AVAILABILITY_CHANGED: &str = "model_availability_changed";
pub(crate) const MODEL_DISCOVERY: &str = "model_discovery";

/// Notification priorities (Conduit's `NotificationPriority`).
pub(crate) const LOW: u8 = 0;
pub(crate) const MEDIUM: u8 = 1;
pub(crate) const HIGH: u8 = 2;
pub(crate) const CRITICAL: u8 = 3;

/// Types scoped to one key (sent to that key's connections only).
fn key_scoped(kind: &str) -> bool {
    kind == RATE_LIMIT
}

/// The group a notifications-hub connection joins for `kind` with its minimum priority: a
/// notification of priority `p` goes to the groups of every minimum `0..=p`.
pub(crate) fn notification_group(kind: &str, key: Option<u64>, minimum: u8) -> String {
    match key.filter(|_| key_scoped(kind)) {
        Some(key) => format!("vkey-{key}-notify-{kind}-p{minimum}"),
        None => format!("notify-{kind}-p{minimum}"),
    }
}

/// The webhook hub's group for one of a key's URLs.
pub(crate) fn webhook_group(key: u64, url: &str) -> String {
    format!("webhook-{key}-{}", &crate::secure::hash_key(url)[..16])
}

/// The hubs events go to (`None`: that hub is not served).
#[derive(Debug, Clone, Default)]
pub(crate) struct HubContexts {
    pub(crate) tasks: Option<HubContext>,
    pub(crate) image: Option<HubContext>,
    pub(crate) video: Option<HubContext>,
    pub(crate) public_video: Option<HubContext>,
    pub(crate) notifications: Option<HubContext>,
    pub(crate) spend: Option<HubContext>,
    pub(crate) webhooks: Option<HubContext>,
}

/// Sends events; counts and times every send; rate-limits notifications per type.
#[derive(Debug)]
pub(crate) struct Notifier {
    hubs: HubContexts,
    telemetry: Option<Arc<Telemetry>>,
    /// Notifications per type (and key, for key-scoped types) per minute.
    notification_rate: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Notifier {
    pub(crate) fn new(
        hubs: HubContexts,
        telemetry: Arc<Telemetry>,
        notification_rate: u32,
    ) -> Self {
        Self {
            hubs,
            telemetry: Some(telemetry),
            notification_rate,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// A notifier with no hubs.
    pub(crate) fn disconnected() -> Self {
        Self {
            hubs: HubContexts::default(),
            telemetry: None,
            notification_rate: 0,
            windows: Mutex::new(HashMap::new()),
        }
    }

    async fn send(&self, proxy: ClientProxy, method: &str, args: impl Arguments) {
        let started = Instant::now();
        let result = proxy.send(method, args).await;
        if let Err(err) = &result {
            tracing::warn!(method, target = ?proxy.target(), error = %err, "send failed");
        } else {
            tracing::debug!(method, target = ?proxy.target(), "sent");
        }
        if let Some(t) = &self.telemetry {
            t.record_sent(started.elapsed(), result.is_ok());
        }
    }

    async fn to_group(
        &self,
        hub: &Option<HubContext>,
        group: String,
        method: &str,
        args: impl Arguments,
    ) {
        if let Some(hub) = hub {
            self.send(hub.clients().group(group), method, args).await;
        }
    }

    async fn to_groups(
        &self,
        hub: &Option<HubContext>,
        groups: Vec<String>,
        method: &str,
        args: impl Arguments,
    ) {
        if let Some(hub) = hub {
            self.send(hub.clients().groups(groups), method, args).await;
        }
    }

    // ---- Unified TaskHub: positional Task* events, one-object Batch* events ----

    pub(crate) async fn task_started(
        &self,
        id: &str,
        task_type: &str,
        owner: u64,
        metadata: Value,
    ) {
        let groups = vec![format!("task-{id}"), format!("vkey-{owner}-{task_type}")];
        self.to_groups(
            &self.hubs.tasks,
            groups,
            "TaskStarted",
            (id.to_owned(), task_type.to_owned(), metadata),
        )
        .await;
    }

    pub(crate) async fn task_progress(&self, id: &str, progress: u32, message: String) {
        self.to_group(
            &self.hubs.tasks,
            format!("task-{id}"),
            "TaskProgress",
            (id.to_owned(), progress, message),
        )
        .await;
    }

    pub(crate) async fn task_completed(&self, id: &str, result: Value) {
        self.to_group(
            &self.hubs.tasks,
            format!("task-{id}"),
            "TaskCompleted",
            (id.to_owned(), result),
        )
        .await;
    }

    pub(crate) async fn task_failed(&self, id: &str, error: &str, retryable: bool) {
        self.to_group(
            &self.hubs.tasks,
            format!("task-{id}"),
            "TaskFailed",
            (id.to_owned(), error.to_owned(), retryable),
        )
        .await;
    }

    pub(crate) async fn task_cancelled(&self, id: &str, reason: &str) {
        self.to_group(
            &self.hubs.tasks,
            format!("task-{id}"),
            "TaskCancelled",
            (id.to_owned(), reason.to_owned()),
        )
        .await;
    }

    pub(crate) async fn task_timed_out(&self, id: &str, timeout_seconds: u32) {
        self.to_group(
            &self.hubs.tasks,
            format!("task-{id}"),
            "TaskTimedOut",
            (id.to_owned(), timeout_seconds),
        )
        .await;
    }

    pub(crate) async fn batch(
        &self,
        method: &str,
        id: &str,
        owner: u64,
        task_type: &str,
        payload: Value,
    ) {
        let mut groups = vec![format!("task-{id}")];
        if method == "BatchOperationStarted" {
            groups.push(format!("vkey-{owner}-{task_type}"));
        }
        self.to_groups(&self.hubs.tasks, groups, method, (payload,))
            .await;
    }

    // ---- Image and video hubs: one object per event ----

    pub(crate) async fn image(&self, method: &str, id: &str, payload: Value) {
        self.to_group(&self.hubs.image, format!("image-{id}"), method, (payload,))
            .await;
    }

    /// To the video hub and the public video hub (each has its own `video-{id}` groups).
    pub(crate) async fn video(&self, method: &str, id: &str, payload: Value) {
        self.to_group(
            &self.hubs.video,
            format!("video-{id}"),
            method,
            (payload.clone(),),
        )
        .await;
        self.to_group(
            &self.hubs.public_video,
            format!("video-{id}"),
            method,
            (payload,),
        )
        .await;
    }

    // ---- Spend hub ----

    pub(crate) async fn spend(&self, method: &str, key: u64, payload: Value) {
        self.to_group(&self.hubs.spend, key_group(key), method, (payload,))
            .await;
    }

    // ---- Webhook hub ----

    pub(crate) async fn webhook(&self, method: &str, key: u64, url: &str, payload: Value) {
        self.to_group(
            &self.hubs.webhooks,
            webhook_group(key, url),
            method,
            (payload,),
        )
        .await;
    }

    // ---- Notifications hub ----

    /// Whether one more notification of `kind` (for `key`) fits this minute's budget.
    fn admit(&self, kind: &str, key: Option<u64>) -> bool {
        if self.notification_rate == 0 {
            return true;
        }
        let scope = format!("{kind}:{key:?}");
        let mut windows = lock(&self.windows);
        let window = windows.entry(scope).or_insert((Instant::now(), 0));
        if window.0.elapsed() >= Duration::from_secs(60) {
            *window = (Instant::now(), 0);
        }
        if window.1 >= self.notification_rate {
            return false;
        }
        window.1 += 1;
        true
    }

    /// Sends notification `method` of `kind` with `priority` to the connections whose
    /// preferences take it (`key`: only that key's, for key-scoped kinds).
    pub(crate) async fn notify(
        &self,
        method: &str,
        kind: &'static str,
        priority: u8,
        key: Option<u64>,
        fields: Value,
    ) {
        if !self.admit(kind, key) {
            tracing::warn!(kind, key, "notification dropped: per-type rate limit");
            if let Some(t) = &self.telemetry {
                t.record_dropped_notification();
            }
            return;
        }
        let mut payload = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        payload.insert("id".into(), json!(uuid()));
        payload.insert("timestamp".into(), json!(now()));
        payload.insert("type".into(), json!(kind));
        payload.insert("priority".into(), json!(priority));
        let groups = (0..=priority.min(CRITICAL))
            .map(|minimum| notification_group(kind, key, minimum))
            .collect();
        tracing::info!(method, kind, priority, key, "notification");
        self.to_groups(
            &self.hubs.notifications,
            groups,
            method,
            (Value::Object(payload),),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups() {
        assert_eq!(
            notification_group(PROVIDER_HEALTH, Some(3), 1),
            "notify-provider_health-p1"
        );
        assert_eq!(
            notification_group(RATE_LIMIT, Some(3), 0),
            "vkey-3-notify-rate_limit-p0"
        );
        assert_ne!(webhook_group(1, "http://a/"), webhook_group(2, "http://a/"));
    }
}
