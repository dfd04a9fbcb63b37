//! The servers the scenarios measure, at `/bench`:
//!
//! - `signalr`: a `signalr-server` hub with `Echo(s)`, `Broadcast(s)` (to all, as
//!   `Receive(s)`), `JoinGroup(g)` and `SendToGroup(g, s)`;
//! - `bare`: the same WebSocket stack (axum's WebSocket over tokio-tungstenite, the same
//!   buffers: 1 KiB read, 4 KiB write) without SignalR. It echoes every data frame, except one containing
//!   `Broadcast`, which it sends to every connection. The transport's ceiling.
//!
//! With [`RedisOptions`], the `signalr` hub uses the `signalr-redis` backplane, so several
//! servers on one Redis share its `Broadcast` and groups.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::serve::ListenerExt;
use futures_util::{FutureExt, SinkExt, StreamExt};
use signalr_redis::RedisBackplane;
use signalr_server::{Caller, Clients, Groups, Hub, HubOptions, SignalR};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// Which server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    SignalR,
    Bare,
}

impl Kind {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "signalr" | "ours" => Some(Self::SignalR),
            "bare" | "bare-ws" => Some(Self::Bare),
            _ => None,
        }
    }
}

/// The Redis backplane of the `signalr` server.
#[derive(Clone, Debug)]
pub(crate) struct RedisOptions {
    /// `redis://127.0.0.1:6379/`.
    pub(crate) url: String,
    /// The channel prefix (empty by default), so runs on one Redis do not hear each other.
    pub(crate) prefix: String,
}

/// The benchmark hub, on `backplane` when given (else the in-memory one).
pub(crate) fn hub(backplane: Option<RedisBackplane>, read_buffer: usize) -> Hub {
    let builder = Hub::builder("Bench")
        .options(HubOptions::default().websocket_read_buffer_size(read_buffer));
    let builder = match backplane {
        Some(backplane) => builder.backplane(Arc::new(backplane)),
        None => builder,
    };
    builder
        .method("Echo", |payload: String| async move { payload })
        .method(
            "Broadcast",
            |clients: Clients, payload: String| async move {
                clients.all().send("Receive", (payload,)).await
            },
        )
        .method(
            "JoinGroup",
            |groups: Groups, caller: Caller, group: String| async move {
                groups.add_to_group(caller.connection_id(), group).await
            },
        )
        .method(
            "SendToGroup",
            |clients: Clients, group: String, payload: String| async move {
                clients.group(group).send("Receive", (payload,)).await
            },
        )
        .build()
}

/// The WebSocket read buffer both servers use by default (the library's default).
pub(crate) const READ_BUFFER: usize = 1024;

/// Binds `addr`, prints `listening on <addr>` on stdout, and serves until killed. With
/// `redis`, it prints that line once the backplane is subscribed (it fails after 10 s
/// without Redis).
pub(crate) async fn run(
    kind: Kind,
    addr: &str,
    redis: Option<RedisOptions>,
    reuse_port: bool,
    read_buffer: usize,
) -> std::io::Result<()> {
    let backplane = match &redis {
        Some(options) => {
            let backplane = RedisBackplane::builder(options.url.as_str())
                .channel_prefix(options.prefix.as_str())
                .build("Bench")
                .map_err(std::io::Error::other)?;
            if !backplane.wait_connected(Duration::from_secs(10)).await {
                return Err(std::io::Error::other(format!(
                    "--redis {}: not connected after 10 s: {:?}",
                    options.url,
                    backplane.health()
                )));
            }
            Some(backplane)
        }
        None => None,
    };
    let listener = if reuse_port {
        bind_shared(addr)?
    } else {
        TcpListener::bind(addr).await?
    };
    let local = listener.local_addr()?;
    println!("listening on {local}");
    std::io::stdout().flush()?;
    match kind {
        Kind::SignalR => {
            SignalR::new()
                .hub("/bench", hub(backplane, read_buffer))
                .serve(listener)
                .await
        }
        Kind::Bare => {
            let (tx, _) = broadcast::channel::<Message>(4096);
            let app = axum::Router::new().fallback(axum::routing::get(
                move |upgrade: WebSocketUpgrade| {
                    let tx = tx.clone();
                    async move {
                        upgrade
                            .read_buffer_size(read_buffer)
                            .write_buffer_size(4 * 1024)
                            .on_upgrade(move |socket| bare_connection(socket, tx))
                    }
                },
            ));
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await
        }
    }
}

fn is_data(message: &Message) -> bool {
    matches!(message, Message::Text(_) | Message::Binary(_))
}

fn is_broadcast(message: &Message) -> bool {
    let bytes: &[u8] = match message {
        Message::Text(text) => text.as_str().as_bytes(),
        Message::Binary(data) => data,
        _ => return false,
    };
    bytes.windows(9).any(|w| w == b"Broadcast")
}

async fn bare_connection(socket: WebSocket, tx: broadcast::Sender<Message>) {
    let mut rx = tx.subscribe();
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            message = stream.next() => {
                // Echoes of what has already arrived leave in one write, as the SignalR
                // server's replies do.
                let mut next = Some(message);
                let mut echoed = false;
                let mut open = true;
                while let Some(message) = next.take() {
                    let Some(Ok(message)) = message else {
                        open = false;
                        break;
                    };
                    if is_broadcast(&message) {
                        let _ = tx.send(message);
                    } else if is_data(&message) {
                        if sink.feed(message).await.is_err() {
                            return;
                        }
                        echoed = true;
                    } else if matches!(message, Message::Close(_)) {
                        open = false;
                        break;
                    }
                    next = stream.next().now_or_never();
                }
                if echoed && sink.flush().await.is_err() {
                    return;
                }
                if !open {
                    return;
                }
            }
            message = rx.recv() => {
                match message {
                    Ok(message) => {
                        // Batch what else is waiting into one flush, as the SignalR
                        // server's writer does.
                        if sink.feed(message).await.is_err() {
                            return;
                        }
                        while let Ok(more) = rx.try_recv() {
                            if sink.feed(more).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

/// Binds with `SO_REUSEPORT`, so that several server processes share one port and the
/// kernel spreads connections over them (each process has its own file-descriptor limit).
fn bind_shared(addr: &str) -> std::io::Result<TcpListener> {
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
