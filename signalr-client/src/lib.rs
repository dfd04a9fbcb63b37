//! The ASP.NET Core SignalR client, in Rust.
//!
//! Connects to any ASP.NET Core SignalR hub, and to `signalr-server`, over WebSockets,
//! Server-Sent Events or Long Polling, with JSON or MessagePack.
//!
//! ```no_run
//! use futures_util::{stream, StreamExt};
//! use signalr_client::{HubConnectionBuilder, Upload};
//!
//! # async fn run() -> Result<(), signalr_client::Error> {
//! let connection = HubConnectionBuilder::new("http://localhost:5000/chat")
//!     .with_automatic_reconnect()
//!     .build()?;
//!
//! // Server calls: typed arguments; a returned value answers a client-result call.
//! connection.on("ReceiveMessage", |user: String, text: String| async move {
//!     println!("{user}: {text}");
//! });
//! connection.on("GetVersion", || async { "1.0" });
//! connection.on("Divide", |a: i32, b: i32| async move {
//!     if b == 0 {
//!         return Err(signalr_client::HandlerError::new("division by zero"));
//!     }
//!     Ok(a / b)
//! });
//!
//! connection.start().await?;
//!
//! // Invoke and wait for the result; send without waiting.
//! let sum: i64 = connection.invoke("Add", (40, 2)).await?;
//! connection.send("SendMessage", ("rust", "hello")).await?;
//!
//! // A server-to-client stream: dropping it cancels it on the server.
//! let mut counter = connection.stream::<i32, _>("Counter", (5,)).await?;
//! while let Some(n) = counter.next().await {
//!     println!("{}", n?);
//! }
//!
//! // A client-to-server stream.
//! let total: i64 = connection.invoke("UploadSum", (Upload::new(stream::iter([1, 2, 3])),)).await?;
//!
//! connection.stop().await;
//! # let _ = (sum, total);
//! # Ok(()) }
//! ```
//!
//! # Guide
//!
//! ## Connecting
//!
//! [`HubConnectionBuilder::new`] takes the hub's `http://` or `https://` URL. `start`
//! negotiates (following `url`/`accessToken` redirects, at most 100), then tries the
//! transports the server lists, in its order, skipping those the client disabled
//! ([`transports`](HubConnectionBuilder::transports)) and those that cannot carry the
//! protocol (Server-Sent Events cannot carry MessagePack). Tokens are single-use, so the
//! client negotiates again before each new transport. [`skip_negotiation`](HubConnectionBuilder::skip_negotiation)
//! connects a WebSocket directly.
//!
//! ## Authentication
//!
//! [`access_token_provider`](HubConnectionBuilder::access_token_provider) is called before
//! each connection attempt; its token goes in the `Authorization: Bearer` header of
//! negotiate, the WebSocket upgrade, Server-Sent Events, polls and sends. A refused
//! negotiate fails `start` with [`Error::is_negotiate`] and the server's status:
//! `Failed to complete negotiation with the server: Error: Unauthorized: Status code '401'`.
//!
//! ## Calling the hub
//!
//! Arguments are a tuple (`("one",)`, `(1, 2)`), `()` or a `Vec<RawValue>`. `invoke`
//! waits for the result; `send` does not; `stream` returns a [`HubStream`]. An [`Upload`]
//! among the arguments streams to the hub method's stream parameter. A hub error arrives as
//! [`Error::is_hub`] with the server's text.
//!
//! ## Handlers and client results
//!
//! [`on`](HubConnection::on) registers an async function for a method the server calls;
//! its parameters are the call's arguments. When the server waits for a result (a client
//! result), the handler's return value answers it; an `Err` (of an error type, or
//! [`HandlerError`]) answers with its text; no
//! handler, or none returning a value, answers `Client didn't provide a result.`. A handler
//! that does not await has run before the next message is looked at, so an event the
//! server sends before completing an invocation is seen before `invoke` returns.
//!
//! ## Reconnecting
//!
//! Without a retry policy a lost connection is closed: pending invocations fail with
//! [`Error::is_closed`] and [`ConnectionEvent::Closed`] is sent. With one
//! ([`with_automatic_reconnect`](HubConnectionBuilder::with_automatic_reconnect): 0, 2,
//! 10, 30 seconds), the client reports [`ConnectionEvent::Reconnecting`], negotiates a new
//! connection under the policy, and reports [`ConnectionEvent::Reconnected`] with the new
//! connection id; handlers stay registered. A Close from the server without
//! `allowReconnect` (an abort) is final.
//!
//! [`with_stateful_reconnect`](HubConnectionBuilder::with_stateful_reconnect) keeps the
//! same connection through a dropped WebSocket when the server allows it: both sides
//! buffer what the other has not acknowledged and resend it on a new WebSocket, so nothing
//! is lost and no reconnect event is needed.
//!
//! # What is here
//!
//! - [`HubConnectionBuilder`]: URL, protocol, transports, skip negotiation, an async access
//!   token provider, headers, automatic reconnect ([`DefaultRetryPolicy`],
//!   [`ExponentialBackoff`] or any [`RetryPolicy`]), stateful reconnect, timeouts.
//! - Negotiate with redirects, transport fallback in the server's order.
//! - [`HubConnection`]: `invoke`, `send`, `stream`, [`Upload`] streams, `on` handlers with
//!   client results, state and [`ConnectionEvent`]s.
//!
//! # Feature flags
//!
//! | Flag | Default | What |
//! |---|---|---|
//! | `rustls` | on | `https://` and `wss://` with rustls and the webpki roots |

mod args;
mod builder;
mod connection;
mod error;
mod handlers;
mod negotiate;
mod retry;
mod transport;

#[doc(inline)]
pub use self::args::{Argument, Arguments, StreamArg, Upload, ValueArg};
#[doc(inline)]
pub use self::builder::HubConnectionBuilder;
#[doc(inline)]
pub use self::connection::{ConnectionEvent, ConnectionState, HubConnection, HubStream};
#[doc(inline)]
pub use self::error::Error;
#[doc(inline)]
pub use self::handlers::{Fallible, Handler, HandlerError, IntoClientResult, Plain};
#[doc(inline)]
pub use self::retry::{DefaultRetryPolicy, ExponentialBackoff, RetryContext, RetryPolicy};
#[doc(no_inline)]
pub use signalr_core::{RawValue, TransportType};
