//! The ASP.NET Core SignalR client, in Rust. **Not built yet.**
//!
//! This crate will connect to any ASP.NET Core SignalR hub (and to `signalr-server`) over
//! WebSockets, Server-Sent Events or Long Polling, with JSON or MessagePack, `invoke`,
//! `send`, `stream`, upload streams, handlers with client results, automatic and stateful
//! reconnect.
//!
//! Today it holds no API: nothing here pretends to work. The protocol it will speak is
//! already in [`signalr_core`].
//!
//! ```
//! // The protocol layer this crate will build on:
//! use signalr_core::HandshakeRequest;
//! let hello = HandshakeRequest::new("json", 2).to_bytes();
//! assert_eq!(&hello[..], b"{\"protocol\":\"json\",\"version\":2}\x1e");
//! ```
