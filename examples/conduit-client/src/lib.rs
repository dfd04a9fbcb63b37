//! A client service for Conduit's real-time layer, on `signalr-client`.
//!
//! One [`ConduitClient`] holds a connection to each of Conduit's hubs for one virtual key
//! (tasks, image generation, video generation, notifications, spend, webhooks), decodes
//! what they send into typed events ([`ConduitEvent`]), routes task events to per-task
//! [`TaskCallbacks`], reconnects with exponential backoff (1 s doubling to 30 s, for as
//! long as it takes) and, because the server forgets a connection's groups when it
//! reconnects with a new connection id, subscribes again to every task, task type, webhook
//! and notification preference after each reconnect.
//!
//! ```no_run
//! use conduit_client::{ClientEvent, ConduitClient, ConduitEvent, Hub, TaskCallbacks};
//!
//! # async fn run() -> Result<(), conduit_client::Error> {
//! let client = ConduitClient::builder("http://127.0.0.1:8080", "condt_0123456789abcdefghijklmnopqrstuv")
//!     .hubs([Hub::Tasks, Hub::ImageGeneration, Hub::Spend])
//!     .on_event(|event| {
//!         // Every line the client has to say: connects, reconnects, subscriptions, events.
//!         println!("{event}");
//!         if let ClientEvent::Message { event: Some(ConduitEvent::BudgetAlert(alert)), .. } = event {
//!             eprintln!("budget: {}", alert.message);
//!         }
//!     })
//!     .build()?;
//! client.start().await?;
//!
//! client
//!     .subscribe_task(
//!         "img_0d9a4c1e-2f43-4b61-9f0e-52c1c2f1a3b4",
//!         TaskCallbacks::new()
//!             .on_progress(|task, percent, _message| println!("{task}: {percent}%"))
//!             .on_completed(|task, _event| println!("{task} done"))
//!             .on_failed(|task, outcome, error| println!("{task} {}: {error}", outcome.as_str())),
//!     )
//!     .await?;
//! client.subscribe_task_type("batch_embedding").await?;
//!
//! tokio::signal::ctrl_c().await.ok();
//! client.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Lines
//!
//! [`ClientEvent`]'s `Display` is a stable one-line format, which the `conduit-client`
//! binary prints and its tests read:
//!
//! ```text
//! connected hub=tasks connection=Qm9v...
//! subscribed hub=tasks task=task_1f0c...
//! event hub=tasks name=TaskProgress args=["task_1f0c...",40,"Processed 8/20"]
//! reconnecting hub=tasks reason="..."
//! reconnected hub=tasks connection=YmFy...
//! resubscribed hub=tasks task=task_1f0c...
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use signalr_client::{ConnectionEvent, ExponentialBackoff, HubConnection, HubConnectionBuilder};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

mod events;
mod hub;

pub use events::{
    BatchOperation, BudgetAlert, ConduitEvent, GenerationCancelled, ImageGenerationCompleted,
    ImageGenerationFailed, ImageGenerationProgress, ImageGenerationStarted, SpendUpdate,
    SystemNotification, TaskCancelled, TaskCompleted, TaskFailed, TaskOutcome, TaskProgress,
    TaskStarted, TaskTimedOut, VideoGenerationCompleted, VideoGenerationFailed,
    VideoGenerationProgress, VideoGenerationStarted, WebhookDelivery,
};
pub use hub::Hub;

/// What can go wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (a bad URL, no hubs).
    Config(String),
    /// The call needs a hub this client was not built with.
    HubNotEnabled(Hub),
    /// A hub could not be connected.
    Connect {
        /// The hub.
        hub: Hub,
        /// Why.
        source: signalr_client::Error,
    },
    /// A hub method failed; for a refusal the server's text is in `source`
    /// (`Unauthorized access to task`, `Task not found`, ...).
    Invoke {
        /// The hub.
        hub: Hub,
        /// The method.
        method: &'static str,
        /// Why.
        source: signalr_client::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message) => write!(f, "invalid configuration: {message}"),
            Error::HubNotEnabled(hub) => write!(f, "the {hub} hub is not enabled"),
            Error::Connect { hub, source } => {
                write!(f, "cannot connect to the {hub} hub: {source}")
            }
            Error::Invoke {
                hub,
                method,
                source,
            } => write!(f, "{method} on the {hub} hub failed: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Invoke { source, .. } => Some(source),
            Error::Config(_) | Error::HubNotEnabled(_) => None,
        }
    }
}

