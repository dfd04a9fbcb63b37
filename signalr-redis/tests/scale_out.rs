//! Several in-process servers (axum on 127.0.0.1:0) sharing one real Redis, with raw
//! WebSocket clients spread across them: every target kind, group changes for connections
//! on other servers, users on several servers, client results across servers, subscription
//! cleanup, and a Redis outage in the middle of traffic.
//!
//! Each test starts its own `redis-server` on a free port when the binary exists; else it
//! uses `REDIS_URL` or `127.0.0.1:6379`, or skips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "../../signalr-server/tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use common::{Client, Options, TestServer, arg, invocation_of, serve_router};
use signalr_core::{Completion, HubMessage, RawValue};
use signalr_redis::RedisBackplane;
use signalr_server::{Caller, Groups, Hub, HubContext, Identity, SignalR};
use signalr_tests::{RedisGuard, redis_server, require};

const HUB: &str = "Tests.ScaleHub";

/// Gives the request an identity from its `user` query parameter.
async fn identity_from_query(mut request: Request, next: Next) -> Response {
    let user = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("user="))
            .map(str::to_owned)
    });
    if let Some(user) = user {
        request.extensions_mut().insert(Identity::user(user));
    }
    next.run(request).await
}

/// One server of the farm.
struct Node {
    server: TestServer,
    backplane: RedisBackplane,
    context: HubContext,
}

async fn node(url: &str) -> Node {
    let backplane = RedisBackplane::builder(url)
        .ack_timeout(Duration::from_secs(2))
        .build(HUB)
        .unwrap();
    assert!(
        backplane.wait_connected(Duration::from_secs(10)).await,
        "{:?}",
        backplane.health()
    );
    let hub = Hub::builder(HUB)
        .backplane(Arc::new(backplane.clone()))
        .method(
            "Join",
            |groups: Groups, caller: Caller, group: String| async move {
                groups.add_to_group(caller.connection_id(), group).await
            },
        )
        .build();
    let context = hub.context();
    let router = SignalR::new()
        .hub("/hub", hub)
        .into_router()
        .layer(axum::middleware::from_fn(identity_from_query));
    let server = serve_router(router).await;
    Node {
        server,
        backplane,
        context,
    }
}

async fn client(node: &Node, user: Option<&str>, messagepack: bool) -> Client {
    let mut options = if messagepack {
        Options::messagepack()
    } else {
        Options::default()
    };
    if let Some(user) = user {
        options.query = format!("user={user}");
    }
    Client::connect_with(node.server.addr, &options).await
}

/// Reads until marker `n`, returning the `Msg` texts received before it.
async fn until_marker(client: &mut Client, n: u32) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let message = client.recv().await;
        let (target, args) = invocation_of(&message);
        match target {
            "Msg" => got.push(arg::<String>(&args[0])),
            "Marker" if arg::<u32>(&args[0]) == n => return got,
            "Marker" => {}
            other => panic!("unexpected {other}"),
        }
    }
}

struct Checker {
    marker: u32,
}

impl Checker {
    /// After a send of `text`, checks that exactly the clients in `expected` got it, once,
    /// before a marker published (through Redis) after it.
    async fn check(
        &mut self,
        marker_from: &HubContext,
        clients: &mut [&mut Client],
        text: &str,
        expected: &[usize],
    ) {
        self.marker += 1;
        marker_from
            .clients()
            .all()
            .send("Marker", (self.marker,))
            .await
            .unwrap();
        for (i, client) in clients.iter_mut().enumerate() {
            let got = until_marker(client, self.marker).await;
            let want: Vec<String> = if expected.contains(&i) {
                vec![text.to_owned()]
            } else {
                Vec::new()
            };
            assert_eq!(got, want, "client {i} after '{text}'");
        }
    }
}

async fn pubsub_channels(url: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{HUB}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    channels.sort();
    channels
}

async fn numsub(url: &str, channel: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut connection)
        .await
        .unwrap();
    n
}

