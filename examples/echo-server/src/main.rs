//! The smallest SignalR server: one hub over WebSockets, built on `signalr-core` alone.
//!
//! It serves clients that skip negotiation (`skipNegotiation: true` with the WebSockets
//! transport in the JavaScript client), speaks JSON and MessagePack, and has three hub
//! methods:
//!
//! - `Echo(x)` returns `x`;
//! - `Add(a, b)` returns `a + b` (integers);
//! - `Countdown(n)` streams `n, n-1, ..., 1`.
//!
//! ```text
//! cargo run -p echo-server -- 127.0.0.1:5000
//! ```
//!
//! The full server (negotiate, every transport, typed hubs, groups) is `signalr-server`;
//! this program shows how little the sans-IO protocol crate needs around it.

#![allow(clippy::print_stderr)]

use std::sync::Arc;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use signalr_core::{
    Close, Completion, HandshakeRequest, HandshakeResponse, HubMessage, HubProtocol,
    JsonHubProtocol, MessagePackHubProtocol, MessageReader, RawValue, StreamItem, TransferFormat,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// ASP.NET Core's default `MaximumReceiveMessageSize`.
const MAX_MESSAGE_SIZE: usize = 32 * 1024;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5000".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo-server listening on ws://{}/", listener.local_addr()?);
    loop {
        let (socket, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(err) = serve(socket).await {
                eprintln!("connection ended: {err}");
            }
        });
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn serve(socket: TcpStream) -> Result<(), BoxError> {
    let mut ws = tokio_tungstenite::accept_async(socket).await?;

    // The handshake: JSON text, whatever protocol follows.
    let mut input = BytesMut::new();
    let request = loop {
        let Some(frame) = ws.next().await else {
            return Ok(());
        };
        input.extend_from_slice(&frame?.into_data());
        if let Some(request) = HandshakeRequest::parse(&mut input, Some(MAX_MESSAGE_SIZE))? {
            break request;
        }
    };
    let protocol: Arc<dyn HubProtocol> = match request.protocol.to_ascii_lowercase().as_str() {
        "json" => Arc::new(JsonHubProtocol::new()),
        "messagepack" => Arc::new(MessagePackHubProtocol::new()),
        _ => {
            let error = format!("The protocol '{}' is not supported.", request.protocol);
            let reply = HandshakeResponse::error(error).to_bytes();
            ws.send(Message::text(String::from_utf8_lossy(&reply).into_owned()))
                .await?;
            return Ok(());
        }
    };
    let frame = |bytes: bytes::Bytes| match protocol.transfer_format() {
        TransferFormat::Text => Message::text(String::from_utf8_lossy(&bytes).into_owned()),
        TransferFormat::Binary => Message::binary(bytes),
    };
    ws.send(Message::text("{}\u{1e}")).await?;

    let mut reader = MessageReader::new(protocol.clone(), Some(MAX_MESSAGE_SIZE));
    reader.feed(&input);
    // Clients time out after 30 s of silence; ping every 15 s as ASP.NET Core does.
    let mut keep_alive = tokio::time::interval(std::time::Duration::from_secs(15));
    loop {
        loop {
            let message = match reader.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(err) => {
                    let close = Close::new(
                        Some(format!("Connection closed with an error. {err}")),
                        false,
                    );
                    ws.send(frame(protocol.to_bytes(&close.into())?)).await?;
                    return Ok(());
                }
            };
            for reply in handle(&*protocol, message) {
                ws.send(frame(protocol.to_bytes(&reply)?)).await?;
            }
        }
        let next = tokio::select! {
            next = ws.next() => next,
            _ = keep_alive.tick() => {
                ws.send(frame(protocol.to_bytes(&HubMessage::Ping)?)).await?;
                continue;
            }
        };
        match next {
            Some(Ok(Message::Text(text))) => reader.feed(text.as_bytes()),
            Some(Ok(Message::Binary(data))) => reader.feed_bytes(data),
            Some(Ok(Message::Close(_))) | None => return Ok(()),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
        }
    }
}

/// Runs one hub message and returns the messages to send back.
fn handle(protocol: &dyn HubProtocol, message: HubMessage) -> Vec<HubMessage> {
    let missing = |target: &str| {
        format!(
            "Failed to invoke '{target}' due to an error on the server. HubException: Method does not exist."
        )
    };
    match message {
        HubMessage::Invocation(call) => {
            let Some(id) = call.invocation_id else {
                return Vec::new();
            };
            let result = match (
                call.target.to_ascii_lowercase().as_str(),
                call.arguments.as_slice(),
            ) {
                ("echo", [value]) => Ok(value.clone()),
                ("add", [a, b]) => match (a.deserialize::<i64>(), b.deserialize::<i64>()) {
                    (Ok(a), Ok(b)) => RawValue::encode(protocol.encoding(), &a.wrapping_add(b))
                        .map_err(|e| e.to_string()),
                    _ => Err(format!(
                        "Failed to invoke '{}' due to an error on the server.",
                        call.target
                    )),
                },
                _ => Err(missing(&call.target)),
            };
            vec![match result {
                Ok(value) => Completion::with_result(id, value).into(),
                Err(error) => Completion::with_error(id, error).into(),
            }]
        }
        HubMessage::StreamInvocation(call) if call.target.eq_ignore_ascii_case("countdown") => {
            let n = call
                .arguments
                .first()
                .and_then(|a| a.deserialize::<u32>().ok())
                .unwrap_or(0);
            let mut out: Vec<HubMessage> = (1..=n.min(1000))
                .rev()
                .filter_map(|i| RawValue::encode(protocol.encoding(), &i).ok())
                .map(|item| StreamItem::new(call.invocation_id.clone(), item).into())
                .collect();
            out.push(Completion::void(call.invocation_id).into());
            out
        }
        HubMessage::StreamInvocation(call) => {
            vec![Completion::with_error(call.invocation_id, missing(&call.target)).into()]
        }
        _ => Vec::new(),
    }
}
