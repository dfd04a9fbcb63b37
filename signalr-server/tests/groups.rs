//! Groups and every send target with several raw clients, users from an axum middleware,
//! and group membership ending with the connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use common::{Client, Log, Options, arg, invocation_of, serve_router};
use serde_json::json;
use signalr_server::{
    Caller, Clients, Groups, Hub, HubContext, Identity, InMemoryBackplane, SignalR, State, Target,
};

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

fn hub(backplane: Arc<InMemoryBackplane>, disconnected: Log<String>) -> Hub {
    Hub::builder("Groups")
        .backplane(backplane)
        .state(disconnected)
        .on_disconnected(
            |caller: Caller, State(log): State<Log<String>>| async move {
                log.push(caller.connection_id().to_owned());
            },
        )
        .method("Whoami", |caller: Caller| async move {
            (
                caller.connection_id().to_owned(),
                caller.user_id().map(str::to_owned),
            )
        })
        .method(
            "Join",
            |groups: Groups, caller: Caller, group: String| async move {
                groups.add_to_group(caller.connection_id(), group).await
            },
        )
        .method(
            "Leave",
            |groups: Groups, caller: Caller, group: String| async move {
                groups
                    .remove_from_group(caller.connection_id(), group)
                    .await
            },
        )
        .method("ToAll", |clients: Clients, text: String| async move {
            clients.all().send("Msg", (text,)).await
        })
        .method(
            "ToGroup",
            |clients: Clients, group: String, text: String| async move {
                clients.group(group).send("Msg", (text,)).await
            },
        )
        .method(
            "ToGroups",
            |clients: Clients, groups: Vec<String>, text: String| async move {
                clients.groups(groups).send("Msg", (text,)).await
            },
        )
        .method(
            "ToGroupExcept",
            |clients: Clients, group: String, except: Vec<String>, text: String| async move {
                clients
                    .group_except(group, except)
                    .send("Msg", (text,))
                    .await
            },
        )
        .method("ToOthers", |clients: Clients, text: String| async move {
            clients.others().send("Msg", (text,)).await
        })
        .method(
            "ToOthersInGroup",
            |clients: Clients, group: String, text: String| async move {
                clients.others_in_group(group).send("Msg", (text,)).await
            },
        )
        .method("ToCaller", |clients: Clients, text: String| async move {
            clients.caller().send("Msg", (text,)).await
        })
        .method(
            "ToClient",
            |clients: Clients, id: String, text: String| async move {
                clients.client(id).send("Msg", (text,)).await
            },
        )
        .method(
            "ToClients",
            |clients: Clients, ids: Vec<String>, text: String| async move {
                clients.clients(ids).send("Msg", (text,)).await
            },
        )
        .method(
            "ToAllExcept",
            |clients: Clients, ids: Vec<String>, text: String| async move {
                clients.all_except(ids).send("Msg", (text,)).await
            },
        )
        .method(
            "ToUser",
            |clients: Clients, user: String, text: String| async move {
                clients.user(user).send("Msg", (text,)).await
            },
        )
        .method(
            "ToUsers",
            |clients: Clients, users: Vec<String>, text: String| async move {
                clients.users(users).send("Msg", (text,)).await
            },
        )
        .method("Marker", |context: HubContext, n: u32| async move {
            context.clients().all().send("Marker", (n,)).await
        })
        .build()
}

struct Fixture {
    server: common::TestServer,
    backplane: Arc<InMemoryBackplane>,
    disconnected: Log<String>,
    marker: u32,
}

impl Fixture {
    async fn new() -> Self {
        let backplane = Arc::new(InMemoryBackplane::new());
        let disconnected = Log::new();
        let router = SignalR::new()
            .hub("/hub", hub(backplane.clone(), disconnected.clone()))
            .into_router()
            .layer(axum::middleware::from_fn(identity_from_query));
        let server = serve_router(router).await;
        Fixture {
            server,
            backplane,
            disconnected,
            marker: 0,
        }
    }

    async fn client(&self, user: Option<&str>) -> Client {
        let options = match user {
            Some(user) => Options::query(format!("user={user}")),
            None => Options::default(),
        };
        Client::connect_with(self.server.addr, &options).await
    }

