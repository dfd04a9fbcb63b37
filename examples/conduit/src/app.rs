//! The gateway's in-memory state: virtual keys, tasks, ephemeral keys, webhooks, spend and
//! providers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use signalr_server::CancellationToken;

use crate::Config;
use crate::events::Notifier;
use crate::secure::{self, Guard, KeyDirectory, KeyRecord};
use crate::store::RedisStore;
use crate::telemetry::Telemetry;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections only assign whole values; a poisoned lock still holds valid state.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// RFC 3339 UTC now.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random version-4 UUID.
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    secure::random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// How long an ephemeral key and a task's ownership record live.
pub(crate) const EPHEMERAL_TTL: Duration = Duration::from_secs(3600);

/// How long a finished task stays queryable (and subscribable) on this instance.
pub(crate) const FINISHED_TASK_TTL: Duration = Duration::from_secs(3600);
/// At most this many running tasks per key.
pub(crate) const MAX_RUNNING_TASKS: usize = 100;

/// One virtual key.
#[derive(Debug, Clone)]
pub(crate) struct KeyEntry {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) budget: Option<f64>,
    pub(crate) spend: f64,
    pub(crate) enabled: bool,
    pub(crate) is_admin: bool,
    pub(crate) max_connections: u32,
    pub(crate) rate_limit_per_minute: u32,
    pub(crate) created_at: String,
}

impl KeyEntry {
    pub(crate) fn record(&self) -> KeyRecord {
        KeyRecord {
            id: self.id,
            name: self.name.clone(),
            enabled: self.enabled,
            exhausted: self.budget.is_some_and(|b| self.spend >= b),
            is_admin: self.is_admin,
            max_connections: self.max_connections,
            rate_limit_per_minute: self.rate_limit_per_minute,
        }
    }

    /// The key as the API shows it (never the key itself).
    pub(crate) fn info(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "budget": self.budget,
            "spend": self.spend,
            "enabled": self.enabled,
            "isAdmin": self.is_admin,
            "maxConnections": self.max_connections,
            "rateLimitPerMinute": self.rate_limit_per_minute,
            "createdAt": self.created_at,
        })
    }
}

#[derive(Debug, Default)]
struct KeysInner {
    next_id: u64,
    by_id: HashMap<u64, KeyEntry>,
    by_hash: HashMap<String, u64>,
}

/// The key store: only hashes are kept.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    inner: Mutex<KeysInner>,
}

impl Keys {
    /// Adds a key; `None` when that key already exists.
    pub(crate) fn insert(
        &self,
        key: &str,
        name: String,
        budget: Option<f64>,
        is_admin: bool,
        max_connections: u32,
        rate_limit_per_minute: u32,
    ) -> Option<KeyEntry> {
        let hash = secure::hash_key(key);
        let mut inner = lock(&self.inner);
        if inner.by_hash.contains_key(&hash) {
            return None;
        }
        inner.next_id += 1;
        let entry = KeyEntry {
            id: inner.next_id,
            name,
            budget,
            spend: 0.0,
            enabled: true,
            is_admin,
            max_connections,
            rate_limit_per_minute,
            created_at: now(),
        };
        inner.by_hash.insert(hash, entry.id);
        inner.by_id.insert(entry.id, entry.clone());
        Some(entry)
    }

    pub(crate) fn get(&self, id: u64) -> Option<KeyEntry> {
        lock(&self.inner).by_id.get(&id).cloned()
    }

    pub(crate) fn list(&self) -> Vec<KeyEntry> {
        let mut keys: Vec<KeyEntry> = lock(&self.inner).by_id.values().cloned().collect();
        keys.sort_by_key(|k| k.id);
        keys
    }

    /// Applies `change` to key `id`; returns the updated entry.
    pub(crate) fn update(&self, id: u64, change: impl FnOnce(&mut KeyEntry)) -> Option<KeyEntry> {
        let mut inner = lock(&self.inner);
        let entry = inner.by_id.get_mut(&id)?;
        change(entry);
        Some(entry.clone())
    }
}

impl KeyDirectory for Keys {
    fn find_by_hash(&self, hash: &str) -> Option<KeyRecord> {
        let inner = lock(&self.inner);
        let id = inner.by_hash.get(hash)?;
        inner.by_id.get(id).map(KeyEntry::record)
    }

    fn find_by_id(&self, id: u64) -> Option<KeyRecord> {
        lock(&self.inner).by_id.get(&id).map(KeyEntry::record)
    }
}

