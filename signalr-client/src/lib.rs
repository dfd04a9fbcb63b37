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
pub use self::handlers::{Fallible, Handler, IntoClientResult, Plain};
#[doc(inline)]
pub use self::retry::{DefaultRetryPolicy, ExponentialBackoff, RetryContext, RetryPolicy};
#[doc(no_inline)]
pub use signalr_core::{RawValue, TransportType};
