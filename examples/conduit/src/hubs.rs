//! The hubs. Only subscription and query methods are hub methods: every event is sent by
//! the server through [`Notifier`](crate::events::Notifier), never by a client.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use signalr_redis::RedisBackplane;
use signalr_server::{
    Caller, Clients, Groups, Hub, HubBuilder, HubError, HubFilter, HubOptions, InvocationContext,
    InvokeResult, Next, SignalR, State,
};

use crate::app::{App, lock, now};
use crate::events::{HubContexts, NOTIFICATION_TYPES, notification_group, webhook_group};
use crate::secure::{self, AuthMode, Guard, TaskAccess, check_task_access};

/// The Redis channel prefix, as Conduit's `AddStackExchangeRedis` configuration.
pub(crate) const CHANNEL_PREFIX: &str = "conduit_signalr:";
/// At most this many groups a connection may join through subscriptions.
const MAX_SUBSCRIPTIONS: usize = 200;
/// Invocations per minute per connection on the public (keyless) hub.
const PUBLIC_RATE_PER_MINUTE: u32 = 60;

/// The served hubs, their contexts for the notifier, and the Redis backplanes.
pub(crate) struct Built {
    pub(crate) signalr: SignalR,
    pub(crate) contexts: HubContexts,
    pub(crate) backplanes: Vec<RedisBackplane>,
    pub(crate) paths: Vec<&'static str>,
}

struct Factory<'a> {
    app: &'a App,
    redis: Option<signalr_redis::RedisBackplaneBuilder>,
    backplanes: Vec<RedisBackplane>,
}

impl Factory<'_> {
    fn builder(&mut self, name: &str, path: &'static str) -> Result<HubBuilder, String> {
        let mut builder = Hub::builder(name)
            .options(HubOptions::default())
            .filter(self.app.telemetry.filter(path))
            .state(self.app.clone());
        if let Some(redis) = &self.redis {
            let backplane = redis.build(name).map_err(|e| format!("--redis: {e}"))?;
            self.backplanes.push(backplane.clone());
            builder = builder.backplane(Arc::new(backplane));
        }
        Ok(builder)
    }

    /// A hub behind virtual keys: authenticator, policy (401 otherwise) and the guard's
    /// filter (connection limit, rate limit, logs).
    fn secure(&mut self, name: &str, path: &'static str) -> Result<HubBuilder, String> {
        let guard = &self.app.guard;
        Ok(self
            .builder(name, path)?
            .authenticator(guard.authenticator(AuthMode::VirtualKey))
            .authorize(Guard::policy(AuthMode::VirtualKey))
            .filter(guard.filter(path)))
    }
}