/// What a task is.
#[derive(Debug, Clone)]
pub(crate) enum TaskKind {
    Image {
        prompt: String,
        n: u32,
        size: String,
        model: String,
    },
    Video {
        prompt: String,
        model: String,
        duration: u32,
    },
    Generic {
        items: u32,
        timeout_seconds: Option<u32>,
    },
}

/// A task's status (numeric values as Conduit's `TaskState`, names on the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub(crate) fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// One simulated task.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) task_type: String,
    pub(crate) kind: TaskKind,
    pub(crate) owner: u64,
    pub(crate) status: TaskStatus,
    pub(crate) progress: u32,
    pub(crate) result: Option<Value>,
    pub(crate) error: Option<String>,
    pub(crate) fail: bool,
    pub(crate) cancel: CancellationToken,
    pub(crate) created_at: String,
    /// When the task reached a final status.
    pub(crate) finished: Option<Instant>,
}

impl Task {
    pub(crate) fn view(&self) -> Value {
        serde_json::json!({
            "taskId": self.id,
            "taskType": self.task_type,
            "status": self.status,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "createdAt": self.created_at,
        })
    }
}

/// An ephemeral key for the public video hub: bound to a task and its owner.
#[derive(Debug, Clone)]
pub(crate) struct Ephemeral {
    pub(crate) task_id: String,
    pub(crate) owner: u64,
    pub(crate) expires: Instant,
}

/// A registered webhook.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Webhook {
    pub(crate) webhook_id: String,
    pub(crate) url: String,
}

/// One spend record.
#[derive(Debug, Clone)]
pub(crate) struct SpendRecord {
    pub(crate) at: Instant,
    pub(crate) amount: f64,
    pub(crate) model: String,
    pub(crate) provider: String,
}

/// A key's spend tracking: alerts fired this period, recent records.
#[derive(Debug, Default)]
pub(crate) struct SpendState {
    /// The period (`YYYY-MM`) the fired alerts belong to.
    pub(crate) period: String,
    pub(crate) fired: BTreeSet<u32>,
    pub(crate) history: VecDeque<SpendRecord>,
    pub(crate) last_unusual: HashMap<&'static str, Instant>,
}

/// Provider health, numeric as Conduit's `HealthStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Healthy = 0,
    Degraded = 1,
    Unhealthy = 2,
}

impl Health {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "healthy" | "0" => Some(Self::Healthy),
            "degraded" | "1" => Some(Self::Degraded),
            "unhealthy" | "2" => Some(Self::Unhealthy),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Degraded => "Degraded",
            Self::Unhealthy => "Unhealthy",
        }
    }
}

/// A provider and its models.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub(crate) id: u32,
    pub(crate) name: &'static str,
    pub(crate) status: Health,
    pub(crate) response_time_ms: u32,
    pub(crate) models: &'static [&'static str],
    pub(crate) down_since: Option<Instant>,
}

impl Provider {
    pub(crate) fn view(&self) -> Value {
        serde_json::json!({
            "providerId": self.id,
            "providerName": self.name,
            "status": self.status.name(),
            "responseTimeMs": self.response_time_ms,
            "models": self.models,
        })
    }
}

fn providers() -> Vec<Provider> {
    let p = |id, name, models| Provider {
        id,
        name,
        status: Health::Healthy,
        response_time_ms: 120,
        models,
        down_since: None,
    };
    vec![
        p(
            1,
            "openai",
            &[
                "gpt-4o",
                "gpt-4o-mini",
                "text-embedding-3-small",
                "dall-e-3",
            ][..],
        ),
        p(
            2,
            "anthropic",
            &["claude-3-5-sonnet", "claude-3-5-haiku"][..],
        ),
        p(3, "replicate", &["flux-schnell", "minimax-video-01"][..]),
    ]
}

/// Everything the server shares. Cheap to clone.
pub(crate) type App = Arc<AppState>;

/// See [`App`].
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) keys: Arc<Keys>,
    pub(crate) guard: Arc<Guard>,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) tasks: Mutex<HashMap<String, Task>>,
    pub(crate) ephemeral: Mutex<HashMap<String, Ephemeral>>,
    pub(crate) webhooks: Mutex<HashMap<u64, Vec<Webhook>>>,
    pub(crate) spend: Mutex<HashMap<u64, SpendState>>,
    pub(crate) providers: Mutex<Vec<Provider>>,
    pub(crate) redis: Option<RedisStore>,
    pub(crate) http: reqwest::Client,
    notifier: OnceLock<Notifier>,
    backplanes: OnceLock<Vec<signalr_redis::RedisBackplane>>,
    hub_paths: OnceLock<Vec<&'static str>>,
}

