//! A Redis backplane for `signalr-server`, wire-compatible with ASP.NET Core's
//! `Microsoft.AspNetCore.SignalR.StackExchangeRedis`.
//!
//! Several servers behind a load balancer share one Redis and deliver each other's
//! messages: a send to all, a group, a user or a connection reaches its recipients wherever
//! they are connected. The channels and MessagePack payloads are those of the .NET
//! backplane, so Rust and ASP.NET Core servers can serve the same hub.
//!
//! ```no_run
//! use std::sync::Arc;
//! use signalr_redis::RedisBackplane;
//! use signalr_server::{Clients, Hub, SignalR};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The .NET hub's full type name, so .NET servers on the same Redis share the hub.
//! let name = "MyApp.Hubs.ChatHub";
//! let redis = RedisBackplane::builder("redis://127.0.0.1:6379/").build(name)?;
//! let hub = Hub::builder(name)
//!     .method("Send", |clients: Clients, text: String| async move {
//!         clients.all().send("Message", (text,)).await
//!     })
//!     .backplane(Arc::new(redis.clone()))
//!     .build();
//! let app: axum::Router = SignalR::new().hub("/chat", hub).into_router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Channels
//!
//! With `P` = channel prefix + hub channel name (by default the hub's name; set
//! [`RedisBackplaneBuilder::channel_name`] to the .NET hub's type name):
//!
//! | Channel | Subscribed | Carries |
//! |---|---|---|
//! | `P:all` | always | sends to all |
//! | `P:group:{group}` | while a local connection is in the group | sends to the group |
//! | `P:connection:{id}` | per local connection | sends and client results for it |
//! | `P:user:{user}` | while a local connection has that user id | sends to the user |
//! | `P:internal:groups` | always | group add/remove for a connection elsewhere |
//! | `P:internal:ack:{server}` | by that server | acks of its group commands |
//! | `P:internal:return:{server}` | by that server | client results for it |
//!
//! Every published message carries its framed bytes for each configured hub protocol
//! (JSON and MessagePack by default), serialized once whatever the number of channels and
//! recipients; a receiving server forwards the bytes of its client's protocol unchanged.
//!
//! # When Redis goes away
//!
//! Connections stay up and keep working on their server: sends to a local connection,
//! client results of local connections and group changes of local connections do not need
//! Redis. Sends that need Redis fail at once with [`Error::is_backplane`](signalr_server::Error::is_backplane),
//! are logged, and are counted by [`RedisBackplane::lost_messages`]; nothing is buffered,
//! as with ASP.NET Core. The backplane reconnects in the background (backoff up to 2
//! seconds) and restores every subscription; [`RedisBackplane::health`] reports the state.
//!
//! # Feature flags
//!
//! This crate has no optional features.

mod backplane;
mod channels;
mod protocol;

pub use self::backplane::{Health, RedisBackplane, RedisBackplaneBuilder};