/// Builds every hub; `redis` is the `--redis` URL.
pub(crate) fn build(app: &App, redis: Option<&str>) -> Result<Built, String> {
    let mut f = Factory {
        app,
        redis: redis.map(|url| RedisBackplane::builder(url).channel_prefix(CHANNEL_PREFIX)),
        backplanes: Vec::new(),
    };
    let mut signalr = SignalR::new();
    let mut contexts = HubContexts::default();
    let mut paths = Vec::new();

    if app.config.task_hub {
        let hub = task_hub(f.secure("ConduitLLM.Http.Hubs.TaskHub", "/hubs/tasks")?);
        contexts.tasks = Some(hub.context());
        signalr = signalr.hub("/hubs/tasks", hub);
        paths.push("/hubs/tasks");
    }
    let image = media_hub(
        f.secure(
            "ConduitLLM.Http.Hubs.ImageGenerationHub",
            "/hubs/image-generation",
        )?,
        "image",
    );
    contexts.image = Some(image.context());
    let video = media_hub(
        f.secure(
            "ConduitLLM.Http.Hubs.VideoGenerationHub",
            "/hubs/video-generation",
        )?,
        "video",
    );
    contexts.video = Some(video.context());
    let public = public_video_hub(f.builder(
        "ConduitLLM.Http.Hubs.PublicVideoGenerationHub",
        "/hubs/public/video-generation",
    )?);
    contexts.public_video = Some(public.context());
    let notifications = notification_hub(f.secure(
        "ConduitLLM.Http.Hubs.SystemNotificationHub",
        "/hubs/notifications",
    )?);
    contexts.notifications = Some(notifications.context());
    let spend = f
        .secure("ConduitLLM.Http.Hubs.SpendNotificationHub", "/hubs/spend")?
        .on_connected(join_key_group)
        .build();
    contexts.spend = Some(spend.context());
    let webhooks =
        webhook_hub(f.secure("ConduitLLM.Http.Hubs.WebhookDeliveryHub", "/hubs/webhooks")?);
    contexts.webhooks = Some(webhooks.context());
    let metrics = metrics_hub(
        app,
        f.builder("ConduitLLM.Http.Hubs.MetricsHub", "/hubs/metrics")?,
    );

    signalr = signalr
        .hub("/hubs/image-generation", image)
        .hub("/hubs/video-generation", video)
        .hub("/hubs/public/video-generation", public)
        .hub("/hubs/notifications", notifications.clone())
        .hub("/hubs/navigation-state", notifications)
        .hub("/hubs/spend", spend)
        .hub("/hubs/webhooks", webhooks)
        .hub("/hubs/metrics", metrics);
    paths.extend([
        "/hubs/image-generation",
        "/hubs/video-generation",
        "/hubs/public/video-generation",
        "/hubs/notifications",
        "/hubs/navigation-state",
        "/hubs/spend",
        "/hubs/webhooks",
        "/hubs/metrics",
    ]);
    Ok(Built {
        signalr,
        contexts,
        backplanes: f.backplanes,
        paths,
    })
}

async fn join_key_group(caller: Caller, groups: Groups) -> Result<(), HubError> {
    secure::join_key_group(&caller, &groups).await
}

/// The groups a connection joined through subscriptions.
#[derive(Debug, Clone, Default)]
struct Subscriptions(Arc<Mutex<HashSet<String>>>);

fn subscriptions(caller: &Caller) -> Subscriptions {
    if let Some(found) = caller.items().get::<Subscriptions>() {
        return found;
    }
    let fresh = Subscriptions::default();
    caller.items().insert(fresh.clone());
    fresh
}

async fn join(caller: &Caller, groups: &Groups, group: String) -> Result<(), HubError> {
    {
        let subscriptions = subscriptions(caller);
        let mut set = lock(&subscriptions.0);
        if !set.contains(&group) && set.len() >= MAX_SUBSCRIPTIONS {
            tracing::warn!(
                connection = caller.connection_id(),
                "subscription refused: too many"
            );
            return Err(HubError::new("Too many subscriptions"));
        }
        set.insert(group.clone());
    }
    groups
        .add_to_group(caller.connection_id(), group)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "add to group failed");
            HubError::new("Failed to subscribe. Please try again.")
        })
}

async fn leave(caller: &Caller, groups: &Groups, group: String) -> Result<(), HubError> {
    lock(&subscriptions(caller).0).remove(&group);
    groups
        .remove_from_group(caller.connection_id(), group)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "remove from group failed");
            HubError::new("Failed to unsubscribe. Please try again.")
        })
}

