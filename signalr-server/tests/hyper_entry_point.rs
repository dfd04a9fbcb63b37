//! `SignalR::serve`: the hubs served by hyper alone, without axum's server, over
//! negotiate and WebSockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Client;
use serde_json::json;
use signalr_server::{Hub, SignalR};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_served_by_hyper_alone() {
    let hub = Hub::builder("Plain")
        .method("Add", |a: i64, b: i64| async move { a + b })
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(SignalR::new().hub("/hub", hub).serve(listener));

    // Negotiate, WebSocket with the token, handshake, invocation.
    let mut client = Client::connect(addr).await;
    assert_eq!(client.invoke_value::<i64>("Add", json!([40, 2])).await, 42);
    assert_eq!(client.invoke_value::<i64>("add", json!([1, 2])).await, 3);
    server.abort();
}