    /// Has `sender` call `method`, then checks that exactly the clients in `expected`
    /// received `text` (each once, before a marker broadcast that everyone gets).
    async fn check(
        &mut self,
        clients: &mut [&mut Client],
        sender: usize,
        method: &str,
        args: serde_json::Value,
        expected: &[usize],
    ) {
        let text = args
            .as_array()
            .and_then(|a| a.last())
            .and_then(|t| t.as_str())
            .unwrap()
            .to_owned();
        let completion = clients[sender].invoke(method, args.clone()).await;
        assert!(
            !matches!(completion.result, signalr_core::CompletionResult::Error(_)),
            "{method}: {completion:?}"
        );
        self.marker += 1;
        let marker = self.marker;
        let _ = clients[sender].invoke("Marker", json!([marker])).await;
        for (i, client) in clients.iter_mut().enumerate() {
            let mut got = Vec::new();
            loop {
                let message = client.recv().await;
                let (target, args) = invocation_of(&message);
                match target {
                    "Msg" => got.push(arg::<String>(&args[0])),
                    "Marker" => {
                        assert_eq!(arg::<u32>(&args[0]), marker, "client {i}");
                        break;
                    }
                    other => panic!("client {i}: unexpected {other}"),
                }
            }
            let want: Vec<String> = if expected.contains(&i) {
                vec![text.clone()]
            } else {
                Vec::new()
            };
            assert_eq!(got, want, "{method} {args}: client {i}");
        }
    }
}

