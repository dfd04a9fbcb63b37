//! The ASP.NET Core SignalR server, in Rust. **Not built yet.**
//!
//! This crate will serve SignalR hubs over negotiate, WebSockets, Server-Sent Events and
//! Long Polling, with typed hubs, groups and users, streaming both ways, client results,
//! stateful reconnect, a pluggable backplane and an axum/tower adapter, so that the official
//! JavaScript, .NET and Java clients can talk to it.
//!
//! Today it holds no API: nothing here pretends to work. The protocol it will speak is
//! already in [`signalr_core`]; `examples/echo-server` shows a minimal server built on that
//! crate alone.
//!
//! ```
//! // The protocol layer this crate will build on:
//! use signalr_core::{HubProtocol, JsonHubProtocol};
//! assert_eq!(JsonHubProtocol::new().name(), "json");
//! ```
