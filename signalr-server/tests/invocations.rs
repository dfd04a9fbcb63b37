//! Invocations over a real socket: result ordering and parallelism, client results, upload
//! streams and cancelling server-to-client streams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Client, Log, Options, TIMEOUT, arg, error_of, invocation_of, serve, value_of};
use futures_util::StreamExt;
use serde_json::json;
use signalr_core::{CancelInvocation, Completion, CompletionResult, HubMessage, RawValue};
use signalr_server::{Clients, Hub, HubError, HubOptions, State, UploadStream};
use tokio::sync::watch;

/// Released gates, as a bit set: `Gate(n)` finishes once bit `n` is set.
#[derive(Clone)]
struct Gates(Arc<watch::Sender<u32>>);

impl Gates {
    fn new() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }

    fn release(&self, n: u32) {
        self.0.send_modify(|bits| *bits |= 1 << n);
    }
}

fn ordering_hub(options: HubOptions, gates: Gates) -> Hub {
    Hub::builder("Ordering")
        .options(options)
        .state(gates)
        .method("Sleep", |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        })
        .method("Gate", |n: u32, State(gates): State<Gates>| async move {
            let mut rx = gates.0.subscribe();
            rx.wait_for(|bits| bits & (1 << n) != 0).await.unwrap();
            n
        })
        .build()
}

