//! A "SecureHub" layer for `signalr-server`: virtual-key identity, per-key groups,
//! connection and rate limits, ownership checks and audit logging, in one module you can
//! copy into your own server.
//!
//! The pieces, and where they plug into the library:
//!
//! - [`KeyDirectory`]: your key store. Keys are looked up by the SHA-256 (lowercase hex) of
//!   the presented key ([`hash_key`]); the key itself is never stored.
//! - [`Guard::authenticator`]: an [`Authenticator`] that reads the key from the query
//!   (`access_token`, `api_key`), `Authorization: Bearer` or `X-API-Key`, and refuses
//!   unknown, disabled and exhausted keys. Pair it with [`Guard::policy`] on the hub
//!   (`HubBuilder::authorize`) and such a negotiate gets 401.
//! - [`Guard::filter`]: a [`HubFilter`] that, on connect, enforces the key's connection
//!   limit and joins the connection to `vkey-{id}`; on every invocation re-checks that the
//!   key is still usable and applies its per-minute rate limit (`Rate limit exceeded`);
//!   and logs every connect, refusal and disconnect with `tracing`.
//! - [`Guard::key`] and [`check_task_access`]: what a hub method calls before joining a
//!   resource's group, so that no event crosses keys.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use conduit::secure::{Guard, KeyDirectory, AuthMode};
//! # fn example(directory: Arc<dyn KeyDirectory>) {
//! use signalr_server::{Hub, HubError, Caller, Groups};
//!
//! let guard = Arc::new(Guard::new(directory, Some("master-secret".into())));
//! let hub = Hub::builder("Tasks")
//!     .authenticator(guard.authenticator(AuthMode::VirtualKey))
//!     .authorize(Guard::policy(AuthMode::VirtualKey))
//!     .filter(guard.filter("/hubs/tasks"))
//!     .method("Whoami", |caller: Caller| async move {
//!         let key = Guard::key(&caller)?;
//!         Ok::<_, HubError>(key.name)
//!     })
//!     .build();
//! # let _ = hub;
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use signalr_server::{
    AuthRejection, Authenticator, Caller, Groups, HubError, HubFilter, Identity, InvocationContext,
    InvokeResult, LifecycleNext, Next, Policy, RequestInfo, policy,
};

/// Every virtual key starts with this.
pub const KEY_PREFIX: &str = "condt_";
/// The number of characters after [`KEY_PREFIX`].
pub const KEY_BODY_LEN: usize = 32;

/// Claim: the virtual key's numeric id.
pub const CLAIM_KEY_ID: &str = "conduit:vkey_id";
/// Claim: the virtual key's display name.
pub const CLAIM_KEY_NAME: &str = "conduit:vkey_name";
/// Claim: `"true"` when the caller passes every ownership check (admin key or master key).
pub const CLAIM_ADMIN: &str = "conduit:admin";
/// Claim: `"true"` when the caller presented the master key.
pub const CLAIM_MASTER: &str = "conduit:master";

/// The lowercase hex SHA-256 of `key` (UTF-8, prefix included): what a key store keeps.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Whether `key` has the virtual-key shape: [`KEY_PREFIX`] and [`KEY_BODY_LEN`] ASCII
/// letters or digits.
pub fn is_well_formed(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|body| {
        body.len() == KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Fills `buf` from the operating system's random source; if that ever fails, from a
/// SHA-256 of the time and a counter (logged: such keys are guessable in principle).
pub fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    tracing::error!("the operating system's random source failed; using a time-based fallback");
    let mut seed = Sha256::new();
    seed.update(format!("{:?}", std::time::SystemTime::now()));
    seed.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let mut block = seed.finalize();
    for chunk in buf.chunks_mut(32) {
        chunk.copy_from_slice(&block[..chunk.len()]);
        block = Sha256::digest(block);
    }
}

/// `n` random characters from `[A-Za-z0-9]`, without modulo bias.
pub fn random_alphanumeric(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 64];
        random_bytes(&mut buf);
        for b in buf {
            // 248 = 4 * 62: accept only bytes below it so every character is equally likely.
            if b < 248 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// A new virtual key: [`KEY_PREFIX`] and 32 random letters and digits.
pub fn generate_key() -> String {
    format!("{KEY_PREFIX}{}", random_alphanumeric(KEY_BODY_LEN))
}

/// What the guard needs to know about a virtual key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The key's id (groups are `vkey-{id}`).
    pub id: u64,
    /// Its display name.
    pub name: String,
    /// Enabled keys may connect.
    pub enabled: bool,
    /// Exhausted keys (spend reached the budget) may not connect.
    pub exhausted: bool,
    /// Admin keys pass every ownership check.
    pub is_admin: bool,
    /// At most this many connections at once, across hubs.
    pub max_connections: u32,
    /// At most this many hub invocations per minute (0: unlimited).
    pub rate_limit_per_minute: u32,
}

impl KeyRecord {
    /// Enabled and not exhausted.
    pub fn usable(&self) -> bool {
        self.enabled && !self.exhausted
    }
}

/// Your key store, as the guard sees it.
pub trait KeyDirectory: Send + Sync + 'static {
    /// The key whose [`hash_key`] is `hash`.
    fn find_by_hash(&self, hash: &str) -> Option<KeyRecord>;
    /// The key with this id.
    fn find_by_id(&self, id: u64) -> Option<KeyRecord>;
}

