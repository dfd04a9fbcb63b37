//! The client's error type.

use std::fmt;

/// An error from the client: connecting, invoking, streaming.
///
/// Opaque; the `is_*` predicates tell the kinds apart and `Display` gives a message close
/// to the official clients' texts.
pub struct Error {
    kind: Box<ErrorKind>,
}

#[derive(Debug)]
pub(crate) enum ErrorKind {
    /// The hub method (or stream) failed on the server; the text is the server's.
    Hub(String),
    /// The connection is not connected.
    NotConnected,
    /// The connection closed while the operation waited.
    Closed(Option<String>),
    /// Negotiate failed.
    Negotiate(String),
    /// No transport could be started.
    Transport(String),
    /// The handshake failed.
    Handshake(String),
    /// The server sent something that does not parse.
    Protocol(signalr_core::ProtocolError),
    /// A value could not be serialized or deserialized.
    Serialization(String),
    /// An HTTP or socket error.
    Io(String),
    /// Timed out.
    Timeout(&'static str),
    /// The configuration is invalid.
    Config(String),
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self {
            kind: Box::new(kind),
        }
    }

    /// The server reported an error for the invocation or stream; [`hub_message`](Self::hub_message)
    /// has its text.
    pub fn is_hub(&self) -> bool {
        matches!(*self.kind, ErrorKind::Hub(_))
    }

    /// The server's error text, for [`is_hub`](Self::is_hub) errors.
    pub fn hub_message(&self) -> Option<&str> {
        match &*self.kind {
            ErrorKind::Hub(m) => Some(m),
            _ => None,
        }
    }

    /// The connection was not connected.
    pub fn is_not_connected(&self) -> bool {
        matches!(*self.kind, ErrorKind::NotConnected)
    }

    /// The connection closed (or was stopped) before the operation finished.
    pub fn is_closed(&self) -> bool {
        matches!(*self.kind, ErrorKind::Closed(_))
    }

    /// Negotiation failed (HTTP error, refusal, too many redirects).
    pub fn is_negotiate(&self) -> bool {
        matches!(*self.kind, ErrorKind::Negotiate(_))
    }

    /// No transport could be started, or the handshake failed.
    pub fn is_transport(&self) -> bool {
        matches!(
            *self.kind,
            ErrorKind::Transport(_) | ErrorKind::Handshake(_)
        )
    }

    /// Something timed out (the handshake, the server's silence).
    pub fn is_timeout(&self) -> bool {
        matches!(*self.kind, ErrorKind::Timeout(_))
    }

    /// A value could not be serialized or deserialized, or the server's data was invalid.
    pub fn is_serialization(&self) -> bool {
        matches!(
            *self.kind,
            ErrorKind::Serialization(_) | ErrorKind::Protocol(_)
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("signalr_client::Error")
            .field(&self.kind)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::Hub(message) => f.write_str(message),
            ErrorKind::NotConnected => {
                f.write_str("Cannot send data if the connection is not in the 'Connected' State.")
            }
            ErrorKind::Closed(None) => {
                f.write_str("Invocation canceled due to the underlying connection being closed.")
            }
            ErrorKind::Closed(Some(reason)) => {
                write!(
                    f,
                    "Invocation canceled due to the underlying connection being closed: {reason}"
                )
            }
            ErrorKind::Negotiate(message) => write!(
                f,
                "Failed to complete negotiation with the server: {message}"
            ),
            ErrorKind::Transport(message) => {
                write!(f, "Unable to connect to the server: {message}")
            }
            ErrorKind::Handshake(message) => {
                write!(f, "Server returned handshake error: {message}")
            }
            ErrorKind::Protocol(err) => write!(f, "Invalid data from the server: {err}"),
            ErrorKind::Serialization(message) => write!(f, "Serialization failed: {message}"),
            ErrorKind::Io(message) => f.write_str(message),
            ErrorKind::Timeout(what) => f.write_str(what),
            ErrorKind::Config(message) => write!(f, "Invalid configuration: {message}"),
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

impl From<reqwest::Error> for Error {
    fn from(err: reqwest::Error) -> Self {
        Self::new(ErrorKind::Io(err.to_string()))
    }
}
