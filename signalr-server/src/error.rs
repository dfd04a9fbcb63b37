//! Errors: [`Error`] for the server's own operations, [`HubError`] for what hub methods fail
//! with.

use std::fmt;

/// An error from the server: sending to clients, invoking a client, managing groups.
///
/// Opaque; the `is_*` predicates tell the kinds apart.
pub struct Error {
    kind: Box<ErrorKind>,
}

#[derive(Debug)]
pub(crate) enum ErrorKind {
    /// The target connection is not connected (here or, through a backplane, anywhere).
    ConnectionNotFound(String),
    /// The connection closed while the operation waited.
    Disconnected(String),
    /// The operation did not finish in time.
    Timeout,
    /// The client answered a client-result invocation with an error.
    Client(String),
    /// A value could not be serialized or deserialized.
    Serialization(String),
    /// The backplane failed.
    Backplane(String),
    /// A protocol-level failure.
    Protocol(signalr_core::ProtocolError),
    /// An argument was not acceptable.
    InvalidArgument(String),
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self {
            kind: Box::new(kind),
        }
    }

    /// A backplane failure, for backplane implementations outside this crate.
    pub fn backplane(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Backplane(message.into()))
    }

    /// An unknown connection, for backplane implementations outside this crate.
    pub fn connection_not_found(connection_id: impl Into<String>) -> Self {
        Self::new(ErrorKind::ConnectionNotFound(connection_id.into()))
    }

    /// A connection that closed during the operation, for backplane implementations.
    pub fn disconnected(connection_id: impl Into<String>) -> Self {
        Self::new(ErrorKind::Disconnected(connection_id.into()))
    }

    /// An error a client returned from a client-result invocation.
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Client(message.into()))
    }

    /// A timeout, for backplane implementations.
    pub fn timeout() -> Self {
        Self::new(ErrorKind::Timeout)
    }

    /// The target connection does not exist.
    pub fn is_connection_not_found(&self) -> bool {
        matches!(*self.kind, ErrorKind::ConnectionNotFound(_))
    }

    /// The connection closed while the operation waited.
    pub fn is_disconnected(&self) -> bool {
        matches!(*self.kind, ErrorKind::Disconnected(_))
    }

    /// The operation timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(*self.kind, ErrorKind::Timeout)
    }

    /// The client answered with an error; [`client_message`](Self::client_message) has it.
    pub fn is_client(&self) -> bool {
        matches!(*self.kind, ErrorKind::Client(_))
    }

    /// The error text the client sent, unchanged.
    pub fn client_message(&self) -> Option<&str> {
        match &*self.kind {
            ErrorKind::Client(m) => Some(m),
            _ => None,
        }
    }

    /// A value could not be serialized or deserialized.
    pub fn is_serialization(&self) -> bool {
        matches!(
            *self.kind,
            ErrorKind::Serialization(_) | ErrorKind::Protocol(_)
        )
    }

    /// The backplane failed.
    pub fn is_backplane(&self) -> bool {
        matches!(*self.kind, ErrorKind::Backplane(_))
    }

    /// An argument (such as an empty group name) was not acceptable.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(*self.kind, ErrorKind::InvalidArgument(_))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("signalr_server::Error")
            .field(&self.kind)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::ConnectionNotFound(id) => write!(f, "Connection '{id}' does not exist."),
            ErrorKind::Disconnected(id) => write!(f, "Connection '{id}' disconnected."),
            ErrorKind::Timeout => f.write_str("The operation timed out."),
            ErrorKind::Client(message) => f.write_str(message),
            ErrorKind::Serialization(message) => write!(f, "Serialization failed: {message}"),
            ErrorKind::Backplane(message) => write!(f, "Backplane error: {message}"),
            ErrorKind::Protocol(err) => write!(f, "Protocol error: {err}"),
            ErrorKind::InvalidArgument(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<signalr_core::ProtocolError> for Error {
    fn from(err: signalr_core::ProtocolError) -> Self {
        Self::new(ErrorKind::Protocol(err))
    }
}

impl From<signalr_core::ValueError> for Error {
    fn from(err: signalr_core::ValueError) -> Self {
        Self::new(ErrorKind::Serialization(err.to_string()))
    }
}

/// What a hub method (or stream, or lifecycle handler) fails with.
///
/// The client sees ASP.NET Core's texts: `An unexpected error occurred invoking 'M' on the
/// server.`, followed by ` {Type}: {message}` when the error is a [`HubError::new`] (ASP.NET
/// Core's `HubException`, always shown) or when detailed errors are on.
///
/// Any `std::error::Error` converts into a `HubError` with `?`; its type's name becomes the
/// `{Type}` part. Like `anyhow::Error`, `HubError` itself does not implement
/// `std::error::Error`, which is what makes that conversion possible.
///
/// ```
/// use signalr_server::HubError;
///
/// let shown = HubError::new("Room is full");
/// assert_eq!(shown.detail(), "HubException: Room is full");
/// let hidden = HubError::exception("InvalidOperationException", "db down");
/// assert_eq!(hidden.detail(), "InvalidOperationException: db down");
/// assert!(!hidden.is_hub_exception());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HubError {
    type_name: String,
    message: String,
    hub_exception: bool,
}

impl HubError {
    /// An error whose message the client always sees (ASP.NET Core's `HubException`).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            type_name: "HubException".to_owned(),
            message: message.into(),
            hub_exception: true,
        }
    }

    /// An error of the named type, shown to the client only with detailed errors on (as an
    /// exception other than `HubException` is in ASP.NET Core).
    pub fn exception(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            type_name: type_name.into(),
            message: message.into(),
            hub_exception: false,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The type name shown in detailed errors.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// Whether the client always sees the message.
    pub fn is_hub_exception(&self) -> bool {
        self.hub_exception
    }

    /// `{Type}: {message}`, as appended to error texts.
    pub fn detail(&self) -> String {
        format!("{}: {}", self.type_name, self.message)
    }

    /// ASP.NET Core's `ErrorMessageHelper.BuildErrorMessage`: `prefix`, plus the detail when
    /// this is a hub exception or `detailed` is on.
    pub(crate) fn build_message(&self, prefix: &str, detailed: bool) -> String {
        if self.hub_exception || detailed {
            format!("{prefix} {}", self.detail())
        } else {
            prefix.to_owned()
        }
    }
}

impl fmt::Debug for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubError({})", self.detail())
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

impl<E: std::error::Error> From<E> for HubError {
    fn from(err: E) -> Self {
        let full = std::any::type_name::<E>();
        let base = full.split('<').next().unwrap_or(full);
        let short = base.rsplit("::").next().unwrap_or(base);
        HubError::exception(short, err.to_string())
    }
}