/// The caller's key, from its connection's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    /// The key id; `None` for the master key.
    pub id: Option<u64>,
    /// The key's name (`master` for the master key).
    pub name: String,
    /// Passes every ownership check.
    pub is_admin: bool,
}

impl KeyIdentity {
    /// From an identity the guard's authenticator made.
    pub fn from_identity(identity: &Identity) -> Option<Self> {
        let is_admin = identity.find(CLAIM_ADMIN) == Some("true");
        if identity.find(CLAIM_MASTER) == Some("true") {
            return Some(Self {
                id: None,
                name: "master".into(),
                is_admin: true,
            });
        }
        let id = identity.find(CLAIM_KEY_ID)?.parse().ok()?;
        Some(Self {
            id: Some(id),
            name: identity.find(CLAIM_KEY_NAME).unwrap_or_default().to_owned(),
            is_admin,
        })
    }
}

/// The group every connection of key `id` is in.
pub fn key_group(id: u64) -> String {
    format!("vkey-{id}")
}

/// Joins the caller to its key's group, `vkey-{id}`: call it from each secure hub's
/// `on_connected` (the master key has no group).
pub async fn join_key_group(caller: &Caller, groups: &Groups) -> Result<(), HubError> {
    if let Some(id) = Guard::key(caller)?.id {
        groups
            .add_to_group(caller.connection_id(), key_group(id))
            .await
            .map_err(|err| {
                tracing::warn!(key = id, error = %err, "could not join the key group");
                HubError::new("Failed to join the key group")
            })?;
    }
    Ok(())
}

/// Which credentials a hub accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Usable virtual keys only (customer hubs).
    VirtualKey,
    /// The master key, or an admin virtual key (admin hubs).
    Admin,
}

/// The credential a request presents: query `access_token`, query `api_key`,
/// `Authorization: Bearer`, then `X-API-Key`.
pub fn presented_key(request: &RequestInfo) -> Option<String> {
    let bearer = request.header("authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    request
        .query("access_token")
        .or_else(|| request.query("api_key"))
        .or(bearer)
        .or_else(|| request.header("x-api-key").map(|v| v.trim().to_owned()))
        .filter(|k| !k.is_empty())
}

/// The result of an ownership check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAccess {
    /// The caller owns the task, or is an admin.
    Allowed,
    /// No such task.
    NotFound,
    /// Someone else's task.
    Denied,
}

/// Checks `key` against a task's owner (`None`: no such task); logs refusals.
pub fn check_task_access(key: &KeyIdentity, task_id: &str, owner: Option<u64>) -> TaskAccess {
    match owner {
        None => {
            tracing::info!(key = ?key.id, task_id, "task subscription refused: no such task");
            TaskAccess::NotFound
        }
        Some(_) if key.is_admin => TaskAccess::Allowed,
        Some(owner) if key.id == Some(owner) => TaskAccess::Allowed,
        Some(owner) => {
            tracing::warn!(key = ?key.id, owner, task_id, "task subscription refused: not the owner");
            TaskAccess::Denied
        }
    }
}

