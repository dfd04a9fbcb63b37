//! Connection lifecycle over a real socket: `on_connected` refusing a connection, and the
//! reason `on_disconnected` sees for each way a connection ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Log, Options, serve};
use serde_json::json;
use signalr_core::{Close, HubMessage, Invocation};
use signalr_server::{Caller, DisconnectReason, Hub, HubError, HubOptions, State};

type Disconnects = Log<(String, Option<String>)>;

fn hub(options: HubOptions, disconnects: Disconnects) -> Hub {
    Hub::builder("Lifecycle")
        .options(options)
        .state(disconnects)
        .on_connected(|caller: Caller| async move {
            match caller.request().query("reject").as_deref() {
                Some("hub") => Err(HubError::new("go away")),
                Some("hidden") => Err(HubError::exception(
                    "InvalidOperationException",
                    "secret reason",
                )),
                _ => Ok(()),
            }
        })
        .on_disconnected(
            |caller: Caller, reason: DisconnectReason, State(log): State<Disconnects>| async move {
                log.push((
                    caller.connection_id().to_owned(),
                    reason.error().map(str::to_owned),
                ));
            },
        )
        .method("Whoami", |caller: Caller| async move {
            caller.connection_id().to_owned()
        })
        .method("Abort", |caller: Caller| async move { caller.abort() })
        .build()
}

async fn disconnect_of(log: &Disconnects, id: &str) -> Option<String> {
    let entries = log
        .wait_for(&format!("on_disconnected for {id}"), |l| {
            l.iter().any(|(i, _)| i == id)
        })
        .await;
    entries.into_iter().find(|(i, _)| i == id).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_connection_gets_a_close_without_reconnect() {
    let log = Disconnects::new();
    let server = serve(hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect_with(server.addr, &Options::query("reject=hub")).await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close,
        Close::new(
            Some("Connection closed with an error. HubException: go away".into()),
            false
        )
    );
    // On the wire, `allowReconnect` is absent.
    assert_eq!(
        client.raw_text(),
        "{\"type\":7,\"error\":\"Connection closed with an error. HubException: go away\"}\u{1e}"
    );

    // on_disconnected does not run for a connection that never connected: a later
    // connection's disconnect is seen, the rejected one's never is.
    let other = Client::connect(server.addr).await;
    let other_id = other.connection_id.clone();
    other.close().await;
    let entries = log
        .wait_for("the other disconnect", |l| {
            l.iter().any(|(i, _)| *i == other_id)
        })
        .await;
    assert!(
        entries.iter().all(|(i, _)| *i != client.connection_id),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_details_are_hidden_without_detailed_errors() {
    let server = serve(hub(HubOptions::default(), Disconnects::new())).await;
    let mut client = Client::connect_with(server.addr, &Options::query("reject=hidden")).await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close,
        Close::new(Some("Connection closed with an error.".into()), false)
    );

    let server = serve(hub(
        HubOptions::default().enable_detailed_errors(true),
        Disconnects::new(),
    ))
    .await;
    let mut client = Client::connect_with(server.addr, &Options::query("reject=hidden")).await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close.error.as_deref(),
        Some("Connection closed with an error. InvalidOperationException: secret reason")
    );
    assert!(!close.allow_reconnect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messagepack_connection_gets_a_close_too() {
    let server = serve(hub(HubOptions::default(), Disconnects::new())).await;
    let options = Options {
        query: "reject=hub".into(),
        ..Options::messagepack()
    };
    let mut client = Client::connect_with(server.addr, &options).await;
    let close = client.expect_closed().await.expect("a Close message");
    assert_eq!(
        close,
        Close::new(
            Some("Connection closed with an error. HubException: go away".into()),
            false
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_close_has_no_disconnect_error() {
    let log = Disconnects::new();
    let server = serve(hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    client.close().await;
    assert_eq!(disconnect_of(&log, &id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_socket_is_a_disconnect() {
    let log = Disconnects::new();
    let server = serve(hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    drop(client.into_ws());
    let _ = disconnect_of(&log, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_message_from_the_client() {
    let log = Disconnects::new();
    let server = serve(hub(HubOptions::default(), log.clone())).await;

    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    client.send(Close::new(None, false).into()).await;
    // The server ends the connection without a Close of its own.
    assert_eq!(client.expect_closed().await, None);
    assert_eq!(disconnect_of(&log, &id).await, None);

    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    client
        .send(Close::new(Some("client is leaving".into()), false).into())
        .await;
    assert_eq!(client.expect_closed().await, None);
    let reason = disconnect_of(&log, &id).await.expect("an error");
    assert!(reason.contains("client is leaving"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_errors_are_disconnect_errors() {
    let log = Disconnects::new();
    let server = serve(hub(
        HubOptions::default().client_timeout_interval(Duration::from_millis(200)),
        log.clone(),
    ))
    .await;

    // Too large a message.
    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    let args = client.encode_args(&json!(["x".repeat(40 * 1024)]));
    client.send(Invocation::new("Whoami", args).into()).await;
    let _ = client.expect_closed().await;
    let reason = disconnect_of(&log, &id).await.expect("an error");
    assert!(reason.contains("maximum message size"), "{reason}");

    // Client timeout.
    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    client.ping().await;
    let _ = client.expect_closed().await;
    let reason = disconnect_of(&log, &id).await.expect("an error");
    assert!(reason.contains("ClientTimeoutInterval"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_from_a_hub_method_closes_without_reconnect() {
    let log = Disconnects::new();
    let server = serve(hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    client.send_invocation("9", "Abort", json!([])).await;
    let mut close = None;
    loop {
        match client.next_event().await {
            common::Event::Closed => break,
            common::Event::Message(HubMessage::Close(c)) => close = Some(c),
            common::Event::Message(_) => {}
        }
    }
    assert_eq!(close, Some(Close::new(None, false)));
    assert_eq!(disconnect_of(&log, &id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_connected_can_greet_the_caller_and_join_groups() {
    use signalr_server::{Clients, Groups};
    let hub = Hub::builder("Greeter")
        .on_connected(
            |clients: Clients, groups: Groups, caller: Caller| async move {
                groups
                    .add_to_group(caller.connection_id(), "everyone")
                    .await?;
                clients
                    .caller()
                    .send("Welcome", (caller.connection_id().to_owned(),))
                    .await?;
                clients
                    .others_in_group("everyone")
                    .send("Joined", (caller.connection_id().to_owned(),))
                    .await
            },
        )
        .method("Whoami", |caller: Caller| async move {
            caller.connection_id().to_owned()
        })
        .build();
    let server = serve(hub).await;
    let mut a = Client::connect(server.addr).await;
    let message = a.recv().await;
    let (target, args) = common::invocation_of(&message);
    assert_eq!(target, "Welcome");
    assert_eq!(common::arg::<String>(&args[0]), a.connection_id);

    let mut b = Client::connect(server.addr).await;
    let message = b.recv().await;
    assert_eq!(common::invocation_of(&message).0, "Welcome");
    let message = a.recv().await;
    let (target, args) = common::invocation_of(&message);
    assert_eq!(target, "Joined");
    assert_eq!(common::arg::<String>(&args[0]), b.connection_id);
    // Invocations work after the greeting.
    let id: String = b.invoke_value("Whoami", json!([])).await;
    assert_eq!(id, b.connection_id);
}