impl AppState {
    pub(crate) fn new(config: Config, redis: Option<RedisStore>) -> App {
        let keys = Arc::new(Keys::default());
        let guard = Arc::new(Guard::new(keys.clone(), Some(config.master_key.clone())));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            config,
            keys,
            guard,
            telemetry: Arc::new(Telemetry::default()),
            tasks: Mutex::new(HashMap::new()),
            ephemeral: Mutex::new(HashMap::new()),
            webhooks: Mutex::new(HashMap::new()),
            spend: Mutex::new(HashMap::new()),
            providers: Mutex::new(providers()),
            redis,
            http,
            notifier: OnceLock::new(),
            backplanes: OnceLock::new(),
            hub_paths: OnceLock::new(),
        })
    }

    /// Installs the notifier once the hubs exist.
    pub(crate) fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Records the hubs' Redis backplanes and paths, once built.
    pub(crate) fn set_hubs(
        &self,
        backplanes: Vec<signalr_redis::RedisBackplane>,
        paths: Vec<&'static str>,
    ) {
        let _ = self.backplanes.set(backplanes);
        let _ = self.hub_paths.set(paths);
    }

    pub(crate) fn backplanes(&self) -> &[signalr_redis::RedisBackplane] {
        self.backplanes.get().map_or(&[], Vec::as_slice)
    }

    pub(crate) fn hub_paths(&self) -> &[&'static str] {
        self.hub_paths.get().map_or(&[], Vec::as_slice)
    }

    /// The notifier; before it is installed, a notifier that sends nothing.
    pub(crate) fn notifier(&self) -> &Notifier {
        static NONE: OnceLock<Notifier> = OnceLock::new();
        self.notifier
            .get()
            .unwrap_or_else(|| NONE.get_or_init(Notifier::disconnected))
    }

    /// A simulated duration scaled by `--time-scale`.
    pub(crate) fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.config.time_scale).clamp(0.0, 86_400.0 * 7.0))
    }

    /// Who owns task `id`: this instance's record, else the Redis record.
    pub(crate) async fn task_owner(&self, id: &str) -> Option<u64> {
        if let Some(task) = lock(&self.tasks).get(id) {
            return Some(task.owner);
        }
        match &self.redis {
            Some(redis) => redis.task_owner(id).await,
            None => None,
        }
    }

    /// Running (not final) tasks of key `owner`.
    pub(crate) fn tasks_running_of(&self, owner: u64) -> usize {
        lock(&self.tasks)
            .values()
            .filter(|t| t.owner == owner && !t.status.is_final())
            .count()
    }

    /// Forgets tasks that ended more than `FINISHED_TASK_TTL` ago.
    pub(crate) fn sweep_tasks(&self) -> usize {
        let mut tasks = lock(&self.tasks);
        let before = tasks.len();
        tasks.retain(|_, t| t.finished.is_none_or(|at| at.elapsed() < FINISHED_TASK_TTL));
        before - tasks.len()
    }

    pub(crate) fn tasks_running(&self) -> usize {
        lock(&self.tasks)
            .values()
            .filter(|t| !t.status.is_final())
            .count()
    }

    /// A new ephemeral key for `task_id` of `owner`.
    pub(crate) async fn issue_ephemeral(&self, task_id: &str, owner: u64) -> String {
        let key = format!("ek_{}", secure::random_alphanumeric(43));
        let hash = secure::hash_key(&key);
        {
            let mut all = lock(&self.ephemeral);
            all.retain(|_, e| e.expires > Instant::now());
            all.insert(
                hash.clone(),
                Ephemeral {
                    task_id: task_id.to_owned(),
                    owner,
                    expires: Instant::now() + EPHEMERAL_TTL,
                },
            );
        }
        if let Some(redis) = &self.redis {
            redis.put_ephemeral(&hash, task_id, owner).await;
        }
        key
    }

    /// The ephemeral key's binding when it is valid (reusable until it expires).
    pub(crate) async fn ephemeral(&self, key: &str) -> Option<(String, u64)> {
        if !key.starts_with("ek_") || key.len() > 128 {
            return None;
        }
        let hash = secure::hash_key(key);
        let local = lock(&self.ephemeral)
            .get(&hash)
            .filter(|e| e.expires > Instant::now())
            .map(|e| (e.task_id.clone(), e.owner));
        match (local, &self.redis) {
            (Some(found), _) => Some(found),
            (None, Some(redis)) => redis.ephemeral(&hash).await,
            (None, None) => None,
        }
    }

    pub(crate) fn webhooks_of(&self, key: u64) -> Vec<Webhook> {
        lock(&self.webhooks).get(&key).cloned().unwrap_or_default()
    }
}