impl Error {
    /// The server's error text, when a hub method was refused.
    pub fn hub_message(&self) -> Option<&str> {
        match self {
            Error::Invoke { source, .. } => source.hub_message(),
            _ => None,
        }
    }

    /// Whether the server refused the key (HTTP 401 at negotiate).
    pub fn is_unauthorized(&self) -> bool {
        match self {
            Error::Connect { source, .. } => {
                source.is_negotiate() && source.to_string().contains("'401'")
            }
            _ => false,
        }
    }
}

/// Something the client re-establishes after each reconnect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Subscription {
    /// `SubscribeToTask(taskId)`.
    Task(String),
    /// `SubscribeToTaskType(taskType)`.
    TaskType(String),
    /// `SubscribeToWebhooks(urls)`.
    Webhooks(Vec<String>),
    /// `UpdatePreferences(preferences)` on the notifications hub.
    Preferences(NotificationPreferences),
}

/// What the notifications hub sends this connection: `UpdatePreferences`'s argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPreferences {
    /// Notification types, such as `provider_health` or `system_announcement`.
    pub enabled_types: Vec<String>,
    /// Low 0, Medium 1, High 2, Critical 3.
    pub minimum_priority: i64,
}

impl Subscription {
    fn method(&self) -> &'static str {
        match self {
            Subscription::Task(_) => "SubscribeToTask",
            Subscription::TaskType(_) => "SubscribeToTaskType",
            Subscription::Webhooks(_) => "SubscribeToWebhooks",
            Subscription::Preferences(_) => "UpdatePreferences",
        }
    }
}

fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subscription::Task(id) => write!(f, "task={id}"),
            Subscription::TaskType(t) => write!(f, "task-type={t}"),
            Subscription::Webhooks(urls) => write!(f, "webhooks={}", json_text(urls)),
            Subscription::Preferences(p) => write!(f, "preferences={}", json_text(p)),
        }
    }
}

/// Something that happened, for [`ConduitClientBuilder::on_event`]. Its `Display` is one
/// stable line (see the crate documentation).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A hub connected (at start, or again after being closed).
    Connected {
        /// The hub.
        hub: Hub,
        /// The connection id.
        connection_id: Option<String>,
    },
    /// A hub's connection was lost; the client reconnects under the backoff policy.
    Reconnecting {
        /// The hub.
        hub: Hub,
        /// Why it was lost.
        reason: Option<String>,
    },
    /// A hub reconnected, with a new connection id; subscriptions follow.
    Reconnected {
        /// The hub.
        hub: Hub,
        /// The new connection id.
        connection_id: Option<String>,
    },
    /// A hub's connection closed for good (the server ended it, or reconnecting gave up);
    /// the client starts it again after `retry_in`.
    Disconnected {
        /// The hub.
        hub: Hub,
        /// Why.
        reason: Option<String>,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// Starting a hub again failed; the next attempt is after `retry_in`.
    ConnectFailed {
        /// The hub.
        hub: Hub,
        /// Why.
        error: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// A subscription was made (`resubscribed`: again, after a reconnect).
    Subscribed {
        /// The hub.
        hub: Hub,
        /// What.
        subscription: Subscription,
        /// Whether this renews it after a reconnect.
        resubscribed: bool,
    },
    /// A subscription failed; the server's text is in `error`.
    SubscribeFailed {
        /// The hub.
        hub: Hub,
        /// What.
        subscription: Subscription,
        /// Why.
        error: String,
    },
    /// An event from a hub: its name, its arguments as JSON, and, when this crate knows
    /// the event, decoded.
    Message {
        /// The hub.
        hub: Hub,
        /// The event's name, such as `TaskProgress`.
        name: String,
        /// Its arguments.
        args: Vec<Value>,
        /// Decoded, when known and well-formed.
        event: Option<ConduitEvent>,
    },
    /// A known event whose payload does not fit its type (it is still reported as a
    /// [`Message`](Self::Message)).
    DecodeFailed {
        /// The hub.
        hub: Hub,
        /// The event's name.
        name: String,
        /// Why.
        error: String,
    },
}

fn quoted(text: Option<&str>) -> String {
    text.map_or_else(|| "null".into(), json_text)
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            ClientEvent::Connected { hub, connection_id } => write!(
                f,
                "connected hub={hub} connection={}",
                connection_id.as_deref().unwrap_or("-")
            ),
            ClientEvent::Reconnecting { hub, reason } => {
                write!(
                    f,
                    "reconnecting hub={hub} reason={}",
                    quoted(reason.as_deref())
                )
            }
            ClientEvent::Reconnected { hub, connection_id } => write!(
                f,
                "reconnected hub={hub} connection={}",
                connection_id.as_deref().unwrap_or("-")
            ),
            ClientEvent::Disconnected {
                hub,
                reason,
                retry_in,
            } => write!(
                f,
                "disconnected hub={hub} retry_in_ms={} reason={}",
                ms(retry_in),
                quoted(reason.as_deref())
            ),
            ClientEvent::ConnectFailed {
                hub,
                error,
                retry_in,
            } => write!(
                f,
                "connect-failed hub={hub} retry_in_ms={} error={}",
                ms(retry_in),
                json_text(error)
            ),
            ClientEvent::Subscribed {
                hub,
                subscription,
                resubscribed,
            } => {
                let verb = if *resubscribed {
                    "resubscribed"
                } else {
                    "subscribed"
                };
                write!(f, "{verb} hub={hub} {subscription}")
            }
            ClientEvent::SubscribeFailed {
                hub,
                subscription,
                error,
            } => write!(
                f,
                "subscribe-failed hub={hub} {subscription} error={}",
                json_text(error)
            ),
            ClientEvent::Message {
                hub, name, args, ..
            } => write!(f, "event hub={hub} name={name} args={}", json_text(args)),
            ClientEvent::DecodeFailed { hub, name, error } => write!(
                f,
                "decode-failed hub={hub} name={name} error={}",
                json_text(error)
            ),
        }
    }
}