/// The ids of the next `count` completions, in arrival order.
async fn completion_order(client: &mut Client, count: usize) -> Vec<String> {
    let mut order = Vec::new();
    while order.len() < count {
        match client.recv().await {
            HubMessage::Completion(c) => {
                assert!(!matches!(c.result, CompletionResult::Error(_)), "{c:?}");
                order.push(c.invocation_id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_in_invocation_order_by_default() {
    let server = serve(ordering_hub(HubOptions::default(), Gates::new())).await;
    let mut client = Client::connect(server.addr).await;
    for (id, ms) in [("1", 300), ("2", 200), ("3", 100)] {
        client.send_invocation(id, "Sleep", json!([ms])).await;
    }
    assert_eq!(completion_order(&mut client, 3).await, ["1", "2", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invocation_at_a_time_by_default() {
    let gates = Gates::new();
    let server = serve(ordering_hub(HubOptions::default(), gates.clone())).await;
    let mut client = Client::connect(server.addr).await;
    for n in 1..=3u32 {
        client
            .send_invocation(&n.to_string(), "Gate", json!([n]))
            .await;
    }
    // Later invocations cannot finish while the first still runs.
    gates.release(3);
    gates.release(2);
    assert_eq!(client.recv_within(Duration::from_millis(300)).await, None);
    gates.release(1);
    assert_eq!(completion_order(&mut client, 3).await, ["1", "2", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_invocations_can_complete_out_of_order() {
    let gates = Gates::new();
    let options = HubOptions::default().maximum_parallel_invocations_per_client(3);
    let server = serve(ordering_hub(options, gates.clone())).await;
    let mut client = Client::connect(server.addr).await;
    for n in 1..=3u32 {
        client
            .send_invocation(&n.to_string(), "Gate", json!([n]))
            .await;
    }
    for n in [3u32, 2, 1] {
        gates.release(n);
        let done = client.recv().await;
        match done {
            HubMessage::Completion(c) => {
                assert_eq!(c.invocation_id, n.to_string());
                assert_eq!(value_of::<u32>(&c), n);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sleeps_finish_shortest_first() {
    let options = HubOptions::default().maximum_parallel_invocations_per_client(3);
    let server = serve(ordering_hub(options, Gates::new())).await;
    let mut client = Client::connect(server.addr).await;
    for (id, ms) in [("1", 600), ("2", 300), ("3", 10)] {
        client.send_invocation(id, "Sleep", json!([ms])).await;
    }
    assert_eq!(completion_order(&mut client, 3).await, ["3", "2", "1"]);
}

/// A reply can go straight to the socket, past the writer; never past what the method sent
/// its caller first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_method_sends_its_caller_arrives_before_its_completion() {
    let hub = Hub::builder("Ordering")
        .method("Tell", |clients: Clients, count: u32| async move {
            for n in 0..count {
                let _ = clients.caller().send("Told", (n,)).await;
            }
            count
        })
        .build();
    let server = serve(hub).await;
    let mut client = Client::connect(server.addr).await;
    for round in 0..20u32 {
        let id = round.to_string();
        client.send_invocation(&id, "Tell", json!([round])).await;
        for n in 0..round {
            let message = client.recv().await;
            let (target, args) = invocation_of(&message);
            assert_eq!((target, arg::<u32>(&args[0])), ("Told", n), "round {round}");
        }
        match client.recv().await {
            HubMessage::Completion(c) => {
                assert_eq!(c.invocation_id, id);
                assert_eq!(value_of::<u32>(&c), round);
            }
            other => panic!("round {round}: unexpected {other:?}"),
        }
    }
}

fn pipelined_hub(gates: Gates) -> Hub {
    Hub::builder("Pipelined")
        .state(gates)
        .method("Add", |a: i64, b: i64| async move { a + b })
        .method("Gate", |n: u32, State(gates): State<Gates>| async move {
            let mut rx = gates.0.subscribe();
            rx.wait_for(|bits| bits & (1 << n) != 0).await.unwrap();
            n
        })
        .build()
}

/// Expects a completion for `id` with `value` within `within`.
async fn expect_completion(client: &mut Client, id: &str, value: i64, within: Duration) {
    match client.recv_within(within).await {
        Some(HubMessage::Completion(c)) => {
            assert_eq!(c.invocation_id, id);
            assert_eq!(value_of::<i64>(&c), value, "invocation {id}");
        }
        other => panic!("waiting for the completion of {id}: {other:?}"),
    }
}

/// Invocations that arrive together have their replies written together, more at a time
/// than the server buffers; each still gets its own completion, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_invocations_are_each_answered_in_order() {
    let server = serve(pipelined_hub(Gates::new())).await;
    for options in [Options::default(), Options::messagepack()] {
        let mut client = Client::connect_with(server.addr, &options).await;
        for round in 0..3 {
            let frames: Vec<_> = (0..200)
                .map(|n| client.invocation_bytes(&n.to_string(), "Add", json!([n, round])))
                .collect();
            client.send_burst(frames).await;
            for n in 0..200 {
                expect_completion(&mut client, &n.to_string(), n + round, TIMEOUT).await;
            }
        }
    }
}

/// Sends a burst of invocations and reads their completions, so that the server treats the
/// client as one that pipelines: replies to what arrives together then wait to be written
/// together.
async fn pipeline(client: &mut Client) {
    let frames: Vec<_> = (0..20)
        .map(|n| client.invocation_bytes(&format!("p{n}"), "Add", json!([n, 0])))
        .collect();
    client.send_burst(frames).await;
    for n in 0..20 {
        expect_completion(client, &format!("p{n}"), n, TIMEOUT).await;
    }
}

/// A reply the server holds back to write with the next ones goes out before the server
/// waits for more input: here, the rest of a message of which a part has come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_not_held_for_the_rest_of_the_next_message() {
    let server = serve(pipelined_hub(Gates::new())).await;
    let mut client = Client::connect(server.addr).await;
    pipeline(&mut client).await;
    let first = client.invocation_bytes("1", "Add", json!([1, 2]));
    let second = client.invocation_bytes("2", "Add", json!([3, 4]));
    let (head, tail) = second.split_at(12);
    let mut chunk = first.to_vec();
    chunk.extend_from_slice(head);
    client.send_bytes(chunk.into()).await;
    expect_completion(&mut client, "1", 3, Duration::from_secs(2)).await;
    client.send_bytes(Bytes::copy_from_slice(tail)).await;
    expect_completion(&mut client, "2", 7, TIMEOUT).await;
}

/// Nor while the next invocation waits for a slot held by a method that is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_not_held_while_the_next_invocation_waits_for_a_slot() {
    let gates = Gates::new();
    let server = serve(pipelined_hub(gates.clone())).await;
    let mut client = Client::connect(server.addr).await;
    pipeline(&mut client).await;
    let burst = [
        client.invocation_bytes("1", "Add", json!([1, 1])),
        client.invocation_bytes("2", "Gate", json!([0])),
        client.invocation_bytes("3", "Add", json!([2, 2])),
    ];
    client.send_burst(burst).await;
    expect_completion(&mut client, "1", 2, Duration::from_secs(2)).await;
    assert_eq!(client.recv_within(Duration::from_millis(200)).await, None);
    gates.release(0);
    expect_completion(&mut client, "2", 0, TIMEOUT).await;
    expect_completion(&mut client, "3", 4, TIMEOUT).await;
}

// ---------------------------------------------------------------------------------------
// Client results
// ---------------------------------------------------------------------------------------

fn client_results_hub(options: HubOptions, log: Log<String>) -> Hub {
    Hub::builder("ClientResults")
        .options(options)
        .state(log)
        .method(
            "AskNumber",
            |clients: Clients, State(log): State<Log<String>>| async move {
                match clients.caller().invoke::<i32>("GetNumber", ()).await {
                    Ok(n) => {
                        log.push(format!("value:{n}"));
                        Ok(n + 1)
                    }
                    Err(err) => {
                        let kind = if err.is_client() {
                            format!("client:{}", err.client_message().unwrap_or_default())
                        } else if err.is_disconnected() {
                            "disconnected".to_owned()
                        } else if err.is_timeout() {
                            "timeout".to_owned()
                        } else {
                            format!("other:{err}")
                        };
                        log.push(kind.clone());
                        Err(HubError::new(kind))
                    }
                }
            },
        )
        .method("Add", |a: i32, b: i32| async move { a + b })
        .build()
}

/// Waits for the server's `GetNumber` invocation; returns its id.
async fn expect_get_number(client: &mut Client) -> String {
    let message = client
        .wait_for(
            "GetNumber",
            |m| matches!(m, HubMessage::Invocation(i) if i.target == "GetNumber"),
        )
        .await;
    let (_, args) = invocation_of(&message);
    assert!(args.is_empty());
    match message {
        HubMessage::Invocation(i) => i.invocation_id.expect("a client result needs an id"),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_result_value() {
    let log = Log::new();
    let server = serve(client_results_hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    client.send_invocation("1", "AskNumber", json!([])).await;
    let id = expect_get_number(&mut client).await;
    let answer = client.encode(&json!(41));
    client
        .send_completion(Completion::with_result(id, answer))
        .await;
    assert_eq!(value_of::<i32>(&client.completion("1").await), 42);
    assert_eq!(log.snapshot(), ["value:41"]);

    // With MessagePack too.
    let mut packed = Client::connect_with(server.addr, &Options::messagepack()).await;
    packed.send_invocation("7", "AskNumber", json!([])).await;
    let id = expect_get_number(&mut packed).await;
    let answer = RawValue::encode(signalr_core::Encoding::MessagePack, &9).unwrap();
    packed
        .send_completion(Completion::with_result(id, answer))
        .await;
    assert_eq!(value_of::<i32>(&packed.completion("7").await), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_result_error() {
    let log = Log::new();
    let server = serve(client_results_hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    client.send_invocation("1", "AskNumber", json!([])).await;
    let id = expect_get_number(&mut client).await;
    client
        .send_completion(Completion::with_error(id, "no number today"))
        .await;
    assert_eq!(
        error_of(&client.completion("1").await),
        "An unexpected error occurred invoking 'AskNumber' on the server. HubException: client:no number today"
    );
    assert_eq!(log.snapshot(), ["client:no number today"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_result_while_the_client_disconnects() {
    let log = Log::new();
    let server = serve(client_results_hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    client.send_invocation("1", "AskNumber", json!([])).await;
    let _ = expect_get_number(&mut client).await;
    client.close().await;
    let seen = log.wait_for("the server's error", |l| !l.is_empty()).await;
    assert_eq!(seen, ["disconnected"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_result_while_the_socket_drops() {
    let log = Log::new();
    let server = serve(client_results_hub(HubOptions::default(), log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    client.send_invocation("1", "AskNumber", json!([])).await;
    let _ = expect_get_number(&mut client).await;
    drop(client.into_ws());
    let seen = log.wait_for("the server's error", |l| !l.is_empty()).await;
    assert_eq!(seen, ["disconnected"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_result_timeout() {
    let log = Log::new();
    let options = HubOptions::default().client_result_timeout(Duration::from_millis(300));
    let server = serve(client_results_hub(options, log.clone())).await;
    let mut client = Client::connect(server.addr).await;
    client.send_invocation("1", "AskNumber", json!([])).await;
    let id = expect_get_number(&mut client).await;
    // No answer.
    assert_eq!(
        error_of(&client.completion("1").await),
        "An unexpected error occurred invoking 'AskNumber' on the server. HubException: timeout"
    );
    assert_eq!(log.snapshot(), ["timeout"]);
    // A late answer is ignored, and the connection still works.
    let late = client.encode(&json!(1));
    client
        .send_completion(Completion::with_result(id, late))
        .await;
    assert_eq!(client.invoke_value::<i32>("Add", json!([1, 2])).await, 3);
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

fn streams_hub(dropped: Log<&'static str>) -> Hub {
    struct OnDrop(Log<&'static str>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.push("dropped");
        }
    }
    Hub::builder("Streams")
        .state(dropped)
        .method("Sum", |items: UploadStream<i32>| async move {
            let mut items = items;
            let mut seen = Vec::new();
            while let Some(item) = items.next().await {
                seen.push(item?);
            }
            Ok::<_, HubError>(seen)
        })
        .method(
            "Zip",
            |a: UploadStream<String>, b: UploadStream<i32>| async move {
                let a: Vec<String> = a.filter_map(|r| async move { r.ok() }).collect().await;
                let b: Vec<i32> = b.filter_map(|r| async move { r.ok() }).collect().await;
                (a, b)
            },
        )
        .stream("Ticks", |State(log): State<Log<&'static str>>| async move {
            let guard = OnDrop(log);
            futures_util::stream::unfold((0u64, guard), |(n, guard)| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((n, (n + 1, guard)))
            })
        })
        .method("Add", |a: i32, b: i32| async move { a + b })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stream_items_arrive_in_order_and_unbindable_items_are_dropped() {
    let server = serve(streams_hub(Log::new())).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send_invocation_with_streams("1", "Sum", json!([]), &["s"])
        .await;
    for item in [
        json!(1),
        json!(2),
        json!("three"),
        json!(3),
        json!({"x": 4}),
        json!(5),
    ] {
        client.send_item("s", item).await;
    }
    client.send_completion(Completion::void("s")).await;
    assert_eq!(
        value_of::<Vec<i32>>(&client.completion("1").await),
        [1, 2, 3, 5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_upload_items_arrive_in_order() {
    let server = serve(streams_hub(Log::new())).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send_invocation_with_streams("1", "Sum", json!([]), &["s"])
        .await;
    for n in 0..500 {
        client.send_item("s", json!(n)).await;
    }
    client.send_completion(Completion::void("s")).await;
    let got = value_of::<Vec<i32>>(&client.completion("1").await);
    assert_eq!(got, (0..500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_upload_streams_bind_in_order() {
    let server = serve(streams_hub(Log::new())).await;
    let mut client = Client::connect_with(server.addr, &Options::messagepack()).await;
    client
        .send_invocation_with_streams("1", "Zip", json!([]), &["a", "b"])
        .await;
    client.send_item("b", json!(1)).await;
    client.send_item("a", json!("x")).await;
    client.send_item("b", json!(2)).await;
    client.send_completion(Completion::void("a")).await;
    client.send_completion(Completion::void("b")).await;
    assert_eq!(
        value_of::<(Vec<String>, Vec<i32>)>(&client.completion("1").await),
        (vec!["x".to_owned()], vec![1, 2])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stream_error_surfaces_as_a_hub_exception() {
    let server = serve(streams_hub(Log::new())).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send_invocation_with_streams("1", "Sum", json!([]), &["s"])
        .await;
    client.send_item("s", json!(1)).await;
    client
        .send_completion(Completion::with_error("s", "the upload broke"))
        .await;
    assert_eq!(
        error_of(&client.completion("1").await),
        "An unexpected error occurred invoking 'Sum' on the server. HubException: the upload broke"
    );
    assert_eq!(client.invoke_value::<i32>("Add", json!([1, 2])).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_invocation_stops_a_stream_with_a_final_completion() {
    let dropped = Log::new();
    let server = serve(streams_hub(dropped.clone())).await;
    let mut client = Client::connect(server.addr).await;
    client.send_stream_invocation("t", "Ticks", json!([])).await;
    let mut items = Vec::new();
    while items.len() < 3 {
        match client.recv().await {
            HubMessage::StreamItem(item) if item.invocation_id == "t" => {
                items.push(arg::<u64>(&item.item));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(items, [0, 1, 2]);
    client.send(CancelInvocation::new("t").into()).await;
    // Items already on their way may still come, in order, then the completion.
    loop {
        match client.recv().await {
            HubMessage::StreamItem(item) if item.invocation_id == "t" => {
                let n = arg::<u64>(&item.item);
                assert_eq!(n, items.len() as u64);
                items.push(n);
            }
            HubMessage::Completion(done) if done.invocation_id == "t" => {
                assert_eq!(done.result, CompletionResult::Void);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The stream itself was dropped, and nothing more comes for it.
    dropped
        .wait_for("the stream to be dropped", |d| d.len() == 1)
        .await;
    assert_eq!(client.invoke_value::<i32>("Add", json!([2, 2])).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_drops_a_running_stream() {
    let dropped = Log::new();
    let server = serve(streams_hub(dropped.clone())).await;
    let mut client = Client::connect(server.addr).await;
    client.send_stream_invocation("t", "Ticks", json!([])).await;
    let first = client.recv().await;
    assert!(matches!(first, HubMessage::StreamItem(_)), "{first:?}");
    client.close().await;
    dropped
        .wait_for("the stream to be dropped", |d| d.len() == 1)
        .await;
}

// ---------------------------------------------------------------------------------------
// While an invocation waits for a free slot
// ---------------------------------------------------------------------------------------

fn busy_hub(options: HubOptions, gates: Gates, disconnects: Log<String>) -> Hub {
    Hub::builder("Busy")
        .options(options)
        .state(gates)
        .state(disconnects)
        .on_disconnected(
            |caller: signalr_server::Caller, State(log): State<Log<String>>| async move {
                log.push(caller.connection_id().to_owned());
            },
        )
        .method("Gate", |n: u32, State(gates): State<Gates>| async move {
            let mut rx = gates.0.subscribe();
            rx.wait_for(|bits| bits & (1 << n) != 0).await.unwrap();
            n
        })
        .method("UntilClosed", |caller: signalr_server::Caller| async move {
            caller.closed().cancelled().await;
        })
        .method("Add", |a: i32, b: i32| async move { a + b })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn keep_alive_continues_while_an_invocation_waits_for_a_slot() {
    let interval = Duration::from_millis(100);
    let gates = Gates::new();
    let server = serve(busy_hub(
        HubOptions::default().keep_alive_interval(interval),
        gates.clone(),
        Log::new(),
    ))
    .await;
    let mut client = Client::connect(server.addr).await;
    // The first runs until released; the second waits for its slot.
    client.send_invocation("1", "Gate", json!([1])).await;
    client.send_invocation("2", "Gate", json!([2])).await;
    gates.release(2);
    // Pings keep coming meanwhile, as ASP.NET Core's heartbeat sends them.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while pings < 5 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Some(common::Event::Message(HubMessage::Ping)) => pings += 1,
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    gates.release(1);
    assert_eq!(
        pings, 5,
        "pings stopped while an invocation waited for its slot"
    );
    assert_eq!(completion_order(&mut client, 2).await, ["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn disconnect_is_noticed_while_an_invocation_waits_for_a_slot() {
    let disconnects = Log::new();
    let server = serve(busy_hub(
        HubOptions::default(),
        Gates::new(),
        disconnects.clone(),
    ))
    .await;
    let mut client = Client::connect(server.addr).await;
    let id = client.connection_id.clone();
    // A method that runs until the connection closes (as one awaiting ASP.NET Core's
    // Context.ConnectionAborted), then a second invocation, which waits for the slot.
    client.send_invocation("1", "UntilClosed", json!([])).await;
    client.send_invocation("2", "Add", json!([1, 2])).await;
    assert_eq!(client.recv_within(Duration::from_millis(100)).await, None);
    drop(client.into_ws());
    disconnects
        .wait_for("on_disconnected", |ids| ids.contains(&id))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_is_noticed_while_a_single_invocation_runs() {
    let disconnects = Log::new();
    let server = serve(busy_hub(
        HubOptions::default(),
        Gates::new(),
        disconnects.clone(),
    ))
    .await;
    let mut client = Client::connect(server.addr).await;
    let id = client.connection_id.clone();
    client.send_invocation("1", "UntilClosed", json!([])).await;
    assert_eq!(client.recv_within(Duration::from_millis(100)).await, None);
    drop(client.into_ws());
    disconnects
        .wait_for("on_disconnected", |ids| ids.contains(&id))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn upload_cut_short_by_a_disconnect_is_an_error_to_the_method() {
    let outcomes: Log<String> = Log::new();
    let hub = Hub::builder("Truncated")
        .state(outcomes.clone())
        .method(
            "Collect",
            |items: UploadStream<i32>, State(log): State<Log<String>>| async move {
                let mut items = items;
                let mut seen = Vec::new();
                loop {
                    match items.next().await {
                        Some(Ok(item)) => seen.push(item),
                        Some(Err(err)) => {
                            log.push(format!("error after {seen:?}: {err}"));
                            return;
                        }
                        None => {
                            log.push(format!("complete: {seen:?}"));
                            return;
                        }
                    }
                }
            },
        )
        .build();
    let server = serve(hub).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send_invocation_with_streams("1", "Collect", json!([]), &["s"])
        .await;
    client.send_item("s", json!(1)).await;
    client.send_item("s", json!(2)).await;
    // Gone without completing the stream.
    drop(client.into_ws());
    let seen = outcomes
        .wait_for("the method's outcome", |l| !l.is_empty())
        .await;
    assert!(
        seen[0].starts_with("error after [1, 2]"),
        "a truncated upload looked complete: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_result_from_outside_the_hub() {
    let hub = Hub::builder("Outside")
        .method("Whoami", |caller: signalr_server::Caller| async move {
            caller.connection_id().to_owned()
        })
        .build();
    let context = hub.context();
    let server = serve(hub).await;
    let mut client = Client::connect(server.addr).await;
    let id = client.connection_id.clone();

    let ask = {
        let context = context.clone();
        let id = id.clone();
        tokio::spawn(async move {
            context
                .clients()
                .client(id)
                .invoke::<String>("Name", (7,))
                .await
        })
    };
    let message = client.recv().await;
    let HubMessage::Invocation(invocation) = message else {
        panic!("unexpected {message:?}")
    };
    assert_eq!(invocation.target, "Name");
    assert_eq!(arg::<i32>(&invocation.arguments[0]), 7);
    let answer = client.encode(&json!("seven"));
    client
        .send_completion(Completion::with_result(
            invocation.invocation_id.unwrap(),
            answer,
        ))
        .await;
    assert_eq!(ask.await.unwrap().unwrap(), "seven");

    // An unknown connection fails at once.
    let err = context
        .clients()
        .client("no-such-connection")
        .invoke::<String>("Name", ())
        .await
        .unwrap_err();
    assert!(err.is_connection_not_found(), "{err:?}");
}
