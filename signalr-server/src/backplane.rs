//! The backplane seam: how messages reach connections, here and on other servers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use signalr_core::{CompletionResult, HubMessage, Invocation};

use crate::args::{Arguments, SerializedMessage};
use crate::connection::ConnectionHandle;
use crate::error::{Error, ErrorKind};

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every connection of the hub.
    All,
    /// Every connection except these ids.
    AllExcept(Vec<String>),
    /// One connection.
    Connection(String),
    /// Several connections.
    Connections(Vec<String>),
    /// Every member of a group.
    Group(String),
    /// Every member of any of these groups (each connection once).
    Groups(Vec<String>),
    /// Every member of a group except these connection ids.
    GroupExcept(String, Vec<String>),
    /// Every connection of a user.
    User(String),
    /// Every connection of any of these users.
    Users(Vec<String>),
}

/// Routes a hub's messages to its connections: the in-memory [`InMemoryBackplane`] on one
/// server, or a backplane such as `signalr-redis` across servers. ASP.NET Core calls this a
/// hub lifetime manager.
///
/// One backplane serves one hub. The server calls [`on_connected`](Self::on_connected) after a
/// connection's handshake and [`on_disconnected`](Self::on_disconnected) when it ends; every
/// `Clients`/`Groups` call of hub code goes through the other methods. Deliver with
/// [`ConnectionHandle::send`], which serializes a [`SerializedMessage`] once per protocol
/// whatever the number of recipients, and never waits on a slow connection.
pub trait Backplane: Send + Sync + 'static {
    /// A connection of this server completed its handshake.
    fn on_connected(&self, connection: ConnectionHandle) -> BoxFuture<'_, Result<(), Error>>;

    /// A connection of this server ended: forget it and its group memberships.
    fn on_disconnected(&self, connection: ConnectionHandle) -> BoxFuture<'_, ()>;

    /// Delivers `message` to every connection `target` designates, wherever it is.
    fn send(
        &self,
        target: Target,
        message: Arc<SerializedMessage>,
    ) -> BoxFuture<'_, Result<(), Error>>;

    /// Adds a connection, wherever it is, to a group. Unknown connections are ignored on a
    /// single server.
    fn add_to_group(
        &self,
        connection_id: String,
        group: String,
    ) -> BoxFuture<'_, Result<(), Error>>;

    /// Removes a connection, wherever it is, from a group.
    fn remove_from_group(
        &self,
        connection_id: String,
        group: String,
    ) -> BoxFuture<'_, Result<(), Error>>;

    /// Invokes `method` on one connection, wherever it is, and waits for its completion (a
    /// client result) at most `timeout`.
    fn invoke_connection(
        &self,
        connection_id: String,
        method: String,
        args: Arc<dyn Arguments>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, Error>>;
}

#[derive(Debug, Default)]
struct State {
    connections: HashMap<String, ConnectionHandle>,
    /// Group name to members, by connection id.
    groups: HashMap<String, HashMap<String, ConnectionHandle>>,
    /// Connection id to the groups it is in, for cleanup.
    memberships: HashMap<String, HashSet<String>>,
    /// User id to its connections.
    users: HashMap<String, Vec<ConnectionHandle>>,
}

/// The default backplane: every connection is on this server.
///
/// Other backplanes can use it for their local half: [`local_targets`](Self::local_targets),
/// [`connection`](Self::connection), [`add_local_to_group`](Self::add_local_to_group) and
/// [`remove_local_from_group`](Self::remove_local_from_group).
#[derive(Debug, Default)]
pub struct InMemoryBackplane {
    state: RwLock<State>,
}

impl InMemoryBackplane {
    /// An empty backplane.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Each write is a handful of map operations that cannot panic halfway in practice;
        // a poisoned lock still holds usable maps.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a local connection.
    pub fn add_connection(&self, connection: ConnectionHandle) {
        let mut state = self.write();
        if let Some(user) = connection.user_id() {
            state
                .users
                .entry(user.to_owned())
                .or_default()
                .push(connection.clone());
        }
        state
            .connections
            .insert(connection.id().to_owned(), connection);
    }

    /// Forgets a local connection and its memberships; returns the groups it was in.
    pub fn remove_connection(&self, connection: &ConnectionHandle) -> Vec<String> {
        let mut state = self.write();
        state.connections.remove(connection.id());
        if let Some(user) = connection.user_id() {
            if let Some(list) = state.users.get_mut(user) {
                list.retain(|c| !c.same(connection));
                if list.is_empty() {
                    state.users.remove(user);
                }
            }
        }
        let groups: Vec<String> = state
            .memberships
            .remove(connection.id())
            .map(|g| g.into_iter().collect())
            .unwrap_or_default();
        for group in &groups {
            if let Some(members) = state.groups.get_mut(group) {
                members.remove(connection.id());
                if members.is_empty() {
                    state.groups.remove(group);
                }
            }
        }
        groups
    }

    /// The local connection with this id.
    pub fn connection(&self, connection_id: &str) -> Option<ConnectionHandle> {
        self.read().connections.get(connection_id).cloned()
    }

    /// The number of local connections.
    pub fn connection_count(&self) -> usize {
        self.read().connections.len()
    }

    /// Whether any local connection of `user` exists.
    pub fn has_user(&self, user: &str) -> bool {
        self.read().users.contains_key(user)
    }