type ProgressFn = Arc<dyn Fn(&str, f64, Option<&str>) + Send + Sync>;
type CompletedFn = Arc<dyn Fn(&str, &ConduitEvent) + Send + Sync>;
type FailedFn = Arc<dyn Fn(&str, TaskOutcome, &str) + Send + Sync>;
type EventFn = Arc<dyn Fn(&ConduitEvent) + Send + Sync>;

/// Typed callbacks for one task, whichever hub reports on it: `Task*` events on the
/// TaskHub, `ImageGeneration*` or `VideoGeneration*` on the media hubs. Completion and
/// failure are reported once per task, even if the server repeats them.
///
/// ```
/// use conduit_client::TaskCallbacks;
///
/// let callbacks = TaskCallbacks::new()
///     .on_progress(|task, percent, message| println!("{task} {percent}% {message:?}"))
///     .on_completed(|task, _event| println!("{task} completed"));
/// # let _ = callbacks;
/// ```
#[derive(Clone, Default)]
pub struct TaskCallbacks {
    on_event: Option<EventFn>,
    on_progress: Option<ProgressFn>,
    on_completed: Option<CompletedFn>,
    on_failed: Option<FailedFn>,
}

impl fmt::Debug for TaskCallbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskCallbacks")
            .field("on_event", &self.on_event.is_some())
            .field("on_progress", &self.on_progress.is_some())
            .field("on_completed", &self.on_completed.is_some())
            .field("on_failed", &self.on_failed.is_some())
            .finish()
    }
}

impl TaskCallbacks {
    /// No callbacks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called with every decoded event about the task.
    pub fn on_event(mut self, f: impl Fn(&ConduitEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Called with the task id, percent done (0 to 100) and the message of each progress
    /// event.
    pub fn on_progress(
        mut self,
        f: impl Fn(&str, f64, Option<&str>) + Send + Sync + 'static,
    ) -> Self {
        self.on_progress = Some(Arc::new(f));
        self
    }

    /// Called once, with the task id and the completion event (`TaskCompleted`,
    /// `ImageGenerationCompleted`, ...).
    pub fn on_completed(mut self, f: impl Fn(&str, &ConduitEvent) + Send + Sync + 'static) -> Self {
        self.on_completed = Some(Arc::new(f));
        self
    }

    /// Called once, with the task id, the outcome and the error text, when the task fails,
    /// is cancelled or times out.
    pub fn on_failed(
        mut self,
        f: impl Fn(&str, TaskOutcome, &str) + Send + Sync + 'static,
    ) -> Self {
        self.on_failed = Some(Arc::new(f));
        self
    }

    fn call(&self, task_id: &str, event: &ConduitEvent, first_outcome: bool) {
        if let Some(f) = &self.on_event {
            f(event);
        }
        if let (Some(f), Some((percent, message))) = (&self.on_progress, event.progress()) {
            f(task_id, percent, message);
        }
        if !first_outcome {
            return;
        }
        match event.outcome() {
            Some(TaskOutcome::Completed) => {
                if let Some(f) = &self.on_completed {
                    f(task_id, event);
                }
            }
            Some(outcome) => {
                if let Some(f) = &self.on_failed {
                    f(task_id, outcome, &event.error_text().unwrap_or_default());
                }
            }
            None => {}
        }
    }
}

type EventSink = Arc<dyn Fn(&ClientEvent) + Send + Sync>;
type FollowFn = Arc<dyn Fn(&str) -> TaskCallbacks + Send + Sync>;

/// Configures a [`ConduitClient`].
pub struct ConduitClientBuilder {
    base_url: String,
    key: String,
    hubs: Vec<Hub>,
    messagepack: bool,
    initial_backoff: Duration,
    max_backoff: Duration,
    on_event: Option<EventSink>,
    follow: Option<FollowFn>,
}

impl fmt::Debug for ConduitClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConduitClientBuilder")
            .field("base_url", &self.base_url)
            .field("hubs", &self.hubs)
            .field("messagepack", &self.messagepack)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish_non_exhaustive()
    }
}

