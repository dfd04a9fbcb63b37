//! Codec benchmarks for the JSON and MessagePack hub protocols.
//!
//! Three groups, each for both protocols and for four inputs (a small Invocation, a
//! Completion with a small object result, a StreamItem with a number, and a batch of 100
//! mixed messages read through [`MessageReader`]):
//!
//! - `parse/<protocol>`: [`HubProtocol::parse_frame`] (arguments, items and results stay raw
//!   slices of the frame), side by side with the generic-value baseline: the same frame
//!   decoded into `serde_json::Value` or `rmpv::Value`.
//! - `parse_deserialize/<protocol>`: parse, then deserialize every argument, item and result
//!   into concrete Rust types.
//! - `write/<protocol>`: `typed` encodes the values with [`RawValue::encode`], builds the
//!   message and calls [`HubProtocol::to_bytes`]; `prebuilt` times `to_bytes` alone.
//!
//! Throughput is in bytes on the wire (framing included); divide the message count by the
//! time for messages per second. Run with `cargo bench -p signalr-core --bench codec`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use signalr_core::framing::{RECORD_SEPARATOR, read_varint};
use signalr_core::{
    Completion, CompletionResult, Encoding, HubMessage, HubProtocol, Invocation, JsonHubProtocol,
    MessagePackHubProtocol, MessageReader, RawValue, StreamItem,
};

/// The first argument of the chat invocation.
const USER: &str = "user42";
/// The second argument of the chat invocation.
const TEXT: &str = "hello world, a short chat message";
/// Messages in the batch input.
const BATCH: usize = 100;
/// The index used for the single-message inputs.
const SINGLE: usize = 17;

/// A small object result: ids, a string, a number, a bool and a nested array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatMessage {
    message_id: u64,
    room_id: u32,
    author: String,
    score: f64,
    pinned: bool,
    position: [i32; 3],
}

/// The kinds of message in the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invocation,
    Completion,
    StreamItem,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Invocation, Kind::Completion, Kind::StreamItem];

    fn name(self) -> &'static str {
        match self {
            Kind::Invocation => "invocation",
            Kind::Completion => "completion",
            Kind::StreamItem => "stream_item",
        }
    }

    /// The kind of the batch's `i`th message.
    fn of_batch(i: usize) -> Kind {
        Kind::ALL[i % Kind::ALL.len()]
    }
}

/// The typed values behind message `i`, as an application holds them before sending.
#[derive(Debug, Clone)]
struct Source {
    kind: Kind,
    invocation_id: String,
    result: ChatMessage,
    item: i64,
}

impl Source {
    /// What [`deserialize`] must give back for this source's message.
    fn typed(&self) -> Typed {
        match self.kind {
            Kind::Invocation => Typed::Chat(USER.to_owned(), TEXT.to_owned()),
            Kind::Completion => Typed::Result(self.result.clone()),
            Kind::StreamItem => Typed::Item(self.item),
        }
    }

    fn new(kind: Kind, i: usize) -> Self {
        let n = i as u64;
        Source {
            kind,
            invocation_id: i.to_string(),
            result: ChatMessage {
                message_id: 1_234_567_000 + n,
                room_id: 42,
                author: USER.to_owned(),
                score: 0.875,
                pinned: i % 2 == 0,
                position: [12, -7, 1024],
            },
            item: 1_000 * i64::try_from(i).unwrap() + 7,
        }
    }

    /// Encodes the typed values and builds the message: what a sender does for each message.
    fn build(&self, encoding: Encoding) -> HubMessage {
        match self.kind {
            Kind::Invocation => {
                let arguments = vec![
                    RawValue::encode(encoding, USER).unwrap(),
                    RawValue::encode(encoding, TEXT).unwrap(),
                ];
                Invocation::new("SendMessage", arguments)
                    .with_invocation_id(self.invocation_id.as_str())
                    .into()
            }
            Kind::Completion => Completion::with_result(
                self.invocation_id.as_str(),
                RawValue::encode(encoding, &self.result).unwrap(),
            )
            .into(),
            Kind::StreamItem => StreamItem::new(
                self.invocation_id.as_str(),
                RawValue::encode(encoding, &self.item).unwrap(),
            )
            .into(),
        }
    }
}

/// A parsed message's payload in concrete Rust types.
#[derive(Debug, PartialEq)]
enum Typed {
    Chat(String, String),
    Result(ChatMessage),
    Item(i64),
    Other,
}

