//! The ASP.NET Core SignalR server, in Rust.
//!
//! Declare a hub with plain async functions, serve it with axum (or any hyper server), and
//! the official JavaScript, .NET and Java clients talk to it as to ASP.NET Core.
//!
//! ```
//! use futures_util::stream;
//! use signalr_server::{Caller, Clients, Groups, Hub, HubError, SignalR};
//!
//! let hub = Hub::builder("Chat")
//!     // A method with typed arguments and a result.
//!     .method("Add", |a: i32, b: i32| async move { a + b })
//!     // Context extractors mix with arguments.
//!     .method("Send", |clients: Clients, caller: Caller, text: String| async move {
//!         let from = caller.user_id().unwrap_or("anonymous").to_owned();
//!         clients.all().send("Message", (from, text)).await
//!     })
//!     .method("Join", |groups: Groups, caller: Caller, room: String| async move {
//!         groups.add_to_group(caller.connection_id(), room).await
//!     })
//!     // Errors a client sees, as ASP.NET Core's HubException.
//!     .method("Fail", || async { Err::<(), _>(HubError::new("nope")) })
//!     // A server-to-client stream.
//!     .stream("Count", |n: u32| async move { stream::iter(0..n) })
//!     .build();
//!
//! let app: axum::Router = SignalR::new().hub("/chat", hub).into_router();
//! # let _ = app;
//! ```
//!
//! Serve `app` with `axum::serve`, and connect with
//! `new HubConnectionBuilder().withUrl("http://host/chat").build()`.
//!
//! # What is here
//!
//! - Negotiate (versions 0 and 1) and WebSockets, with or without negotiate; JSON and
//!   MessagePack.
//! - Hub methods with typed arguments and results; server-to-client streams; upload
//!   streams ([`UploadStream`]); client results ([`SingleClientProxy::invoke`]).
//! - Every target of ASP.NET Core ([`HubClients`], [`Clients`]), groups ([`Groups`]),
//!   users ([`UserIdProvider`]), and [`HubContext`] for use outside hubs.
//! - Lifecycle handlers, [`HubFilter`]s, ASP.NET Core's error texts with detailed errors
//!   on or off ([`HubOptions::enable_detailed_errors`]).
//! - The [`Backplane`] seam, with [`InMemoryBackplane`] as the default.
//! - One bounded outbound queue per connection: a client that stops reading is closed, and
//!   never slows the others.
//!
//! # Observability
//!
//! `tracing` spans `signalr_connection` (hub, connection id, transport) and
//! `signalr_invocation` (method, invocation id). Metrics through the `metrics` facade:
//! `signalr_connections_active` (gauge, by hub), `signalr_messages_received_total`,
//! `signalr_messages_serialized_total` (by protocol), `signalr_invocation_duration_seconds`
//! (histogram, by hub and method), `signalr_invocation_errors_total`,
//! `signalr_slow_connections_closed_total`.
//!
//! # Feature flags
//!
//! None yet.

mod args;
mod backplane;
mod clients;
mod connection;
mod dispatch;
mod error;
mod filter;
mod handler;
mod http;
mod hub;
mod identity;
mod options;

#[doc(inline)]
pub use self::args::{Arguments, SerializedMessage};
#[doc(inline)]
pub use self::backplane::{Backplane, InMemoryBackplane, Target};
#[doc(inline)]
pub use self::clients::{ClientProxy, Clients, Groups, HubClients, HubContext, SingleClientProxy};
#[doc(inline)]
pub use self::connection::ConnectionHandle;
#[doc(inline)]
pub use self::error::{Error, HubError};
#[doc(inline)]
pub use self::filter::{HubFilter, InvocationContext, LifecycleNext, Next};
#[doc(inline)]
pub use self::handler::{
    Caller, DisconnectReason, Fallible, FromCall, Handler, IntoHubResult, IntoHubStream,
    IntoLifecycleResult, IntoStreamItem, ParamKind, Plain, Raw, State, UploadStream, ViaArgument,
    ViaContext,
};
#[doc(inline)]
pub use self::http::SignalR;
#[doc(inline)]
pub use self::hub::{Hub, HubBuilder, HubValue, InvokeResult};
#[doc(inline)]
pub use self::identity::{
    Claim, DefaultUserIdProvider, Identity, Items, NAME_IDENTIFIER, RequestInfo, UserIdProvider,
};
#[doc(inline)]
pub use self::options::HubOptions;
#[doc(no_inline)]
pub use tokio_util::sync::CancellationToken;
