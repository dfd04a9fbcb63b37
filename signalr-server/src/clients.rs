//! Sending to clients and managing groups, from hub methods and from outside them.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use signalr_core::{CompletionResult, Encoding, RawValue};

use crate::args::{Arguments, SerializedMessage};
use crate::backplane::Target;
use crate::error::{Error, ErrorKind};
use crate::hub::HubShared;

/// Sends to the hub's clients from anywhere: a background task, an HTTP handler, another
/// hub. Cheap to clone.
///
/// ```no_run
/// # async fn example(hub: signalr_server::Hub) -> Result<(), signalr_server::Error> {
/// let context = hub.context();
/// context.clients().all().send("Notice", ("maintenance at 22:00",)).await?;
/// context.clients().group("admins").send("Load", (0.93,)).await?;
/// context.groups().add_to_group("some-connection-id", "admins").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HubContext {
    pub(crate) shared: Arc<HubShared>,
}

impl std::fmt::Debug for HubContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubContext")
            .field("hub", &self.shared.name)
            .finish()
    }
}

impl HubContext {
    /// The hub's clients.
    pub fn clients(&self) -> HubClients {
        HubClients {
            shared: self.shared.clone(),
        }
    }

    /// The hub's groups.
    pub fn groups(&self) -> Groups {
        Groups {
            shared: self.shared.clone(),
        }
    }
}

/// Every way to address the hub's clients. Inside a hub method, [`Clients`] adds the
/// caller-relative targets.
#[derive(Clone)]
pub struct HubClients {
    pub(crate) shared: Arc<HubShared>,
}

impl std::fmt::Debug for HubClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClients")
            .field("hub", &self.shared.name)
            .finish()
    }
}

fn owned(ids: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    ids.into_iter().map(Into::into).collect()
}

impl HubClients {
    fn proxy(&self, target: Target) -> ClientProxy {
        ClientProxy {
            shared: self.shared.clone(),
            target,
        }
    }

    /// Every connection.
    pub fn all(&self) -> ClientProxy {
        self.proxy(Target::All)
    }

    /// Every connection except these.
    pub fn all_except(
        &self,
        connection_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClientProxy {
        self.proxy(Target::AllExcept(owned(connection_ids)))
    }

    /// One connection, which can also be invoked for a result.
    pub fn client(&self, connection_id: impl Into<String>) -> SingleClientProxy {
        SingleClientProxy {
            shared: self.shared.clone(),
            connection_id: connection_id.into(),
        }
    }

    /// Several connections.
    pub fn clients(
        &self,
        connection_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClientProxy {
        self.proxy(Target::Connections(owned(connection_ids)))
    }

    /// A group's members.
    pub fn group(&self, group: impl Into<String>) -> ClientProxy {
        self.proxy(Target::Group(group.into()))
    }

    /// The members of any of these groups, each connection once.
    pub fn groups(&self, groups: impl IntoIterator<Item = impl Into<String>>) -> ClientProxy {
        self.proxy(Target::Groups(owned(groups)))
    }

    /// A group's members except these connections.
    pub fn group_except(
        &self,
        group: impl Into<String>,
        connection_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClientProxy {
        self.proxy(Target::GroupExcept(group.into(), owned(connection_ids)))
    }

    /// Every connection of a user.
    pub fn user(&self, user_id: impl Into<String>) -> ClientProxy {
        self.proxy(Target::User(user_id.into()))
    }

    /// Every connection of any of these users.
    pub fn users(&self, user_ids: impl IntoIterator<Item = impl Into<String>>) -> ClientProxy {
        self.proxy(Target::Users(owned(user_ids)))
    }
}

/// The hub's clients as seen from a hub method: every [`HubClients`] target plus the
/// caller-relative ones.
#[derive(Clone)]
pub struct Clients {
    pub(crate) hub: HubClients,
    pub(crate) caller: String,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("caller", &self.caller)
            .finish()
    }
}

impl std::ops::Deref for Clients {
    type Target = HubClients;
    fn deref(&self) -> &HubClients {
        &self.hub
    }
}

impl Clients {
    /// The connection that made the current call.
    pub fn caller(&self) -> SingleClientProxy {
        self.hub.client(self.caller.clone())
    }

    /// Every connection except the caller.
    pub fn others(&self) -> ClientProxy {
        self.hub.all_except([self.caller.clone()])
    }

    /// A group's members except the caller.
    pub fn others_in_group(&self, group: impl Into<String>) -> ClientProxy {
        self.hub.group_except(group, [self.caller.clone()])
    }
}

/// A set of clients to send to.
#[derive(Clone)]
pub struct ClientProxy {
    shared: Arc<HubShared>,
    target: Target,
}

impl std::fmt::Debug for ClientProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProxy")
            .field("target", &self.target)
            .finish()
    }
}

