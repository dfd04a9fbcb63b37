//! The Rust client (`signalr-client`) against the interop server, over every transport and
//! protocol it serves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::process::Command;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use signalr_client::{
    ConnectionEvent, ConnectionState, HubConnection, HubConnectionBuilder, TransportType, Upload,
};
use signalr_tests::ChildGuard;
use tokio::sync::mpsc;

fn server() -> (ChildGuard, String) {
    ChildGuard::spawn_until_line(
        Command::new(env!("CARGO_BIN_EXE_interop-server")).args(["--bind", "127.0.0.1:0"]),
        "listening on ",
        Duration::from_secs(20),
    )
    .expect("start interop-server")
}

const COMBINATIONS: [(TransportType, bool); 5] = [
    (TransportType::WebSockets, false),
    (TransportType::WebSockets, true),
    (TransportType::ServerSentEvents, false),
    (TransportType::LongPolling, false),
    (TransportType::LongPolling, true),
];

fn builder(
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

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_methods_on_every_transport_and_protocol() {
    let (_server, base) = server();
    for (transport, messagepack) in COMBINATIONS {
        let label = format!("{transport} messagepack={messagepack}");
        let connection = builder(&base, "/testhub", transport, messagepack)
            .build()
            .unwrap();
        let (events_tx, mut events) = mpsc::unbounded_channel::<String>();
        let tx = events_tx.clone();
        connection.on("Message", move |text: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(text);
            }
        });
        connection.on("Result", || async { 10 });
        within(connection.start()).await.unwrap();
        assert_eq!(connection.state(), ConnectionState::Connected, "{label}");

        let echo: String = within(connection.invoke("Echo", ("你好，世界！",)))
            .await
            .unwrap();
        assert_eq!(echo, "你好，世界！", "{label}");
        let sum: i64 = within(connection.invoke("Add", (40, 2))).await.unwrap();
        assert_eq!(sum, 42, "{label}");
        let err = within(connection.invoke::<i64, _>("Add", (1,)))
            .await
            .unwrap_err();
        assert_eq!(
            err.hub_message(),
            Some(
                "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
            ),
            "{label}"
        );
        let id: String = within(connection.invoke("GetCallerConnectionId", ()))
            .await
            .unwrap();
        assert_eq!(Some(id), connection.connection_id(), "{label}");
        let name: String = within(connection.invoke("GetActiveTransportName", ()))
            .await
            .unwrap();
        assert_eq!(name, transport.as_str(), "{label}");

        // An event arrives before the invocation completes.
        within(connection.invoke::<(), _>("InvokeWithString", ("hi",)))
            .await
            .unwrap();
        assert_eq!(events.try_recv().ok().as_deref(), Some("hi"), "{label}");

        // Streams both ways.
        let items: Vec<String> = within(async {
            connection
                .stream::<String, _>("Stream", ())
                .await
                .unwrap()
                .map(|i| i.unwrap())
                .collect()
                .await
        })
        .await;
        assert_eq!(items, ["a", "b", "c"], "{label}");
        let concat: String = within(connection.invoke(
            "StreamingConcat",
            (Upload::new(stream::iter(["Hello ", "world!"])),),
        ))
        .await
        .unwrap();
        assert_eq!(concat, "Hello world!", "{label}");
        let echoed: Vec<String> = within(async {
            connection
                .stream::<String, _>("StreamEcho", (Upload::new(stream::iter(["x", "y"])),))
                .await
                .unwrap()
                .map(|i| i.unwrap())
                .collect()
                .await
        })
        .await;
        assert_eq!(echoed, ["x", "y"], "{label}");

        // A client result asked for over HTTP.
        let body = within(async {
            reqwest::get(format!(
                "{base}/clientresult/{}",
                connection.connection_id().unwrap()
            ))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
        })
        .await;
        assert_eq!(body, "10", "{label}");

        let mut lifecycle = connection.events();
        within(connection.stop()).await;
        assert_eq!(connection.state(), ConnectionState::Disconnected, "{label}");
        assert_eq!(
            within(lifecycle.recv()).await.unwrap(),
            ConnectionEvent::Closed(None),
            "{label}"
        );
        drop(events_tx);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_reconnect_loses_nothing() {
    let (_server, base) = server();
    for messagepack in [false, true] {
        let connection: HubConnection = builder(
            &base,
            "/testhub-stateful",
            TransportType::WebSockets,
            messagepack,
        )
        .with_stateful_reconnect()
        .build()
        .unwrap();
        let (tx, mut seen) = mpsc::unbounded_channel::<i64>();
        connection.on("Seq", move |n: i64| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(n);
            }
        });
        within(connection.start()).await.unwrap();
        let id = connection.connection_id();
        for _ in 0..5 {
            let drop = connection.invoke::<(), _>("DropTransport", ());
            let more = connection.invoke::<(), _>("SendSequence", (40,));
            let (a, b) = within(async { tokio::join!(drop, more) }).await;
            a.unwrap();
            b.unwrap();
        }
        let mut got = Vec::new();
        while let Ok(n) = seen.try_recv() {
            got.push(n);
        }
        assert_eq!(got.len(), 200, "messagepack={messagepack}");
        assert!(got.iter().enumerate().all(|(i, n)| *n == (i as i64) % 40));
        assert_eq!(connection.connection_id(), id);
        within(connection.stop()).await;
    }
}