async fn whoami(client: &mut Client) -> (String, Option<String>) {
    client.invoke_value("Whoami", json!([])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_reaches_exactly_its_clients() {
    let mut f = Fixture::new().await;
    let mut a = f.client(Some("alice")).await;
    let mut b = f.client(Some("bob")).await;
    let mut c = f.client(Some("alice")).await;
    let mut d = f.client(None).await;

    let (id_a, user_a) = whoami(&mut a).await;
    let (id_b, user_b) = whoami(&mut b).await;
    let (id_c, user_c) = whoami(&mut c).await;
    let (id_d, user_d) = whoami(&mut d).await;
    assert_eq!(
        (
            user_a.as_deref(),
            user_b.as_deref(),
            user_c.as_deref(),
            user_d.as_deref()
        ),
        (Some("alice"), Some("bob"), Some("alice"), None)
    );
    assert_eq!(id_a, a.connection_id);

    // Groups: a and b in "red", b and c in "blue", d in none.
    let _ = a.invoke("Join", json!(["red"])).await;
    let _ = b.invoke("Join", json!(["red"])).await;
    let _ = b.invoke("Join", json!(["blue"])).await;
    let _ = c.invoke("Join", json!(["blue"])).await;
    // Joining twice is harmless.
    let _ = c.invoke("Join", json!(["blue"])).await;

    let all = &mut [&mut a, &mut b, &mut c, &mut d];
    f.check(all, 3, "ToAll", json!(["all"]), &[0, 1, 2, 3])
        .await;
    f.check(all, 3, "ToGroup", json!(["red", "red"]), &[0, 1])
        .await;
    f.check(all, 0, "ToGroup", json!(["blue", "blue"]), &[1, 2])
        .await;
    f.check(all, 0, "ToGroup", json!(["green", "nobody"]), &[])
        .await;
    f.check(
        all,
        3,
        "ToGroups",
        json!([["red", "blue"], "red+blue once"]),
        &[0, 1, 2],
    )
    .await;
    f.check(
        all,
        3,
        "ToGroupExcept",
        json!(["red", [id_b.clone()], "red but b"]),
        &[0],
    )
    .await;
    f.check(all, 1, "ToOthers", json!(["not b"]), &[0, 2, 3])
        .await;
    f.check(
        all,
        1,
        "ToOthersInGroup",
        json!(["blue", "blue but b"]),
        &[2],
    )
    .await;
    f.check(
        all,
        3,
        "ToOthersInGroup",
        json!(["red", "red from outside"]),
        &[0, 1],
    )
    .await;
    f.check(all, 2, "ToCaller", json!(["just c"]), &[2]).await;
    f.check(all, 0, "ToClient", json!([id_d.clone(), "just d"]), &[3])
        .await;
    f.check(
        all,
        0,
        "ToClients",
        json!([[id_b.clone(), id_d.clone(), id_b.clone()], "b and d"]),
        &[1, 3],
    )
    .await;
    f.check(
        all,
        0,
        "ToAllExcept",
        json!([[id_a.clone(), id_c.clone()], "not a or c"]),
        &[1, 3],
    )
    .await;
    f.check(all, 3, "ToUser", json!(["alice", "alice's"]), &[0, 2])
        .await;
    f.check(all, 3, "ToUser", json!(["carol", "nobody's"]), &[])
        .await;
    f.check(
        all,
        3,
        "ToUsers",
        json!([["alice", "bob", "alice"], "everyone named"]),
        &[0, 1, 2],
    )
    .await;

    // Leaving a group.
    let _ = all[1].invoke("Leave", json!(["red"])).await;
    f.check(all, 3, "ToGroup", json!(["red", "red after b left"]), &[0])
        .await;
    let _ = all[0].invoke("Leave", json!(["red"])).await;
    f.check(all, 3, "ToGroup", json!(["red", "empty red"]), &[])
        .await;
    assert!(
        f.backplane
            .local_targets(&Target::Group("red".into()))
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_are_case_sensitive() {
    let mut f = Fixture::new().await;
    let mut a = f.client(None).await;
    let mut b = f.client(None).await;
    let _ = a.invoke("Join", json!(["Room"])).await;
    let _ = b.invoke("Join", json!(["room"])).await;
    let all = &mut [&mut a, &mut b];
    f.check(all, 0, "ToGroup", json!(["Room", "upper"]), &[0])
        .await;
    f.check(all, 0, "ToGroup", json!(["room", "lower"]), &[1])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_user_end_with_the_connection() {
    let mut f = Fixture::new().await;
    let mut a = f.client(Some("alice")).await;
    let mut b = f.client(Some("bob")).await;
    let (id_b, _) = whoami(&mut b).await;
    let _ = a.invoke("Join", json!(["room"])).await;
    let _ = b.invoke("Join", json!(["room"])).await;
    assert_eq!(
        f.backplane
            .local_targets(&Target::Group("room".into()))
            .len(),
        2
    );
    assert!(f.backplane.has_user("bob"));

    b.close().await;
    f.disconnected
        .wait_for("b's on_disconnected", |ids| ids.contains(&id_b))
        .await;

    let members: Vec<String> = f
        .backplane
        .local_targets(&Target::Group("room".into()))
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    assert_eq!(members, [a.connection_id.clone()]);
    assert!(!f.backplane.has_user("bob"));
    assert!(f.backplane.connection(&id_b).is_none());
    assert_eq!(f.backplane.connection_count(), 1);

    // Sending to the group or the user still works for who is left.
    let all = &mut [&mut a];
    f.check(all, 0, "ToGroup", json!(["room", "after b"]), &[0])
        .await;
    f.check(all, 0, "ToUser", json!(["bob", "to gone bob"]), &[])
        .await;
    f.check(all, 0, "ToClient", json!([id_b, "to gone b"]), &[])
        .await;

    // A new connection of bob is not in the old connection's groups.
    let mut b2 = f.client(Some("bob")).await;
    let all = &mut [&mut a, &mut b2];
    f.check(all, 0, "ToGroup", json!(["room", "room again"]), &[0])
        .await;
    f.check(all, 0, "ToUser", json!(["bob", "new bob"]), &[1])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnect_also_ends_membership() {
    let f = Fixture::new().await;
    let mut a = f.client(None).await;
    let (id_a, _) = whoami(&mut a).await;
    let _ = a.invoke("Join", json!(["room"])).await;
    drop(a.into_ws());
    f.disconnected
        .wait_for("a's on_disconnected", |ids| ids.contains(&id_a))
        .await;
    assert!(
        f.backplane
            .local_targets(&Target::Group("room".into()))
            .is_empty()
    );
    assert_eq!(f.backplane.connection_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messagepack_and_json_clients_share_groups() {
    let mut f = Fixture::new().await;
    let mut a = f.client(None).await;
    let mut b = Client::connect_with(f.server.addr, &Options::messagepack()).await;
    let _ = a.invoke("Join", json!(["mixed"])).await;
    let _ = b.invoke("Join", json!(["mixed"])).await;
    let all = &mut [&mut a, &mut b];
    f.check(all, 0, "ToGroup", json!(["mixed", "héllo"]), &[0, 1])
        .await;
    f.check(
        all,
        1,
        "ToOthersInGroup",
        json!(["mixed", "from packed"]),
        &[0],
    )
    .await;
}
