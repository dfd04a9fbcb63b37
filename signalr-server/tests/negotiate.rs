//! Negotiate and connection tokens over real HTTP: versions, ids, the status codes of
//! ASP.NET Core's dispatcher, token reuse and expiry, and skipping negotiation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Options, TIMEOUT, http, negotiate, serve, ws_connect, ws_status};
use serde_json::json;
use signalr_server::{Caller, Hub, HubOptions};
use tokio::time::Instant;

fn hub(options: HubOptions) -> Hub {
    Hub::builder("Negotiate")
        .options(options)
        .method("Whoami", |caller: Caller| async move {
            caller.connection_id().to_owned()
        })
        .build()
}

/// Retries a WebSocket request until it gets `status`, at most [`TIMEOUT`].
async fn wait_for_ws_status(
    addr: std::net::SocketAddr,
    target: &str,
    status: u16,
) -> (u16, String) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = ws_status(addr, target).await;
        if got.0 == status || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_v1_returns_an_id_a_token_and_websockets() {
    let server = serve(hub(HubOptions::default())).await;
    let response = negotiate(server.addr, "/hub", "negotiateVersion=1").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["negotiateVersion"], 1);
    let id = body["connectionId"].as_str().unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    assert_eq!(id.len(), 22, "{id}");
    assert_eq!(token.len(), 22, "{token}");
    assert_ne!(id, token);
    // WebSockets first, with both formats (other transports may follow).
    assert_eq!(
        body["availableTransports"][0],
        json!({"transport": "WebSockets", "transferFormats": ["Text", "Binary"]})
    );

    // Every negotiate gets fresh values.
    let again = negotiate(server.addr, "/hub", "negotiateVersion=1")
        .await
        .json();
    assert_ne!(again["connectionId"], body["connectionId"]);
    assert_ne!(again["connectionToken"], body["connectionToken"]);

    // Versions above 1 are answered with 1.
    let later = negotiate(server.addr, "/hub", "negotiateVersion=7")
        .await
        .json();
    assert_eq!(later["negotiateVersion"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiated_connection_id_is_the_callers_id() {
    let server = serve(hub(HubOptions::default())).await;
    let mut client = Client::connect(server.addr).await;
    let id: String = client.invoke_value("Whoami", json!([])).await;
    assert_eq!(id, client.connection_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_v0_has_no_token_and_connects_with_the_id() {
    let server = serve(hub(HubOptions::default())).await;
    let response = negotiate(server.addr, "/hub", "").await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["negotiateVersion"], 0);
    assert!(body.get("connectionToken").is_none(), "{body}");
    let id = body["connectionId"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 22);

    let ws = ws_connect(server.addr, &format!("/hub?id={id}"), None)
        .await
        .unwrap();
    let mut client = Client::handshaken(ws, "json", 1).await;
    let seen: String = client.invoke_value("Whoami", json!([])).await;
    assert_eq!(seen, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_with_the_connection_id_instead_of_the_token_is_not_found() {
    let server = serve(hub(HubOptions::default())).await;
    let body = negotiate(server.addr, "/hub", "negotiateVersion=1")
        .await
        .json();
    let id = body["connectionId"].as_str().unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    assert_eq!(
        ws_status(server.addr, &format!("/hub?id={id}")).await,
        (404, "No Connection with that ID".to_owned())
    );
    // The token still works afterwards.
    let ws = ws_connect(server.addr, &format!("/hub?id={token}"), None)
        .await
        .unwrap();
    let mut client = Client::handshaken(ws, "json", 1).await;
    let seen: String = client.invoke_value("Whoami", json!([])).await;
    assert_eq!(seen, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_token_is_not_found() {
    let server = serve(hub(HubOptions::default())).await;
    assert_eq!(
        ws_status(server.addr, "/hub?id=AAAAAAAAAAAAAAAAAAAAAA").await,
        (404, "No Connection with that ID".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_use_conflicts_and_is_gone_after_the_connection_ends() {
    let server = serve(hub(HubOptions::default())).await;
    let body = negotiate(server.addr, "/hub", "negotiateVersion=1")
        .await
        .json();
    let token = body["connectionToken"].as_str().unwrap().to_owned();
    let target = format!("/hub?id={token}");
    let ws = ws_connect(server.addr, &target, None).await.unwrap();
    let mut client = Client::handshaken(ws, "json", 1).await;
    let _: String = client.invoke_value("Whoami", json!([])).await;

    let (status, _) = ws_status(server.addr, &target).await;
    assert_eq!(status, 409);
    // The first connection is unaffected by the refused second one.
    let _: String = client.invoke_value("Whoami", json!([])).await;

    client.close().await;
    assert_eq!(
        wait_for_ws_status(server.addr, &target, 404).await,
        (404, "No Connection with that ID".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_token_expires_after_the_disconnect_timeout() {
    let timeout = Duration::from_millis(200);
    let server = serve(hub(HubOptions::default().disconnect_timeout(timeout))).await;
    let expiring = negotiate(server.addr, "/hub", "negotiateVersion=1")
        .await
        .json();
    let target = format!("/hub?id={}", expiring["connectionToken"].as_str().unwrap());
    // Any probe of a pending token would claim it, so this waits instead: the timeout,
    // plus the registry sweep's period (1 s, as ASP.NET Core's heartbeat), plus slack.
    tokio::time::sleep(timeout + Duration::from_millis(1800)).await;
    assert_eq!(
        ws_status(server.addr, &target).await,
        (404, "No Connection with that ID".to_owned())
    );
    // A token used in time still works on the same server.
    let fresh = negotiate(server.addr, "/hub", "negotiateVersion=1")
        .await
        .json();
    let ws = ws_connect(
        server.addr,
        &format!("/hub?id={}", fresh["connectionToken"].as_str().unwrap()),
        None,
    )
    .await
    .unwrap();
    let mut client = Client::handshaken(ws, "json", 1).await;
    let _: String = client.invoke_value("Whoami", json!([])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_token_is_valid_until_the_disconnect_timeout() {
    let server = serve(hub(
        HubOptions::default().disconnect_timeout(Duration::from_secs(3))
    ))
    .await;
    let body = negotiate(server.addr, "/hub", "negotiateVersion=1")
        .await
        .json();
    let token = body["connectionToken"].as_str().unwrap().to_owned();
    // Well past the sweeper's first passes but within the timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ws = ws_connect(server.addr, &format!("/hub?id={token}"), None)
        .await
        .unwrap();
    let mut client = Client::handshaken(ws, "json", 1).await;
    let _: String = client.invoke_value("Whoami", json!([])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_other_than_post_is_405() {
    let server = serve(hub(HubOptions::default())).await;
    for method in ["GET", "PUT", "DELETE"] {
        let response = http(server.addr, method, "/hub/negotiate?negotiateVersion=1").await;
        assert_eq!(response.status, 405, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_with_a_non_integer_version_is_an_error_body() {
    let server = serve(hub(HubOptions::default())).await;
    let response = negotiate(server.addr, "/hub", "negotiateVersion=abc").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        r#"{"error":"The client requested a non-integer protocol version."}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_paths_match_case_insensitively_and_unknown_paths_are_404() {
    let server = serve(hub(HubOptions::default())).await;
    let response = negotiate(server.addr, "/HUB", "negotiateVersion=1").await;
    assert_eq!(response.status, 200);
    let response = negotiate(server.addr, "/other", "negotiateVersion=1").await;
    assert_eq!(response.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_negotiation_works() {
    let server = serve(hub(HubOptions::default())).await;
    let options = Options {
        negotiate: false,
        ..Options::default()
    };
    let mut a = Client::connect_with(server.addr, &options).await;
    let mut b = Client::connect_with(
        server.addr,
        &Options {
            protocol: "messagepack".into(),
            ..options
        },
    )
    .await;
    let id_a: String = a.invoke_value("Whoami", json!([])).await;
    let id_b: String = b.invoke_value("Whoami", json!([])).await;
    assert_eq!(id_a.len(), 22);
    assert_ne!(id_a, id_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_to_the_hub_get_dispatcher_texts() {
    let server = serve(hub(HubOptions::default())).await;
    // A GET without an upgrade and without an id.
    let response = http(server.addr, "GET", "/hub").await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (400, "Connection ID required")
    );
    // A POST to an unknown id.
    let response = http(server.addr, "POST", "/hub?id=nope").await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (404, "No Connection with that ID")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_with_a_negative_version_is_an_error_body() {
    let server = serve(hub(HubOptions::default())).await;
    let response = negotiate(server.addr, "/hub", "negotiateVersion=-1").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        r#"{"error":"The client requested version '-1', but the server does not support this version."}"#
    );
}
