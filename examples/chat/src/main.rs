//! A chat you open in the browser: a `signalr-server` hub at `/chat`, and a static page at
//! `/` that talks to it with the official JavaScript client.
//!
//! ```text
//! (cd tests/node && npm ci)                     # once: fetches the official client
//! cargo run -p chat -- --bind 127.0.0.1:8080    # then open http://127.0.0.1:8080
//! ```
//!
//! The hub, as a browser sees it:
//!
//! - `SendMessage(user, text)` calls `ReceiveMessage(user, text, timestamp)` on everyone;
//! - `JoinRoom(room)`, `LeaveRoom(room)` and `SendToRoom(room, user, text)` (which calls
//!   `ReceiveRoomMessage(room, user, text, timestamp)` on the room's members) use groups;
//! - every connect and disconnect calls `UserCount(n)` on everyone;
//! - the stream `Clock(intervalMs)` yields the server's time until the client cancels it.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;
use signalr_core::Timestamp;
use signalr_server::{Caller, Clients, Groups, Hub, SignalR, State};

/// How many connections are open; every handler that asks for `State<Online>` gets a clone.
type Online = Arc<AtomicUsize>;

/// The server's clock, sent as an ISO 8601 string in JSON (a JavaScript `Date` can parse it).
fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

/// The chat hub. Each handler is an async closure: its parameters are the client's
/// arguments (in order) mixed with whatever it needs from the call (`Clients`, `Groups`,
/// `Caller`, `State<...>`).
fn chat_hub() -> Hub {
    Hub::builder("ChatHub")
        .state(Online::default())
        .on_connected(
            |State(online): State<Online>, clients: Clients| async move {
                let n = online.fetch_add(1, Ordering::SeqCst) + 1;
                clients.all().send("UserCount", (n,)).await
            },
        )
        .on_disconnected(
            |State(online): State<Online>, clients: Clients| async move {
                let n = online.fetch_sub(1, Ordering::SeqCst) - 1;
                clients.all().send("UserCount", (n,)).await
            },
        )
        .method(
            "SendMessage",
            |clients: Clients, user: String, text: String| async move {
                clients
                    .all()
                    .send("ReceiveMessage", (user, text, now()))
                    .await
            },
        )
        .method(
            "JoinRoom",
            |groups: Groups, caller: Caller, room: String| async move {
                groups.add_to_group(caller.connection_id(), room).await
            },
        )
        .method(
            "LeaveRoom",
            |groups: Groups, caller: Caller, room: String| async move {
                groups.remove_from_group(caller.connection_id(), room).await
            },
        )
        .method(
            "SendToRoom",
            |clients: Clients, room: String, user: String, text: String| async move {
                let message = (room.clone(), user, text, now());
                clients
                    .group(room)
                    .send("ReceiveRoomMessage", message)
                    .await
            },
        )
        // A server-to-client stream: the client's cancel (or its disconnect) drops it.
        .stream("Clock", |interval_ms: u64| async move {
            let period = Duration::from_millis(interval_ms.clamp(50, 10_000));
            let mut ticks = tokio::time::interval(period);
            stream::poll_fn(move |cx| ticks.poll_tick(cx).map(|_| Some(now())))
        })
        .build()
}

/// Where `npm ci` in `tests/node` puts the official client's browser bundle.
const DEFAULT_CLIENT_JS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/node/node_modules/@microsoft/signalr/dist/browser/signalr.min.js"
);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut bind = "127.0.0.1:8080".to_owned();
    let mut client_js = PathBuf::from(DEFAULT_CLIENT_JS);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--bind", Some(value)) => bind = value,
            ("--client-js", Some(value)) => client_js = value.into(),
            _ => {
                eprintln!("usage: chat [--bind ADDR] [--client-js PATH/TO/signalr.min.js]");
                std::process::exit(2);
            }
        }
    }
    if !client_js.is_file() {
        eprintln!("{}", missing_client_js(&client_js));
    }

    let app = axum::Router::new()
        .route("/", get(|| async { Html(include_str!("index.html")) }))
        .route(
            "/signalr.min.js",
            get(move || serve_client_js(client_js.clone())),
        )
        .merge(SignalR::new().hub("/chat", chat_hub()).into_router());

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("chat listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

/// The official client's bundle, read on each request: after `npm ci`, a reload is enough.
async fn serve_client_js(path: PathBuf) -> Response {
    match tokio::fs::read(&path).await {
        Ok(js) => ([(header::CONTENT_TYPE, "text/javascript")], js).into_response(),
        Err(_) => {
            let message = missing_client_js(&path);
            eprintln!("{message}");
            (StatusCode::NOT_FOUND, message).into_response()
        }
    }
}

fn missing_client_js(path: &Path) -> String {
    format!(
        "The official SignalR client is missing: {} not found. \
         Run `npm ci` in tests/node (or start the chat with --client-js PATH), then reload the page.",
        path.display()
    )
}
