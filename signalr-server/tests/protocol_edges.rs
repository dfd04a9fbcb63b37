//! Protocol edges over a real socket: the maximum message size, handshake failures and
//! timeout, keep-alive pings, and the client timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Event, Options, handshake, read_handshake_response, serve, ws_connect};
use serde_json::json;
use signalr_core::{HubMessage, Invocation};
use signalr_server::{Hub, HubOptions};
use tokio::time::Instant;

fn hub(options: HubOptions) -> Hub {
    Hub::builder("Edges")
        .options(options)
        .method("Echo", |text: String| async move { text.len() })
        .build()
}

/// A JSON invocation of `Echo` whose framed size is about `size` bytes.
async fn send_big_echo(client: &mut Client, size: usize) {
    let text = "x".repeat(size);
    let args = client.encode_args(&json!([text]));
    client
        .send(
            Invocation::new("Echo", args)
                .with_invocation_id("big")
                .into(),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_closes_with_a_generic_error() {
    let server = serve(hub(HubOptions::default())).await;
    let mut client = Client::connect(server.addr).await;
    // Just under the limit is fine.
    send_big_echo(&mut client, 32 * 1024 - 100).await;
    let done = client.completion("big").await;
    assert_eq!(common::value_of::<usize>(&done), 32 * 1024 - 100);

    send_big_echo(&mut client, 40 * 1024).await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close.error.as_deref(),
        Some("Connection closed with an error.")
    );
    assert!(close.allow_reconnect);
    assert!(
        client
            .raw_text()
            .ends_with("{\"type\":7,\"error\":\"Connection closed with an error.\",\"allowReconnect\":true}\u{1e}"),
        "{}",
        client.raw_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_with_detailed_errors_names_the_limit() {
    let server = serve(hub(HubOptions::default().enable_detailed_errors(true))).await;
    let mut client = Client::connect(server.addr).await;
    send_big_echo(&mut client, 40 * 1024).await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close.error.as_deref(),
        Some(
            "Connection closed with an error. InvalidDataException: The maximum message size of 32768B was exceeded. The message size can be configured in AddHubOptions."
        )
    );
    assert!(close.allow_reconnect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messagepack_message_closes_the_connection() {
    let server = serve(hub(HubOptions::default())).await;
    let mut client = Client::connect_with(server.addr, &Options::messagepack()).await;
    send_big_echo(&mut client, 40 * 1024).await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close.error.as_deref(),
        Some("Connection closed with an error.")
    );
    assert!(close.allow_reconnect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_with_an_unknown_protocol_fails() {
    let server = serve(hub(HubOptions::default())).await;
    let mut ws = ws_connect(server.addr, "/hub", None).await.unwrap();
    let (response, _) = handshake(&mut ws, "xml", 1).await.unwrap();
    assert_eq!(
        response.error.as_deref(),
        Some("The protocol 'xml' is not supported.")
    );
    // Then the server closes the socket.
    let mut client_closed = false;
    let deadline = Instant::now() + common::TIMEOUT;
    while Instant::now() < deadline {
        use futures_util::StreamExt;
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(
                None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))),
            ) => {
                client_closed = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => break,
        }
    }
    assert!(client_closed, "the server did not close the socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_with_an_unsupported_version_fails() {
    let server = serve(hub(HubOptions::default())).await;
    let mut ws = ws_connect(server.addr, "/hub", None).await.unwrap();
    let (response, _) = handshake(&mut ws, "json", 3).await.unwrap();
    assert_eq!(
        response.error.as_deref(),
        Some("The server does not support version 3 of the 'json' protocol.")
    );

    // Versions 1 and 2 are fine.
    for version in [1, 2] {
        let options = Options {
            version,
            ..Options::default()
        };
        let mut client = Client::connect_with(server.addr, &options).await;
        assert_eq!(
            client.invoke_value::<usize>("Echo", json!(["abc"])).await,
            3
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_cancels_the_connection() {
    let timeout = Duration::from_millis(300);
    let server = serve(hub(HubOptions::default().handshake_timeout(timeout))).await;
    let mut ws = ws_connect(server.addr, "/hub", None).await.unwrap();
    let started = Instant::now();
    // Send nothing.
    let (response, _) = read_handshake_response(&mut ws)
        .await
        .expect("an error response before the close");
    assert_eq!(response.error.as_deref(), Some("Handshake was canceled."));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout - Duration::from_millis(50),
        "{elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_in_pieces_is_accepted() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = serve(hub(HubOptions::default())).await;
    let mut ws = ws_connect(server.addr, "/hub", None).await.unwrap();
    ws.send(Message::text("{\"protocol\":\"js")).await.unwrap();
    ws.send(Message::text("on\",\"version\":1}\u{1e}{\"type\":6}\u{1e}"))
        .await
        .unwrap();
    let (response, _) = read_handshake_response(&mut ws).await.unwrap();
    assert_eq!(response.error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_pings_arrive_at_the_configured_interval() {
    let interval = Duration::from_millis(100);
    let server = serve(hub(HubOptions::default().keep_alive_interval(interval))).await;
    let mut client = Client::connect(server.addr).await;
    let started = Instant::now();
    let mut arrivals = Vec::new();
    while arrivals.len() < 5 {
        match client.next_event().await {
            Event::Message(HubMessage::Ping) => arrivals.push(started.elapsed()),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Not faster than configured, and not much slower.
    assert!(
        arrivals[0] >= interval - Duration::from_millis(30),
        "{arrivals:?}"
    );
    assert!(
        arrivals[4] >= interval * 5 - Duration::from_millis(50),
        "{arrivals:?}"
    );
    assert!(
        arrivals[4] < interval * 5 + Duration::from_secs(2),
        "{arrivals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_timed_out_after_its_first_ping() {
    let timeout = Duration::from_millis(300);
    let server = serve(hub(HubOptions::default()
        .client_timeout_interval(timeout)
        .keep_alive_interval(Duration::from_secs(3600))))
    .await;
    let mut client = Client::connect(server.addr).await;
    client.ping().await;
    let started = Instant::now();
    let close = client.expect_closed().await.expect("a Close message");
    let elapsed = started.elapsed();
    assert_eq!(
        close.error.as_deref(),
        Some("Connection closed with an error.")
    );
    assert!(close.allow_reconnect);
    assert!(
        elapsed >= timeout - Duration::from_millis(50),
        "{elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_timeout_with_detailed_errors_explains_itself() {
    let server = serve(hub(HubOptions::default()
        .client_timeout_interval(Duration::from_millis(200))
        .enable_detailed_errors(true)))
    .await;
    let mut client = Client::connect(server.addr).await;
    client.ping().await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close.error.as_deref(),
        Some(
            "Connection closed with an error. OperationCanceledException: Client hasn't sent a message/ping within the configured ClientTimeoutInterval."
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinging_client_is_not_timed_out() {
    let timeout = Duration::from_millis(300);
    let server = serve(hub(HubOptions::default().client_timeout_interval(timeout))).await;
    let mut client = Client::connect(server.addr).await;
    // Ping well within the timeout for several timeouts' worth of time.
    for _ in 0..8 {
        client.ping().await;
        assert_eq!(client.recv_within(timeout / 3).await, None);
    }
    assert_eq!(client.invoke_value::<usize>("Echo", json!(["ok"])).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_pings_is_not_timed_out() {
    let timeout = Duration::from_millis(200);
    let server = serve(hub(HubOptions::default().client_timeout_interval(timeout))).await;
    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.invoke_value::<usize>("Echo", json!(["a"])).await, 1);
    // Silent for several timeouts: nothing may arrive, the connection must stay open.
    assert_eq!(client.recv_within(timeout * 4).await, None);
    assert_eq!(client.invoke_value::<usize>("Echo", json!(["ok"])).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn several_messages_under_the_limit_in_one_websocket_message_are_accepted() {
    let server = serve(hub(HubOptions::default())).await;
    let mut client = Client::connect(server.addr).await;
    // Five invocations of about 30 KiB each, as a client that batches its writes (the .NET
    // client's pipe does) sends them: one WebSocket message of about 150 KiB.
    let text = "y".repeat(30 * 1024);
    let mut batch = Vec::new();
    for n in 0..5 {
        let args = client.encode_args(&json!([text]));
        let message = Invocation::new("Echo", args).with_invocation_id(n.to_string());
        batch.extend_from_slice(&client.protocol.to_bytes(&message.into()).unwrap());
    }
    client.send_bytes(batch.into()).await;
    for n in 0..5 {
        let done = client.completion(&n.to_string()).await;
        assert_eq!(common::value_of::<usize>(&done), 30 * 1024);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn far_oversized_message_closes_with_an_error_too() {
    let server = serve(hub(HubOptions::default())).await;
    let mut client = Client::connect(server.addr).await;
    send_big_echo(&mut client, 200 * 1024).await;
    let close = client.expect_closed().await;
    assert_eq!(
        close.and_then(|c| c.error).as_deref(),
        Some("Connection closed with an error.")
    );
}
