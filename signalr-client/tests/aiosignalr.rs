//! The Rust client against a SignalR server nobody here wrote: the Python `aiosignalr`
//! package (version pinned in `tests/python/requirements.txt`), serving the hub of
//! `tests/python/aiosignalr_server.py` from a virtual environment kept in
//! `target/python-venv` (the one the Python interop tests use; made, and the requirements
//! installed, when missing or stale).
//!
//! aiosignalr offers WebSockets (JSON and MessagePack), Server-Sent Events (JSON) and Long
//! Polling (JSON and MessagePack), and stateful reconnect over WebSockets. Covered: invoke,
//! send, events with typed arguments, groups, streams both ways, cancellation, client
//! results, the server's error texts; automatic reconnect to a killed and restarted server
//! process; stateful reconnect through a cut WebSocket.
//!
//! Two aiosignalr 0.1.1 limitations, where the client follows ASP.NET Core:
//!
//! - MessagePack: aiosignalr writes the headers of the StreamItem, Completion and
//!   CancelInvocation messages it sends as the integer 128 (`0xcc 0x80`: its constant for
//!   an empty map is the Python int `0x80`), not an empty map (`0x80`). ASP.NET Core's
//!   MessagePack reader, which the official .NET client shares, fails on that ("Reading map
//!   length for 'headers' failed."), and so does this client; only the JavaScript client,
//!   which never looks at headers, gets by. The MessagePack tests run against the server
//!   with that one constant corrected (`--fix-messagepack-headers`);
//!   `websockets_messagepack_unpatched` (ignored) runs against the server as it is.
//! - Long Polling: aiosignalr holds the first poll open until it has something to send (up
//!   to 15 s), where ASP.NET Core answers it at once, and the official clients, as this one,
//!   wait for that answer before sending the handshake. Then the connection's idle timer
//!   (the same 15 s, started with the poll) removes the connection as that poll ends, so the
//!   handshake gets 404: a client that waits for the first poll never connects (aiosignalr's
//!   own client sends the handshake while the poll is open). The Long Polling tests are
//!   ignored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use signalr_client::{
    Arguments, ConnectionEvent, ConnectionState, Fallible, HubConnection, HubConnectionBuilder,
    RetryContext, TransportType, Upload,
};
use signalr_tests::{ChildGuard, python_venv, require};
use tokio::sync::{broadcast, mpsc};

/// How long any single step may take.
const STEP: Duration = Duration::from_secs(10);

fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// The virtual environment's interpreter, made once per test binary (tests run in
/// parallel; a single install at a time).
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let root = workspace_root();
    let python = PYTHON.get_or_init(|| {
        python_venv(
            &root.join("target/python-venv"),
            &root.join("tests/python/requirements.txt"),
        )
    });
    require(python.clone())
}

/// A running `aiosignalr_server.py`, killed (by its pid) when dropped.
struct Server {
    _child: ChildGuard,
    port: u16,
}