/// A task id as the API issues them: 1 to 100 ASCII letters, digits, `_` and `-`.
fn valid_id(id: Option<String>) -> Option<String> {
    id.map(|id| id.trim().to_owned()).filter(|id| {
        !id.is_empty()
            && id.len() <= 100
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fn task_type_ok(task_type: &str) -> bool {
    !task_type.is_empty()
        && task_type.len() <= 64
        && task_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn task_hub(builder: HubBuilder) -> Hub {
    builder
        .on_connected(join_key_group)
        .method(
            "SubscribeToTask",
            |caller: Caller, groups: Groups, State(app): State<App>, task_id: Option<String>| async move {
                let key = Guard::key(&caller)?;
                let id = valid_id(task_id).ok_or_else(|| HubError::new("Invalid task ID"))?;
                match check_task_access(&key, &id, app.task_owner(&id).await) {
                    TaskAccess::Allowed => {}
                    TaskAccess::NotFound => return Err(HubError::new("Task not found")),
                    TaskAccess::Denied => return Err(HubError::new("Unauthorized access to task")),
                }
                join(&caller, &groups, format!("task-{id}")).await?;
                tracing::info!(key = ?key.id, task = %id, hub = "tasks", "subscribed to task");
                Ok::<_, HubError>(())
            },
        )
        .method(
            "UnsubscribeFromTask",
            |caller: Caller, groups: Groups, task_id: Option<String>| async move {
                let id = valid_id(task_id).ok_or_else(|| HubError::new("Invalid task ID"))?;
                leave(&caller, &groups, format!("task-{id}")).await
            },
        )
        .method(
            "SubscribeToTaskType",
            |caller: Caller, groups: Groups, task_type: String| async move {
                let key = Guard::key_id(&caller)?;
                if !task_type_ok(&task_type) {
                    return Err(HubError::new("Invalid task type"));
                }
                join(&caller, &groups, format!("vkey-{key}-{task_type}")).await?;
                tracing::info!(key, task_type = %task_type, "subscribed to task type");
                Ok(())
            },
        )
        .method(
            "UnsubscribeFromTaskType",
            |caller: Caller, groups: Groups, task_type: String| async move {
                let key = Guard::key_id(&caller)?;
                if !task_type_ok(&task_type) {
                    return Err(HubError::new("Invalid task type"));
                }
                leave(&caller, &groups, format!("vkey-{key}-{task_type}")).await
            },
        )
        .build()
}

/// The image or video hub: `SubscribeToTask` joins `{prefix}-{taskId}` for the owner.
fn media_hub(builder: HubBuilder, prefix: &'static str) -> Hub {
    builder
        .on_connected(join_key_group)
        .method(
            "SubscribeToTask",
            move |caller: Caller,
                  groups: Groups,
                  State(app): State<App>,
                  task_id: Option<String>| async move {
                let key = Guard::key(&caller)?;
                let id = valid_id(task_id).ok_or_else(|| HubError::new("Invalid task ID"))?;
                // A missing task and someone else's are refused alike: no existence leak.
                if check_task_access(&key, &id, app.task_owner(&id).await) != TaskAccess::Allowed {
                    return Err(HubError::new("Unauthorized access to task"));
                }
                join(&caller, &groups, format!("{prefix}-{id}")).await?;
                tracing::info!(key = ?key.id, task = %id, hub = prefix, "subscribed to task");
                Ok::<_, HubError>(())
            },
        )
        .method(
            "UnsubscribeFromTask",
            move |caller: Caller, groups: Groups, task_id: Option<String>| async move {
                let id = valid_id(task_id).ok_or_else(|| HubError::new("Invalid task ID"))?;
                leave(&caller, &groups, format!("{prefix}-{id}")).await
            },
        )
        .build()
}

/// The public video hub: no key at negotiate; an ephemeral key (reusable until its TTL)
/// proves the right to one owner's video tasks.
fn public_video_hub(builder: HubBuilder) -> Hub {
    builder
        .filter(PublicLimit)
        .method(
            "SubscribeToTask",
            |caller: Caller, clients: Clients, groups: Groups, State(app): State<App>, task_id: Option<String>, ephemeral_key: Option<String>| async move {
                let raw = task_id.unwrap_or_default();
                if raw.trim().is_empty() {
                    return Err(HubError::new("Task ID is required"));
                }
                let ephemeral_key = ephemeral_key.unwrap_or_default();
                if ephemeral_key.trim().is_empty() {
                    return Err(HubError::new("Ephemeral key is required"));
                }
                let id = valid_id(Some(raw)).ok_or_else(|| HubError::new("Invalid task ID"))?;
                let Some((_, owner)) = app.ephemeral(ephemeral_key.trim()).await else {
                    tracing::warn!(connection = caller.connection_id(), task = %id, "public subscription refused: invalid or expired ephemeral key");
                    app.guard.record_auth_failure("invalid or expired ephemeral key");
                    return Err(HubError::new("Invalid or expired ephemeral key"));
                };
                if app.task_owner(&id).await != Some(owner) {
                    tracing::warn!(connection = caller.connection_id(), task = %id, owner, "public subscription refused: task of another key");
                    return Err(HubError::new("Unauthorized access to task"));
                }
                join(&caller, &groups, format!("video-{id}")).await?;
                tracing::info!(owner, task = %id, hub = "public-video", "subscribed to task");
                clients
                    .caller()
                    .send("taskSubscribed", (json!({ "taskId": id, "message": "Successfully subscribed to task updates" }),))
                    .await
                    .map_err(|_| HubError::new("Failed to confirm the subscription"))?;
                Ok(())
            },
        )
        .method(
            "UnsubscribeFromTask",
            |caller: Caller, groups: Groups, task_id: Option<String>| async move {
                let id = valid_id(task_id).ok_or_else(|| HubError::new("Invalid task ID"))?;
                leave(&caller, &groups, format!("video-{id}")).await
            },
        )
        .build()
}

/// The public hub's invocation budget of one connection: (window start, count).
#[derive(Debug, Clone)]
struct PublicWindow(Arc<Mutex<(Instant, u32)>>);

/// Rate-limits each connection of the keyless public hub, which has no key to count
/// against (a connection guessing ephemeral keys gets "Rate limit exceeded").
#[derive(Debug, Clone, Copy)]
struct PublicLimit;

impl HubFilter for PublicLimit {
    fn on_invoke<'a>(
        &'a self,
        invocation: &'a InvocationContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, InvokeResult> {
        let caller = invocation.caller();
        let window = caller.items().get::<PublicWindow>().unwrap_or_else(|| {
            let fresh = PublicWindow(Arc::new(Mutex::new((Instant::now(), 0))));
            caller.items().insert(fresh.clone());
            fresh
        });
        let allowed = {
            let mut w = lock(&window.0);
            if w.0.elapsed() >= Duration::from_secs(60) {
                *w = (Instant::now(), 0);
            }
            w.1 += 1;
            w.1 <= PUBLIC_RATE_PER_MINUTE
        };
        if !allowed {
            tracing::warn!(
                connection = caller.connection_id(),
                "public invocation refused: rate limit"
            );
            return Box::pin(async { Err(HubError::new("Rate limit exceeded")) });
        }
        next.run()
    }
}

/// A connection's notification preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preferences {
    #[serde(default = "all_types")]
    enabled_types: Vec<String>,
    #[serde(default)]
    minimum_priority: u8,
}

fn all_types() -> Vec<String> {
    NOTIFICATION_TYPES.iter().map(|t| (*t).to_owned()).collect()
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            enabled_types: all_types(),
            minimum_priority: 0,
        }
    }
}

