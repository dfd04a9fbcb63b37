//! The Redis backplane: routing, group commands with acks, client results, and the task
//! that keeps the Redis connections and subscriptions alive.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use signalr_core::{
    Completion, CompletionResult, HubMessage, HubProtocol, Invocation, JsonHubProtocol,
    MessagePackHubProtocol, MessageReader,
};
use signalr_server::{
    Arguments, Backplane, ConnectionHandle, Error, InMemoryBackplane, SerializedMessage, Target,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::channels::{Channels, Incoming};
use crate::protocol::{GroupAction, RedisCompletion, RedisGroupCommand, RedisInvocation};

/// What the relaying server answers when its connection ends before the client answered a
/// client-result invocation (ASP.NET Core's text).
const CONNECTION_DISCONNECTED: &str = "Connection disconnected.";
/// How long one connection attempt or one SUBSCRIBE may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a PUBLISH may wait for Redis's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff bounds.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The state of a backplane's link to Redis, as [`RedisBackplane::health`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Connected and subscribed: messages flow between servers.
    Connected,
    /// Not connected (yet, or any more); the backplane keeps trying. Local connections
    /// still work; sends that need Redis fail and are counted as lost.
    Reconnecting {
        /// Why the last attempt failed, or why the connection was lost.
        last_error: String,
    },
}

impl Health {
    /// Whether messages flow between servers.
    pub fn is_connected(&self) -> bool {
        matches!(self, Health::Connected)
    }
}

/// Configures a [`RedisBackplane`]. See [`RedisBackplane::builder`].
///
/// One builder can build the backplane of several hubs: each [`build`](Self::build) takes
/// the hub's name.
#[derive(Clone)]
pub struct RedisBackplaneBuilder {
    url: String,
    channel_prefix: String,
    channel_name: Option<String>,
    protocols: Vec<Arc<dyn HubProtocol>>,
    ack_timeout: Duration,
    client_result_timeout: Option<Duration>,
    server_name: Option<String>,
}

impl std::fmt::Debug for RedisBackplaneBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocols: Vec<&str> = self.protocols.iter().map(|p| p.name()).collect();
        f.debug_struct("RedisBackplaneBuilder")
            .field("url", &redact(&self.url))
            .field("channel_prefix", &self.channel_prefix)
            .field("channel_name", &self.channel_name)
            .field("protocols", &protocols)
            .field("ack_timeout", &self.ack_timeout)
            .field("client_result_timeout", &self.client_result_timeout)
            .finish_non_exhaustive()
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl RedisBackplaneBuilder {
    /// A Redis channel prefix, prepended to every channel name with no separator, as
    /// StackExchange.Redis's `ConfigurationOptions.ChannelPrefix` is: with `"MyApp"`, the
    /// hub `Ns.ChatHub` uses `MyAppNs.ChatHub:all`. Use the .NET servers' value to share
    /// their channels. Default: none.
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.channel_prefix = prefix.into();
        self
    }

    /// The hub's name in channel names. ASP.NET Core uses the hub class's full type name
    /// (`MyApp.Hubs.ChatHub`, nested types with `+`): set it to that to share a hub with
    /// .NET servers. Default: the hub name given to [`build`](Self::build).
    pub fn channel_name(mut self, name: impl Into<String>) -> Self {
        self.channel_name = Some(name.into());
        self
    }

    /// The hub protocols every published message is serialized for. Every protocol a
    /// client of any server on the channel may use must be here: a server cannot deliver a
    /// message lacking its client's protocol. Default: JSON and MessagePack.
    pub fn protocols(mut self, protocols: Vec<Arc<dyn HubProtocol>>) -> Self {
        self.protocols = protocols;
        self
    }

    /// How long adding or removing a connection of another server to or from a group waits
    /// for that server's ack before failing with a timeout (for example, when the connection
    /// exists nowhere). Default: 30 seconds, as ASP.NET Core.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long a client-result invocation of a connection on another server waits, on the
    /// invoking server and on the server relaying it to its client. Default: the hub's
    /// `HubOptions::client_result_timeout` on the invoking server, 30 seconds on the
    /// relaying one.
    pub fn client_result_timeout(mut self, timeout: Duration) -> Self {
        self.client_result_timeout = Some(timeout);
        self
    }

    /// This server's name, which addresses its ack and return channels and must be unique
    /// among the servers on the channel. Default: `{hostname}_{32 hex digits}` with a
    /// random GUID, as ASP.NET Core.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Builds the backplane of the hub named `hub_name` and starts connecting to Redis in
    /// the background (call it inside a tokio runtime). It does not wait for Redis: until
    /// Redis answers, local connections work and sends that need Redis fail; see
    /// [`RedisBackplane::health`] and [`RedisBackplane::wait_connected`].
    ///
    /// Fails only for an invalid Redis URL.
    pub fn build(&self, hub_name: &str) -> Result<RedisBackplane, Error> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| Error::backplane(format!("invalid Redis URL: {e}")))?;
        let server_name = self.server_name.clone().unwrap_or_else(default_server_name);
        let channel_name = self.channel_name.as_deref().unwrap_or(hub_name);
        let channels = Channels::new(&self.channel_prefix, channel_name, &server_name);
        let (control, rx) = mpsc::unbounded_channel();
        let (health, _) = watch::channel(Health::Reconnecting {
            last_error: "not connected yet".to_owned(),
        });
        let shared = Arc::new(Shared {
            local: InMemoryBackplane::new(),
            channels,
            server_name,
            protocols: self.protocols.clone(),
            ack_timeout: self.ack_timeout,
            client_result_timeout: self.client_result_timeout,
            publisher: Mutex::new(None),
            control,
            health,
            lost: AtomicU64::new(0),
            next_ack_id: AtomicI32::new(1),
            acks: Mutex::new(HashMap::new()),
            results: Mutex::new(HashMap::new()),
        });
        tracing::debug!(
            server = %shared.server_name,
            channel = %shared.channels.all(),
            "starting the Redis backplane"
        );
        tokio::spawn(supervise(Arc::downgrade(&shared), client, rx));
        Ok(RedisBackplane { shared })
    }
}

