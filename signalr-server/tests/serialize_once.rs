//! A broadcast is serialized once per hub protocol, whatever the number of recipients:
//! counted with protocols that wrap the stock ones and count what they write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{Client, Options, arg, invocation_of, serve};
use signalr_core::{
    Encoding, HubMessage, HubProtocol, JsonHubProtocol, MessagePackHubProtocol, ProtocolError,
    TransferFormat,
};
use signalr_server::{Hub, HubOptions};

/// A protocol that counts the messages it writes: all of them, and the `Broadcast`
/// invocations.
#[derive(Debug)]
struct Counting<P> {
    inner: P,
    written: AtomicUsize,
    broadcasts: AtomicUsize,
}

impl<P> Counting<P> {
    fn new(inner: P) -> Arc<Self> {
        Arc::new(Self {
            inner,
            written: AtomicUsize::new(0),
            broadcasts: AtomicUsize::new(0),
        })
    }

    fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    fn broadcasts(&self) -> usize {
        self.broadcasts.load(Ordering::SeqCst)
    }
}

impl<P: HubProtocol> HubProtocol for Counting<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn version(&self) -> u32 {
        self.inner.version()
    }

    fn is_version_supported(&self, version: u32) -> bool {
        self.inner.is_version_supported(version)
    }

    fn transfer_format(&self) -> TransferFormat {
        self.inner.transfer_format()
    }

    fn encoding(&self) -> Encoding {
        self.inner.encoding()
    }

    fn parse_frame(&self, frame: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        self.inner.parse_frame(frame)
    }

    fn write_message(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
        self.written.fetch_add(1, Ordering::SeqCst);
        if matches!(message, HubMessage::Invocation(i) if i.target == "Broadcast") {
            self.broadcasts.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.write_message(message, out)
    }

    // `to_bytes` keeps its default, which calls `write_message` once.
}

fn hub(json: Arc<Counting<JsonHubProtocol>>, packed: Arc<Counting<MessagePackHubProtocol>>) -> Hub {
    Hub::builder("SerializeOnce")
        // No pings while counting.
        .options(HubOptions::default().keep_alive_interval(Duration::from_secs(3600)))
        .protocols(vec![json, packed])
        .method("Add", |a: i32, b: i32| async move { a + b })
        .build()
}

/// Every client receives exactly one `Broadcast` with `text`.
async fn expect_broadcast(clients: &mut [Client], text: &str) {
    for client in clients.iter_mut() {
        let message = client.recv().await;
        let (target, args) = invocation_of(&message);
        assert_eq!(target, "Broadcast");
        assert_eq!(arg::<String>(&args[0]), text);
        assert_eq!(arg::<Vec<u32>>(&args[1]), [1, 2, 3]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_fifty_json_clients_serializes_once() {
    let json = Counting::new(JsonHubProtocol::new());
    let packed = Counting::new(MessagePackHubProtocol::new());
    let hub = hub(json.clone(), packed.clone());
    let context = hub.context();
    let server = serve(hub).await;

    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(Client::connect(server.addr).await);
    }
    // Everything the connections needed written is written once their handshakes are done.
    let before = json.written();
    assert_eq!(json.broadcasts(), 0);

    context
        .clients()
        .all()
        .send("Broadcast", ("hello".to_owned(), vec![1u32, 2, 3]))
        .await
        .unwrap();
    expect_broadcast(&mut clients, "hello").await;

    assert_eq!(json.broadcasts(), 1);
    assert_eq!(json.written() - before, 1);
    assert_eq!(packed.written(), 0);

    // A second broadcast: once more.
    context
        .clients()
        .all()
        .send("Broadcast", ("again".to_owned(), vec![1u32, 2, 3]))
        .await
        .unwrap();
    expect_broadcast(&mut clients, "again").await;
    assert_eq!(json.broadcasts(), 2);
    assert_eq!(json.written() - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_mixed_clients_serializes_once_per_protocol() {
    let json = Counting::new(JsonHubProtocol::new());
    let packed = Counting::new(MessagePackHubProtocol::new());
    let hub = hub(json.clone(), packed.clone());
    let context = hub.context();
    let server = serve(hub).await;

    let mut clients = Vec::new();
    for i in 0..50 {
        let options = if i % 2 == 0 {
            Options::default()
        } else {
            Options::messagepack()
        };
        clients.push(Client::connect_with(server.addr, &options).await);
    }
    let (json_before, packed_before) = (json.written(), packed.written());

    context
        .clients()
        .all()
        .send("Broadcast", ("mixed".to_owned(), vec![1u32, 2, 3]))
        .await
        .unwrap();
    expect_broadcast(&mut clients, "mixed").await;

    assert_eq!(json.broadcasts(), 1);
    assert_eq!(packed.broadcasts(), 1);
    assert_eq!(json.written() - json_before, 1);
    assert_eq!(packed.written() - packed_before, 1);

    // Groups too: a group of a few of each protocol.
    for client in clients.iter_mut().take(6) {
        let id = client.connection_id.clone();
        context.groups().add_to_group(id, "few").await.unwrap();
    }
    context
        .clients()
        .group("few")
        .send("Broadcast", ("few".to_owned(), vec![1u32, 2, 3]))
        .await
        .unwrap();
    expect_broadcast(&mut clients[..6], "few").await;
    assert_eq!(json.broadcasts(), 2);
    assert_eq!(packed.broadcasts(), 2);
    // The others got nothing.
    for client in clients.iter_mut().skip(6) {
        assert_eq!(client.recv_within(Duration::from_millis(20)).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_from_a_hub_method_serializes_once() {
    let json = Counting::new(JsonHubProtocol::new());
    let packed = Counting::new(MessagePackHubProtocol::new());
    let hub = Hub::builder("SerializeOnceFromMethod")
        .options(HubOptions::default().keep_alive_interval(Duration::from_secs(3600)))
        .protocols(vec![json.clone(), packed.clone()])
        .method("Shout", |clients: signalr_server::Clients| async move {
            clients
                .all()
                .send("Broadcast", ("shout".to_owned(), vec![1u32, 2, 3]))
                .await
        })
        .build();
    let server = serve(hub).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        let options = if i % 4 == 0 {
            Options::messagepack()
        } else {
            Options::default()
        };
        clients.push(Client::connect_with(server.addr, &options).await);
    }
    let _ = clients[0].invoke("Shout", serde_json::json!([])).await;
    expect_broadcast(&mut clients, "shout").await;
    assert_eq!(json.broadcasts(), 1);
    assert_eq!(packed.broadcasts(), 1);
}