fn preference_groups(prefs: &Preferences, key: Option<u64>) -> Vec<String> {
    prefs
        .enabled_types
        .iter()
        .map(|kind| notification_group(kind, key, prefs.minimum_priority))
        .collect()
}

fn notification_hub(builder: HubBuilder) -> Hub {
    builder
        .on_connected(|caller: Caller, groups: Groups| async move {
            secure::join_key_group(&caller, &groups).await?;
            let key = Guard::key(&caller)?.id;
            let prefs = Preferences::default();
            for group in preference_groups(&prefs, key) {
                groups
                    .add_to_group(caller.connection_id(), group)
                    .await
                    .map_err(|_| HubError::new("Failed to apply notification preferences"))?;
            }
            caller.items().insert(prefs);
            Ok::<_, HubError>(())
        })
        .method(
            "UpdatePreferences",
            |caller: Caller, clients: Clients, groups: Groups, prefs: Preferences| async move {
                let key = Guard::key(&caller)?.id;
                if prefs.minimum_priority > 3 {
                    return Err(HubError::new("minimumPriority must be between 0 and 3"));
                }
                let mut types: Vec<String> = Vec::new();
                for kind in prefs.enabled_types {
                    if !NOTIFICATION_TYPES.contains(&kind.as_str()) {
                        return Err(HubError::new(format!("Unknown notification type: {}", kind.chars().take(64).collect::<String>())));
                    }
                    if !types.contains(&kind) {
                        types.push(kind);
                    }
                }
                let prefs = Preferences {
                    enabled_types: types,
                    minimum_priority: prefs.minimum_priority,
                };
                let old = caller.items().get::<Preferences>().unwrap_or_default();
                let fail = |_| HubError::new("Failed to apply notification preferences");
                for group in preference_groups(&old, key) {
                    groups.remove_from_group(caller.connection_id(), group).await.map_err(fail)?;
                }
                for group in preference_groups(&prefs, key) {
                    groups.add_to_group(caller.connection_id(), group).await.map_err(fail)?;
                }
                caller.items().insert(prefs.clone());
                tracing::info!(key, types = ?prefs.enabled_types, minimum = prefs.minimum_priority, "notification preferences updated");
                clients
                    .caller()
                    .send("PreferencesUpdated", (prefs,))
                    .await
                    .map_err(|_| HubError::new("Failed to confirm the preferences"))?;
                Ok(())
            },
        )
        .build()
}