/// A [`Backplane`] that connects servers through Redis pub/sub, on the channels and with the
/// payloads of ASP.NET Core's `Microsoft.AspNetCore.SignalR.StackExchangeRedis`, so Rust and
/// .NET servers can share a hub.
///
/// Cheap to clone: clones share one backplane. Give one to the hub with
/// `HubBuilder::backplane(Arc::new(backplane.clone()))` and keep one for
/// [`health`](Self::health) and [`lost_messages`](Self::lost_messages).
///
/// Routing follows ASP.NET Core: sends to all, groups and users are published and reach
/// this server's own connections back through Redis; a send to one connection of this
/// server is delivered directly, without Redis. Unlike ASP.NET Core, sends to a list of
/// connections also deliver to this server's connections directly, so connection-targeted
/// sends to local connections keep working while Redis is down. A send to several groups
/// (or users) is published once per group, so a connection in two of them gets it twice,
/// as with ASP.NET Core.
#[derive(Clone)]
pub struct RedisBackplane {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("server_name", &self.shared.server_name)
            .field("channels", &self.shared.channels.all())
            .field("health", &*self.shared.health.borrow())
            .finish_non_exhaustive()
    }
}

impl RedisBackplane {
    /// Starts configuring a backplane on the Redis at `url` (`redis://[:password@]host[:port][/db]`).
    pub fn builder(url: impl Into<String>) -> RedisBackplaneBuilder {
        RedisBackplaneBuilder {
            url: url.into(),
            channel_prefix: String::new(),
            channel_name: None,
            protocols: vec![
                Arc::new(JsonHubProtocol::new()),
                Arc::new(MessagePackHubProtocol::new()),
            ],
            ack_timeout: Duration::from_secs(30),
            client_result_timeout: None,
            server_name: None,
        }
    }

    /// The state of the link to Redis.
    pub fn health(&self) -> Health {
        self.shared.health.borrow().clone()
    }

