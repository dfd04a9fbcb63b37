//! Helpers shared by the Rust client's interop tests: starting `interop-server`, the
//! transport/protocol combinations, builders and bounded waits.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use signalr_client::{ConnectionEvent, HubConnection, HubConnectionBuilder, TransportType};
use signalr_tests::ChildGuard;
use tokio::sync::{broadcast, mpsc};

/// Starts `interop-server` on a free loopback port; returns the guard and `http://ADDR`.
pub(crate) fn server() -> (ChildGuard, String) {
    ChildGuard::spawn_until_line(
        Command::new(env!("CARGO_BIN_EXE_interop-server")).args(["--bind", "127.0.0.1:0"]),
        "listening on ",
        Duration::from_secs(20),
    )
    .expect("start interop-server")
}

/// Starts `interop-server` on `addr` (retrying for a while if the port is still busy).
pub(crate) fn server_at(addr: SocketAddr) -> ChildGuard {
    let mut last = String::new();
    for _ in 0..20 {
        match ChildGuard::spawn_until_line(
            Command::new(env!("CARGO_BIN_EXE_interop-server")).args(["--bind", &addr.to_string()]),
            "listening on ",
            Duration::from_secs(20),
        ) {
            Ok((guard, _)) => return guard,
            Err(err) => {
                last = err;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    panic!("could not start interop-server on {addr}: {last}");
}

/// Every transport with every protocol it carries.
pub(crate) const COMBINATIONS: [(TransportType, bool); 5] = [
    (TransportType::WebSockets, false),
    (TransportType::WebSockets, true),
    (TransportType::ServerSentEvents, false),
    (TransportType::LongPolling, false),
    (TransportType::LongPolling, true),
];

/// `WebSockets json`, `LongPolling messagepack`, ...
pub(crate) fn label(transport: TransportType, messagepack: bool) -> String {
    format!(
        "{transport} {}",
        if messagepack { "messagepack" } else { "json" }
    )
}

/// A builder for `{base}{path}` limited to `transport`, with the protocol asked for.
pub(crate) fn builder(
    base: &str,
    path: &str,
    transport: TransportType,
    messagepack: bool,
) -> HubConnectionBuilder {
    let builder = HubConnectionBuilder::new(format!("{base}{path}")).transports([transport]);
    if messagepack {
        builder.messagepack()
    } else {
        builder
    }
}

/// A started connection to `/testhub`.
pub(crate) async fn connect(
    base: &str,
    transport: TransportType,
    messagepack: bool,
) -> HubConnection {
    let connection = builder(base, "/testhub", transport, messagepack)
        .build()
        .unwrap();
    within(connection.start())
        .await
        .unwrap_or_else(|e| panic!("{}: start: {e}", label(transport, messagepack)));
    connection
}

/// Fails the test when `future` takes longer than 20 seconds.
pub(crate) async fn within<T>(future: impl Future<Output = T>) -> T {
    within_for(Duration::from_secs(20), future).await
}

/// Fails the test when `future` takes longer than `limit`.
pub(crate) async fn within_for<T>(limit: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?}"))
}

/// Registers a one-argument handler for `event` that forwards what it gets to a channel.
pub(crate) fn forward<T>(connection: &HubConnection, event: &str) -> mpsc::UnboundedReceiver<T>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    connection.on(event, move |value: T| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(value);
        }
    });
    rx
}

/// The next value on `rx`, within 10 seconds.
pub(crate) async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    within_for(Duration::from_secs(10), rx.recv())
        .await
        .expect("channel closed")
}

/// The next connection event, within `limit`.
pub(crate) async fn next_event(
    events: &mut broadcast::Receiver<ConnectionEvent>,
    limit: Duration,
) -> ConnectionEvent {
    within_for(limit, events.recv())
        .await
        .expect("events closed")
}

/// `GET url` as text.
pub(crate) async fn get_text(url: &str) -> String {
    within(async {
        reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    })
    .await
}

/// Polls `future` once, so that an invocation in it has been sent, and checks that it is
/// still waiting.
pub(crate) async fn poll_once<F: Future + Unpin>(future: &mut F) {
    tokio::select! {
        biased;
        _ = future => panic!("finished at once"),
        () = std::future::ready(()) => {}
    }
}

/// `connection.invoke::<(), _>(method, args)` started (sent) but not awaited.
pub(crate) async fn started_invoke<A, M>(
    connection: &HubConnection,
    method: &'static str,
    args: A,
) -> std::pin::Pin<Box<dyn Future<Output = Result<(), signalr_client::Error>> + Send>>
where
    A: signalr_client::Arguments<M>,
    M: 'static,
{
    let connection = connection.clone();
    let mut call: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
        Box::pin(async move { connection.invoke::<(), M>(method, args).await });
    poll_once(&mut call).await;
    call
}