/// Waits until `f` holds, at most 10 seconds.
async fn eventually<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the servers of `clients` subscribed to their connection channels (they do
/// right after the handshake response).
async fn wait_subscribed(url: &str, clients: &[&Client]) {
    for client in clients {
        let channel = format!("{HUB}:connection:{}", client.connection_id);
        eventually("the connection channel", || async {
            numsub(url, &channel).await == 1
        })
        .await;
    }
}

fn redis() -> Option<RedisGuard> {
    require(redis_server())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_target_across_three_servers() {
    let Some(redis) = redis() else { return };
    let url = redis.url().to_owned();
    let (a, b, c) = (node(&url).await, node(&url).await, node(&url).await);
    let mut a1 = client(&a, Some("alice"), false).await;
    let mut a2 = client(&a, Some("bob"), true).await;
    let mut b1 = client(&b, Some("alice"), true).await;
    let mut b2 = client(&b, Some("carol"), false).await;
    let mut c1 = client(&c, Some("dave"), true).await;
    let ids: Vec<String> = [&a1, &a2, &b1, &b2, &c1]
        .iter()
        .map(|c| c.connection_id.clone())
        .collect();
    // Each server subscribes right after the handshake response: wait for it.
    for (id, user) in ids.iter().zip(["alice", "bob", "alice", "carol", "dave"]) {
        let connection = format!("{HUB}:connection:{id}");
        let user = format!("{HUB}:user:{user}");
        eventually("the connection's channels", || async {
            numsub(&url, &connection).await == 1 && numsub(&url, &user).await >= 1
        })
        .await;
    }
    let mut clients = [&mut a1, &mut a2, &mut b1, &mut b2, &mut c1];
    let mut check = Checker { marker: 0 };
    let (ca, cb, cc) = (&a.context, &b.context, &c.context);
    let send = |proxy: signalr_server::ClientProxy, text: &'static str| async move {
        proxy.send("Msg", (text.to_owned(),)).await.unwrap();
    };

    send(ca.clients().all(), "all").await;
    check.check(cc, &mut clients, "all", &[0, 1, 2, 3, 4]).await;

    send(
        ca.clients()
            .all_except(vec![ids[2].clone(), ids[0].clone()]),
        "all-except",
    )
    .await;
    check
        .check(cb, &mut clients, "all-except", &[1, 3, 4])
        .await;

    // One connection: local (no Redis) and remote.
    ca.clients()
        .client(ids[0].clone())
        .send("Msg", ("one-local".to_owned(),))
        .await
        .unwrap();
    check.check(ca, &mut clients, "one-local", &[0]).await;
    send_to_client(ca, &ids[4], "one-remote").await;
    check.check(ca, &mut clients, "one-remote", &[4]).await;

    send(
        cb.clients().clients(vec![
            ids[0].clone(),
            ids[3].clone(),
            ids[4].clone(),
            ids[4].clone(),
        ]),
        "several",
    )
    .await;
    check.check(ca, &mut clients, "several", &[0, 3, 4]).await;

    // Groups: a1 joins locally on A; A adds b1 (on B) and c1 (on C) through group commands.
    ca.groups().add_to_group(ids[0].clone(), "g").await.unwrap();
    ca.groups().add_to_group(ids[2].clone(), "g").await.unwrap();
    cb.groups().add_to_group(ids[4].clone(), "h").await.unwrap();
    send(cc.clients().group("g"), "group").await;
    check.check(ca, &mut clients, "group", &[0, 2]).await;
    send(
        cc.clients().group_except("g", vec![ids[0].clone()]),
        "group-except",
    )
    .await;
    check.check(ca, &mut clients, "group-except", &[2]).await;
    send(cb.clients().groups(vec!["g", "h"]), "groups").await;
    check.check(ca, &mut clients, "groups", &[0, 2, 4]).await;

    // A removes b1 (on B) from "g".
    ca.groups()
        .remove_from_group(ids[2].clone(), "g")
        .await
        .unwrap();
    send(cb.clients().group("g"), "group-after-remove").await;
    check
        .check(ca, &mut clients, "group-after-remove", &[0])
        .await;

    // A user connected to two servers, and several users.
    send(cc.clients().user("alice"), "user").await;
    check.check(ca, &mut clients, "user", &[0, 2]).await;
    send(ca.clients().users(vec!["carol", "dave"]), "users").await;
    check.check(cb, &mut clients, "users", &[3, 4]).await;

    // A hub method's own Groups call for the caller (local on C).
    let completion = clients[4].invoke("Join", serde_json::json!(["k"])).await;
    assert!(
        !matches!(completion.result, signalr_core::CompletionResult::Error(_)),
        "{completion:?}"
    );
    send(ca.clients().group("k"), "joined").await;
    check.check(ca, &mut clients, "joined", &[4]).await;

    // A connection that exists nowhere: the group command is never acked.
    let started = Instant::now();
    let err = ca.groups().add_to_group("nobody", "g").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(2));

    assert_eq!(a.backplane.lost_messages(), 0);
    assert!(a.backplane.health().is_connected());
    drop(redis);
}

async fn send_to_client(context: &HubContext, id: &str, text: &str) {
    context
        .clients()
        .client(id.to_owned())
        .send("Msg", (text.to_owned(),))
        .await
        .unwrap();
}

/// Invokes `Compute(n)` on a client, wherever it is.
async fn compute(context: &HubContext, id: String, n: i64) -> Result<i64, signalr_server::Error> {
    context.clients().client(id).invoke("Compute", (n,)).await
}