    /// Waits until the backplane is connected and subscribed, at most `timeout`. Returns
    /// whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.health.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(Health::is_connected))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many messages could not be published because Redis was unavailable (each
    /// channel a send needed counts once). Every one was also logged and, where the API
    /// returns errors, failed the send.
    pub fn lost_messages(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// This server's name on the channels.
    pub fn server_name(&self) -> &str {
        &self.shared.server_name
    }
}

/// A dynamic subscription, kept while local state calls for it.
#[derive(Debug, Clone)]
enum Sub {
    Connection(String),
    User(String),
    Group(String),
}

/// A request to the supervising task: bring one subscription in line with local state.
#[derive(Debug)]
struct SubRequest {
    sub: Sub,
    done: oneshot::Sender<()>,
}

struct Shared {
    local: InMemoryBackplane,
    channels: Channels,
    server_name: String,
    protocols: Vec<Arc<dyn HubProtocol>>,
    ack_timeout: Duration,
    client_result_timeout: Option<Duration>,
    /// The connection PUBLISH goes through; `None` while Redis is unavailable.
    publisher: Mutex<Option<MultiplexedConnection>>,
    control: mpsc::UnboundedSender<SubRequest>,
    health: watch::Sender<Health>,
    lost: AtomicU64,
    next_ack_id: AtomicI32,
    /// Group commands waiting for their ack, by id.
    acks: Mutex<HashMap<i32, oneshot::Sender<()>>>,
    /// Client results waiting on another server, by invocation id.
    results: Mutex<HashMap<String, oneshot::Sender<CompletionResult>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is one map or slot operation, complete or not started when a
    // panic could happen: a poisoned lock still holds consistent data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to time and address entropy. Ids only need to be
        // unique, not secret.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let addr = &bytes as *const _ as usize as u128;
        bytes = (nanos ^ addr.rotate_left(64)).to_le_bytes();
    }
    bytes
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `{MachineName}_{Guid:N}`.
fn default_server_name() -> String {
    let hex: String = random_16().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}_{hex}", hostname())
}

/// A GUID's bytes in base64 without the trailing `==`: 22 characters, as ASP.NET Core's
/// client-result invocation ids across servers.
fn new_invocation_id() -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(random_16())
}

impl Shared {
    /// Brings a subscription in line with local state and waits until Redis confirmed it
    /// (or, while Redis is down, until it is recorded for the reconnect).
    async fn sync(&self, sub: Sub) {
        let (done, rx) = oneshot::channel();
        if self.control.send(SubRequest { sub, done }).is_ok() {
            let _ = rx.await;
        }
    }

    fn wanted(&self, sub: &Sub) -> (String, bool) {
        match sub {
            Sub::Connection(id) => (
                self.channels.connection(id),
                self.local.connection(id).is_some(),
            ),
            Sub::User(user) => (self.channels.user(user), self.local.has_user(user)),
            Sub::Group(group) => (
                self.channels.group(group),
                !self
                    .local
                    .local_targets(&Target::Group(group.clone()))
                    .is_empty(),
            ),
        }
    }

    fn unavailable(&self) -> String {
        match &*self.health.borrow() {
            Health::Reconnecting { last_error } => last_error.clone(),
            Health::Connected => "not connected".to_owned(),
        }
    }

    /// PUBLISH; the number of subscribers that received it.
    async fn publish(&self, channel: &str, payload: &[u8]) -> Result<usize, Error> {
        let connection = lock(&self.publisher).clone();
        let Some(mut connection) = connection else {
            return Err(Error::backplane(format!(
                "Redis is unavailable ({}); cannot publish to '{channel}'",
                self.unavailable()
            )));
        };
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<usize>(&mut connection)
            .await
            .map_err(|e| Error::backplane(format!("PUBLISH to '{channel}' failed: {e}")))
    }