/// Deserializes the arguments, result or item of `message` into their Rust types.
fn deserialize(message: &HubMessage) -> Typed {
    match message {
        HubMessage::Invocation(call) => Typed::Chat(
            call.arguments[0].deserialize().unwrap(),
            call.arguments[1].deserialize().unwrap(),
        ),
        HubMessage::Completion(done) => match &done.result {
            CompletionResult::Value(value) => Typed::Result(value.deserialize().unwrap()),
            _ => Typed::Other,
        },
        HubMessage::StreamItem(item) => Typed::Item(item.item.deserialize().unwrap()),
        _ => Typed::Other,
    }
}

/// One message's bytes.
#[derive(Debug)]
struct Single {
    kind: Kind,
    source: Source,
    message: HubMessage,
    /// The message as written: content plus framing.
    framed: Bytes,
    /// The content alone, as `parse_frame` and the baselines take it.
    frame: Bytes,
}

/// Everything one protocol's benchmarks read.
#[derive(Debug)]
struct Fixture<P> {
    name: &'static str,
    protocol: P,
    singles: Vec<Single>,
    batch_sources: Vec<Source>,
    batch_messages: Vec<HubMessage>,
    /// The 100 messages framed back to back, as a transport would deliver them.
    batch: Bytes,
}

/// Strips the framing of one written message.
fn unframe(encoding: Encoding, framed: &Bytes) -> Bytes {
    match encoding {
        Encoding::Json => {
            assert_eq!(framed.last(), Some(&RECORD_SEPARATOR));
            framed.slice(..framed.len() - 1)
        }
        _ => {
            let (len, prefix) = read_varint(framed).unwrap().unwrap();
            assert_eq!(prefix + len, framed.len());
            framed.slice(prefix..)
        }
    }
}

impl<P: HubProtocol + Copy> Fixture<P> {
    fn new(name: &'static str, protocol: P) -> Self {
        let encoding = protocol.encoding();
        let singles = Kind::ALL
            .iter()
            .map(|&kind| {
                let source = Source::new(kind, SINGLE);
                let message = source.build(encoding);
                let framed = protocol.to_bytes(&message).unwrap();
                let frame = unframe(encoding, &framed);
                // Check that the benchmarks time what they claim to.
                let parsed = protocol.parse_frame(frame.clone()).unwrap().unwrap();
                assert_eq!(parsed, message);
                assert_eq!(deserialize(&parsed), source.typed());
                Single {
                    kind,
                    source,
                    message,
                    framed,
                    frame,
                }
            })
            .collect();
        let batch_sources: Vec<Source> = (0..BATCH)
            .map(|i| Source::new(Kind::of_batch(i), i))
            .collect();
        let batch_messages: Vec<HubMessage> =
            batch_sources.iter().map(|s| s.build(encoding)).collect();
        let mut batch = Vec::new();
        for message in &batch_messages {
            batch.extend_from_slice(&protocol.to_bytes(message).unwrap());
        }
        let fixture = Fixture {
            name,
            protocol,
            singles,
            batch_sources,
            batch_messages,
            batch: Bytes::from(batch),
        };
        assert_eq!(fixture.read_batch(|m| m), fixture.batch_messages);
        let expected: Vec<Typed> = fixture.batch_sources.iter().map(Source::typed).collect();
        assert_eq!(fixture.read_batch(|m| deserialize(&m)), expected);
        assert_eq!(fixture.decode_batch_to_values(), BATCH);
        fixture
    }

    /// Parses the batch through a fresh [`MessageReader`]: feed all, drain.
    fn read_batch<T>(&self, mut each: impl FnMut(HubMessage) -> T) -> Vec<T> {
        let mut reader = MessageReader::new(self.protocol, Some(1024 * 1024));
        reader.feed(&self.batch);
        let mut out = Vec::with_capacity(BATCH);
        while let Some(message) = reader.next_message().unwrap() {
            out.push(each(message));
        }
        out
    }

    /// The baseline for the batch: split the frames and decode each into a value tree.
    fn decode_batch_to_values(&self) -> usize {
        let buf: &[u8] = &self.batch;
        let mut count = 0;
        match self.protocol.encoding() {
            Encoding::Json => {
                for frame in buf
                    .split(|&b| b == RECORD_SEPARATOR)
                    .filter(|f| !f.is_empty())
                {
                    black_box(json_value(frame));
                    count += 1;
                }
            }
            _ => {
                let mut rest = buf;
                while !rest.is_empty() {
                    let (len, prefix) = read_varint(rest).unwrap().unwrap();
                    black_box(msgpack_value(&rest[prefix..prefix + len]));
                    rest = &rest[prefix + len..];
                    count += 1;
                }
            }
        }
        count
    }
}