/// Answers the next `Compute` invocation with `value`, returning its argument.
async fn answer(client: &mut Client, value: i64) -> i64 {
    let message = client
        .wait_for(
            "Compute",
            |m| matches!(m, HubMessage::Invocation(i) if i.target == "Compute"),
        )
        .await;
    let HubMessage::Invocation(invocation) = message else {
        unreachable!()
    };
    let id = invocation.invocation_id.clone().expect("an invocation id");
    assert_eq!(id.len(), 22, "a GUID in base64 without padding");
    let n: i64 = arg(&invocation.arguments[0]);
    let result = RawValue::encode(client.protocol.encoding(), &value).unwrap();
    client
        .send_completion(Completion::with_result(id, result))
        .await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_results_across_servers() {
    let Some(redis) = redis() else { return };
    let url = redis.url().to_owned();
    let (a, b) = (node(&url).await, node(&url).await);
    let mut json = client(&b, None, false).await;
    let mut msgpack = client(&b, None, true).await;
    let gone = client(&b, None, false).await;
    wait_subscribed(&url, &[&json, &msgpack, &gone]).await;

    for (client, value) in [(&mut json, 42_i64), (&mut msgpack, 7)] {
        let id = client.connection_id.clone();
        let invoke = compute(&a.context, id, 5);
        let (result, argument) = tokio::join!(invoke, answer(client, value));
        assert_eq!(result.unwrap(), value);
        assert_eq!(argument, 5);
    }

    // The client answers with an error.
    let id = json.connection_id.clone();
    let invoke = compute(&a.context, id, 1);
    let respond = async {
        let message = json
            .wait_for("Compute", |m| matches!(m, HubMessage::Invocation(_)))
            .await;
        let HubMessage::Invocation(invocation) = message else {
            unreachable!()
        };
        json.send_completion(Completion::with_error(
            invocation.invocation_id.unwrap(),
            "no handler",
        ))
        .await;
    };
    let (result, ()) = tokio::join!(invoke, respond);
    let err = result.unwrap_err();
    assert_eq!(err.client_message(), Some("no handler"));

    // The connection closes while the invocation waits: B answers "Connection disconnected.".
    let id = gone.connection_id.clone();
    let invoke = compute(&a.context, id, 1);
    let close = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        gone.close().await;
    };
    let (result, ()) = tokio::join!(invoke, close);
    let err = result.unwrap_err();
    assert!(err.is_disconnected(), "{err}");

    // No server owns the connection: PUBLISH reaches nobody.
    let started = Instant::now();
    let err = a
        .context
        .clients()
        .client("nobody")
        .invoke::<i64>("Compute", ())
        .await
        .unwrap_err();
    assert!(err.is_connection_not_found(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_follow_local_membership() {
    let Some(redis) = redis() else { return };
    let url = redis.url().to_owned();
    let (a, b) = (node(&url).await, node(&url).await);
    let fixed = {
        let mut fixed = vec![format!("{HUB}:all"), format!("{HUB}:internal:groups")];
        for server in [&a, &b] {
            let name = server.backplane.server_name();
            fixed.push(format!("{HUB}:internal:ack:{name}"));
            fixed.push(format!("{HUB}:internal:return:{name}"));
        }
        fixed.sort();
        fixed
    };
    assert_eq!(pubsub_channels(&url).await, fixed);
    assert_eq!(numsub(&url, &format!("{HUB}:all")).await, 2);

    let a1 = client(&a, Some("alice"), false).await;
    let a2 = client(&a, Some("alice"), false).await;
    let b1 = client(&b, Some("alice"), false).await;
    let user = format!("{HUB}:user:alice");
    let group = format!("{HUB}:group:room");
    // The server subscribes right after the handshake response: wait for it.
    eventually("one user subscription per server", || async {
        numsub(&url, &user).await == 2
    })
    .await;
    for c in [&a1, &a2, &b1] {
        let channel = format!("{HUB}:connection:{}", c.connection_id);
        eventually("the connection channel", || async {
            numsub(&url, &channel).await == 1
        })
        .await;
    }

    // Members on A only, one of them added from B.
    a.context
        .groups()
        .add_to_group(a1.connection_id.clone(), "room")
        .await
        .unwrap();
    b.context
        .groups()
        .add_to_group(a2.connection_id.clone(), "room")
        .await
        .unwrap();
    assert_eq!(numsub(&url, &group).await, 1);
    b.context
        .groups()
        .add_to_group(b1.connection_id.clone(), "room")
        .await
        .unwrap();
    assert_eq!(numsub(&url, &group).await, 2);
    b.context
        .groups()
        .remove_from_group(b1.connection_id.clone(), "room")
        .await
        .unwrap();
    assert_eq!(numsub(&url, &group).await, 1);
    // A's group channel stays while one member is left, goes with the last.
    a.context
        .groups()
        .remove_from_group(a1.connection_id.clone(), "room")
        .await
        .unwrap();
    assert_eq!(numsub(&url, &group).await, 1);
    a2.close().await;
    eventually("A to leave the group channel", || async {
        numsub(&url, &group).await == 0
    })
    .await;
    assert_eq!(numsub(&url, &user).await, 2);
    a1.close().await;
    b1.close().await;
    eventually("only the fixed channels to remain", || async {
        pubsub_channels(&url).await == fixed
    })
    .await;
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_keeps_local_delivery_and_recovers() {
    let Some(mut redis) = redis() else { return };
    if !redis.is_owned() {
        eprintln!("SKIPPED: the outage test needs a redis-server it can stop and restart");
        return;
    }
    let url = redis.url().to_owned();
    let (a, b) = (node(&url).await, node(&url).await);
    let mut a1 = client(&a, Some("alice"), false).await;
    let mut b1 = client(&b, Some("bob"), false).await;
    wait_subscribed(&url, &[&a1, &b1]).await;
    b.context
        .groups()
        .add_to_group(b1.connection_id.clone(), "room")
        .await
        .unwrap();
    let (a1_id, b1_id) = (a1.connection_id.clone(), b1.connection_id.clone());

    // Traffic from A: to its own client (local), and to all (through Redis).
    let traffic = {
        let context = a.context.clone();
        let a1_id = a1_id.clone();
        tokio::spawn(async move {
            let (mut local_ok, mut all_ok, mut all_failed) = (0u32, 0u32, 0u32);
            for n in 0..60u32 {
                let clients = context.clients();
                clients
                    .client(a1_id.clone())
                    .send("Local", (n,))
                    .await
                    .expect("local delivery never needs Redis");
                local_ok += 1;
                match clients.all().send("All", (n,)).await {
                    Ok(()) => all_ok += 1,
                    Err(err) => {
                        assert!(err.is_backplane(), "{err}");
                        all_failed += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (local_ok, all_ok, all_failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.stop();
    let stopped = Instant::now();
    eventually("both servers to notice the outage", || async {
        !a.backplane.health().is_connected() && !b.backplane.health().is_connected()
    })
    .await;
    let health = a.backplane.health();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis.restart().unwrap();
    let outage = stopped.elapsed();
    assert!(a.backplane.wait_connected(Duration::from_secs(10)).await);
    assert!(b.backplane.wait_connected(Duration::from_secs(10)).await);
    let (local_ok, all_ok, all_failed) = traffic.await.unwrap();

    // a1 got every local message; b1 got the broadcasts that went through.
    let mut local = Vec::new();
    let mut a_all = 0;
    while local.len() < 60 {
        let message = a1.recv().await;
        match invocation_of(&message) {
            ("Local", args) => local.push(arg::<u32>(&args[0])),
            ("All", _) => a_all += 1,
            (other, _) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(local, (0..60).collect::<Vec<_>>());
    let mut b_all = 0;
    while let Some(message) = b1.recv_within(Duration::from_millis(500)).await {
        if let ("All", _) = invocation_of(&message) {
            b_all += 1;
        }
    }
    assert!(all_failed > 0, "the outage failed no send");
    assert_eq!(u64::from(all_failed), a.backplane.lost_messages());
    // Every broadcast Redis accepted reached both servers, except perhaps the one whose
    // PUBLISH reply left Redis just before it was killed with B's copy still queued.
    assert!(
        b_all <= all_ok && b_all + 1 >= all_ok,
        "B got {b_all} of {all_ok}"
    );
    assert!(
        a_all <= all_ok && a_all + 1 >= all_ok,
        "A got {a_all} of {all_ok}"
    );

    // Cross-server delivery resumes, with the subscriptions restored: B's connection
    // channel, its group channel, and a client result.
    a.context
        .clients()
        .client(b1_id.clone())
        .send("Msg", ("after".to_owned(),))
        .await
        .unwrap();
    a.context
        .clients()
        .group("room")
        .send("Msg", ("room-after".to_owned(),))
        .await
        .unwrap();
    for want in ["after", "room-after"] {
        let message = b1.recv().await;
        let (target, args) = invocation_of(&message);
        assert_eq!((target, arg::<String>(&args[0]).as_str()), ("Msg", want));
    }
    let invoke = compute(&a.context, b1_id, 2);
    let (result, _) = tokio::join!(invoke, answer(&mut b1, 9));
    assert_eq!(result.unwrap(), 9);
    // The clients never noticed: they are still connected.
    a1.ping().await;
    b1.ping().await;

    eprintln!(
        "redis outage of {outage:?} (while down: {health:?}): {local_ok} local sends all delivered; \
         {all_ok} broadcasts delivered, {all_failed} lost (lost_messages = {})",
        a.backplane.lost_messages()
    );
}