/// A rate-limit notice: the key has `remaining` invocations left until `resets_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitNotice {
    /// The key.
    pub key_id: u64,
    /// Invocations left in this window.
    pub remaining: u32,
    /// The window's limit.
    pub limit: u32,
    /// Time until the window resets.
    pub resets_in: Duration,
}

type NoticeHook = Box<dyn Fn(RateLimitNotice) + Send + Sync>;

#[derive(Debug)]
struct Window {
    started: Instant,
    count: u32,
    warned: bool,
}

/// A connection the guard tracks for its key.
#[derive(Debug, Clone)]
struct Tracked {
    hub: &'static str,
    caller: Caller,
}

/// Shared by a server's authenticators and filters: the key directory, the master key, the
/// live connections per key and the rate-limit windows.
pub struct Guard {
    directory: Arc<dyn KeyDirectory>,
    master_hash: Option<String>,
    connections: Mutex<HashMap<u64, Vec<Tracked>>>,
    windows: Mutex<HashMap<u64, Window>>,
    auth_failures: AtomicU64,
    rate_limited: AtomicU64,
    notice_hook: OnceLock<NoticeHook>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("auth_failures", &self.auth_failures)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here leaves the maps consistent; a poisoned lock is usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fraction of a window's limit below which a rate-limit warning goes out.
const WARN_REMAINING_FRACTION: u32 = 10;

impl Guard {
    /// A guard over `directory`; `master_key` (kept only as its hash) opens admin hubs.
    pub fn new(directory: Arc<dyn KeyDirectory>, master_key: Option<String>) -> Self {
        Self {
            directory,
            master_hash: master_key.map(|k| hash_key(&k)),
            connections: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
            auth_failures: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            notice_hook: OnceLock::new(),
        }
    }

    /// Calls `hook` once per window when a key gets close to its rate limit. Only the first
    /// hook set is kept.
    pub fn on_rate_limit_warning(&self, hook: impl Fn(RateLimitNotice) + Send + Sync + 'static) {
        let _ = self.notice_hook.set(Box::new(hook));
    }

    /// Requests refused for bad credentials so far.
    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    /// Invocations refused by the rate limit so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Counts one refused request (for callers outside the authenticator, such as an HTTP
    /// API).
    pub fn record_auth_failure(&self, reason: &str) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(reason, "authentication refused");
    }

    /// Whether `key` is the master key.
    pub fn is_master(&self, key: &str) -> bool {
        self.master_hash
            .as_deref()
            .is_some_and(|hash| constant_time_eq(hash.as_bytes(), hash_key(key).as_bytes()))
    }