impl Server {
    /// Starts the server on `port` (0: any free one) and waits for it to listen; with
    /// `fix_messagepack`, the server works around aiosignalr's MessagePack headers bug
    /// (see the module docs).
    async fn start(python: &std::path::Path, port: u16, fix_messagepack: bool) -> Server {
        let script = workspace_root().join("tests/python/aiosignalr_server.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .args(["--port", &port.to_string()])
            .args(fix_messagepack.then_some("--fix-messagepack-headers"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        let (child, rest) = tokio::task::spawn_blocking(move || {
            ChildGuard::spawn_until_line(&mut command, "listening on ", Duration::from_secs(30))
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("aiosignalr server: {e}"));
        let port = rest
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {rest:?}"));
        Server {
            _child: child,
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hub", self.port)
    }
}

fn label(transport: TransportType, messagepack: bool) -> String {
    format!(
        "{transport} {}",
        if messagepack { "messagepack" } else { "json" }
    )
}

fn builder(url: &str, transport: TransportType, messagepack: bool) -> HubConnectionBuilder {
    let builder = HubConnectionBuilder::new(url).transports([transport]);
    if messagepack {
        builder.messagepack()
    } else {
        builder.json()
    }
}

/// `future`, or a panic naming `what` after [`STEP`].
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

async fn recv<T>(what: &str, rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    within(what, rx.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: channel closed"))
}

async fn next_event(
    what: &str,
    events: &mut broadcast::Receiver<ConnectionEvent>,
) -> ConnectionEvent {
    within(what, events.recv()).await.unwrap()
}

/// The third argument of the server's `Event`.
#[derive(Debug, Deserialize, PartialEq)]
struct Payload {
    text: String,
    tags: Vec<String>,
}

type EventRx = mpsc::UnboundedReceiver<(String, i64, Payload)>;

/// Collects the server's `Event(text, length, payload)` calls.
fn on_event(connection: &HubConnection) -> EventRx {
    let (tx, rx) = mpsc::unbounded_channel();
    connection.on("Event", move |text: String, len: i64, payload: Payload| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((text, len, payload));
        }
    });
    rx
}

/// Everything but reconnecting, over one transport and protocol (with MessagePack, against
/// a server patched for aiosignalr's MessagePack headers bug unless `unpatched`).
async fn hub_suite(transport: TransportType, messagepack: bool, unpatched: bool) {
    let Some(python) = python() else { return };
    let server = Server::start(&python, 0, messagepack && !unpatched).await;
    let name = label(transport, messagepack);
    let connection = builder(&server.url(), transport, messagepack)
        .build()
        .unwrap();
    let mut events = on_event(&connection);
    let (broadcast_tx, mut broadcasts) = mpsc::unbounded_channel();
    connection.on("Broadcast", move |text: String| {
        let tx = broadcast_tx.clone();
        async move {
            let _ = tx.send(text);
        }
    });
    let (group_tx, mut group_messages) = mpsc::unbounded_channel();
    connection.on("GroupMessage", move |group: String, text: String| {
        let tx = group_tx.clone();
        async move {
            let _ = tx.send((group, text));
        }
    });
    // Client results: plain, with an argument, failing.
    connection.on("GetNumber", || async { 42 });
    connection.on("Twice", |x: i64| async move { x * 2 });
    connection.on::<(Fallible,), _>("Refuse", || async { Err::<i64, _>("not telling") });

    within(&name, connection.start())
        .await
        .unwrap_or_else(|e| panic!("{name}: start: {e}"));
    assert_eq!(connection.state(), ConnectionState::Connected, "{name}");
    let id = connection
        .connection_id()
        .expect("a negotiated connection id");
    let server_id: String = within(&name, connection.invoke("ConnectionId", ()))
        .await
        .unwrap();
    assert_eq!(server_id, id, "{name}");

    // Invoke: values round-trip through the hub.
    let sum: i64 = within(&name, connection.invoke("Add", (40, 2)))
        .await
        .unwrap();
    assert_eq!(sum, 42, "{name}");
    let text: String = within(&name, connection.invoke("Echo", ("héllo ✓",)))
        .await
        .unwrap();
    assert_eq!(text, "héllo ✓", "{name}");
    let float: f64 = within(&name, connection.invoke("Echo", (1.5,)))
        .await
        .unwrap();
    assert!((float - 1.5).abs() < f64::EPSILON, "{name}");
    let none: Option<i32> = within(&name, connection.invoke("Echo", (Option::<i32>::None,)))
        .await
        .unwrap();
    assert_eq!(none, None, "{name}");
    let nested = json!({"a": [1, 2, {"b": true}], "c": "d", "e": null});
    let echoed: Value = within(&name, connection.invoke("Echo", (nested.clone(),)))
        .await
        .unwrap();
    assert_eq!(echoed, nested, "{name}");
    // A method without a result completes with none.
    within(&name, connection.invoke::<(), _>("JoinGroup", ("g1",)))
        .await
        .unwrap();

    // Events: the handler (typed arguments) has run by the time the invocation returns.
    let sent: String = within(&name, connection.invoke("SendEvent", ("ping",)))
        .await
        .unwrap();
    assert_eq!(sent, "sent", "{name}");
    let (text, len, payload) = events.try_recv().expect("the event before the completion");
    assert_eq!((text.as_str(), len), ("ping", 4), "{name}");
    assert_eq!(
        payload,
        Payload {
            text: "ping".into(),
            tags: vec!["a".into(), "b".into()]
        },
        "{name}"
    );

    // Send (no waiting), to all, and to a group.
    within(&name, connection.send("Broadcast", ("to everyone",)))
        .await
        .unwrap();
    assert_eq!(recv(&name, &mut broadcasts).await, "to everyone", "{name}");
    within(
        &name,
        connection.send("SendToGroup", ("g1", "to the group")),
    )
    .await
    .unwrap();
    assert_eq!(
        recv(&name, &mut group_messages).await,
        ("g1".to_owned(), "to the group".to_owned()),
        "{name}"
    );

    // Server-to-client streams.
    let items: Vec<i64> = within(&name, async {
        let stream = connection
            .stream::<i64, _>("Counter", (5, 10))
            .await
            .unwrap();
        stream.map(Result::unwrap).collect().await
    })
    .await;
    assert_eq!(items, [0, 1, 2, 3, 4], "{name}");
    let (items, error) = within(&name, async {
        let mut stream = connection
            .stream::<i64, _>("FailingStream", (2,))
            .await
            .unwrap();
        let mut items = Vec::new();
        loop {
            match stream.next().await {
                Some(Ok(item)) => items.push(item),
                Some(Err(err)) => break (items, Some(err)),
                None => break (items, None),
            }
        }
    })
    .await;
    assert_eq!(items, [0, 1], "{name}");
    let error = error.expect("the stream's error");
    assert_eq!(
        error.hub_message(),
        Some("An error occurred on the server while streaming results. stream failed"),
        "{name}"
    );

    // Client-to-server streams, into an invocation and into a stream.
    let total: i64 = within(
        &name,
        connection.invoke("Sum", (Upload::new(stream::iter([1, 2, 3, 4])),)),
    )
    .await
    .unwrap();
    assert_eq!(total, 10, "{name}");
    let slow = stream::iter(["x", "y", "z"]).then(|s| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s
    });
    let collected: Vec<String> = within(&name, connection.invoke("Collect", (Upload::new(slow),)))
        .await
        .unwrap();
    assert_eq!(collected, ["x", "y", "z"], "{name}");
    let empty: Vec<String> = within(
        &name,
        connection.invoke(
            "Collect",
            (Upload::new(stream::iter(Vec::<String>::new())),),
        ),
    )
    .await
    .unwrap();
    assert!(empty.is_empty(), "{name}");
    let doubled: Vec<i64> = within(&name, async {
        let stream = connection
            .stream::<i64, _>("Doubler", (Upload::new(stream::iter([1, 2, 3])),))
            .await
            .unwrap();
        stream.map(Result::unwrap).collect().await
    })
    .await;
    assert_eq!(doubled, [2, 4, 6], "{name}");

    // Cancellation: dropping the stream cancels it on the server.
    let key = format!("cancel-{name}");
    let mut infinite = within(
        &name,
        connection.stream::<i64, _>("Infinite", (key.clone(),)),
    )
    .await
    .unwrap();
    for expected in 0..3 {
        let item = within(&name, infinite.next()).await.unwrap().unwrap();
        assert_eq!(item, expected, "{name}");
    }
    let started: bool = within(&name, connection.invoke("WasStarted", (key.clone(),)))
        .await
        .unwrap();
    assert!(started, "{name}");
    drop(infinite);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let cancelled: bool = within(&name, connection.invoke("WasCancelled", (key.clone(),)))
            .await
            .unwrap();
        if cancelled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: the server did not see the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Client results: the handler's value, its error, no handler.
    let number: i64 = within(&name, connection.invoke("AskClient", ("GetNumber",)))
        .await
        .unwrap();
    assert_eq!(number, 42, "{name}");
    let twice: i64 = within(&name, connection.invoke("AskClient", ("Twice", 21)))
        .await
        .unwrap();
    assert_eq!(twice, 42, "{name}");
    let refused = within(&name, connection.invoke::<i64, _>("AskClient", ("Refuse",)))
        .await
        .unwrap_err();
    assert_eq!(refused.hub_message(), Some("not telling"), "{name}");
    let unanswered = within(
        &name,
        connection.invoke::<i64, _>("AskClient", ("NoSuchHandler",)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        unanswered.hub_message(),
        Some("Client didn't provide a result."),
        "{name}"
    );

    // Errors, with aiosignalr's exact texts.
    let c = &connection;
    hub_error(&name, c, "Fail", ("my own text",), "my own text").await;
    let text = "An unexpected error occurred invoking 'Crash' on the server.";
    hub_error(&name, c, "Crash", (), text).await;
    let text = "Unknown hub method 'NoSuchMethod'";
    hub_error(&name, c, "NoSuchMethod", (), text).await;
    let text =
        "Failed to invoke 'Add' due to an error on the server. Missing required argument 'b'.";
    hub_error(&name, c, "Add", (1,), text).await;
    let text = "Failed to invoke 'Add' due to an error on the server. \
        Invocation provides 3 argument(s) but target expects 2.";
    hub_error(&name, c, "Add", (1, 2, 3), text).await;
    let text = "The client attempted to invoke the streaming 'Counter' method with a non-streaming invocation.";
    hub_error(&name, c, "Counter", (1,), text).await;
    let err = within(&name, async {
        let mut stream = connection.stream::<i64, _>("Add", (1, 2)).await.unwrap();
        stream.next().await
    })
    .await
    .expect("an error item")
    .unwrap_err();
    assert_eq!(
        err.hub_message(),
        Some(
            "The client attempted to invoke the non-streaming 'Add' method with a streaming invocation."
        ),
        "{name}"
    );

    // Still connected after all that; then a clean stop.
    let sum: i64 = within(&name, connection.invoke("Add", (1, 1)))
        .await
        .unwrap();
    assert_eq!(sum, 2, "{name}");
    let mut closed = connection.events();
    within(&name, connection.stop()).await;
    assert_eq!(connection.state(), ConnectionState::Disconnected, "{name}");
    assert_eq!(
        next_event(&name, &mut closed).await,
        ConnectionEvent::Closed(None),
        "{name}"
    );
    assert!(
        connection
            .invoke::<i64, _>("Add", (1, 1))
            .await
            .unwrap_err()
            .is_not_connected()
    );
}

/// Invokes `method`, which must fail with `expected` from the hub.
async fn hub_error<M>(
    name: &str,
    connection: &HubConnection,
    method: &str,
    args: impl Arguments<M>,
    expected: &str,
) {
    let err = within(name, connection.invoke::<Value, _>(method, args))
        .await
        .unwrap_err();
    assert!(err.is_hub(), "{name}: {method}: {err}");
    assert_eq!(err.hub_message(), Some(expected), "{name}: {method}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_json() {
    hub_suite(TransportType::WebSockets, false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_messagepack() {
    hub_suite(TransportType::WebSockets, true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "aiosignalr limitation: its MessagePack headers are the integer 128, not an empty map \
    (see the module docs)"]
async fn websockets_messagepack_unpatched() {
    hub_suite(TransportType::WebSockets, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_json() {
    hub_suite(TransportType::ServerSentEvents, false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "aiosignalr limitation: its first long poll waits 15 s instead of answering at once, \
    then the connection is dropped before the handshake (see the module docs)"]
async fn long_polling_json() {
    hub_suite(TransportType::LongPolling, false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "aiosignalr limitation: its first long poll waits 15 s instead of answering at once, \
    then the connection is dropped before the handshake (see the module docs)"]
async fn long_polling_messagepack() {
    hub_suite(TransportType::LongPolling, true, false).await;
}

/// Retries every 100 ms, for up to 15 seconds.
fn fast_retry(context: &RetryContext) -> Option<Duration> {
    (context.previous_retry_count < 150).then(|| Duration::from_millis(100))
}

/// Kills the server process, starts it again on the same port: the client reports
/// Reconnecting, then Reconnected with a new connection id, and its handlers still work.
async fn reconnect_suite(transport: TransportType, messagepack: bool) {
    let Some(python) = python() else { return };
    let server = Server::start(&python, 0, messagepack).await;
    let port = server.port;
    let name = label(transport, messagepack);
    let connection = builder(&server.url(), transport, messagepack)
        .retry_policy(fast_retry)
        .build()
        .unwrap();
    let mut events = on_event(&connection);
    within(&name, connection.start()).await.unwrap();
    let first_id = connection.connection_id().unwrap();
    let mut lifecycle = connection.events();

    drop(server);
    let event = next_event(&name, &mut lifecycle).await;
    assert!(
        matches!(event, ConnectionEvent::Reconnecting(_)),
        "{name}: {event:?}"
    );
    assert_eq!(connection.state(), ConnectionState::Reconnecting, "{name}");
    let err = connection
        .invoke::<i64, _>("Add", (1, 1))
        .await
        .unwrap_err();
    assert!(err.is_not_connected(), "{name}: {err}");

    let server = Server::start(&python, port, messagepack).await;
    let event = next_event(&name, &mut lifecycle).await;
    let ConnectionEvent::Reconnected(Some(new_id)) = event else {
        panic!("{name}: {event:?}");
    };
    assert_ne!(new_id, first_id, "{name}");
    assert_eq!(connection.state(), ConnectionState::Connected, "{name}");
    assert_eq!(connection.connection_id(), Some(new_id.clone()), "{name}");
    let server_id: String = within(&name, connection.invoke("ConnectionId", ()))
        .await
        .unwrap();
    assert_eq!(server_id, new_id, "{name}");

    // Handlers registered before the reconnect still run.
    let sent: String = within(&name, connection.invoke("SendEvent", ("again",)))
        .await
        .unwrap();
    assert_eq!(sent, "sent", "{name}");
    assert_eq!(recv(&name, &mut events).await.0, "again", "{name}");

    within(&name, connection.stop()).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_websockets_json() {
    reconnect_suite(TransportType::WebSockets, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_websockets_messagepack() {
    reconnect_suite(TransportType::WebSockets, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_server_sent_events_json() {
    reconnect_suite(TransportType::ServerSentEvents, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "aiosignalr limitation: its first long poll waits 15 s instead of answering at once, \
    then the connection is dropped before the handshake (see the module docs)"]
async fn reconnect_long_polling_json() {
    reconnect_suite(TransportType::LongPolling, false).await;
}

/// The server cuts the WebSocket's TCP connection in the middle of an invocation (after an
/// event, before another and the completion): the client opens a new WebSocket on the
/// same connection, both sides resend what the other missed, and nothing is lost or
/// repeated; no reconnect happens.
async fn stateful_suite(messagepack: bool) {
    let Some(python) = python() else { return };
    let server = Server::start(&python, 0, messagepack).await;
    let name = format!("stateful {}", label(TransportType::WebSockets, messagepack));
    // No retry policy: should the stateful reconnect fail, the connection closes.
    let connection = builder(&server.url(), TransportType::WebSockets, messagepack)
        .with_stateful_reconnect()
        .build()
        .unwrap();
    let mut events = on_event(&connection);
    within(&name, connection.start()).await.unwrap();
    let id = connection.connection_id().unwrap();
    let mut lifecycle = connection.events();

    for round in 0..2 {
        let text = format!("kept {round}");
        let returned: String = within(&name, connection.invoke("DropTransport", (text.clone(),)))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(returned, text, "{name}");
        assert_eq!(recv(&name, &mut events).await.0, "before drop", "{name}");
        assert_eq!(recv(&name, &mut events).await.0, "after drop", "{name}");
        // Calls keep working on the same server-side connection.
        let server_id: String = within(&name, connection.invoke("ConnectionId", ()))
            .await
            .unwrap();
        assert_eq!(server_id, id, "{name}");
        let sum: i64 = within(&name, connection.invoke("Add", (round, 1)))
            .await
            .unwrap();
        assert_eq!(sum, round + 1, "{name}");
    }
    assert!(events.try_recv().is_err(), "{name}: an event twice");
    assert!(
        matches!(
            lifecycle.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ),
        "{name}: a reconnect or close event"
    );
    assert_eq!(connection.connection_id(), Some(id), "{name}");
    within(&name, connection.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_reconnect_json() {
    stateful_suite(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_reconnect_messagepack() {
    stateful_suite(true).await;
}
