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
//! Serve `app` with `axum::serve` (or [`SignalR::serve`] for hyper alone), and connect
//! with `new HubConnectionBuilder().withUrl("http://host/chat").build()`.
//!
//! # Guide
//!
//! ## Methods and their parameters
//!
//! A hub method is any async function or closure. Its parameters are, in any order:
//!
//! - **wire arguments**: any `serde::de::DeserializeOwned` type, bound in order to the
//!   invocation's arguments ([`RawValue`](signalr_core::RawValue) keeps one as it arrived);
//! - **context**: [`Caller`] (connection id, user id, [`Identity`], the HTTP request's
//!   headers, cookies and query, per-connection [`Items`], `abort`), [`Clients`],
//!   [`Groups`], [`HubContext`], [`State`], and a [`CancellationToken`] cancelled when the
//!   client cancels the invocation or disconnects;
//! - **upload streams**: [`UploadStream<T>`], bound in order to the invocation's stream ids.
//!
//! Method names match case-insensitively. A call with the wrong number of arguments, an
//! argument of the wrong type, an unknown method or the wrong kind of invocation gets
//! ASP.NET Core's error text.
//!
//! ## Results and errors
//!
//! Return any `serde::Serialize` value (`()` sends no result), or `Result<T, E>` where `E`
//! converts into [`HubError`]: every `std::error::Error` does, with `?`. The client sees
//! `An unexpected error occurred invoking 'M' on the server.`, followed by the error's type
//! and message for a [`HubError::new`] (always) or any error when
//! [`HubOptions::enable_detailed_errors`] is on. A method that panics fails that invocation
//! the same way; the connection and the server go on.
//!
//! ## Streams
//!
//! [`HubBuilder::stream`] registers a method returning any `Stream` of serializable items
//! (or of `Result`s). Each item is sent as it is produced, at the pace the client reads; the
//! client's cancel drops the stream. Upload streams and result streams combine:
//!
//! ```
//! use futures_util::StreamExt;
//! use signalr_server::{Hub, UploadStream};
//!
//! let hub = Hub::builder("Pipes")
//!     // Client-to-server: sum what the client streams.
//!     .method("Sum", |mut numbers: UploadStream<i64>| async move {
//!         let mut total = 0;
//!         while let Some(n) = numbers.next().await {
//!             total += n?;
//!         }
//!         Ok::<_, signalr_server::HubError>(total)
//!     })
//!     // Both ways at once: echo each item back, upper-cased.
//!     .stream("Shout", |words: UploadStream<String>| async move {
//!         words.map(|w| w.map(|w| w.to_uppercase()))
//!     })
//!     .build();
//! # let _ = hub;
//! ```
//!
//! ## Calling clients
//!
//! [`Clients`] and [`HubClients`] address `all`, `all_except`, `caller`, `client`,
//! `clients`, `group`, `groups`, `group_except`, `others`, `others_in_group`, `user` and
//! `users`. A message is serialized once per protocol in use, however many receive it.
//! [`SingleClientProxy::invoke`] calls one client and waits for the value its handler
//! returns (a client result), with [`HubOptions::client_result_timeout`].
//!
//! Outside hub methods, [`Hub::context`] gives the same through a [`HubContext`]:
//!
//! ```no_run
//! # async fn tick(hub: signalr_server::Hub) -> Result<(), signalr_server::Error> {
//! let clients = hub.context().clients();
//! loop {
//!     clients.group("dashboard").send("Tick", (std::process::id(),)).await?;
//!     tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//! }
//! # }
//! ```
//!
//! ## Users and identities
//!
//! Put an [`Identity`] in the request's extensions (an axum middleware or auth layer does
//! this) and the connection carries it; the [`UserIdProvider`] (by default the identity's
//! name identifier claim) gives the user id that `user`/`users` target.
//!
//! ## Lifecycle and filters
//!
//! [`HubBuilder::on_connected`] may refuse a connection (the client gets a Close carrying
//! the error, without reconnect); [`HubBuilder::on_disconnected`] sees the
//! [`DisconnectReason`]. A [`HubFilter`] wraps every invocation, connect and disconnect:
//! logging, authorization, rate limits.
//!
//! ## Slow clients
//!
//! Each connection has one outbound queue bounded by
//! [`HubOptions::outbound_buffer_limit`] and one writer that drains it into as few
//! transport frames as possible. Messages from others never wait: a client whose queue is
//! full is closed. The connection's own results and stream items wait for room instead.
//!
//! ## Scaling out
//!
//! The [`Backplane`] trait routes messages between servers; [`InMemoryBackplane`] (one
//! server) is the default. `signalr-redis` provides one over Redis.
//!
//! # Observability
//!
//! `tracing` spans `signalr_connection` (hub, connection id, transport; INFO level) and
//! `signalr_invocation` (method; DEBUG level, so that an INFO subscriber costs nothing per
//! call). Metrics through the `metrics` facade (install the recorder before serving: the
//! per-hub and per-method handles are registered once, on first use):
//! `signalr_connections_active` (gauge, by hub), `signalr_messages_received_total`,
//! `signalr_messages_serialized_total` (by protocol), `signalr_invocation_duration_seconds`
//! (histogram, by hub and method), `signalr_invocation_errors_total`,
//! `signalr_slow_connections_closed_total`.
//!
//! # Feature flags
//!
//! None yet.

mod args;
mod auth;
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
mod raw;

#[doc(inline)]
pub use self::args::{Arguments, SerializedMessage};
#[doc(inline)]
pub use self::auth::{AuthRejection, Authenticator, Policy, authenticated, policy};
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
#[doc(inline)]
pub use self::raw::RawConnection;
#[doc(no_inline)]
pub use tokio_util::sync::CancellationToken;
