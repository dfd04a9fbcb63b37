//! The Rust client (`signalr-client`) against the interop server: connecting (tokens,
//! redirects, skipped negotiation, transport fallback, headers), failures to connect,
//! aborts, concurrency on one connection, message size limits and use after stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{COMBINATIONS, builder, connect, label, next_event, within};
use signalr_client::{
    ConnectionEvent, ConnectionState, HubConnection, HubConnectionBuilder, TransportType,
};

async fn transport_name(connection: &HubConnection) -> String {
    within(connection.invoke("GetActiveTransportName", ()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_hub_with_and_without_a_token() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let token_url = format!("{base}/generateJwtToken");
        let connection = builder(&base, "/authorizedhub", transport, messagepack)
            .access_token_provider(move || {
                let url = token_url.clone();
                async move {
                    let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
                    response.text().await.map_err(|e| e.to_string())
                }
            })
            .build()
            .unwrap();
        within(connection.start()).await.unwrap();
        let user: Option<String> = within(connection.invoke("GetUserIdentifier", ()))
            .await
            .unwrap();
        assert_eq!(user.as_deref(), Some("testuser"), "{label}");
        let echo: String = within(connection.invoke("Echo", ("secret",)))
            .await
            .unwrap();
        assert_eq!(echo, "secret", "{label}");
        within(connection.stop()).await;

        let anonymous = builder(&base, "/authorizedhub", transport, messagepack)
            .build()
            .unwrap();
        let err = within(anonymous.start()).await.unwrap_err();
        assert!(err.is_negotiate(), "{label}: {err:?}");
        assert!(
            err.to_string().contains("Unauthorized: Status code '401'"),
            "{label}: {err}"
        );
        assert_eq!(anonymous.state(), ConnectionState::Disconnected, "{label}");

        // A provider that fails makes `start` fail with its text.
        let failing = builder(&base, "/authorizedhub", transport, messagepack)
            .access_token_provider(|| async { Err::<String, _>("no token today".to_owned()) })
            .build()
            .unwrap();
        let err = within(failing.start()).await.unwrap_err();
        assert!(err.to_string().contains("no token today"), "{label}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_on_test_hub_sets_the_user() {
    let (_server, base) = common::server();
    let token = common::get_text(&format!("{base}/generateJwtToken/ferris")).await;
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let token = token.clone();
        let connection = builder(&base, "/testhub", transport, messagepack)
            .access_token_provider(move || {
                let token = token.clone();
                async move { Ok(token) }
            })
            .build()
            .unwrap();
        within(connection.start()).await.unwrap();
        let user: Option<String> = within(connection.invoke("GetUserIdentifier", ()))
            .await
            .unwrap();
        assert_eq!(user.as_deref(), Some("ferris"), "{label}");
        within(connection.stop()).await;

        let anonymous = connect(&base, transport, messagepack).await;
        let user: Option<String> = within(anonymous.invoke("GetUserIdentifier", ()))
            .await
            .unwrap();
        assert_eq!(user, None, "{label}");
        within(anonymous.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_redirect() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = builder(
            &base,
            &format!("/redirect?baseUrl={base}"),
            transport,
            messagepack,
        )
        .build()
        .unwrap();
        within(connection.start()).await.unwrap();
        let redirects: i64 = within(connection.invoke("GetNumRedirects", ()))
            .await
            .unwrap();
        assert!(redirects >= 1, "{label}: {redirects}");
        let id: String = within(connection.invoke("GetCallerConnectionId", ()))
            .await
            .unwrap();
        assert_eq!(Some(id), connection.connection_id(), "{label}");
        assert_eq!(
            transport_name(&connection).await,
            transport.as_str(),
            "{label}"
        );
        within(connection.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_negotiation() {
    let (_server, base) = common::server();
    for messagepack in [false, true] {
        let connection = builder(&base, "/testhub", TransportType::WebSockets, messagepack)
            .skip_negotiation(true)
            .build()
            .unwrap();
        within(connection.start()).await.unwrap();
        assert_eq!(connection.connection_id(), None);
        let echo: String = within(connection.invoke("Echo", ("no negotiate",)))
            .await
            .unwrap();
        assert_eq!(echo, "no negotiate");
        assert_eq!(transport_name(&connection).await, "WebSockets");
        within(connection.stop()).await;
    }
    // Skipping negotiation needs WebSockets.
    let connection = builder(&base, "/testhub", TransportType::LongPolling, false)
        .skip_negotiation(true)
        .build()
        .unwrap();
    assert!(within(connection.start()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_fallback_without_websockets() {
    let (_server, base) = common::server();
    for (messagepack, expected) in [(false, "ServerSentEvents"), (true, "LongPolling")] {
        let mut builder = HubConnectionBuilder::new(format!("{base}/testhub-nowebsockets"));
        if messagepack {
            builder = builder.messagepack();
        }
        let connection = builder.build().unwrap();
        within(connection.start()).await.unwrap();
        assert_eq!(transport_name(&connection).await, expected);
        within(connection.stop()).await;
    }
    // Only WebSockets allowed by the client: nothing fits.
    let connection = builder(
        &base,
        "/testhub-nowebsockets",
        TransportType::WebSockets,
        false,
    )
    .build()
    .unwrap();
    let err = within(connection.start()).await.unwrap_err();
    assert!(err.is_transport(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_user_agent_and_cookies() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = builder(&base, "/testhub", transport, messagepack)
            .header("X-HEADER", "VALUE")
            .build()
            .unwrap();
        within(connection.start()).await.unwrap();
        let value: Option<String> = within(connection.invoke("GetHeader", ("X-HEADER",)))
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some("VALUE"), "{label}");
        let agent: Option<String> = within(connection.invoke("GetHeader", ("User-Agent",)))
            .await
            .unwrap();
        let agent = agent.unwrap_or_default();
        assert!(
            agent.starts_with("Microsoft SignalR/"),
            "{label}: {agent:?}"
        );
        // Cookies that negotiate set go with the transport's requests, expired ones not.
        for (name, expected) in [
            ("testCookie", Some("testValue")),
            ("testCookie2", Some("testValue2")),
            ("expiredCookie", None),
        ] {
            let value: Option<String> = within(connection.invoke("GetCookie", (name,)))
                .await
                .unwrap();
            assert_eq!(value.as_deref(), expected, "{label}: cookie {name}");
        }
        within(connection.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_negotiate_and_unreachable_servers() {
    let (_server, base) = common::server();
    let connection = HubConnectionBuilder::new(format!("{base}/bad-negotiate"))
        .build()
        .unwrap();
    let err = within(connection.start()).await.unwrap_err();
    assert!(err.is_negotiate(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("Some response from server"), "{text}");
    assert!(text.contains("Status code '400'"), "{text}");
    assert_eq!(connection.state(), ConnectionState::Disconnected);

    // Nothing listens there.
    let addr = signalr_tests::free_addr();
    let connection = HubConnectionBuilder::new(format!("http://{addr}/testhub"))
        .build()
        .unwrap();
    let err = within(connection.start()).await.unwrap_err();
    assert!(err.is_negotiate(), "{err:?}");
    assert_eq!(connection.state(), ConnectionState::Disconnected);
}

/// Calls `Abort` on a connection with automatic reconnect: it closes, and stays closed.
async fn abort_once(base: &str, transport: TransportType, messagepack: bool) {
    let label = label(transport, messagepack);
    let connection = builder(base, "/testhub", transport, messagepack)
        .with_automatic_reconnect()
        .build()
        .unwrap();
    within(connection.start()).await.unwrap();
    let mut events = connection.events();
    within(connection.send("Abort", ())).await.unwrap();
    let event = next_event(&mut events, Duration::from_secs(10)).await;
    assert_eq!(event, ConnectionEvent::Closed(None), "{label}");
    assert_eq!(connection.state(), ConnectionState::Disconnected, "{label}");
    let err = within(connection.invoke::<String, _>("Echo", ("x",)))
        .await
        .unwrap_err();
    assert!(err.is_not_connected(), "{label}: {err:?}");
    // Nothing more happens: no reconnect.
    let more = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    assert!(more.is_err(), "{label}: {more:?}");
    assert_eq!(connection.state(), ConnectionState::Disconnected, "{label}");

    // It can be started again by hand.
    within(connection.start()).await.unwrap();
    assert_eq!(
        transport_name(&connection).await,
        transport.as_str(),
        "{label}"
    );
    within(connection.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_closes_without_reconnecting() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        if transport != TransportType::LongPolling {
            abort_once(&base, transport, messagepack).await;
        }
    }
}

/// Long polling: when the connection ends while no poll is waiting (here: the client is
/// between the poll that brought the handshake answer and the next one), `signalr-server`
/// removes the connection at once, so the next poll gets 404 and the Close that `Abort`
/// queued is never delivered; the client sees a lost connection and reconnects. ASP.NET
/// Core keeps the connection until a poll has taken what was queued (200 with the Close,
/// then 204). Fails about one run in five; repeated here to show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn abort_over_long_polling() {
    let (_server, base) = common::server();
    for _ in 0..10 {
        for messagepack in [false, true] {
            abort_once(&base, TransportType::LongPolling, messagepack).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_from_clones() {
    fn send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = connect(&base, transport, messagepack).await;
        send_sync(&connection);
        let mut tasks = Vec::new();
        for task in 0..4i64 {
            let connection = connection.clone();
            tasks.push(tokio::spawn(async move {
                let mut calls = Vec::new();
                for i in 0..8i64 {
                    let connection = connection.clone();
                    calls.push(async move {
                        connection.invoke::<(), _>("Delay", (5,)).await?;
                        let sum: i64 = connection.invoke("Add", (task * 100, i)).await?;
                        let echo: String =
                            connection.invoke("Echo", (format!("{task}/{i}"),)).await?;
                        Ok::<_, signalr_client::Error>((task * 100 + i, sum, echo))
                    });
                }
                futures_util::future::join_all(calls).await
            }));
        }
        for task in tasks {
            for outcome in within(task).await.unwrap() {
                let (expected, sum, echo) = outcome.unwrap();
                assert_eq!(sum, expected, "{label}");
                assert_eq!(
                    echo,
                    format!("{}/{}", expected / 100, expected % 100),
                    "{label}"
                );
            }
        }
        within(connection.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_above_the_limit_closes_the_connection() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = connect(&base, transport, messagepack).await;
        // Just below the limit is fine.
        let fits = "y".repeat(30 * 1024);
        let echo: String = within(connection.invoke("Echo", (fits.clone(),)))
            .await
            .unwrap();
        assert_eq!(echo, fits, "{label}");

        let mut events = connection.events();
        let busy = common::started_invoke(&connection, "Delay", (5_000,)).await;
        let big = "x".repeat(40 * 1024);
        let err = within(connection.invoke::<String, _>("Echo", (big,)))
            .await
            .unwrap_err();
        assert!(err.is_closed(), "{label}: {err:?}");
        let err = within(busy).await.unwrap_err();
        assert!(err.is_closed(), "{label}: {err:?}");
        const TOO_BIG: &str = "Server returned an error on close: Connection closed with an error. InvalidDataException: The maximum message size of 32768B was exceeded.";
        match next_event(&mut events, Duration::from_secs(10)).await {
            // Over long polling the Close is sometimes lost to the server bug that
            // `abort_over_long_polling` shows: the next poll gets 404 instead.
            ConnectionEvent::Closed(Some(error)) if transport == TransportType::LongPolling => {
                assert!(
                    error.starts_with(TOO_BIG) || error.contains("status code '404'"),
                    "{label}: {error}"
                );
            }
            ConnectionEvent::Closed(Some(error)) => {
                assert!(error.starts_with(TOO_BIG), "{label}: {error}");
            }
            other => panic!("{label}: {other:?}"),
        }
        assert_eq!(connection.state(), ConnectionState::Disconnected, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_after_stop() {
    let (_server, base) = common::server();
    for (transport, messagepack) in COMBINATIONS {
        let label = label(transport, messagepack);
        let connection = connect(&base, transport, messagepack).await;
        let pending = common::started_invoke(&connection, "Delay", (5_000,)).await;
        within(connection.stop()).await;
        let err = within(pending).await.unwrap_err();
        assert!(err.is_closed(), "{label}: {err:?}");

        let err = within(connection.invoke::<String, _>("Echo", ("late",)))
            .await
            .unwrap_err();
        assert!(err.is_not_connected(), "{label}: {err:?}");
        let err = within(connection.send("Echo", ("late",)))
            .await
            .unwrap_err();
        assert!(err.is_not_connected(), "{label}: {err:?}");
        let err = within(connection.stream::<i64, _>("StreamCount", (1, 0)))
            .await
            .unwrap_err();
        assert!(err.is_not_connected(), "{label}: {err:?}");
        // Stopping twice is harmless; so is starting again.
        within(connection.stop()).await;
        within(connection.start()).await.unwrap();
        assert_eq!(
            transport_name(&connection).await,
            transport.as_str(),
            "{label}"
        );
        within(connection.stop()).await;
    }
}