impl ConduitClientBuilder {
    /// The hubs to connect to. Default: all of [`Hub::ALL`].
    pub fn hubs(mut self, hubs: impl IntoIterator<Item = Hub>) -> Self {
        let mut hubs: Vec<Hub> = hubs.into_iter().collect();
        hubs.sort();
        hubs.dedup();
        self.hubs = hubs;
        self
    }

    /// Uses MessagePack instead of JSON. Default: JSON.
    pub fn messagepack(mut self, on: bool) -> Self {
        self.messagepack = on;
        self
    }

    /// Reconnect delays: `initial`, doubling up to `max`, without end. Default: 1 s to 30 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Called, in order, with everything that happens (see [`ClientEvent`]). It runs on
    /// the connection's task: keep it short.
    pub fn on_event(mut self, f: impl Fn(&ClientEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Follows the tasks that subscribed task types announce: when `TaskStarted` (or
    /// `BatchOperationStarted`) arrives for a task not subscribed yet, the client subscribes
    /// to it with the callbacks `f` makes for its id. Default: off.
    pub fn follow_task_types(
        mut self,
        f: impl Fn(&str) -> TaskCallbacks + Send + Sync + 'static,
    ) -> Self {
        self.follow = Some(Arc::new(f));
        self
    }

    /// The client, not connected yet.
    pub fn build(self) -> Result<ConduitClient, Error> {
        if self.hubs.is_empty() {
            return Err(Error::Config("no hubs".into()));
        }
        let base = self.base_url.trim_end_matches('/').to_owned();
        let mut connections = BTreeMap::new();
        for hub in &self.hubs {
            let key = self.key.clone();
            let mut builder = HubConnectionBuilder::new(format!("{base}{}", hub.path()))
                .access_token_provider(move || {
                    let key = key.clone();
                    async move { Ok(key) }
                })
                .retry_policy(ExponentialBackoff::new(
                    self.initial_backoff,
                    self.max_backoff,
                ));
            if self.messagepack {
                builder = builder.messagepack();
            }
            let connection = builder
                .build()
                .map_err(|e| Error::Config(format!("{}: {e}", hub.path())))?;
            connections.insert(*hub, connection);
        }
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            connections,
            subscriptions: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(HashMap::new()),
            on_event: self.on_event,
            follow: self.follow,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            stop,
            supervisors: Mutex::new(Vec::new()),
        });
        for (hub, connection) in &inner.connections {
            for (name, arity) in events::hub_events(*hub) {
                register(connection, *hub, name, *arity, Arc::downgrade(&inner));
            }
        }
        Ok(ConduitClient { inner })
    }
}

/// Registers the handler for one event, by its argument count.
fn register(
    connection: &HubConnection,
    hub: Hub,
    name: &'static str,
    arity: usize,
    inner: Weak<Inner>,
) {
    // The handlers do their work before returning a ready future, so events are handled
    // in the order they arrive.
    match arity {
        1 => connection.on(name, move |a: Value| {
            dispatch(&inner, hub, name, vec![a]);
            async {}
        }),
        2 => connection.on(name, move |a: Value, b: Value| {
            dispatch(&inner, hub, name, vec![a, b]);
            async {}
        }),
        _ => connection.on(name, move |a: Value, b: Value, c: Value| {
            dispatch(&inner, hub, name, vec![a, b, c]);
            async {}
        }),
    };
}

fn dispatch(inner: &Weak<Inner>, hub: Hub, name: &str, args: Vec<Value>) {
    let Some(inner) = inner.upgrade() else {
        return;
    };
    let (event, error) = match ConduitEvent::decode(hub, name, &args) {
        Ok(event) => (event, None),
        Err(err) => (None, Some(err.to_string())),
    };
    inner.emit(&ClientEvent::Message {
        hub,
        name: name.to_owned(),
        args,
        event: event.clone(),
    });
    if let Some(error) = error {
        inner.emit(&ClientEvent::DecodeFailed {
            hub,
            name: name.to_owned(),
            error,
        });
    }
    let Some(event) = event else { return };
    let Some(task_id) = event.task_id().map(str::to_owned) else {
        return;
    };
    let known = {
        let mut tasks = lock(&inner.tasks);
        match tasks.get_mut(&task_id) {
            Some(entry) => {
                let first_outcome = event.outcome().is_some() && !entry.finished;
                if first_outcome {
                    entry.finished = true;
                }
                Some((entry.callbacks.clone(), first_outcome))
            }
            None => None,
        }
    };
    match known {
        Some((callbacks, first_outcome)) => {
            if first_outcome {
                // A finished task sends nothing more: do not subscribe to it again after a
                // reconnect (the server may not know it any more).
                let finished = Subscription::Task(task_id.clone());
                for list in lock(&inner.subscriptions).values_mut() {
                    list.retain(|s| *s != finished);
                }
            }
            callbacks.call(&task_id, &event, first_outcome);
        }
        None => {
            let announces = matches!(
                event,
                ConduitEvent::TaskStarted(_) | ConduitEvent::BatchOperationStarted(_)
            );
            if let (true, Some(follow)) = (announces, inner.follow.clone()) {
                let client = ConduitClient {
                    inner: inner.clone(),
                };
                let callbacks = follow(&task_id);
                // Claim it now, so a repeated announcement does not subscribe twice.
                lock(&inner.tasks).insert(
                    task_id.clone(),
                    TaskEntry {
                        callbacks: Arc::new(callbacks.clone()),
                        finished: false,
                    },
                );
                tokio::spawn(async move {
                    let _ = client.subscribe_task(&task_id, callbacks).await;
                });
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct TaskEntry {
    callbacks: Arc<TaskCallbacks>,
    finished: bool,
}

struct Inner {
    connections: BTreeMap<Hub, HubConnection>,
    subscriptions: Mutex<BTreeMap<Hub, Vec<Subscription>>>,
    tasks: Mutex<HashMap<String, TaskEntry>>,
    on_event: Option<EventSink>,
    follow: Option<FollowFn>,
    initial_backoff: Duration,
    max_backoff: Duration,
    stop: watch::Sender<bool>,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn emit(&self, event: &ClientEvent) {
        if let Some(f) = &self.on_event {
            f(event);
        }
    }

    fn connection(&self, hub: Hub) -> Result<&HubConnection, Error> {
        self.connections.get(&hub).ok_or(Error::HubNotEnabled(hub))
    }

    /// Invokes the subscription's method; on success remembers it (replacing the previous
    /// preferences).
    async fn subscribe(
        &self,
        hub: Hub,
        subscription: Subscription,
        resubscribed: bool,
    ) -> Result<(), Error> {
        let connection = self.connection(hub)?;
        let method = subscription.method();
        let result = match &subscription {
            Subscription::Task(id) | Subscription::TaskType(id) => {
                connection.invoke::<(), _>(method, (id.clone(),)).await
            }
            Subscription::Webhooks(urls) => {
                connection.invoke::<(), _>(method, (urls.clone(),)).await
            }
            Subscription::Preferences(p) => connection.invoke::<(), _>(method, (p.clone(),)).await,
        };
        match result {
            Ok(()) => {
                if !resubscribed {
                    let mut subscriptions = lock(&self.subscriptions);
                    let list = subscriptions.entry(hub).or_default();
                    if matches!(subscription, Subscription::Preferences(_)) {
                        list.retain(|s| !matches!(s, Subscription::Preferences(_)));
                    }
                    if !list.contains(&subscription) {
                        list.push(subscription.clone());
                    }
                }
                self.emit(&ClientEvent::Subscribed {
                    hub,
                    subscription,
                    resubscribed,
                });
                Ok(())
            }
            Err(source) => {
                self.emit(&ClientEvent::SubscribeFailed {
                    hub,
                    subscription,
                    error: source.to_string(),
                });
                Err(Error::Invoke {
                    hub,
                    method,
                    source,
                })
            }
        }
    }

    async fn unsubscribe(&self, hub: Hub, subscription: &Subscription) -> Result<(), Error> {
        lock(&self.subscriptions)
            .entry(hub)
            .or_default()
            .retain(|s| s != subscription);
        let connection = self.connection(hub)?;
        let (method, result) = match subscription {
            Subscription::Task(id) => (
                "UnsubscribeFromTask",
                connection
                    .invoke::<(), _>("UnsubscribeFromTask", (id.clone(),))
                    .await,
            ),
            Subscription::TaskType(t) => (
                "UnsubscribeFromTaskType",
                connection
                    .invoke::<(), _>("UnsubscribeFromTaskType", (t.clone(),))
                    .await,
            ),
            Subscription::Webhooks(urls) => (
                "UnsubscribeFromWebhooks",
                connection
                    .invoke::<(), _>("UnsubscribeFromWebhooks", (urls.clone(),))
                    .await,
            ),
            Subscription::Preferences(_) => return Ok(()),
        };
        result.map_err(|source| Error::Invoke {
            hub,
            method,
            source,
        })
    }

    /// Makes every remembered subscription of `hub` again, on its new connection.
    async fn resubscribe(&self, hub: Hub) {
        let list = lock(&self.subscriptions)
            .get(&hub)
            .cloned()
            .unwrap_or_default();
        for subscription in list {
            // A failure is reported as a line; the subscription is kept for the next time.
            let _ = self.subscribe(hub, subscription, true).await;
        }
    }
}

/// Connections to Conduit's hubs for one virtual key; see the crate documentation. Cheap to
/// clone: every clone is the same client.
#[derive(Clone)]
pub struct ConduitClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ConduitClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConduitClient")
            .field("hubs", &self.hubs())
            .finish_non_exhaustive()
    }
}

impl ConduitClient {
    /// A builder for the server at `base_url` (such as `http://127.0.0.1:8080`) and the
    /// virtual key `key` (`condt_...`), sent as a bearer token.
    pub fn builder(base_url: impl Into<String>, key: impl Into<String>) -> ConduitClientBuilder {
        ConduitClientBuilder {
            base_url: base_url.into(),
            key: key.into(),
            hubs: Hub::ALL.to_vec(),
            messagepack: false,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            on_event: None,
            follow: None,
        }
    }

    /// The hubs this client connects to.
    pub fn hubs(&self) -> Vec<Hub> {
        self.inner.connections.keys().copied().collect()
    }

    /// The underlying connection to `hub`, for calls this crate does not wrap.
    pub fn connection(&self, hub: Hub) -> Option<&HubConnection> {
        self.inner.connections.get(&hub)
    }

    /// Connects every hub, then keeps them connected until [`stop`](Self::stop): a lost
    /// connection reconnects under the backoff policy and a closed one is started again,
    /// each followed by its subscriptions. Fails (and stops what it started) when a hub
    /// cannot be connected now; then `start` may be called again.
    pub async fn start(&self) -> Result<(), Error> {
        self.inner.stop.send_replace(false);
        for (hub, connection) in &self.inner.connections {
            let events = connection.events();
            if let Err(source) = connection.start().await {
                self.stop().await;
                return Err(Error::Connect { hub: *hub, source });
            }
            self.inner.emit(&ClientEvent::Connected {
                hub: *hub,
                connection_id: connection.connection_id(),
            });
            self.inner.resubscribe(*hub).await;
            let supervisor = tokio::spawn(supervise(
                Arc::downgrade(&self.inner),
                *hub,
                connection.clone(),
                events,
                self.inner.stop.subscribe(),
            ));
            lock(&self.inner.supervisors).push(supervisor);
        }
        Ok(())
    }

    /// Disconnects every hub and stops reconnecting. Subscriptions are remembered for a
    /// later [`start`](Self::start).
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        let supervisors: Vec<_> = lock(&self.inner.supervisors).drain(..).collect();
        for connection in self.inner.connections.values() {
            connection.stop().await;
        }
        for supervisor in supervisors {
            supervisor.abort();
        }
    }

    /// Subscribes to a task on the hub that reports on it ([`Hub::for_task`]: `img_` ids on
    /// the image-generation hub, `vid_` on the video-generation hub, others on the TaskHub),
    /// with typed callbacks; renewed after every reconnect until the task ends. The server's
    /// refusal is in [`Error::hub_message`], worded as ASP.NET Core words a `HubException`:
    /// `An unexpected error occurred invoking 'SubscribeToTask' on the server.
    /// HubException: Unauthorized access to task` (or `Task not found`).
    pub async fn subscribe_task(
        &self,
        task_id: &str,
        callbacks: TaskCallbacks,
    ) -> Result<(), Error> {
        self.subscribe_task_on(Hub::for_task(task_id), task_id, callbacks)
            .await
    }

    /// As [`subscribe_task`](Self::subscribe_task), on a hub of your choice.
    pub async fn subscribe_task_on(
        &self,
        hub: Hub,
        task_id: &str,
        callbacks: TaskCallbacks,
    ) -> Result<(), Error> {
        self.inner.connection(hub)?;
        let previous = lock(&self.inner.tasks).insert(
            task_id.to_owned(),
            TaskEntry {
                callbacks: Arc::new(callbacks),
                finished: false,
            },
        );
        let result = self
            .inner
            .subscribe(hub, Subscription::Task(task_id.to_owned()), false)
            .await;
        if result.is_err() && previous.is_none() {
            lock(&self.inner.tasks).remove(task_id);
        }
        // It may have ended while the subscription was on its way.
        let finished = lock(&self.inner.tasks)
            .get(task_id)
            .is_some_and(|entry| entry.finished);
        if finished {
            let subscription = Subscription::Task(task_id.to_owned());
            for list in lock(&self.inner.subscriptions).values_mut() {
                list.retain(|s| *s != subscription);
            }
        }
        result
    }

    /// Stops following a task.
    pub async fn unsubscribe_task(&self, task_id: &str) -> Result<(), Error> {
        lock(&self.inner.tasks).remove(task_id);
        let subscription = Subscription::Task(task_id.to_owned());
        let hubs: Vec<Hub> = lock(&self.inner.subscriptions)
            .iter()
            .filter(|(_, list)| list.contains(&subscription))
            .map(|(hub, _)| *hub)
            .collect();
        for hub in hubs {
            self.inner.unsubscribe(hub, &subscription).await?;
        }
        Ok(())
    }

    /// Subscribes to a task type on the TaskHub (`TaskStarted` for the key's new tasks of
    /// that type; see [`ConduitClientBuilder::follow_task_types`]); renewed after every
    /// reconnect.
    pub async fn subscribe_task_type(&self, task_type: &str) -> Result<(), Error> {
        self.inner
            .subscribe(
                Hub::Tasks,
                Subscription::TaskType(task_type.to_owned()),
                false,
            )
            .await
    }

    /// Stops following a task type.
    pub async fn unsubscribe_task_type(&self, task_type: &str) -> Result<(), Error> {
        self.inner
            .unsubscribe(Hub::Tasks, &Subscription::TaskType(task_type.to_owned()))
            .await
    }

    /// Subscribes to the delivery events of the key's webhooks at `urls`; renewed after
    /// every reconnect.
    pub async fn subscribe_webhooks(&self, urls: Vec<String>) -> Result<(), Error> {
        self.inner
            .subscribe(Hub::Webhooks, Subscription::Webhooks(urls), false)
            .await
    }

    /// Sets which notifications this client receives; renewed after every reconnect.
    pub async fn update_notification_preferences(
        &self,
        preferences: NotificationPreferences,
    ) -> Result<(), Error> {
        self.inner
            .subscribe(
                Hub::Notifications,
                Subscription::Preferences(preferences),
                false,
            )
            .await
    }

    /// Every subscription the client renews after a reconnect, by hub.
    pub fn subscriptions(&self) -> BTreeMap<Hub, Vec<Subscription>> {
        lock(&self.inner.subscriptions).clone()
    }
}

/// Watches one hub's connection: reports reconnects and renews its subscriptions; starts
/// it again, with backoff, when it closes for good.
async fn supervise(
    inner: Weak<Inner>,
    hub: Hub,
    connection: HubConnection,
    mut events: broadcast::Receiver<ConnectionEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            event = events.recv() => event,
        };
        let Some(inner) = inner.upgrade() else { return };
        match event {
            Ok(ConnectionEvent::Reconnecting(reason)) => {
                inner.emit(&ClientEvent::Reconnecting { hub, reason });
            }
            Ok(ConnectionEvent::Reconnected(connection_id)) => {
                inner.emit(&ClientEvent::Reconnected { hub, connection_id });
                inner.resubscribe(hub).await;
            }
            Ok(ConnectionEvent::Closed(reason)) => {
                if *stop.borrow() {
                    return;
                }
                let mut delay = inner.initial_backoff;
                inner.emit(&ClientEvent::Disconnected {
                    hub,
                    reason,
                    retry_in: delay,
                });
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|stopped| *stopped) => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    match connection.start().await {
                        Ok(()) => {
                            inner.emit(&ClientEvent::Connected {
                                hub,
                                connection_id: connection.connection_id(),
                            });
                            inner.resubscribe(hub).await;
                            break;
                        }
                        Err(err) => {
                            delay = delay.saturating_mul(2).min(inner.max_backoff);
                            inner.emit(&ClientEvent::ConnectFailed {
                                hub,
                                error: err.to_string(),
                                retry_in: delay,
                            });
                        }
                    }
                }
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_are_stable() {
        let line = ClientEvent::Message {
            hub: Hub::Tasks,
            name: "TaskProgress".into(),
            args: vec![json!("task_1"), json!(40), json!("8/20")],
            event: None,
        }
        .to_string();
        assert_eq!(
            line,
            r#"event hub=tasks name=TaskProgress args=["task_1",40,"8/20"]"#
        );
        let line = ClientEvent::Subscribed {
            hub: Hub::Webhooks,
            subscription: Subscription::Webhooks(vec!["http://h/x".into()]),
            resubscribed: true,
        }
        .to_string();
        assert_eq!(line, r#"resubscribed hub=webhooks webhooks=["http://h/x"]"#);
        let line = ClientEvent::Reconnecting {
            hub: Hub::Spend,
            reason: Some("gone \"away\"".into()),
        }
        .to_string();
        assert_eq!(line, r#"reconnecting hub=spend reason="gone \"away\"""#);
        let line = ClientEvent::Connected {
            hub: Hub::ImageGeneration,
            connection_id: None,
        }
        .to_string();
        assert_eq!(line, "connected hub=image-generation connection=-");
    }

    #[test]
    fn callbacks_report_an_outcome_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
        let callbacks = TaskCallbacks::new()
            .on_progress(move |t, p, _| lock(&a).push(format!("{t} {p}")))
            .on_completed(move |t, _| lock(&b).push(format!("{t} done")))
            .on_failed(move |t, o, e| lock(&c).push(format!("{t} {} {e}", o.as_str())));
        let progress = ConduitEvent::decode(
            Hub::Tasks,
            "TaskProgress",
            &[json!("t"), json!(50), json!(null)],
        )
        .unwrap()
        .unwrap();
        let done = ConduitEvent::decode(Hub::Tasks, "TaskCompleted", &[json!("t"), json!(null)])
            .unwrap()
            .unwrap();
        let failed = ConduitEvent::decode(
            Hub::Tasks,
            "TaskFailed",
            &[json!("t"), json!("x"), json!(false)],
        )
        .unwrap()
        .unwrap();
        callbacks.call("t", &progress, false);
        callbacks.call("t", &done, true);
        callbacks.call("t", &done, false);
        callbacks.call("t", &failed, true);
        assert_eq!(*lock(&seen), ["t 50", "t done", "t failed x"]);
    }

    #[test]
    fn build_needs_hubs_and_a_valid_url() {
        assert!(matches!(
            ConduitClient::builder("http://127.0.0.1:1", "k")
                .hubs([])
                .build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            ConduitClient::builder("ftp://x", "k").build(),
            Err(Error::Config(_))
        ));
        let client = ConduitClient::builder("http://127.0.0.1:1/", "k")
            .hubs([Hub::Spend, Hub::Tasks, Hub::Spend])
            .build()
            .unwrap();
        assert_eq!(client.hubs(), [Hub::Tasks, Hub::Spend]);
    }

    #[tokio::test]
    async fn subscribing_without_the_hub_is_an_error() {
        let client = ConduitClient::builder("http://127.0.0.1:1", "k")
            .hubs([Hub::Spend])
            .build()
            .unwrap();
        assert!(matches!(
            client.subscribe_task("img_1", TaskCallbacks::new()).await,
            Err(Error::HubNotEnabled(Hub::ImageGeneration))
        ));
        assert!(client.subscriptions().is_empty());
    }

    #[tokio::test]
    async fn start_fails_cleanly_when_nothing_listens() {
        let client = ConduitClient::builder("http://127.0.0.1:9", "k")
            .hubs([Hub::Tasks])
            .build()
            .unwrap();
        let err = client.start().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Connect {
                    hub: Hub::Tasks,
                    ..
                }
            ),
            "{err}"
        );
    }
}
