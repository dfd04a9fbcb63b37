//! The nine hub messages.

use crate::value::RawValue;

/// Custom headers carried by invocation-type messages: string keys to string values, in the
/// order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Sets `key` to `value`, replacing an existing value for the same key (last wins, as in
    /// ASP.NET Core).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The headers in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

/// A hub message, as both hub protocols carry it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HubMessage {
    /// Type 1: call a method, with or without waiting for a Completion.
    Invocation(Invocation),
    /// Type 2: one item of a stream.
    StreamItem(StreamItem),
    /// Type 3: the end of an invocation or stream, with a result or an error.
    Completion(Completion),
    /// Type 4: call a method that streams items back.
    StreamInvocation(StreamInvocation),
    /// Type 5: stop a stream (or, since .NET 11, an invocation) the peer is running.
    CancelInvocation(CancelInvocation),
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the connection is closing.
    Close(Close),
    /// Type 8: stateful reconnect acknowledgement.
    Ack(Ack),
    /// Type 9: stateful reconnect resend start.
    Sequence(Sequence),
}

impl HubMessage {
    /// The message's numeric type on the wire (1 to 9).
    pub fn message_type(&self) -> u8 {
        match self {
            HubMessage::Invocation(_) => 1,
            HubMessage::StreamItem(_) => 2,
            HubMessage::Completion(_) => 3,
            HubMessage::StreamInvocation(_) => 4,
            HubMessage::CancelInvocation(_) => 5,
            HubMessage::Ping => 6,
            HubMessage::Close(_) => 7,
            HubMessage::Ack(_) => 8,
            HubMessage::Sequence(_) => 9,
        }
    }

    /// Whether stateful reconnect numbers, buffers and acknowledges this message: true for
    /// Invocation, StreamItem, Completion, StreamInvocation and CancelInvocation.
    pub fn is_trackable(&self) -> bool {
        (1..=5).contains(&self.message_type())
    }

    /// The message's headers, for the types that have them.
    pub fn headers(&self) -> Option<&Headers> {
        match self {
            HubMessage::Invocation(m) => Some(&m.headers),
            HubMessage::StreamItem(m) => Some(&m.headers),
            HubMessage::Completion(m) => Some(&m.headers),
            HubMessage::StreamInvocation(m) => Some(&m.headers),
            HubMessage::CancelInvocation(m) => Some(&m.headers),
            _ => None,
        }
    }
}

/// Calls `target` on the peer. With an invocation id the peer answers with a
/// [`Completion`]; without one it does not answer at all.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Invocation {
    /// Custom headers.
    pub headers: Headers,
    /// Present for a blocking call, absent for a fire-and-forget one.
    pub invocation_id: Option<String>,
    /// The method's name.
    pub target: String,
    /// The arguments in wire form.
    pub arguments: Vec<RawValue>,
    /// Ids of the upload streams bound to the method's stream parameters, in order.
    pub stream_ids: Vec<String>,
}

impl Invocation {
    /// A fire-and-forget invocation of `target`.
    pub fn new(target: impl Into<String>, arguments: Vec<RawValue>) -> Self {
        Self {
            headers: Headers::new(),
            invocation_id: None,
            target: target.into(),
            arguments,
            stream_ids: Vec::new(),
        }
    }

    /// Sets the invocation id, making the call blocking.
    pub fn with_invocation_id(mut self, id: impl Into<String>) -> Self {
        self.invocation_id = Some(id.into());
        self
    }

    /// Sets the upload stream ids.
    pub fn with_stream_ids(mut self, ids: Vec<String>) -> Self {
        self.stream_ids = ids;
        self
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// Calls a streaming method on the peer, which answers with [`StreamItem`]s and then a
/// [`Completion`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamInvocation {
    /// Custom headers.
    pub headers: Headers,
    /// The stream's id; the items and the completion carry it.
    pub invocation_id: String,
    /// The method's name.
    pub target: String,
    /// The arguments in wire form.
    pub arguments: Vec<RawValue>,
    /// Ids of the upload streams bound to the method's stream parameters, in order.
    pub stream_ids: Vec<String>,
}

impl StreamInvocation {
    /// A streaming invocation of `target` with the given id.
    pub fn new(
        invocation_id: impl Into<String>,
        target: impl Into<String>,
        arguments: Vec<RawValue>,
    ) -> Self {
        Self {
            headers: Headers::new(),
            invocation_id: invocation_id.into(),
            target: target.into(),
            arguments,
            stream_ids: Vec::new(),
        }
    }

