//! Errors raised while reading or writing SignalR protocol data.

use thiserror::Error;

/// An error from parsing or writing hub messages, handshakes or negotiate payloads.
///
/// The `Display` text of each variant is the text ASP.NET Core uses for the same condition
/// (usually an `InvalidDataException` message), so a server can put it in a Close message or
/// a log line that looks the same as the .NET server's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A message did not fit in the configured maximum message size.
    #[error(
        "The maximum message size of {limit}B was exceeded. The message size can be configured in AddHubOptions."
    )]
    MessageTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A MessagePack length prefix declared a message of 2 GiB or more, or was malformed.
    #[error("Messages over 2GB in size are not supported.")]
    LengthPrefixTooLarge,
    /// The input ended in the middle of a message.
    #[error("Connection terminated while reading a message.")]
    Truncated,
    /// A required JSON property is absent.
    #[error("Missing required property '{0}'.")]
    MissingProperty(&'static str),
    /// A JSON property has the wrong JSON type.
    #[error("Expected '{property}' to be of type {expected}.")]
    UnexpectedType {
        /// The property's name.
        property: &'static str,
        /// The JSON type it must have (`Number`, `String`, `Array`, `Object`, ...).
        expected: &'static str,
    },
    /// A Completion carries both an error and a result.
    #[error("The 'error' and 'result' properties are mutually exclusive.")]
    ErrorAndResult,
    /// A header value is not a string.
    #[error("Expected header '{0}' to be of type String.")]
    InvalidHeaderValue(String),
    /// A MessagePack header has a null or empty key.
    #[error("Null or empty key in header.")]
    EmptyHeader,
    /// A MessagePack header has a null or empty value.
    #[error("Null or empty value in header.")]
    EmptyHeaderValue,
    /// A MessagePack header key or value is not a string (`part` is `Key` or `Value`).
    #[error("Reading 'headers[{index}].{part}' as String failed.")]
    MessagePackHeaderField {
        /// The header's position in the map, from 0.
        index: usize,
        /// `Key` or `Value`.
        part: &'static str,
    },
    /// A MessagePack `streamIds` entry is nil or empty.
    #[error("Null or empty value in streamIds received.")]
    EmptyStreamId,
    /// A `streamIds` entry is null.
    #[error("Null value for 'streamIds' is not valid.")]
    NullStreamId,
    /// The bytes are not well-formed JSON.
    #[error("Error reading JSON.")]
    InvalidJson,
    /// A JSON value has the wrong kind: a message, handshake or negotiate response that is
    /// not an object, or a negotiate list that is not an array. `token` is System.Text.Json's
    /// name for the value's first token (`Null`, `True`, `False`, `Number`, `String`,
    /// `Array`, `Object`); `expected` is `Object` or `Array`.
    #[error("Unexpected JSON Token Type '{token}'. Expected a JSON {expected}.")]
    UnexpectedJsonToken {
        /// The kind of value found.
        token: &'static str,
        /// The kind of value required: `Object` or `Array`.
        expected: &'static str,
    },
    /// A MessagePack field could not be read as the type it must have.
    #[error("Reading '{field}' as {expected} failed.")]
    MessagePackField {
        /// The field's name, as ASP.NET Core names it (`messageType`, `invocationId`, ...).
        field: &'static str,
        /// The type it must have (`Int32`, `String`, `Boolean`, ...).
        expected: &'static str,
    },
    /// A MessagePack headers map could not be read.
    #[error("Reading map length for 'headers' failed.")]
    MessagePackHeaders,
    /// A MessagePack Invocation or StreamInvocation has a null or empty target.
    #[error("Null or empty target for {0} message.")]
    EmptyTarget(&'static str),
    /// A MessagePack message that needs an invocation id has a null or empty one.
    #[error("Null or empty invocation ID for {0} message.")]
    EmptyInvocationId(&'static str),
    /// A MessagePack Completion has a result kind other than 1, 2 or 3.
    #[error("Invalid invocation result kind.")]
    InvalidResultKind,
    /// A MessagePack message is not an array, or its array is too short for its type.
    #[error("Invalid {0} message: too few elements.")]
    TooFewElements(&'static str),
    /// A MessagePack value is malformed (bad marker, truncated data, invalid UTF-8).
    #[error("Invalid MessagePack data.")]
    InvalidMessagePack,
    /// The handshake request lacks a required property; the content is echoed as ASP.NET Core does.
    #[error("Missing required property '{property}'. Message content: {content}")]
    HandshakeMissingProperty {
        /// `protocol` or `version`.
        property: &'static str,
        /// The handshake's JSON text.
        content: String,
    },
    /// A handshake response from a server carried a `type` property, so it is a hub message.
    #[error("Expected a handshake response from the server.")]
    NotAHandshakeResponse,
    /// A negotiate response is malformed; the inner text says how.
    #[error("Invalid negotiation response received. {0}")]
    InvalidNegotiateResponse(String),
    /// A negotiate response came from a legacy ASP.NET (not Core) SignalR server.
    #[error(
        "Detected a connection attempt to an ASP.NET SignalR Server. This client only supports connecting to an ASP.NET Core SignalR Server. See https://aka.ms/signalr-core-differences for details."
    )]
    LegacyServer,
    /// An argument, item or result could not be serialized.
    #[error("Failed to serialize a value: {0}")]
    Serialize(String),
    /// A value could not be converted between JSON and MessagePack.
    #[error("Failed to transcode a value: {0}")]
    Transcode(String),
}

/// An error from deserializing a [`RawValue`](crate::RawValue) into a Rust type, or
/// serializing a Rust type into one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ValueError {
    message: String,
}

impl ValueError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The underlying serde error text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<serde_json::Error> for ValueError {
    fn from(err: serde_json::Error) -> Self {
        Self::new(err.to_string())
    }
}

impl From<rmp_serde::decode::Error> for ValueError {
    fn from(err: rmp_serde::decode::Error) -> Self {
        Self::new(err.to_string())
    }
}

impl From<rmp_serde::encode::Error> for ValueError {
    fn from(err: rmp_serde::encode::Error) -> Self {
        Self::new(err.to_string())
    }
}
