//! The ASP.NET Core SignalR protocol, sans-IO.
//!
//! This crate turns bytes into SignalR messages and back, exactly as ASP.NET Core and the
//! official JavaScript, .NET and Java clients do, and nothing else: no sockets, no runtime,
//! no clock. `signalr-server` and `signalr-client` put I/O on top of it.
//!
//! - The nine hub messages ([`HubMessage`]) with headers and stream ids.
//! - The JSON ([`JsonHubProtocol`]) and MessagePack ([`MessagePackHubProtocol`]) hub
//!   protocols behind the [`HubProtocol`] seam, version 2 (stateful reconnect) and below.
//! - Framing: `0x1E` and VarInt, incremental parsing with a size limit ([`MessageReader`]),
//!   Server-Sent Events ([`write_sse_event`], [`SseDecoder`]).
//! - The handshake ([`HandshakeRequest`], [`HandshakeResponse`]) and negotiate
//!   ([`NegotiateResponse`], [`select_negotiate_version`]).
//!
//! Arguments, stream items and results stay in their wire form ([`RawValue`]) until you
//! deserialize them into your own types, and a written message is an immutable [`Bytes`]
//! that can go to any number of connections.
//!
//! # Example
//!
//! A server's view of one exchange: read the handshake, parse an invocation that arrives
//! in two pieces, answer it.
//!
//! ```
//! use bytes::BytesMut;
//! use signalr_core::{
//!     Completion, Encoding, HandshakeRequest, HandshakeResponse, HubMessage, HubProtocol,
//!     JsonHubProtocol, MessageReader, RawValue,
//! };
//!
//! // The client's first bytes: the handshake, then the start of an invocation.
//! let mut input = BytesMut::from(&b"{\"protocol\":\"json\",\"version\":2}\x1e{\"type\":1,\"invoc"[..]);
//! let handshake = HandshakeRequest::parse(&mut input, Some(32 * 1024))?.expect("complete");
//! assert_eq!(handshake.protocol, "json");
//! let reply = HandshakeResponse::success().to_bytes();
//! assert_eq!(&reply[..], b"{}\x1e");
//!
//! let protocol = JsonHubProtocol::new();
//! let mut reader = MessageReader::new(protocol, Some(32 * 1024));
//! reader.feed(&input);
//! assert_eq!(reader.next_message()?, None); // not complete yet
//! reader.feed(b"ationId\":\"1\",\"target\":\"Add\",\"arguments\":[2,3]}\x1e");
//!
//! let Some(HubMessage::Invocation(call)) = reader.next_message()? else { panic!() };
//! let a: i32 = call.arguments[0].deserialize()?;
//! let b: i32 = call.arguments[1].deserialize()?;
//!
//! let result = RawValue::encode(Encoding::Json, &(a + b))?;
//! let answer = Completion::with_result(call.invocation_id.unwrap(), result);
//! let bytes = protocol.to_bytes(&answer.into())?;
//! assert_eq!(&bytes[..], b"{\"type\":3,\"invocationId\":\"1\",\"result\":5}\x1e");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None yet: the crate has no optional parts.
//!
//! # Errors
//!
//! Malformed input is a [`ProtocolError`] value, never a panic. Its `Display` text is the
//! one ASP.NET Core uses for the same condition.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod framing;
mod handshake;
mod message;
mod negotiate;
mod protocol;
mod value;

#[doc(no_inline)]
pub use bytes::Bytes;

#[doc(inline)]
pub use self::error::{ProtocolError, ValueError};
#[doc(inline)]
pub use self::framing::{MessageReader, SseDecoder, write_sse_event};
#[doc(inline)]
pub use self::handshake::{HandshakeRequest, HandshakeResponse};
#[doc(inline)]
pub use self::message::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, Headers, HubMessage, Invocation,
    Sequence, StreamInvocation, StreamItem,
};
#[doc(inline)]
pub use self::negotiate::{
    AvailableTransport, NegotiateResponse, NegotiateVersionError, TransportType,
    select_negotiate_version,
};
#[doc(inline)]
pub use self::protocol::{HubProtocol, JsonHubProtocol, MessagePackHubProtocol, TransferFormat};
#[doc(inline)]
pub use self::value::{Binary, Encoding, RawValue, Timestamp};