    /// The usable virtual key `key` designates, or why not.
    pub fn resolve(&self, key: &str) -> Result<KeyRecord, &'static str> {
        if !is_well_formed(key) {
            return Err("malformed key");
        }
        let record = self
            .directory
            .find_by_hash(&hash_key(key))
            .ok_or("unknown key")?;
        if !record.enabled {
            return Err("disabled key");
        }
        if record.exhausted {
            return Err("exhausted key");
        }
        Ok(record)
    }

    /// The identity for a request, as `mode` accepts it.
    pub fn identify(&self, request: &RequestInfo, mode: AuthMode) -> Result<Identity, String> {
        let master_header = request.header("x-master-key").map(str::to_owned);
        let key = presented_key(request).or(master_header.clone());
        let Some(key) = key else {
            return Err("no credentials".into());
        };
        if mode == AuthMode::Admin
            && (self.is_master(&key) || master_header.as_deref().is_some_and(|k| self.is_master(k)))
        {
            return Ok(Identity::user("master")
                .with_claim(CLAIM_MASTER, "true")
                .with_claim(CLAIM_ADMIN, "true"));
        }
        let record = self.resolve(&key).map_err(str::to_owned)?;
        if mode == AuthMode::Admin && !record.is_admin {
            return Err(format!("key {} is not an admin key", record.id));
        }
        Ok(Identity::user(key_group(record.id))
            .with_claim(CLAIM_KEY_ID, record.id.to_string())
            .with_claim(CLAIM_KEY_NAME, record.name)
            .with_claim(CLAIM_ADMIN, if record.is_admin { "true" } else { "false" }))
    }

    /// The authenticator for hubs of `mode`.
    pub fn authenticator(self: &Arc<Self>, mode: AuthMode) -> GuardAuthenticator {
        GuardAuthenticator {
            guard: self.clone(),
            mode,
        }
    }

    /// The hub policy for `mode`: an identity the guard's authenticator made for it.
    pub fn policy(mode: AuthMode) -> Policy {
        policy(move |identity| {
            identity
                .and_then(KeyIdentity::from_identity)
                .is_some_and(|key| match mode {
                    AuthMode::VirtualKey => key.id.is_some(),
                    AuthMode::Admin => key.is_admin,
                })
        })
    }

    /// The filter for the hub served at `hub` (a label for logs and the registry).
    pub fn filter(self: &Arc<Self>, hub: &'static str) -> SecureFilter {
        SecureFilter {
            guard: self.clone(),
            hub,
        }
    }

    /// The caller's key, or `HubException: Unauthorized`.
    pub fn key(caller: &Caller) -> Result<KeyIdentity, HubError> {
        caller
            .identity()
            .and_then(KeyIdentity::from_identity)
            .ok_or_else(|| HubError::new("Unauthorized"))
    }

    /// The caller's virtual key id (the master key has none), or `Unauthorized`.
    pub fn key_id(caller: &Caller) -> Result<u64, HubError> {
        Self::key(caller)?
            .id
            .ok_or_else(|| HubError::new("Unauthorized"))
    }

    /// Live connections of key `id`, across hubs.
    pub fn connection_count(&self, id: u64) -> usize {
        lock(&self.connections).get(&id).map_or(0, Vec::len)
    }

    /// Whether a new connection of `key` would exceed its limit.
    pub fn at_connection_limit(&self, key: &KeyRecord) -> bool {
        self.connection_count(key.id) >= usize::try_from(key.max_connections).unwrap_or(usize::MAX)
    }

    /// Aborts every connection of key `id` (after disabling it, say); returns how many.
    pub fn close_connections(&self, id: u64, why: &str) -> usize {
        let tracked = lock(&self.connections).remove(&id).unwrap_or_default();
        for t in &tracked {
            tracing::info!(
                key = id,
                hub = t.hub,
                connection = t.caller.connection_id(),
                why,
                "closing connection"
            );
            t.caller.abort();
        }
        tracked.len()
    }

    fn register(
        &self,
        key: &KeyRecord,
        hub: &'static str,
        caller: &Caller,
    ) -> Result<(), HubError> {
        let mut connections = lock(&self.connections);
        let list = connections.entry(key.id).or_default();
        if list.len() >= usize::try_from(key.max_connections).unwrap_or(usize::MAX) {
            tracing::warn!(
                key = key.id,
                hub,
                limit = key.max_connections,
                "connection refused: connection limit"
            );
            return Err(HubError::new("Connection limit exceeded for this key"));
        }
        list.push(Tracked {
            hub,
            caller: caller.clone(),
        });
        Ok(())
    }

    fn unregister(&self, id: u64, caller: &Caller) {
        let mut connections = lock(&self.connections);
        if let Some(list) = connections.get_mut(&id) {
            list.retain(|t| t.caller.connection_id() != caller.connection_id());
            if list.is_empty() {
                connections.remove(&id);
            }
        }
    }

    /// Counts one invocation of key `key` against its per-minute limit.
    pub fn check_rate(&self, key: &KeyRecord) -> Result<(), HubError> {
        if key.rate_limit_per_minute == 0 {
            return Ok(());
        }
        let limit = key.rate_limit_per_minute;
        let notice = {
            let mut windows = lock(&self.windows);
            let window = windows.entry(key.id).or_insert_with(|| Window {
                started: Instant::now(),
                count: 0,
                warned: false,
            });
            if window.started.elapsed() >= Duration::from_secs(60) {
                *window = Window {
                    started: Instant::now(),
                    count: 0,
                    warned: false,
                };
            }
            if window.count >= limit {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = key.id, limit, "invocation refused: rate limit");
                return Err(HubError::new("Rate limit exceeded"));
            }
            window.count += 1;
            let remaining = limit - window.count;
            let threshold = (limit / WARN_REMAINING_FRACTION).max(1);
            if remaining <= threshold && !window.warned {
                window.warned = true;
                Some(RateLimitNotice {
                    key_id: key.id,
                    remaining,
                    limit,
                    resets_in: Duration::from_secs(60).saturating_sub(window.started.elapsed()),
                })
            } else {
                None
            }
        };
        if let (Some(notice), Some(hook)) = (notice, self.notice_hook.get()) {
            hook(notice);
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The guard's [`Authenticator`] for one [`AuthMode`].
#[derive(Debug, Clone)]
pub struct GuardAuthenticator {
    guard: Arc<Guard>,
    mode: AuthMode,
}

impl Authenticator for GuardAuthenticator {
    fn authenticate<'a>(
        &'a self,
        request: &'a RequestInfo,
        _token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Identity>, AuthRejection>> {
        Box::pin(async move {
            match self.guard.identify(request, self.mode) {
                Ok(identity) => Ok(Some(identity)),
                Err(reason) => {
                    self.guard.auth_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        path = request.uri().path(),
                        reason,
                        "hub authentication refused"
                    );
                    Err(AuthRejection::new(reason))
                }
            }
        })
    }
}

