//! A Redis backplane for `signalr-server`, wire-compatible with ASP.NET Core's
//! `Microsoft.AspNetCore.SignalR.StackExchangeRedis`. **Not built yet.**
//!
//! This crate will let several Rust servers, and ASP.NET Core servers, share one Redis and
//! deliver each other's messages: the same channel names and the same MessagePack payloads
//! as the .NET backplane.
//!
//! Today it holds no API: nothing here pretends to work. It will plug into the server's
//! backplane seam and nothing else.
//!
//! ```
//! // The framed bytes a backplane carries per protocol come from signalr-core:
//! use signalr_core::{HubMessage, HubProtocol, MessagePackHubProtocol};
//! let ping = MessagePackHubProtocol::new().to_bytes(&HubMessage::Ping)?;
//! assert_eq!(&ping[..], [0x02, 0x91, 0x06]);
//! # Ok::<(), signalr_core::ProtocolError>(())
//! ```