    /// Adds a local connection to a group. Returns `Some(first)` when the connection is
    /// local (`first` is true when it is the group's first local member), `None` otherwise.
    pub fn add_local_to_group(&self, connection_id: &str, group: &str) -> Option<bool> {
        let mut state = self.write();
        let connection = state.connections.get(connection_id)?.clone();
        let members = state.groups.entry(group.to_owned()).or_default();
        let first = members.is_empty();
        members.insert(connection_id.to_owned(), connection);
        state
            .memberships
            .entry(connection_id.to_owned())
            .or_default()
            .insert(group.to_owned());
        Some(first)
    }

    /// Removes a local connection from a group. Returns `Some(last)` when the connection
    /// is local (`last` is true when the group has no local member left), `None` otherwise.
    pub fn remove_local_from_group(&self, connection_id: &str, group: &str) -> Option<bool> {
        let mut state = self.write();
        if !state.connections.contains_key(connection_id) {
            return None;
        }
        if let Some(groups) = state.memberships.get_mut(connection_id) {
            groups.remove(group);
        }
        let last = match state.groups.get_mut(group) {
            Some(members) => {
                members.remove(connection_id);
                members.is_empty()
            }
            None => true,
        };
        if last {
            state.groups.remove(group);
        }
        Some(last)
    }

    /// The local connections `target` designates, each once.
    pub fn local_targets(&self, target: &Target) -> Vec<ConnectionHandle> {
        let state = self.read();
        let except = |ids: &[String], c: &ConnectionHandle| !ids.iter().any(|id| id == c.id());
        match target {
            Target::All => state.connections.values().cloned().collect(),
            Target::AllExcept(ids) => state
                .connections
                .values()
                .filter(|c| except(ids, c))
                .cloned()
                .collect(),
            Target::Connection(id) => state.connections.get(id).cloned().into_iter().collect(),
            Target::Connections(ids) => {
                let mut seen = HashSet::new();
                ids.iter()
                    .filter(|id| seen.insert(id.as_str()))
                    .filter_map(|id| state.connections.get(id).cloned())
                    .collect()
            }
            Target::Group(group) => state
                .groups
                .get(group)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            Target::GroupExcept(group, ids) => state
                .groups
                .get(group)
                .map(|m| m.values().filter(|c| except(ids, c)).cloned().collect())
                .unwrap_or_default(),
            Target::Groups(groups) => {
                let mut seen = HashSet::new();
                groups
                    .iter()
                    .filter_map(|g| state.groups.get(g))
                    .flat_map(|m| m.values())
                    .filter(|c| seen.insert(c.id().to_owned()))
                    .cloned()
                    .collect()
            }
            Target::User(user) => state.users.get(user).cloned().unwrap_or_default(),
            Target::Users(users) => {
                let mut seen = HashSet::new();
                users
                    .iter()
                    .filter_map(|u| state.users.get(u))
                    .flatten()
                    .filter(|c| seen.insert(c.id().to_owned()))
                    .cloned()
                    .collect()
            }
        }
    }

    /// Delivers `message` to the local connections `target` designates. A recipient too
    /// slow to take it is closed; the others still get it.
    pub fn send_local(&self, target: &Target, message: &SerializedMessage) -> Result<(), Error> {
        for connection in self.local_targets(target) {
            match connection.send(message) {
                Ok(()) => {}
                Err(err) if err.is_disconnected() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Invokes a client result on a local connection.
    pub async fn invoke_local(
        &self,
        connection_id: &str,
        method: String,
        args: Arc<dyn Arguments>,
        timeout: Duration,
    ) -> Result<CompletionResult, Error> {
        let connection = self
            .connection(connection_id)
            .ok_or_else(|| Error::new(ErrorKind::ConnectionNotFound(connection_id.to_owned())))?;
        let inner = &connection.0;
        let (id, rx) = inner.register_result();
        let arguments = args.encode(inner.protocol.encoding())?;
        let message = HubMessage::Invocation(
            Invocation::new(method, arguments).with_invocation_id(id.clone()),
        );
        let bytes = inner.protocol.to_bytes(&message)?;
        if let Err(err) = inner.send_bytes(bytes) {
            inner.forget_result(&id);
            return Err(err);
        }
        let outcome = tokio::select! {
            result = rx => result.map_err(|_| Error::new(ErrorKind::Disconnected(connection_id.to_owned()))),
            () = tokio::time::sleep(timeout) => Err(Error::new(ErrorKind::Timeout)),
        };
        inner.forget_result(&id);
        outcome
    }
}

impl Backplane for InMemoryBackplane {
    fn on_connected(&self, connection: ConnectionHandle) -> BoxFuture<'_, Result<(), Error>> {
        self.add_connection(connection);
        Box::pin(async { Ok(()) })
    }

    fn on_disconnected(&self, connection: ConnectionHandle) -> BoxFuture<'_, ()> {
        self.remove_connection(&connection);
        Box::pin(async {})
    }

    fn send(
        &self,
        target: Target,
        message: Arc<SerializedMessage>,
    ) -> BoxFuture<'_, Result<(), Error>> {
        let result = self.send_local(&target, &message);
        Box::pin(async move { result })
    }

    fn add_to_group(
        &self,
        connection_id: String,
        group: String,
    ) -> BoxFuture<'_, Result<(), Error>> {
        self.add_local_to_group(&connection_id, &group);
        Box::pin(async { Ok(()) })
    }

    fn remove_from_group(
        &self,
        connection_id: String,
        group: String,
    ) -> BoxFuture<'_, Result<(), Error>> {
        self.remove_local_from_group(&connection_id, &group);
        Box::pin(async { Ok(()) })
    }

    fn invoke_connection(
        &self,
        connection_id: String,
        method: String,
        args: Arc<dyn Arguments>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, Error>> {
        Box::pin(async move {
            self.invoke_local(&connection_id, method, args, timeout)
                .await
        })
    }
}