    /// PUBLISH of a hub message: a failure is logged and counted as a lost message.
    async fn publish_counted(&self, channel: &str, payload: &[u8]) -> Result<usize, Error> {
        let result = self.publish(channel, payload).await;
        if let Err(err) = &result {
            self.lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %err, "message lost: Redis is unavailable");
        }
        result
    }

    /// Publishes one invocation, serialized once per protocol, to each channel.
    async fn publish_invocation(
        &self,
        channels: Vec<String>,
        excluded: Vec<String>,
        message: &SerializedMessage,
    ) -> Result<(), Error> {
        if channels.is_empty() {
            return Ok(());
        }
        let serialized = message.serialize_all(&self.protocols)?;
        let payload = RedisInvocation {
            excluded,
            serialized,
            client_result: None,
        }
        .encode();
        let mut first_error = None;
        for channel in channels {
            if let Err(err) = self.publish_counted(&channel, &payload).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn send(&self, target: Target, message: Arc<SerializedMessage>) -> Result<(), Error> {
        let c = &self.channels;
        let (channels, excluded) = match target {
            Target::All => (vec![c.all()], Vec::new()),
            Target::AllExcept(ids) => (vec![c.all()], ids),
            Target::Connection(id) => {
                if self.local.connection(&id).is_some() {
                    return self.local.send_local(&Target::Connection(id), &message);
                }
                (vec![c.connection(&id)], Vec::new())
            }
            Target::Connections(ids) => {
                let mut seen = HashSet::new();
                let mut remote = Vec::new();
                let mut local = Vec::new();
                for id in ids {
                    if !seen.insert(id.clone()) {
                        continue;
                    }
                    if self.local.connection(&id).is_some() {
                        local.push(id);
                    } else {
                        remote.push(c.connection(&id));
                    }
                }
                let local_result = self.local.send_local(&Target::Connections(local), &message);
                let remote_result = self.publish_invocation(remote, Vec::new(), &message).await;
                return local_result.and(remote_result);
            }
            Target::Group(group) => (vec![c.group(&group)], Vec::new()),
            Target::GroupExcept(group, ids) => (vec![c.group(&group)], ids),
            Target::Groups(groups) => (
                groups
                    .iter()
                    .filter(|g| !g.is_empty())
                    .map(|g| c.group(g))
                    .collect(),
                Vec::new(),
            ),
            Target::User(user) => (
                (!user.is_empty())
                    .then(|| c.user(&user))
                    .into_iter()
                    .collect(),
                Vec::new(),
            ),
            Target::Users(users) => (
                users
                    .iter()
                    .filter(|u| !u.is_empty())
                    .map(|u| c.user(u))
                    .collect(),
                Vec::new(),
            ),
            other => {
                // A target this backplane does not know yet: deliver what is local.
                return self.local.send_local(&other, &message);
            }
        };
        self.publish_invocation(channels, excluded, &message).await
    }

    async fn group_command(
        &self,
        action: GroupAction,
        connection_id: String,
        group: String,
    ) -> Result<(), Error> {
        let id = self.next_ack_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.acks).insert(id, tx);
        let payload = RedisGroupCommand {
            id,
            server: self.server_name.clone(),
            action,
            group,
            connection_id,
        }
        .encode();
        if let Err(err) = self
            .publish(&self.channels.group_commands(), &payload)
            .await
        {
            lock(&self.acks).remove(&id);
            tracing::error!(error = %err, "group command not sent: Redis is unavailable");
            return Err(err);
        }
        match tokio::time::timeout(self.ack_timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => {
                lock(&self.acks).remove(&id);
                Err(Error::timeout())
            }
        }
    }

    async fn add_to_group(&self, connection_id: String, group: String) -> Result<(), Error> {
        if self
            .local
            .add_local_to_group(&connection_id, &group)
            .is_some()
        {
            self.sync(Sub::Group(group)).await;
            return Ok(());
        }
        self.group_command(GroupAction::Add, connection_id, group)
            .await
    }

    async fn remove_from_group(&self, connection_id: String, group: String) -> Result<(), Error> {
        if self
            .local
            .remove_local_from_group(&connection_id, &group)
            .is_some()
        {
            self.sync(Sub::Group(group)).await;
            return Ok(());
        }
        self.group_command(GroupAction::Remove, connection_id, group)
            .await
    }

    async fn invoke_connection(
        &self,
        connection_id: String,
        method: String,
        args: Arc<dyn Arguments>,
        timeout: Duration,
    ) -> Result<CompletionResult, Error> {
        let timeout = self.client_result_timeout.unwrap_or(timeout);
        if self.local.connection(&connection_id).is_some() {
            return self
                .local
                .invoke_local(&connection_id, method, args, timeout)
                .await;
        }
        let invocation_id = new_invocation_id();
        let mut serialized = Vec::with_capacity(self.protocols.len());
        for protocol in &self.protocols {
            let arguments = args.encode(protocol.encoding())?;
            let message = HubMessage::Invocation(
                Invocation::new(method.clone(), arguments)
                    .with_invocation_id(invocation_id.clone()),
            );
            serialized.push((protocol.name().to_owned(), protocol.to_bytes(&message)?));
        }
        let payload = RedisInvocation {
            excluded: Vec::new(),
            serialized,
            client_result: Some((
                invocation_id.clone(),
                self.channels.return_channel().to_owned(),
            )),
        }
        .encode();
        let (tx, rx) = oneshot::channel();
        lock(&self.results).insert(invocation_id.clone(), tx);
        let channel = self.channels.connection(&connection_id);
        let receivers = match self.publish_counted(&channel, &payload).await {
            Ok(n) => n,
            Err(err) => {
                lock(&self.results).remove(&invocation_id);
                return Err(err);
            }
        };
        if receivers == 0 {
            lock(&self.results).remove(&invocation_id);
            return Err(Error::connection_not_found(connection_id));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(CompletionResult::Error(error))) if error == CONNECTION_DISCONNECTED => {
                Err(Error::disconnected(connection_id))
            }
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) | Err(_) => {
                lock(&self.results).remove(&invocation_id);
                Err(Error::timeout())
            }
        }
    }

    async fn on_connected(&self, connection: ConnectionHandle) {
        let id = connection.id().to_owned();
        let user = connection.user_id().map(str::to_owned);
        self.local.add_connection(connection);
        self.sync(Sub::Connection(id)).await;
        if let Some(user) = user {
            self.sync(Sub::User(user)).await;
        }
    }

    async fn on_disconnected(&self, connection: ConnectionHandle) {
        let groups = self.local.remove_connection(&connection);
        self.sync(Sub::Connection(connection.id().to_owned())).await;
        if let Some(user) = connection.user_id() {
            self.sync(Sub::User(user.to_owned())).await;
        }
        for group in groups {
            self.sync(Sub::Group(group)).await;
        }
    }

    /// Handles one message from Redis, in the order Redis delivered it.
    fn receive(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        let incoming = self.channels.parse(channel);
        let result = match incoming {
            Incoming::All => self.deliver(Target::All, payload),
            Incoming::Group(group) => self.deliver(Target::Group(group.to_owned()), payload),
            Incoming::User(user) => self.deliver(Target::User(user.to_owned()), payload),
            Incoming::Connection(id) => self.receive_for_connection(id, payload),
            Incoming::GroupCommands => self.receive_group_command(payload),
            Incoming::Ack => crate::protocol::decode_ack(payload).map(|id| {
                if let Some(tx) = lock(&self.acks).remove(&id) {
                    let _ = tx.send(());
                }
            }),
            Incoming::Return => self.receive_completion(payload),
            Incoming::Other => Ok(()),
        };
        if let Err(err) = result {
            tracing::warn!(%channel, error = %err, "dropping an unreadable backplane message");
        }
    }

    fn deliver(&self, target: Target, payload: &[u8]) -> Result<(), crate::protocol::DecodeError> {
        let invocation = RedisInvocation::decode(payload)?;
        let message = SerializedMessage::from_serialized(invocation.serialized);
        for connection in self.local.local_targets(&target) {
            if invocation.excluded.iter().any(|id| id == connection.id()) {
                continue;
            }
            if let Err(err) = connection.send(&message) {
                if !err.is_disconnected() {
                    tracing::warn!(connection_id = connection.id(), error = %err, "cannot deliver a backplane message");
                }
            }
        }
        Ok(())
    }

    fn receive_for_connection(
        self: &Arc<Self>,
        connection_id: &str,
        payload: &[u8],
    ) -> Result<(), crate::protocol::DecodeError> {
        let invocation = RedisInvocation::decode(payload)?;
        let Some((invocation_id, return_channel)) = invocation.client_result else {
            let message = SerializedMessage::from_serialized(invocation.serialized);
            if let Err(err) = self
                .local
                .send_local(&Target::Connection(connection_id.to_owned()), &message)
            {
                tracing::warn!(connection_id, error = %err, "cannot deliver a backplane message");
            }
            return Ok(());
        };
        let Some(connection) = self.local.connection(connection_id) else {
            return Ok(());
        };
        let shared = self.clone();
        let name = connection.protocol().name().to_owned();
        let bytes = invocation
            .serialized
            .into_iter()
            .find_map(|(protocol, bytes)| (protocol == name).then_some(bytes));
        tokio::spawn(async move {
            let result = match bytes {
                None => CompletionResult::Error(
                    "This message was received from another server that did not have the requested protocol available."
                        .to_owned(),
                ),
                Some(bytes) => {
                    let wait = connection.expect_completion(invocation_id.clone());
                    if connection.send_bytes(bytes).is_err() {
                        connection.forget_completion(&invocation_id);
                        CompletionResult::Error(CONNECTION_DISCONNECTED.to_owned())
                    } else {
                        let timeout = shared
                            .client_result_timeout
                            .unwrap_or(Duration::from_secs(30));
                        match tokio::time::timeout(timeout, wait).await {
                            Ok(Some(result)) => result,
                            Ok(None) => CompletionResult::Error(CONNECTION_DISCONNECTED.to_owned()),
                            Err(_) => {
                                connection.forget_completion(&invocation_id);
                                return;
                            }
                        }
                    }
                }
            };
            let protocol = connection.protocol();
            let completion = HubMessage::Completion(Completion::new(invocation_id, result));
            let bytes = match protocol.to_bytes(&completion) {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot serialize a client result");
                    return;
                }
            };
            let payload = RedisCompletion {
                protocol: protocol.name().to_owned(),
                bytes,
            }
            .encode();
            let _ = shared.publish_counted(&return_channel, &payload).await;
        });
        Ok(())
    }

    fn receive_group_command(
        self: &Arc<Self>,
        payload: &[u8],
    ) -> Result<(), crate::protocol::DecodeError> {
        let command = RedisGroupCommand::decode(payload)?;
        if self.local.connection(&command.connection_id).is_none() {
            // Not ours (or our own command for a remote connection).
            return Ok(());
        }
        let shared = self.clone();
        tokio::spawn(async move {
            let applied = match command.action {
                GroupAction::Add => shared
                    .local
                    .add_local_to_group(&command.connection_id, &command.group),
                GroupAction::Remove => shared
                    .local
                    .remove_local_from_group(&command.connection_id, &command.group),
            };
            if applied.is_some() {
                shared.sync(Sub::Group(command.group)).await;
            }
            // ASP.NET Core acks after applying, whether or not membership changed.
            let ack = crate::protocol::encode_ack(command.id);
            if let Err(err) = shared
                .publish(&shared.channels.ack_for(&command.server), &ack)
                .await
            {
                tracing::error!(error = %err, "cannot ack a group command");
            }
        });
        Ok(())
    }

    fn receive_completion(&self, payload: &[u8]) -> Result<(), crate::protocol::DecodeError> {
        let completion = RedisCompletion::decode(payload)?;
        let protocol: Arc<dyn HubProtocol> = match self
            .protocols
            .iter()
            .find(|p| p.name() == completion.protocol)
        {
            Some(p) => p.clone(),
            None if completion.protocol == "json" => Arc::new(JsonHubProtocol::new()),
            None if completion.protocol == "messagepack" => Arc::new(MessagePackHubProtocol::new()),
            None => {
                tracing::warn!(
                    protocol = %completion.protocol,
                    "client result in an unknown protocol: servers do not share their protocols"
                );
                return Ok(());
            }
        };
        let mut reader = MessageReader::new(protocol, None);
        reader.feed_bytes(completion.bytes);
        match reader.next_message() {
            Ok(Some(HubMessage::Completion(c))) => {
                if let Some(tx) = lock(&self.results).remove(&c.invocation_id) {
                    let _ = tx.send(c.result);
                }
                Ok(())
            }
            Ok(_) => Err(crate::protocol::DecodeError(
                "expected a completion message".to_owned(),
            )),
            Err(err) => Err(crate::protocol::DecodeError(err.to_string())),
        }
    }
}

