//! The Rust client (`signalr-client`) reconnecting to a real `interop-server` process that
//! is killed and started again on the same address, a retry policy that gives up, and
//! stateful reconnect with invocations in flight.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{COMBINATIONS, builder, label, next, next_event, within};
use signalr_client::{
    ConnectionEvent, ConnectionState, HubConnection, RetryContext, TransportType,
};
use tokio::sync::mpsc;

/// Retries every 200 ms, for up to 10 seconds.
fn fast_retry(context: &RetryContext) -> Option<Duration> {
    (context.previous_retry_count < 50).then(|| Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_to_a_restarted_server() {
    let addr = signalr_tests::free_addr();
    let base = format!("http://{addr}");
    let server = common::server_at(addr);

    struct Client {
        label: String,
        connection: HubConnection,
        messages: mpsc::UnboundedReceiver<String>,
        events: tokio::sync::broadcast::Receiver<ConnectionEvent>,
        id: Option<String>,
    }
    let mut clients = Vec::new();
    // Every combination with the fast policy, and one with the official default delays
    // (0, 2, 10, 30 s: the server is back before the 2 s attempt).
    let setups = COMBINATIONS.iter().map(|&(t, m)| (t, m, false)).chain([(
        TransportType::WebSockets,
        false,
        true,
    )]);
    for (transport, messagepack, default_policy) in setups {
        let builder = builder(&base, "/testhub", transport, messagepack);
        let builder = if default_policy {
            builder.with_automatic_reconnect()
        } else {
            builder.retry_policy(fast_retry)
        };
        let connection = builder.build().unwrap();
        let messages = common::forward::<String>(&connection, "Message");
        within(connection.start()).await.unwrap();
        let mut label = label(transport, messagepack);
        if default_policy {
            label.push_str(" (default policy)");
        }
        clients.push(Client {
            label,
            events: connection.events(),
            id: connection.connection_id(),
            connection,
            messages,
        });
    }

    // Invocations waiting when the server dies fail as closed.
    let mut pending = Vec::new();
    for client in &clients {
        pending.push(common::started_invoke(&client.connection, "Delay", (60_000,)).await);
    }

    drop(server);
    for client in &mut clients {
        let event = next_event(&mut client.events, Duration::from_secs(10)).await;
        assert!(
            matches!(event, ConnectionEvent::Reconnecting(_)),
            "{}: {event:?}",
            client.label
        );
        assert_eq!(
            client.connection.state(),
            ConnectionState::Reconnecting,
            "{}",
            client.label
        );
        let err = client
            .connection
            .invoke::<String, _>("Echo", ("meanwhile",))
            .await
            .unwrap_err();
        assert!(err.is_not_connected(), "{}: {err:?}", client.label);
    }
    for (client, call) in clients.iter().zip(pending) {
        let err = within(call).await.unwrap_err();
        assert!(err.is_closed(), "{}: {err:?}", client.label);
    }

    let _server = common::server_at(addr);
    for client in &mut clients {
        let event = next_event(&mut client.events, Duration::from_secs(10)).await;
        let ConnectionEvent::Reconnected(Some(new_id)) = event else {
            panic!("{}: {event:?}", client.label);
        };
        assert_ne!(Some(&new_id), client.id.as_ref(), "{}", client.label);
        assert_eq!(
            client.connection.connection_id().as_ref(),
            Some(&new_id),
            "{}",
            client.label
        );
        assert_eq!(
            client.connection.state(),
            ConnectionState::Connected,
            "{}",
            client.label
        );
        // Handlers registered before still run; invocations work.
        within(
            client
                .connection
                .invoke::<(), _>("InvokeWithString", ("after restart",)),
        )
        .await
        .unwrap();
        assert_eq!(
            next(&mut client.messages).await,
            "after restart",
            "{}",
            client.label
        );
        let id: String = within(client.connection.invoke("GetCallerConnectionId", ()))
            .await
            .unwrap();
        assert_eq!(id, new_id, "{}", client.label);
    }
    for client in &mut clients {
        within(client.connection.stop()).await;
        assert_eq!(
            next_event(&mut client.events, Duration::from_secs(5)).await,
            ConnectionEvent::Closed(None),
            "{}",
            client.label
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_gives_up_closes_with_the_error() {
    let addr = signalr_tests::free_addr();
    let base = format!("http://{addr}");
    let server = common::server_at(addr);
    let mut clients = Vec::new();
    for (transport, messagepack) in COMBINATIONS {
        let (tx, mut contexts) = mpsc::unbounded_channel::<RetryContext>();
        let connection = builder(&base, "/testhub", transport, messagepack)
            .retry_policy(move |context: &RetryContext| {
                let _ = tx.send(context.clone());
                (context.previous_retry_count < 3).then(|| Duration::from_millis(50))
            })
            .build()
            .unwrap();
        within(connection.start()).await.unwrap();
        let events = connection.events();
        // Nothing asks the policy while connected.
        assert!(contexts.try_recv().is_err());
        clients.push((label(transport, messagepack), connection, events, contexts));
    }
    drop(server);
    for (label, connection, events, contexts) in &mut clients {
        let event = next_event(events, Duration::from_secs(10)).await;
        assert!(
            matches!(event, ConnectionEvent::Reconnecting(_)),
            "{label}: {event:?}"
        );
        let event = next_event(events, Duration::from_secs(10)).await;
        let ConnectionEvent::Closed(Some(error)) = event else {
            panic!("{label}: {event:?}");
        };
        assert!(!error.is_empty(), "{label}");
        assert_eq!(connection.state(), ConnectionState::Disconnected, "{label}");
        // Asked four times: three retries, then it gave up.
        let mut counts = Vec::new();
        while let Ok(context) = contexts.try_recv() {
            counts.push(context.previous_retry_count);
        }
        assert_eq!(counts, [0, 1, 2, 3], "{label}");
        let err = within(connection.invoke::<String, _>("Echo", ("x",)))
            .await
            .unwrap_err();
        assert!(err.is_not_connected(), "{label}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_reconnect() {
    let addr = signalr_tests::free_addr();
    let base = format!("http://{addr}");
    let server = common::server_at(addr);
    let connection = builder(&base, "/testhub", TransportType::WebSockets, false)
        .retry_policy(fast_retry)
        .build()
        .unwrap();
    within(connection.start()).await.unwrap();
    let mut events = connection.events();
    drop(server);
    let event = next_event(&mut events, Duration::from_secs(10)).await;
    assert!(
        matches!(event, ConnectionEvent::Reconnecting(_)),
        "{event:?}"
    );
    within(connection.stop()).await;
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)).await,
        ConnectionEvent::Closed(None)
    );
    assert_eq!(connection.state(), ConnectionState::Disconnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_reconnect_with_invocations_in_flight() {
    let (_server, base) = common::server();
    for messagepack in [false, true] {
        let label = if messagepack { "messagepack" } else { "json" };
        let connection = builder(
            &base,
            "/testhub-stateful",
            TransportType::WebSockets,
            messagepack,
        )
        .with_stateful_reconnect()
        .retry_policy(fast_retry)
        .build()
        .unwrap();
        within(connection.start()).await.unwrap();
        let id = connection.connection_id();
        let mut events = connection.events();
        for round in 0..5i64 {
            let mut calls = Vec::new();
            for i in 0..30i64 {
                let connection = connection.clone();
                calls.push(tokio::spawn(async move {
                    if i == 10 {
                        connection.invoke::<(), _>("DropTransport", ()).await?;
                        return Ok(None);
                    }
                    let sum: i64 = connection.invoke("Add", (round * 1000, i)).await?;
                    let text: String = connection.invoke("Echo", (format!("{round}-{i}"),)).await?;
                    assert_eq!(text, format!("{round}-{i}"));
                    Ok::<_, signalr_client::Error>(Some(sum))
                }));
            }
            let mut sums = Vec::new();
            for call in calls {
                if let Some(sum) = within(call).await.unwrap().unwrap() {
                    sums.push(sum);
                }
            }
            sums.sort_unstable();
            let expected: Vec<i64> = (0..30)
                .filter(|i| *i != 10)
                .map(|i| round * 1000 + i)
                .collect();
            assert_eq!(sums, expected, "{label} round {round}");
        }
        // The same logical connection throughout: no reconnect event.
        assert_eq!(connection.connection_id(), id, "{label}");
        assert!(events.try_recv().is_err(), "{label}");
        within(connection.stop()).await;
    }
}
