//! A client that stops reading its socket while the server broadcasts large messages: the
//! server closes it once its outbound queue passes `outbound_buffer_limit`, and a normal
//! client keeps receiving every broadcast, in order, and keeps getting prompt replies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Event, Log, Options, TIMEOUT, arg, invocation_of, serve};
use serde_json::json;
use signalr_core::{Close, HubMessage};
use signalr_server::{Caller, DisconnectReason, Hub, HubContext, HubOptions, State};
use tokio::sync::watch;
use tokio::time::Instant;

/// Bytes of text in each broadcast.
const PAYLOAD: usize = 10 * 1024;
/// Broadcasts the normal client may be behind by; its queue stays far below the limit.
const WINDOW: u64 = 8;
/// The server's per-connection outbound limit.
const LIMIT: usize = 256 * 1024;
/// Broadcasts sent at least, and at most while waiting for the slow client to be closed.
const MIN_BROADCASTS: u64 = 1_000;
const MAX_BROADCASTS: u64 = 10_000;

type Disconnects = Log<(String, Option<String>)>;

fn hub(disconnects: Disconnects) -> Hub {
    Hub::builder("Slow")
        .options(
            HubOptions::default()
                .outbound_buffer_limit(LIMIT)
                .keep_alive_interval(Duration::from_secs(3600)),
        )
        .state(disconnects)
        .on_disconnected(
            |caller: Caller, reason: DisconnectReason, State(log): State<Disconnects>| async move {
                log.push((
                    caller.connection_id().to_owned(),
                    reason.error().map(str::to_owned),
                ));
            },
        )
        .method("Add", |a: u64, b: u64| async move { a + b })
        .build()
}

/// Connects a client that will not read: a tiny TCP receive buffer, so that the server's
/// writes block soon.
async fn slow_client(addr: std::net::SocketAddr) -> Client {
    let options = Options {
        recv_buffer: Some(4096),
        ..Options::default()
    };
    Client::connect_with(addr, &options).await
}

/// What the normal client saw.
struct FastReport {
    client: Client,
    received: u64,
    reply_latencies: Vec<Duration>,
}

