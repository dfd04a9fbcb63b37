//! The Rust client (`signalr-client`) against the interop server's `TestHub`: send, events
//! and handlers, streams both ways, error texts, complex objects and client results, over
//! every transport and protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{COMBINATIONS, connect, forward, get_text, label, next, within};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use signalr_client::{Fallible, HubConnection, Upload};
use signalr_core::{Binary, Timestamp};
use tokio::sync::mpsc;

/// Sends `Echo` and waits for it: every message the server produced for earlier calls has
/// been handled when it returns (messages to one connection keep their order).
async fn barrier(connection: &HubConnection) {
    let echo: String = within(connection.invoke("Echo", ("barrier",)))
        .await
        .unwrap();
    assert_eq!(echo, "barrier");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CustomObject {
    name: String,
    value: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ComplexObject {
    string: String,
    int_array: Vec<i64>,
    byte_array: Binary,
    guid: String,
    date_time: Timestamp,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_events_and_handlers() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = connect(&base, transport, messagepack).await;

        // A handler registered twice (under another case) runs twice.
        let (tx_a, mut first) = mpsc::unbounded_channel::<String>();
        let (tx_b, mut second) = mpsc::unbounded_channel::<String>();
        let id_a = connection.on("broadcast", move |text: String| {
            let tx = tx_a.clone();
            async move {
                let _ = tx.send(text);
            }
        });
        connection.on("BROADCAST", move |text: String| {
            let tx = tx_b.clone();
            async move {
                let _ = tx.send(text);
            }
        });

        // `send` does not wait for the server to run the method; the server runs one
        // invocation at a time, so a later invoke ends after it.
        let started = Instant::now();
        within(connection.send("Delay", (200,))).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "{label}: {:?}",
            started.elapsed()
        );
        barrier(&connection).await;
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{label}: {:?}",
            started.elapsed()
        );
        within(connection.send("SendToAll", ("one",)))
            .await
            .unwrap();
        barrier(&connection).await;
        assert_eq!(first.try_recv().ok().as_deref(), Some("one"), "{label}");
        assert_eq!(second.try_recv().ok().as_deref(), Some("one"), "{label}");

        // `off` with an id removes that handler only.
        connection.off("Broadcast", Some(id_a));
        within(connection.send("SendToAll", ("two",)))
            .await
            .unwrap();
        barrier(&connection).await;
        assert!(first.try_recv().is_err(), "{label}");
        assert_eq!(second.try_recv().ok().as_deref(), Some("two"), "{label}");

        // `off` without an id removes them all.
        connection.off("bRoAdCaSt", None);
        within(connection.send("SendToAll", ("three",)))
            .await
            .unwrap();
        barrier(&connection).await;
        assert!(first.try_recv().is_err(), "{label}");
        assert!(second.try_recv().is_err(), "{label}");

        // Events with several typed arguments.
        let (tx, mut group_messages) = mpsc::unbounded_channel::<(String, String)>();
        connection.on("groupMESSAGE", move |group: String, message: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((group, message));
            }
        });
        within(connection.invoke::<(), _>("JoinGroup", ("rustaceans",)))
            .await
            .unwrap();
        within(connection.invoke::<(), _>("SendToGroup", ("rustaceans", "hello group")))
            .await
            .unwrap();
        assert_eq!(
            next(&mut group_messages).await,
            ("rustaceans".to_owned(), "hello group".to_owned()),
            "{label}"
        );
        within(connection.invoke::<(), _>("LeaveGroup", ("rustaceans",)))
            .await
            .unwrap();
        within(connection.invoke::<(), _>("SendToGroup", ("rustaceans", "nobody")))
            .await
            .unwrap();
        barrier(&connection).await;
        assert!(group_messages.try_recv().is_err(), "{label}");

        // A PascalCase object as an event argument.
        let mut objects = forward::<CustomObject>(&connection, "customobject");
        let sent = CustomObject {
            name: "Rust".into(),
            value: 42,
        };
        within(connection.invoke::<(), _>("SendCustomObject", (sent.clone(),)))
            .await
            .unwrap();
        assert_eq!(next(&mut objects).await, sent, "{label}");

        // `CallEcho` calls the client's `Echo`; the handler's name matches in any case.
        let mut echoes = forward::<String>(&connection, "ECHO");
        within(connection.invoke::<(), _>("CallEcho", ("echoed",)))
            .await
            .unwrap();
        assert_eq!(next(&mut echoes).await, "echoed", "{label}");

        // A call for a handler the client does not have is ignored.
        within(connection.invoke::<(), _>("CallHandlerThatDoesntExist", ()))
            .await
            .unwrap();
        barrier(&connection).await;

        within(connection.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_stream_errors() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = connect(&base, transport, messagepack).await;
        let mut canceled = mpsc::unbounded_channel::<()>();
        let tx = canceled.0.clone();
        connection.on("StreamCanceled", move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(());
            }
        });

        let counted: Vec<i64> = within(async {
            connection
                .stream::<i64, _>("StreamCount", (5, 10))
                .await
                .unwrap()
                .map(|item| item.unwrap())
                .collect()
                .await
        })
        .await;
        assert_eq!(counted, [0, 1, 2, 3, 4], "{label}");

        let empty: Vec<i64> = within(async {
            connection
                .stream::<i64, _>("EmptyStream", ())
                .await
                .unwrap()
                .map(|item| item.unwrap())
                .collect()
                .await
        })
        .await;
        assert!(empty.is_empty(), "{label}");

        // Dropping the stream cancels it on the server, which tells the caller.
        let infinite = within(connection.stream::<i64, _>("InfiniteStream", ()))
            .await
            .unwrap();
        barrier(&connection).await;
        drop(infinite);
        within(canceled.1.recv()).await.unwrap();

        // A stream that fails on the server.
        let mut failing = within(connection.stream::<i64, _>("StreamThrowException", ("boom",)))
            .await
            .unwrap();
        let err = within(failing.next()).await.unwrap().unwrap_err();
        assert!(err.is_hub(), "{label}: {err:?}");
        assert_eq!(
            err.hub_message(),
            Some(
                "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: boom"
            ),
            "{label}"
        );
        assert!(within(failing.next()).await.is_none(), "{label}");

        // Invoking a streaming method, and streaming a plain one.
        for method in ["Stream", "EmptyStream"] {
            let err = within(connection.invoke::<(), _>(method, ()))
                .await
                .unwrap_err();
            assert_eq!(
                err.hub_message().map(str::to_owned),
                Some(format!(
                    "The client attempted to invoke the streaming '{method}' method with a non-streaming invocation."
                )),
                "{label}"
            );
        }
        let mut mismatch = within(connection.stream::<String, _>("Echo", ("x",)))
            .await
            .unwrap();
        let err = within(mismatch.next()).await.unwrap().unwrap_err();
        assert_eq!(
            err.hub_message(),
            Some(
                "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
            ),
            "{label}"
        );

        // Client-to-server streams: a sum, and a stream that ends with an error.
        let sum: i64 = within(connection.invoke(
            "UploadSum",
            (Upload::new(stream::iter([1, 2, 3, 4, 5, 1000])),),
        ))
        .await
        .unwrap();
        assert_eq!(sum, 1015, "{label}");
        let empty_sum: i64 =
            within(connection.invoke("UploadSum", (Upload::new(stream::iter(Vec::<i64>::new())),)))
                .await
                .unwrap();
        assert_eq!(empty_sum, 0, "{label}");
        let items: Vec<Result<&str, String>> = vec![Ok("a"), Ok("b"), Err("upload broke".into())];
        let err = within(
            connection
                .invoke::<String, _>("StreamingConcat", (Upload::try_new(stream::iter(items)),)),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.hub_message(),
            Some(
                "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: upload broke"
            ),
            "{label}"
        );
        // Items that take their time still arrive in order.
        let slow = stream::iter(["x", "y", "z"]).then(|s| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            s
        });
        let concat: String = within(connection.invoke("StreamingConcat", (Upload::new(slow),)))
            .await
            .unwrap();
        assert_eq!(concat, "xyz", "{label}");

        // The connection is still fine.
        barrier(&connection).await;
        within(connection.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complex_objects() {
    let (_server, base) = common::server();
    let expected = ComplexObject {
        string: "hello world".into(),
        int_array: vec![1, 2, 3],
        byte_array: Binary(vec![1, 2, 3]),
        guid: "00010203-0405-0607-0706-050403020100".into(),
        date_time: Timestamp::from_unix(946_684_800, 0).unwrap(),
    };
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = connect(&base, transport, messagepack).await;

        let sent = ComplexObject {
            string: "¡hola!".into(),
            int_array: vec![-1, 0, i64::MAX],
            byte_array: Binary((0..=255).collect()),
            guid: "6f0f9a1b-6c4b-4a38-9a4c-1a1c3c5e7f90".into(),
            date_time: Timestamp::from_unix(1_700_000_000, 123_456_000).unwrap(),
        };
        let echoed: ComplexObject = within(connection.invoke("EchoComplexObject", (sent.clone(),)))
            .await
            .unwrap();
        assert_eq!(echoed, sent, "{label}");

        let received: ComplexObject = within(connection.invoke("SendComplexObject", ()))
            .await
            .unwrap();
        assert_eq!(received, expected, "{label}");

        // As a generic value, the wire form shows: base64 and ISO dates in JSON.
        if !messagepack {
            let raw: serde_json::Value = within(connection.invoke("SendComplexObject", ()))
                .await
                .unwrap();
            assert_eq!(raw["ByteArray"], "AQID", "{label}");
            assert_eq!(raw["DateTime"], "2000-01-01T00:00:00Z", "{label}");
        }
        within(connection.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_results() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = connect(&base, transport, messagepack).await;
        let url = format!(
            "{base}/clientresult/{}",
            connection.connection_id().unwrap()
        );

        // No handler.
        assert_eq!(
            get_text(&url).await,
            "Client didn't provide a result.",
            "{label}"
        );

        // A value, from a handler that waits first (the name in another case).
        let id = connection.on("result", || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            10
        });
        assert_eq!(get_text(&url).await, "10", "{label}");
        connection.off("Result", Some(id));

        // An error, passed on unchanged. (`Result<i64, &str>` is itself `Serialize`, so the
        // marker must be named to pick "an error for the server" over "a value".)
        let id =
            connection.on::<(Fallible,), _>("Result", || async { Err::<i64, _>("from callback") });
        assert_eq!(get_text(&url).await, "from callback", "{label}");
        connection.off("Result", Some(id));

        // Two handlers with a value each.
        connection.on("Result", || async { 1 });
        connection.on("Result", || async { 2 });
        assert_eq!(
            get_text(&url).await,
            "Client provided multiple results.",
            "{label}"
        );
        connection.off("Result", None);
        assert_eq!(
            get_text(&url).await,
            "Client didn't provide a result.",
            "{label}"
        );

        // An event handler next to the one that answers does not count.
        connection.on("Result", || async {});
        connection.on("Result", || async { 7 });
        assert_eq!(get_text(&url).await, "7", "{label}");

        barrier(&connection).await;
        within(connection.stop()).await;
    }
}