    /// Sets the upload stream ids.
    pub fn with_stream_ids(mut self, ids: Vec<String>) -> Self {
        self.stream_ids = ids;
        self
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// One item of a stream: a server-to-client stream's item, or an upload stream's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamItem {
    /// Custom headers.
    pub headers: Headers,
    /// The stream's id.
    pub invocation_id: String,
    /// The item in wire form (may be null).
    pub item: RawValue,
}

impl StreamItem {
    /// An item for the stream `invocation_id`.
    pub fn new(invocation_id: impl Into<String>, item: RawValue) -> Self {
        Self {
            headers: Headers::new(),
            invocation_id: invocation_id.into(),
            item,
        }
    }
}

/// What a [`Completion`] carries.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionResult {
    /// The method returned nothing (or the stream ended).
    Void,
    /// The method returned a value (which may be null).
    Value(RawValue),
    /// The method or stream failed with this text.
    Error(String),
}

/// Ends an invocation or a stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Completion {
    /// Custom headers.
    pub headers: Headers,
    /// The id of the invocation or stream that ended.
    pub invocation_id: String,
    /// The outcome.
    pub result: CompletionResult,
}

impl Completion {
    /// A completion with no result.
    pub fn void(invocation_id: impl Into<String>) -> Self {
        Self::new(invocation_id, CompletionResult::Void)
    }

    /// A completion with a result.
    pub fn with_result(invocation_id: impl Into<String>, result: RawValue) -> Self {
        Self::new(invocation_id, CompletionResult::Value(result))
    }

    /// A completion with an error.
    pub fn with_error(invocation_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self::new(invocation_id, CompletionResult::Error(error.into()))
    }

    /// A completion with the given outcome.
    pub fn new(invocation_id: impl Into<String>, result: CompletionResult) -> Self {
        Self {
            headers: Headers::new(),
            invocation_id: invocation_id.into(),
            result,
        }
    }
}

/// Asks the peer to stop the stream (or invocation) with this id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CancelInvocation {
    /// Custom headers.
    pub headers: Headers,
    /// The id to cancel.
    pub invocation_id: String,
}

impl CancelInvocation {
    /// Cancels `invocation_id`.
    pub fn new(invocation_id: impl Into<String>) -> Self {
        Self {
            headers: Headers::new(),
            invocation_id: invocation_id.into(),
        }
    }
}

/// The sender is closing the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Close {
    /// Why, when the close is an error.
    pub error: Option<String>,
    /// Whether a client with automatic reconnect should reconnect.
    pub allow_reconnect: bool,
}

impl Close {
    /// A close with the given error and reconnect hint.
    pub fn new(error: Option<String>, allow_reconnect: bool) -> Self {
        Self {
            error,
            allow_reconnect,
        }
    }
}

/// Acknowledges every trackable message up to and including `sequence_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ack {
    /// The highest sequence id received.
    pub sequence_id: i64,
}

impl Ack {
    /// An acknowledgement of `sequence_id`.
    pub fn new(sequence_id: i64) -> Self {
        Self { sequence_id }
    }
}

/// After a stateful reconnect: the next trackable message has this sequence id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sequence {
    /// The sequence id of the first message that follows.
    pub sequence_id: i64,
}

impl Sequence {
    /// A sequence message starting at `sequence_id`.
    pub fn new(sequence_id: i64) -> Self {
        Self { sequence_id }
    }
}

macro_rules! impl_from {
    ($($variant:ident),*) => {
        $(impl From<$variant> for HubMessage {
            fn from(m: $variant) -> Self {
                HubMessage::$variant(m)
            }
        })*
    };
}
impl_from!(
    Invocation,
    StreamItem,
    Completion,
    StreamInvocation,
    CancelInvocation,
    Close,
    Ack,
    Sequence
);
