//! `TestHub`, the hub that cannot be created, and the raw `/echo` endpoint.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use signalr_core::{Binary, RawValue, Timestamp, TransportType};
use signalr_redis::{RedisBackplane, RedisBackplaneBuilder};
use signalr_server::{
    Caller, CancellationToken, Clients, Groups, Hub, HubBuilder, HubError, HubOptions,
    RawConnection, UploadStream, authenticated,
};

use crate::auth::Jwt;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CustomObject {
    name: String,
    value: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ComplexObject {
    string: String,
    int_array: Vec<i64>,
    byte_array: Binary,
    guid: String,
    date_time: Timestamp,
}

/// The Redis backplane every hub uses with `--redis URL`, with the hub's name as its
/// channel name (the .NET test hubs' type names), and the backplanes built so far.
#[derive(Debug)]
pub(crate) struct Redis {
    builder: RedisBackplaneBuilder,
    built: Mutex<Vec<RedisBackplane>>,
}

impl Redis {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            builder: RedisBackplane::builder(url),
            built: Mutex::new(Vec::new()),
        }
    }

    /// Every backplane built so far.
    pub(crate) fn backplanes(&self) -> Vec<RedisBackplane> {
        self.built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A hub builder named `name`, on the Redis backplane when there is one.
fn hub_builder(name: &str, redis: Option<&Redis>) -> HubBuilder {
    let builder = Hub::builder(name);
    let Some(redis) = redis else {
        return builder;
    };
    match redis.builder.build(name) {
        Ok(backplane) => {
            redis
                .built
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(backplane.clone());
            builder.backplane(Arc::new(backplane))
        }
        Err(err) => {
            eprintln!("--redis: {err}");
            std::process::exit(2);
        }
    }
}

fn invalid_operation(message: String) -> HubError {
    HubError::exception("InvalidOperationException", message)
}

/// `TestHub` of the interop contract, over the given transports. A valid bearer token sets
/// the connection's user; none is required.
pub(crate) fn test_hub(
    jwt: &Jwt,
    transports: impl IntoIterator<Item = TransportType>,
    stateful: bool,
    redis: Option<&Redis>,
) -> Hub {
    hub_builder("FunctionalTests.TestHub", redis)
        .options(
            HubOptions::default()
                .enable_detailed_errors(true)
                .transports(transports)
                .allow_stateful_reconnects(stateful),
        )
        .authenticator(jwt.clone())
        .method("Echo", |message: Option<String>| async move { message })
        .method("HelloWorld", || async { "Hello World!" })
        .method("Add", |a: i64, b: i64| async move { a.wrapping_add(b) })
        .method("GetCallerConnectionId", |caller: Caller| async move {
            caller.connection_id().to_owned()
        })
        .method("GetUserIdentifier", |caller: Caller| async move {
            caller.user_id().map(str::to_owned)
        })
        .method("GetNumRedirects", |caller: Caller| async move {
            caller
                .request()
                .query("numRedirects")
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .method("ThrowException", |message: String| async move {
            Err::<(), _>(invalid_operation(message))
        })
        .method(
            "InvokeWithString",
            |clients: Clients, message: String| async move {
                clients.caller().send("Message", (message,)).await
            },
        )
        .method(
            "SendCustomObject",
            |clients: Clients, object: CustomObject| async move {
                clients.caller().send("CustomObject", (object,)).await
            },
        )
        .method("CallEcho", |clients: Clients, message: String| async move {
            clients.caller().send("Echo", (message,)).await
        })
        .method(
            "CallHandlerThatDoesntExist",
            |clients: Clients| async move { clients.caller().send("NoClientHandler", ()).await },
        )
        .stream("Stream", || async { stream::iter(["a", "b", "c"]) })
        .stream("StreamCount", |n: i64, delay_ms: i64| async move {
            let delay = Duration::from_millis(u64::try_from(delay_ms).unwrap_or(0));
            stream::iter(0..n.max(0)).then(move |i| async move {
                tokio::time::sleep(delay).await;
                i
            })
        })
        .stream("EmptyStream", || async { stream::empty::<i64>() })
        .stream(
            "InfiniteStream",
            |clients: Clients, cancel: CancellationToken, caller: Caller| async move {
                tokio::spawn(async move {
                    cancel.cancelled().await;
                    if !caller.closed().is_cancelled() {
                        let _ = clients.caller().send("StreamCanceled", ()).await;
                    }
                });
                stream::pending::<i64>()
            },
        )
        .stream("StreamThrowException", |message: String| async move {
            Err::<stream::Empty<i64>, _>(invalid_operation(message))
        })
        .method(
            "StreamingConcat",
            |mut items: UploadStream<String>| async move {
                let mut out = String::new();
                while let Some(item) = items.next().await {
                    out.push_str(&item?);
                }
                Ok::<_, HubError>(out)
            },
        )
        .stream(
            "StreamEcho",
            |items: UploadStream<String>| async move { items },
        )
        .method("UploadSum", |mut items: UploadStream<i64>| async move {
            let mut sum = 0i64;
            while let Some(item) = items.next().await {
                sum = sum.wrapping_add(item?);
            }
            Ok::<_, HubError>(sum)
        })
        .method("GetActiveTransportName", |caller: Caller| async move {
            caller.transport().as_str()
        })
        .method(
            "EchoComplexObject",
            |object: RawValue| async move { object },
        )
        .method("SendComplexObject", || async {
            Ok::<_, HubError>(ComplexObject {
                string: "hello world".into(),
                int_array: vec![1, 2, 3],
                byte_array: Binary(vec![1, 2, 3]),
                guid: "00010203-0405-0607-0706-050403020100".into(),
                date_time: Timestamp::from_unix(946_684_800, 0)
                    .map_err(|e| HubError::new(e.to_string()))?,
            })
        })
        .method("GetHeader", |caller: Caller, name: String| async move {
            caller.request().header(&name).map(str::to_owned)
        })
        .method("GetCookie", |caller: Caller, name: String| async move {
            caller.request().cookie(&name)
        })
        .method(
            "JoinGroup",
            |groups: Groups, caller: Caller, group: String| async move {
                groups.add_to_group(caller.connection_id(), group).await
            },
        )
        .method(
            "LeaveGroup",
            |groups: Groups, caller: Caller, group: String| async move {
                groups
                    .remove_from_group(caller.connection_id(), group)
                    .await
            },
        )
        .method(
            "AddConnectionToGroup",
            |groups: Groups, id: String, group: String| async move {
                groups.add_to_group(id, group).await
            },
        )
        .method(
            "RemoveConnectionFromGroup",
            |groups: Groups, id: String, group: String| async move {
                groups.remove_from_group(id, group).await
            },
        )
        .method(
            "SendToGroup",
            |clients: Clients, group: String, message: String| async move {
                clients
                    .group(group.clone())
                    .send("GroupMessage", (group, message))
                    .await
            },
        )
        .method(
            "SendToGroupExcept",
            |clients: Clients, group: String, message: String, excluded: Vec<String>| async move {
                clients
                    .group_except(group.clone(), excluded)
                    .send("GroupMessage", (group, message))
                    .await
            },
        )
        .method(
            "SendToOthersInGroup",
            |clients: Clients, group: String, message: String| async move {
                clients
                    .others_in_group(group.clone())
                    .send("GroupMessage", (group, message))
                    .await
            },
        )
        .method(
            "SendToAll",
            |clients: Clients, message: String| async move {
                clients.all().send("Broadcast", (message,)).await
            },
        )
        .method(
            "SendToOthers",
            |clients: Clients, message: String| async move {
                clients.others().send("Broadcast", (message,)).await
            },
        )
        .method(
            "SendToAllExcept",
            |clients: Clients, message: String, excluded: Vec<String>| async move {
                clients
                    .all_except(excluded)
                    .send("Broadcast", (message,))
                    .await
            },
        )
        .method(
            "SendToUser",
            |clients: Clients, user: String, message: String| async move {
                clients.user(user).send("UserMessage", (message,)).await
            },
        )
        .method(
            "SendToUsers",
            |clients: Clients, users: Vec<String>, message: String| async move {
                clients.users(users).send("UserMessage", (message,)).await
            },
        )
        .method(
            "SendToConnection",
            |clients: Clients, id: String, message: String| async move {
                clients.client(id).send("DirectMessage", (message,)).await
            },
        )
        .method(
            "SendToConnections",
            |clients: Clients, ids: Vec<String>, message: String| async move {
                clients.clients(ids).send("DirectMessage", (message,)).await
            },
        )
        .method("SendSequence", |clients: Clients, n: i64| async move {
            let caller = clients.caller();
            for i in 0..n.max(0) {
                caller.send("Seq", (i,)).await?;
            }
            Ok::<_, signalr_server::Error>(())
        })
        .method("Delay", |ms: i64| async move {
            tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).await;
        })
        .method("EchoLength", |n: i64| async move {
            "x".repeat(usize::try_from(n).unwrap_or(0).min(16 * 1024 * 1024))
        })
        .method("Abort", |caller: Caller| async move { caller.abort() })
        .method("DropTransport", |caller: Caller| async move {
            caller.drop_transport();
        })
        .build()
}

/// A hub whose creation fails on every connection, as `UncreatableHub` does in ASP.NET
/// Core's test server.
pub(crate) fn uncreatable_hub(redis: Option<&Redis>) -> Hub {
    hub_builder("FunctionalTests.UncreatableHub", redis)
        .options(HubOptions::default().enable_detailed_errors(true))
        .on_connected(|| async {
            Err::<(), _>(HubError::exception(
                "InvalidOperationException",
                "Unable to resolve service for type 'System.Object' while attempting to activate 'FunctionalTests.UncreatableHub'.",
            ))
        })
        .build()
}

/// `/echo`: a raw connection (not a hub) that echoes every message back once.
pub(crate) async fn echo(mut connection: RawConnection) {
    while let Some(data) = connection.recv().await {
        if connection.send(data).await.is_err() {
            return;
        }
    }
    connection.close().await;
}

/// `HubWithAuthorization`: needs a valid bearer token.
pub(crate) fn authorized_hub(jwt: &Jwt, redis: Option<&Redis>) -> Hub {
    hub_builder("FunctionalTests.HubWithAuthorization", redis)
        .options(HubOptions::default().enable_detailed_errors(true))
        .authenticator(jwt.clone())
        .authorize(authenticated())
        .method("Echo", |message: Option<String>| async move { message })
        .method("GetUserIdentifier", |caller: Caller| async move {
            caller.user_id().map(str::to_owned)
        })
        .build()
}