fn webhook_hub(builder: HubBuilder) -> Hub {
    async fn owned(caller: &Caller, app: &App, urls: &[String]) -> Result<u64, HubError> {
        let key = Guard::key_id(caller)?;
        if urls.len() > 50 {
            return Err(HubError::new("Too many webhook URLs"));
        }
        let registered = app.webhooks_of(key);
        for url in urls {
            if !registered.iter().any(|w| &w.url == url) {
                tracing::warn!(
                    key,
                    "webhook subscription refused: URL not registered to this key"
                );
                return Err(HubError::new("Unauthorized access to webhook"));
            }
        }
        Ok(key)
    }
    builder
        .on_connected(join_key_group)
        .method(
            "SubscribeToWebhooks",
            |caller: Caller, groups: Groups, State(app): State<App>, urls: Vec<String>| async move {
                let key = owned(&caller, &app, &urls).await?;
                for url in &urls {
                    join(&caller, &groups, webhook_group(key, url)).await?;
                }
                tracing::info!(key, count = urls.len(), "subscribed to webhooks");
                Ok::<_, HubError>(())
            },
        )
        .method(
            "UnsubscribeFromWebhooks",
            |caller: Caller, groups: Groups, State(app): State<App>, urls: Vec<String>| async move {
                let key = owned(&caller, &app, &urls).await?;
                for url in &urls {
                    leave(&caller, &groups, webhook_group(key, url)).await?;
                }
                Ok::<_, HubError>(())
            },
        )
        .build()
}

/// A metrics snapshot, as `StreamMetrics` and `GetMetricsSnapshot` send it.
pub(crate) fn snapshot(app: &App) -> Value {
    let t = &app.telemetry;
    let rates = t.rates();
    let providers: Vec<Value> = lock(&app.providers)
        .iter()
        .map(crate::app::Provider::view)
        .collect();
    json!({
        "timestamp": now(),
        "activeConnections": t.active(),
        "totalConnections": t.active_total(),
        "messagesSentPerMinute": rates.sent_per_minute,
        "messagesReceivedPerMinute": rates.received_per_minute,
        "tasksRunning": app.tasks_running(),
        "reconnections": t.reconnections(),
        "authenticationFailures": app.guard.auth_failures(),
        "averageMessageLatencyMs": t.message_latency_ms(),
        "averageInvocationLatencyMs": t.invocation_latency_ms(),
        "providers": providers,
    })
}

fn metrics_hub(app: &App, builder: HubBuilder) -> Hub {
    builder
        .authenticator(app.guard.authenticator(AuthMode::Admin))
        .authorize(Guard::policy(AuthMode::Admin))
        .filter(app.guard.filter("/hubs/metrics"))
        .stream(
            "StreamMetrics",
            |State(app): State<App>, interval_seconds: i64| async move {
                if !(1..=60).contains(&interval_seconds) {
                    return Err(HubError::new("intervalSeconds must be between 1 and 60"));
                }
                let period = Duration::from_secs(interval_seconds.unsigned_abs());
                Ok(futures_util::stream::unfold(
                    (app, true),
                    move |(app, first)| async move {
                        if !first {
                            tokio::time::sleep(period).await;
                        }
                        Some((snapshot(&app), (app, false)))
                    },
                ))
            },
        )
        .method("GetMetricsSnapshot", |State(app): State<App>| async move {
            snapshot(&app)
        })
        .build()
}