/// Reads broadcasts in order until `Done`, reporting progress; invokes `Add` every 250
/// broadcasts and times the replies.
async fn run_fast(mut client: Client, progress: watch::Sender<u64>) -> FastReport {
    let mut received = 0u64;
    let mut pending: Option<(String, u64, Instant)> = None;
    let mut latencies = Vec::new();
    loop {
        match client.recv().await {
            HubMessage::Invocation(i) if i.target == "Big" => {
                let seq: u64 = arg(&i.arguments[0]);
                assert_eq!(seq, received, "broadcasts out of order");
                if seq % 100 == 0 {
                    assert_eq!(arg::<String>(&i.arguments[1]).len(), PAYLOAD);
                }
                received += 1;
                progress.send_replace(received);
                if received % 250 == 0 && pending.is_none() {
                    let id = client.new_id();
                    client.send_invocation(&id, "Add", json!([seq, 1])).await;
                    pending = Some((id, seq + 1, Instant::now()));
                }
            }
            HubMessage::Invocation(i) if i.target == "Done" => {
                assert_eq!(arg::<u64>(&i.arguments[0]), received, "broadcasts lost");
                // A reply to an invocation sent just before may still be on its way.
                if let Some((id, want, started)) = pending.take() {
                    let c = client.completion(&id).await;
                    assert_eq!(common::value_of::<u64>(&c), want);
                    latencies.push(started.elapsed());
                }
                return FastReport {
                    client,
                    received,
                    reply_latencies: latencies,
                };
            }
            HubMessage::Completion(c) => {
                let (id, want, started) = pending.take().expect("an unexpected completion");
                assert_eq!(c.invocation_id, id);
                assert_eq!(common::value_of::<u64>(&c), want);
                latencies.push(started.elapsed());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Broadcasts until the slow connection is gone (and at least `MIN_BROADCASTS`), paced by
/// the fast client; returns how many were sent.
async fn broadcast_until_closed(
    context: &HubContext,
    progress: &mut watch::Receiver<u64>,
    disconnects: &Disconnects,
    slow_id: &str,
) -> u64 {
    let payload = "x".repeat(PAYLOAD);
    let mut sent = 0u64;
    loop {
        let slow_gone = disconnects.snapshot().iter().any(|(id, _)| id == slow_id);
        if slow_gone && sent >= MIN_BROADCASTS {
            return sent;
        }
        assert!(
            sent < MAX_BROADCASTS,
            "the slow connection was not closed after {sent} broadcasts"
        );
        tokio::time::timeout(
            TIMEOUT,
            progress.wait_for(|received| sent - *received < WINDOW),
        )
        .await
        .expect("the fast client stopped receiving")
        .unwrap();
        context
            .clients()
            .all()
            .send("Big", (sent, payload.clone()))
            .await
            .unwrap();
        sent += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_and_others_are_unaffected() {
    let disconnects = Disconnects::new();
    let hub = hub(disconnects.clone());
    let context = hub.context();
    let server = serve(hub).await;

    let mut fast = Client::connect(server.addr).await;
    fast.keep_raw = false;
    let slow = slow_client(server.addr).await;
    let slow_id = slow.connection_id.clone();
    let fast_id = fast.connection_id.clone();

    let (progress_tx, mut progress_rx) = watch::channel(0u64);
    let fast_task = tokio::spawn(run_fast(fast, progress_tx));

    let started = Instant::now();
    let sent = broadcast_until_closed(&context, &mut progress_rx, &disconnects, &slow_id).await;
    context.clients().all().send("Done", (sent,)).await.unwrap();
    let report = tokio::time::timeout(TIMEOUT, fast_task)
        .await
        .expect("the fast client did not finish")
        .unwrap();
    let elapsed = started.elapsed();

    // The normal client got everything, in order, with prompt replies.
    assert_eq!(report.received, sent);
    assert!(!report.reply_latencies.is_empty());
    for latency in &report.reply_latencies {
        assert!(
            *latency < Duration::from_secs(2),
            "{:?}",
            report.reply_latencies
        );
    }
    let mut fast = report.client;
    assert_eq!(fast.invoke_value::<u64>("Add", json!([40, 2])).await, 42);

    // The slow one was closed for being slow, and only it.
    let entries = disconnects.snapshot();
    let (_, reason) = entries.iter().find(|(id, _)| *id == slow_id).unwrap();
    assert_eq!(
        reason.as_deref(),
        Some("The connection's outbound queue is full.")
    );
    assert!(entries.iter().all(|(id, _)| *id != fast_id));

    // Once it reads again: a prefix of the broadcasts, in order, then the end of the
    // socket. The server drops a too-slow connection's socket at once rather than wait to
    // deliver the Close it queued, so the Close arrives only if it still fitted in the
    // socket's buffers.
    let mut slow = slow;
    slow.keep_raw = false;
    let mut got = 0u64;
    let mut close = None;
    loop {
        match slow.next_event().await {
            Event::Message(message @ HubMessage::Invocation(_)) => {
                assert!(close.is_none(), "a message after the Close");
                let (target, args) = invocation_of(&message);
                assert_eq!(target, "Big");
                assert_eq!(arg::<u64>(&args[0]), got);
                got += 1;
            }
            Event::Message(HubMessage::Close(c)) => close = Some(c),
            Event::Message(other) => panic!("unexpected {other:?}"),
            Event::Closed => break,
        }
    }
    if let Some(close) = close {
        assert_eq!(
            close,
            Close::new(Some("Connection closed with an error.".into()), true)
        );
    }
    // It missed the rest: what was queued for it stayed bounded.
    assert!(got < sent, "the slow client got all {sent} broadcasts");
    assert!(elapsed < TIMEOUT, "{sent} broadcasts took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn slow_reader_socket_is_released_even_if_it_never_reads_again() {
    let disconnects = Disconnects::new();
    let hub = hub(disconnects.clone());
    let context = hub.context();
    let server = serve(hub).await;

    let fast = Client::connect(server.addr).await;
    let slow = slow_client(server.addr).await;
    let slow_id = slow.connection_id.clone();
    let (progress_tx, mut progress_rx) = watch::channel(0u64);
    let fast_task = tokio::spawn(run_fast(fast, progress_tx));
    let sent = broadcast_until_closed(&context, &mut progress_rx, &disconnects, &slow_id).await;
    context.clients().all().send("Done", (sent,)).await.unwrap();
    let report = fast_task.await.unwrap();

    // The negotiate requests are done; the fast client's socket is open; the slow one's
    // should be closed by the server within a bounded time, even though the client never
    // reads it again.
    let released = server.wait_open_sockets(1, Duration::from_secs(5)).await;
    let open = server.open_sockets();
    // Control: the socket held is the slow client's, released as soon as the client
    // side goes away.
    drop(slow);
    assert!(server.wait_open_sockets(1, TIMEOUT).await);
    drop(report);
    assert!(
        released,
        "5 s after closing the slow connection ({sent} broadcasts), the server still held \
         {open} sockets open, the slow client's among them"
    );
}