fn check_target(target: &Target) -> Result<(), Error> {
    let empty_group = match target {
        Target::Group(g) | Target::GroupExcept(g, _) => g.is_empty(),
        Target::Groups(gs) => gs.iter().any(String::is_empty),
        _ => false,
    };
    if empty_group {
        return Err(Error::new(ErrorKind::InvalidArgument(
            "Cannot send to an empty group name.".into(),
        )));
    }
    Ok(())
}

impl ClientProxy {
    /// Calls `method` on every client of the set, with `args` (a tuple of serializable
    /// values, or `()`). The message is serialized once per protocol in use, whatever the
    /// number of recipients. A recipient too slow to take it is disconnected; the others
    /// still get it.
    pub async fn send(&self, method: &str, args: impl Arguments) -> Result<(), Error> {
        check_target(&self.target)?;
        let message = Arc::new(SerializedMessage::invocation(method, args));
        self.shared
            .backplane
            .send(self.target.clone(), message)
            .await
    }

    /// Sends an already built message (for forwarding).
    pub async fn send_message(&self, message: Arc<SerializedMessage>) -> Result<(), Error> {
        check_target(&self.target)?;
        self.shared
            .backplane
            .send(self.target.clone(), message)
            .await
    }

    /// Who this proxy addresses.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// One client: send to it, or invoke it and wait for its result.
#[derive(Clone)]
pub struct SingleClientProxy {
    shared: Arc<HubShared>,
    connection_id: String,
}

impl std::fmt::Debug for SingleClientProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleClientProxy")
            .field("connection_id", &self.connection_id)
            .finish()
    }
}

impl SingleClientProxy {
    /// Calls `method` on the client without waiting for an answer.
    pub async fn send(&self, method: &str, args: impl Arguments) -> Result<(), Error> {
        let message = Arc::new(SerializedMessage::invocation(method, args));
        self.shared
            .backplane
            .send(Target::Connection(self.connection_id.clone()), message)
            .await
    }

    /// Invokes `method` on the client and waits for the value its handler returns (a
    /// client result), at most the hub's client-result timeout.
    ///
    /// Fails with [`Error::is_client`] when the client's handler failed or the client has
    /// no handler for `method` (the official clients then answer `Client didn't provide a
    /// result.`), [`Error::is_connection_not_found`] when no such connection exists,
    /// [`Error::is_disconnected`] when it closed while waiting, [`Error::is_timeout`] on
    /// timeout.
    pub async fn invoke<T: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Arguments,
    ) -> Result<T, Error> {
        let completion = self
            .shared
            .backplane
            .invoke_connection(
                self.connection_id.clone(),
                method.to_owned(),
                Arc::new(args),
                self.shared.options.client_result_timeout,
            )
            .await?;
        match completion {
            CompletionResult::Value(value) => Ok(value.deserialize_owned()?),
            CompletionResult::Void => Ok(RawValue::null(Encoding::Json).deserialize_owned()?),
            CompletionResult::Error(error) => Err(Error::client(error)),
        }
    }

    /// The connection id.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

/// Adds connections to groups and removes them, wherever the connections are.
#[derive(Clone)]
pub struct Groups {
    pub(crate) shared: Arc<HubShared>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("hub", &self.shared.name)
            .finish()
    }
}

impl Groups {
    /// Adds a connection to a group. Adding twice is harmless; membership ends when the
    /// connection does.
    pub async fn add_to_group(
        &self,
        connection_id: impl Into<String>,
        group: impl Into<String>,
    ) -> Result<(), Error> {
        let group = group.into();
        if group.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument(
                "Group name cannot be empty.".into(),
            )));
        }
        self.shared
            .backplane
            .add_to_group(connection_id.into(), group)
            .await
    }

    /// Removes a connection from a group.
    pub async fn remove_from_group(
        &self,
        connection_id: impl Into<String>,
        group: impl Into<String>,
    ) -> Result<(), Error> {
        let group = group.into();
        if group.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument(
                "Group name cannot be empty.".into(),
            )));
        }
        self.shared
            .backplane
            .remove_from_group(connection_id.into(), group)
            .await
    }
}