impl Backplane for RedisBackplane {
    fn on_connected(&self, connection: ConnectionHandle) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            // Never refuses: while Redis is down the subscriptions wait for the reconnect
            // and the connection works locally.
            self.shared.on_connected(connection).await;
            Ok(())
        })
    }

    fn on_disconnected(&self, connection: ConnectionHandle) -> BoxFuture<'_, ()> {
        Box::pin(self.shared.on_disconnected(connection))
    }

    fn send(
        &self,
        target: Target,
        message: Arc<SerializedMessage>,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.shared.send(target, message))
    }

    fn add_to_group(
        &self,
        connection_id: String,
        group: String,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.shared.add_to_group(connection_id, group))
    }

    fn remove_from_group(
        &self,
        connection_id: String,
        group: String,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.shared.remove_from_group(connection_id, group))
    }

    fn invoke_connection(
        &self,
        connection_id: String,
        method: String,
        args: Arc<dyn Arguments>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, Error>> {
        Box::pin(
            self.shared
                .invoke_connection(connection_id, method, args, timeout),
        )
    }
}

/// Opens the publishing connection and the pub/sub connection.
async fn connect(
    client: &redis::Client,
) -> Result<(MultiplexedConnection, PubSubSink, PubSubStream), String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT);
    let publisher = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| "timed out connecting to Redis".to_owned())?
        .map_err(|e| e.to_string())?;
    let (sink, stream) = pubsub.split();
    Ok((publisher, sink, stream))
}