fn json_value(frame: &[u8]) -> serde_json::Value {
    serde_json::from_slice(frame).unwrap()
}

fn msgpack_value(frame: &[u8]) -> rmpv::Value {
    let mut rd = frame;
    rmpv::decode::read_value(&mut rd).unwrap()
}

/// `parse/<protocol>`: ours and the generic-value baseline, input by input.
fn parse<P: HubProtocol + Copy>(c: &mut Criterion, f: &Fixture<P>) {
    let mut group = c.benchmark_group(format!("parse/{}", f.name));
    for single in &f.singles {
        let name = single.kind.name();
        group.throughput(Throughput::Bytes(single.framed.len() as u64));
        group.bench_function(format!("{name}/ours"), |b| {
            b.iter(|| {
                f.protocol
                    .parse_frame(black_box(single.frame.clone()))
                    .unwrap()
            });
        });
        group.bench_function(format!("{name}/value_tree"), |b| {
            match f.protocol.encoding() {
                Encoding::Json => b.iter(|| json_value(black_box(&single.frame))),
                _ => b.iter(|| msgpack_value(black_box(&single.frame))),
            }
        });
    }
    group.throughput(Throughput::Bytes(f.batch.len() as u64));
    group.bench_function("batch100/ours", |b| b.iter(|| f.read_batch(|m| m)));
    group.bench_function("batch100/value_tree", |b| {
        b.iter(|| f.decode_batch_to_values());
    });
    group.finish();
}

/// `parse_deserialize/<protocol>`: parse, then deserialize the payloads into Rust types.
fn parse_deserialize<P: HubProtocol + Copy>(c: &mut Criterion, f: &Fixture<P>) {
    let mut group = c.benchmark_group(format!("parse_deserialize/{}", f.name));
    for single in &f.singles {
        group.throughput(Throughput::Bytes(single.framed.len() as u64));
        group.bench_function(single.kind.name(), |b| {
            b.iter(|| {
                let message = f
                    .protocol
                    .parse_frame(black_box(single.frame.clone()))
                    .unwrap()
                    .unwrap();
                deserialize(&message)
            });
        });
    }
    group.throughput(Throughput::Bytes(f.batch.len() as u64));
    group.bench_function("batch100", |b| b.iter(|| f.read_batch(|m| deserialize(&m))));
    group.finish();
}

/// `write/<protocol>`: from typed values to framed bytes, and `to_bytes` alone.
fn write<P: HubProtocol + Copy>(c: &mut Criterion, f: &Fixture<P>) {
    let encoding = f.protocol.encoding();
    let mut group = c.benchmark_group(format!("write/{}", f.name));
    for single in &f.singles {
        let name = single.kind.name();
        group.throughput(Throughput::Bytes(single.framed.len() as u64));
        group.bench_function(format!("{name}/typed"), |b| {
            b.iter(|| {
                f.protocol
                    .to_bytes(&black_box(&single.source).build(encoding))
                    .unwrap()
            });
        });
        group.bench_function(format!("{name}/prebuilt"), |b| {
            b.iter(|| f.protocol.to_bytes(black_box(&single.message)).unwrap());
        });
    }
    group.throughput(Throughput::Bytes(f.batch.len() as u64));
    group.bench_function("batch100/typed", |b| {
        b.iter(|| {
            black_box(&f.batch_sources)
                .iter()
                .map(|source| f.protocol.to_bytes(&source.build(encoding)).unwrap())
                .collect::<Vec<_>>()
        });
    });
    group.bench_function("batch100/prebuilt", |b| {
        b.iter(|| {
            black_box(&f.batch_messages)
                .iter()
                .map(|message| f.protocol.to_bytes(message).unwrap())
                .collect::<Vec<_>>()
        });
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    let json = Fixture::new("json", JsonHubProtocol::new());
    let msgpack = Fixture::new("msgpack", MessagePackHubProtocol::new());
    parse(c, &json);
    parse(c, &msgpack);
    parse_deserialize(c, &json);
    parse_deserialize(c, &msgpack);
    write(c, &json);
    write(c, &msgpack);
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30)
}

/// `criterion_group!` and `criterion_main!` by hand: the group function the macro generates
/// is public and undocumented, which the workspace's `missing_docs` lint rejects.
fn main() {
    let mut criterion = config().configure_from_args();
    codec(&mut criterion);
    criterion.final_summary();
}