/// The guard's [`HubFilter`] for one hub: connection limit, `vkey-{id}` group, re-checks,
/// rate limit and audit logs.
#[derive(Debug, Clone)]
pub struct SecureFilter {
    guard: Arc<Guard>,
    hub: &'static str,
}

impl HubFilter for SecureFilter {
    fn on_connected<'a>(
        &'a self,
        caller: &'a Caller,
        next: LifecycleNext<'a>,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        Box::pin(async move {
            let key = Guard::key(caller)?;
            if let Some(id) = key.id {
                let Some(record) = self
                    .guard
                    .directory
                    .find_by_id(id)
                    .filter(KeyRecord::usable)
                else {
                    tracing::warn!(
                        key = id,
                        hub = self.hub,
                        "connection refused: key no longer usable"
                    );
                    return Err(HubError::new("Invalid authentication"));
                };
                self.guard.register(&record, self.hub, caller)?;
                // The hub's own on_connected joins `vkey-{id}` (filters cannot reach
                // `Groups`): see `join_key_group`.
            }
            tracing::info!(key = ?key.id, name = %key.name, hub = self.hub, connection = caller.connection_id(), "connected");
            let result = next.run().await;
            if result.is_err() {
                if let Some(id) = key.id {
                    self.guard.unregister(id, caller);
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
            if let Ok(key) = Guard::key(caller) {
                if let Some(id) = key.id {
                    self.guard.unregister(id, caller);
                }
                tracing::info!(key = ?key.id, hub = self.hub, connection = caller.connection_id(), error, "disconnected");
            }
            next.run().await
        })
    }

    fn on_invoke<'a>(
        &'a self,
        invocation: &'a InvocationContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, InvokeResult> {
        Box::pin(async move {
            let key = Guard::key(invocation.caller())?;
            if let Some(id) = key.id {
                let Some(record) = self
                    .guard
                    .directory
                    .find_by_id(id)
                    .filter(KeyRecord::usable)
                else {
                    tracing::warn!(
                        key = id,
                        hub = self.hub,
                        method = invocation.method(),
                        "invocation refused: key no longer usable"
                    );
                    invocation.caller().abort();
                    return Err(HubError::new("Invalid authentication"));
                };
                self.guard.check_rate(&record)?;
            }
            tracing::debug!(key = ?key.id, hub = self.hub, method = invocation.method(), "invocation");
            next.run().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_hashes() {
        let key = generate_key();
        assert!(is_well_formed(&key), "{key}");
        assert!(!is_well_formed("condt_short"));
        assert!(!is_well_formed("condt_0pxETIi99Kt87iT96I+ATxOjPiW9J7Ky"));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn task_access() {
        let alice = KeyIdentity {
            id: Some(1),
            name: "alice".into(),
            is_admin: false,
        };
        assert_eq!(check_task_access(&alice, "t", Some(1)), TaskAccess::Allowed);
        assert_eq!(check_task_access(&alice, "t", Some(2)), TaskAccess::Denied);
        assert_eq!(check_task_access(&alice, "t", None), TaskAccess::NotFound);
        let admin = KeyIdentity {
            is_admin: true,
            ..alice
        };
        assert_eq!(check_task_access(&admin, "t", Some(2)), TaskAccess::Allowed);
    }
}