/// Records a subscription change while Redis is down; the reconnect applies it.
fn apply_offline(shared: &Shared, wanted: &mut HashSet<String>, sync: SubRequest) {
    let (channel, want) = shared.wanted(&sync.sub);
    if want {
        wanted.insert(channel);
    } else {
        wanted.remove(&channel);
    }
    let _ = sync.done.send(());
}

/// Applies a subscription change on a live connection.
async fn apply_online(
    shared: &Shared,
    wanted: &mut HashSet<String>,
    sink: &mut PubSubSink,
    sync: SubRequest,
) -> Result<(), String> {
    let (channel, want) = shared.wanted(&sync.sub);
    let result = if want && wanted.insert(channel.clone()) {
        tokio::time::timeout(CONNECT_TIMEOUT, sink.subscribe(&channel)).await
    } else if !want && wanted.remove(&channel) {
        tokio::time::timeout(CONNECT_TIMEOUT, sink.unsubscribe(&channel)).await
    } else {
        Ok(Ok(()))
    };
    let _ = sync.done.send(());
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot (un)subscribe '{channel}': {e}")),
        Err(_) => Err(format!("timed out (un)subscribing '{channel}'")),
    }
}

/// Keeps the Redis connections alive: connects, subscribes to the fixed channels and to
/// every channel local state calls for, hands messages to [`Shared::receive`], applies
/// subscription changes, and starts over when Redis goes away. Ends when the backplane is
/// dropped.
async fn supervise(
    shared: Weak<Shared>,
    client: redis::Client,
    mut rx: mpsc::UnboundedReceiver<SubRequest>,
) {
    let mut wanted: HashSet<String> = HashSet::new();
    let mut backoff = MIN_BACKOFF;
    let mut was_connected = false;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let connected = match connect(&client).await {
            Ok((publisher, mut sink, stream)) => {
                let mut channels = strong.channels.fixed();
                channels.extend(wanted.iter().cloned());
                match tokio::time::timeout(CONNECT_TIMEOUT, sink.subscribe(&channels)).await {
                    Ok(Ok(())) => Ok((publisher, sink, stream)),
                    Ok(Err(e)) => Err(format!("cannot subscribe: {e}")),
                    Err(_) => Err("timed out subscribing".to_owned()),
                }
            }
            Err(e) => Err(e),
        };
        let (publisher, mut sink, stream) = match connected {
            Ok(parts) => parts,
            Err(error) => {
                if strong.health.borrow().is_connected() || !was_connected {
                    tracing::warn!(%error, "cannot connect to Redis; retrying");
                }
                strong
                    .health
                    .send_replace(Health::Reconnecting { last_error: error });
                drop(strong);
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut sleep => break,
                        sync = rx.recv() => {
                            let Some(sync) = sync else { return };
                            let Some(strong) = shared.upgrade() else { return };
                            apply_offline(&strong, &mut wanted, sync);
                        }
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        *lock(&strong.publisher) = Some(publisher);
        strong.health.send_replace(Health::Connected);
        if was_connected {
            tracing::info!(subscriptions = wanted.len(), "Redis connection restored");
        } else {
            tracing::info!("connected to Redis");
        }
        was_connected = true;
        backoff = MIN_BACKOFF;
        drop(strong);

        let reader_shared = shared.clone();
        let mut reader = tokio::spawn(async move {
            let mut stream = stream;
            while let Some(message) = stream.next().await {
                let Some(shared) = reader_shared.upgrade() else {
                    return;
                };
                let Ok(channel) = std::str::from_utf8(message.get_channel_name().as_bytes()) else {
                    continue;
                };
                shared.receive(channel, message.get_payload_bytes());
            }
        });
        let error = loop {
            tokio::select! {
                _ = &mut reader => break "the Redis connection was lost".to_owned(),
                sync = rx.recv() => {
                    let Some(sync) = sync else {
                        reader.abort();
                        return;
                    };
                    let Some(strong) = shared.upgrade() else {
                        reader.abort();
                        return;
                    };
                    if let Err(error) = apply_online(&strong, &mut wanted, &mut sink, sync).await {
                        reader.abort();
                        break error;
                    }
                }
            }
        };
        let Some(strong) = shared.upgrade() else {
            return;
        };
        *lock(&strong.publisher) = None;
        tracing::error!(%error, "Redis backplane disconnected; reconnecting");
        strong
            .health
            .send_replace(Health::Reconnecting { last_error: error });
    }
}

/// Bytes of a framed message, for tests.
#[cfg(test)]
fn framed(protocol: &dyn HubProtocol, message: &HubMessage) -> bytes::Bytes {
    protocol.to_bytes(message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_and_invocation_ids_have_the_dotnet_shape() {
        let name = default_server_name();
        let (host, guid) = name.rsplit_once('_').unwrap();
        assert!(!host.is_empty());
        assert_eq!(guid.len(), 32);
        assert!(
            guid.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let id = new_invocation_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_invocation_id());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }

    #[tokio::test]
    async fn published_invocations_carry_every_protocol_framed() {
        let backplane = RedisBackplane::builder("redis://127.0.0.1:1/")
            .build("Hub")
            .unwrap();
        let message = SerializedMessage::invocation("Send", ("hi".to_owned(),));
        let serialized = message.serialize_all(&backplane.shared.protocols).unwrap();
        let names: Vec<&str> = serialized.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["json", "messagepack"]);
        assert_eq!(
            &serialized[0].1[..],
            b"{\"type\":1,\"target\":\"Send\",\"arguments\":[\"hi\"]}\x1e"
        );
        let msgpack = framed(
            &MessagePackHubProtocol::new(),
            &HubMessage::Invocation(Invocation::new(
                "Send",
                vec![
                    signalr_core::RawValue::encode(signalr_core::Encoding::MessagePack, "hi")
                        .unwrap(),
                ],
            )),
        );
        assert_eq!(serialized[1].1, msgpack);
    }

    #[tokio::test]
    async fn without_redis_sends_fail_fast_and_are_counted() {
        // Port 1 on loopback: nothing listens.
        let backplane = RedisBackplane::builder("redis://127.0.0.1:1/")
            .build("Hub")
            .unwrap();
        let message = Arc::new(SerializedMessage::invocation("Send", ()));
        let started = std::time::Instant::now();
        let err = backplane
            .send(Target::All, message.clone())
            .await
            .unwrap_err();
        assert!(err.is_backplane(), "{err}");
        let err = backplane
            .send(Target::Groups(vec!["a".into(), "b".into()]), message)
            .await
            .unwrap_err();
        assert!(err.is_backplane());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(backplane.lost_messages(), 3);
        assert!(!backplane.health().is_connected());
        // A send to an unknown connection needs Redis too.
        let err = backplane
            .add_to_group("nobody".into(), "g".into())
            .await
            .unwrap_err();
        assert!(err.is_backplane());
    }
}
