//! Property tests: every hub message survives both hub protocols, values survive a change of
//! encoding, the incremental reader is insensitive to how the stream is split, the size limit
//! is enforced early, garbage never panics, and the handshake, negotiate and Server-Sent
//! Events encodings round-trip.
//!
//! Normalisations the generators respect (all mirror ASP.NET Core and are intended):
//!
//! - An Invocation id of `""` is written as absent (JSON) or nil (MessagePack) and read back
//!   as `None`. The generator produces `Some("")` and the expected value is normalised.
//! - JSON writes a Completion error of `""` as a void completion, so JSON errors are
//!   non-empty (MessagePack keeps `""`, so its generator allows it).
//! - MessagePack writes a Close error of `""` as nil, so its Close errors are `None` or
//!   non-empty (JSON keeps `""`).
//! - MessagePack rejects null or empty header keys and values, an empty target, and an empty
//!   invocation id on StreamInvocation, StreamItem, Completion and CancelInvocation (ASP.NET
//!   Core's "Null or empty ..." errors), so those are non-empty under MessagePack rules.
//! - JSON writes a StreamInvocation's invocation id only when it is non-empty (as ASP.NET
//!   Core's `WriteInvocationId` does) and the reader then requires it, so StreamInvocation ids
//!   are non-empty under JSON rules too. (StreamItem, Completion and CancelInvocation: this
//!   crate always writes the id and its JSON reader accepts `""`, so JSON round-trips an empty
//!   one there; ASP.NET Core would omit it and reject the message. A leniency, not a
//!   normalisation.)
//! - A handshake response error of `""` means success and is read back as `None`.
//! - Negotiate: a non-empty `error` makes the response `{"error":...}` (plus
//!   `useStatefulReconnect` when true) and drops every other field; empty strings are not
//!   written (read back as `None`); `connectionToken` is written only for version 1 and above.
//! - Server-Sent Events: an empty payload is written as a lone blank line, which the decoder
//!   (like every SSE client, per the spec) does not dispatch as an event; a trailing `\r` on
//!   each payload line is dropped by the writer, and a `\r` anywhere is a line end to the
//!   decoder, so only payloads without `\r` are recovered exactly.

// clippy.toml allows these in `#[test]` functions only, not in the helpers below.
#![allow(clippy::expect_used, clippy::print_stdout)]

use std::ops::Range;

use bytes::BytesMut;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use signalr_core::{
    AvailableTransport, Close, Completion, CompletionResult, Encoding, HandshakeRequest,
    HandshakeResponse, Headers, HubMessage, HubProtocol, Invocation, JsonHubProtocol,
    MessagePackHubProtocol, MessageReader, NegotiateResponse, ProtocolError, RawValue, Sequence,
    SseDecoder, StreamInvocation, StreamItem, write_sse_event,
};

const CASES: u32 = 256;

// ---------------------------------------------------------------------------------------
// Value trees and strings
// ---------------------------------------------------------------------------------------

/// Characters with a bias towards the ones that need escaping or are multi-byte.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        3 => prop::char::range('a', 'z'),
        2 => prop::sample::select(vec![
            '"', '\\', '/', '\0', '\u{1e}', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{1f}', '\u{7f}', '\u{80}',
            '\u{2028}', '\u{2029}', '\u{feff}', '\u{fffd}', 'é', '€', '😀', '\u{10ffff}', ' ', ':', '{', '}',
        ]),
    ]
}

/// A string of up to `max` characters, empty one time in five.
fn text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => vec(interesting_char(), 1..=max).prop_map(String::from_iter),
    ]
    .boxed()
}

/// A string of 1 to `max` characters.
fn non_empty_text(max: usize) -> BoxedStrategy<String> {
    vec(interesting_char(), 1..=max)
        .prop_map(String::from_iter)
        .boxed()
}

/// A string that must be non-empty when `strict`.
fn name(strict: bool, max: usize) -> BoxedStrategy<String> {
    if strict {
        non_empty_text(max)
    } else {
        text(max)
    }
}

fn finite_f64() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        3 => POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO,
        1 => any::<i32>().prop_map(f64::from),
        1 => prop::sample::select(vec![0.5, -0.0, 1e20, -1e-7, f64::MAX, f64::MIN_POSITIVE, f64::EPSILON]),
    ]
}

/// A serde_json value tree: null, bool, i64, finite f64, strings, arrays and string-keyed
/// maps, at most three levels deep.
fn json_value() -> impl Strategy<Value = Value> + Clone {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        text(12).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(text(6), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn raw_value(encoding: Encoding) -> impl Strategy<Value = RawValue> + Clone {
    json_value()
        .prop_map(move |v| RawValue::encode(encoding, &v).expect("a value tree always encodes"))
}

// ---------------------------------------------------------------------------------------
// Hub messages
// ---------------------------------------------------------------------------------------

/// Any of the nine hub messages, following the string rules of `rules` (see the module
/// docs) with values encoded in `values`.
fn hub_message(rules: Encoding, values: Encoding) -> BoxedStrategy<HubMessage> {
    let strict = rules == Encoding::MessagePack;
    let headers = vec((name(strict, 6), name(strict, 6)), 0..3).prop_map(Headers::from_iter);
    let args = vec(raw_value(values), 0..4);
    let stream_ids = vec(name(strict, 6), 0..3);

    let invocation = (
        headers.clone(),
        prop::option::of(text(8)),
        name(true, 10),
        args.clone(),
        stream_ids.clone(),
    )
        .prop_map(|(headers, id, target, args, stream_ids)| {
            let mut m = Invocation::new(target, args)
                .with_headers(headers)
                .with_stream_ids(stream_ids);
            m.invocation_id = id;
            HubMessage::from(m)
        });
    let stream_item =
        (headers.clone(), name(true, 8), raw_value(values)).prop_map(|(headers, id, item)| {
            let mut m = StreamItem::new(id, item);
            m.headers = headers;
            HubMessage::from(m)
        });
    let error = if strict { text(16) } else { non_empty_text(16) };
    let result = prop_oneof![
        Just(CompletionResult::Void),
        raw_value(values).prop_map(CompletionResult::Value),
        error.prop_map(CompletionResult::Error),
    ];
    let completion = (headers.clone(), name(true, 8), result).prop_map(|(headers, id, result)| {
        let mut m = Completion::new(id, result);
        m.headers = headers;
        HubMessage::from(m)
    });
    let stream_invocation = (
        headers.clone(),
        non_empty_text(8),
        name(true, 10),
        args,
        stream_ids,
    )
        .prop_map(|(headers, id, target, args, stream_ids)| {
            HubMessage::from(
                StreamInvocation::new(id, target, args)
                    .with_headers(headers)
                    .with_stream_ids(stream_ids),
            )
        });
    let cancel = (headers, name(true, 8)).prop_map(|(headers, id)| {
        let mut m = signalr_core::CancelInvocation::new(id);
        m.headers = headers;
        HubMessage::from(m)
    });
    let close = (prop::option::of(name(strict, 16)), any::<bool>())
        .prop_map(|(error, allow_reconnect)| HubMessage::from(Close::new(error, allow_reconnect)));
    let ack = any::<i64>().prop_map(|id| HubMessage::from(signalr_core::Ack::new(id)));
    let sequence = any::<i64>().prop_map(|id| HubMessage::from(Sequence::new(id)));

    prop_oneof![
        invocation,
        stream_item,
        completion,
        stream_invocation,
        cancel,
        Just(HubMessage::Ping),
        close,
        ack,
        sequence,
    ]
    .boxed()
}

/// A message for `encoding`'s own protocol: its rules, its value encoding.
fn message_for(encoding: Encoding) -> BoxedStrategy<HubMessage> {
    hub_message(encoding, encoding)
}

/// What a message reads back as: an empty Invocation id becomes `None`.
fn normalised(mut message: HubMessage) -> HubMessage {
    if let HubMessage::Invocation(m) = &mut message {
        if m.invocation_id.as_deref() == Some("") {
            m.invocation_id = None;
        }
    }
    message
}

/// Every argument, item and result of a message.
fn values_of(message: &HubMessage) -> Vec<&RawValue> {
    match message {
        HubMessage::Invocation(m) => m.arguments.iter().collect(),
        HubMessage::StreamInvocation(m) => m.arguments.iter().collect(),
        HubMessage::StreamItem(m) => vec![&m.item],
        HubMessage::Completion(m) => match &m.result {
            CompletionResult::Value(v) => vec![v],
            _ => vec![],
        },
        _ => vec![],
    }
}

/// The message with every value replaced by JSON `null`: its shape without its values.
fn without_values(message: &HubMessage) -> HubMessage {
    let null = || RawValue::null(Encoding::Json);
    let mut message = message.clone();
    match &mut message {
        HubMessage::Invocation(m) => m.arguments.iter_mut().for_each(|v| *v = null()),
        HubMessage::StreamInvocation(m) => m.arguments.iter_mut().for_each(|v| *v = null()),
        HubMessage::StreamItem(m) => m.item = null(),
        HubMessage::Completion(m) => {
            if let CompletionResult::Value(v) = &mut m.result {
                *v = null();
            }
        }
        _ => {}
    }
    message
}

/// Value equality with a tolerance for floats, which may lose an ulp through JSON text.
fn approx_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else {
                return false;
            };
            let diff = (x - y).abs();
            diff <= 1e-12 * x.abs().max(y.abs()) || diff <= 1e-300
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| approx_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && approx_eq(vx, vy))
        }
        _ => a == b,
    }
}

/// The framed bytes of `messages`, one after the other.
fn framed<P: HubProtocol>(protocol: &P, messages: &[HubMessage]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in messages {
        protocol
            .write_message(m, &mut out)
            .expect("generated messages are writable");
    }
    out.to_vec()
}

/// Every message in `bytes`, fed at once.
fn parse_all<P: HubProtocol>(protocol: P, bytes: &[u8]) -> Result<Vec<HubMessage>, ProtocolError> {
    let mut reader = MessageReader::new(protocol, None);
    reader.feed(bytes);
    let mut out = Vec::new();
    while let Some(m) = reader.next_message()? {
        out.push(m);
    }
    assert_eq!(
        reader.buffered(),
        0,
        "bytes left over after the last message"
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Splitting a stream into chunks
// ---------------------------------------------------------------------------------------

/// How to cut a byte stream into the pieces a transport delivers.
#[derive(Debug, Clone)]
enum Split {
    /// One byte per piece, with an empty piece first.
    Bytewise,
    /// Cut at these positions (duplicates make empty pieces).
    Cuts(Vec<Index>),
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        1 => Just(Split::Bytewise),
        4 => vec(any::<Index>(), 0..24).prop_map(Split::Cuts),
    ]
}

fn pieces(len: usize, split: &Split) -> Vec<Range<usize>> {
    match split {
        Split::Bytewise => std::iter::once(0..0)
            .chain((0..len).map(|i| i..i + 1))
            .collect(),
        Split::Cuts(cuts) => {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(len + 1)).collect();
            points.push(0);
            points.push(len);
            points.sort_unstable();
            points.windows(2).map(|w| w[0]..w[1]).collect()
        }
    }
}

/// Feeds one piece, by turns as a slice (copied in) and as `Bytes` (parsed in place when
/// nothing is buffered), so that both paths and their mix are covered.
fn feed_piece<P: HubProtocol>(reader: &mut MessageReader<P>, piece: &[u8], i: usize) {
    if i % 3 == 1 {
        reader.feed(piece);
    } else {
        reader.feed_bytes(bytes::Bytes::copy_from_slice(piece));
    }
}

/// Feeds `bytes` cut by `split`, draining after each piece.
fn parse_split<P: HubProtocol>(
    protocol: P,
    bytes: &[u8],
    split: &Split,
) -> Result<Vec<HubMessage>, ProtocolError> {
    let mut reader = MessageReader::new(protocol, None);
    let mut out = Vec::new();
    for (i, range) in pieces(bytes.len(), split).into_iter().enumerate() {
        feed_piece(&mut reader, &bytes[range], i);
        while let Some(m) = reader.next_message()? {
            out.push(m);
        }
    }
    assert_eq!(
        reader.buffered(),
        0,
        "bytes left over after the last message"
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------

/// Bytes that mean something to JSON, MessagePack, framing or SSE.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => any::<u8>(),
        1 => prop::sample::select(
            b"{}[]\",:0123456789-.eEtrufalsn\\ \x1e\r\n\x00\x7f\x80\xff\xc0\xc1\xc2\xc3\xc4\xc7\xca\xcb\xcf\xd3\xd4\xd9\xdb\xdc\xdd\xde\xdf\x90\x91\x95\x96\x80\x81\xa0\xa1".to_vec()
        ),
    ]
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
        2 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match *e {
            Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), b),
            Edit::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
            _ if bytes.is_empty() => {}
            Edit::Replace(i, b) => {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            Edit::Delete(i) => {
                bytes.remove(i.index(bytes.len()));
            }
        }
    }
    bytes
}

/// Arbitrary bytes, or a valid stream of `protocol` messages with a few edits.
fn garbage(valid: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..200),
        1 => vec(interesting_byte(), 0..200),
        3 => (valid, vec(edit(), 1..6)).prop_map(|(bytes, edits)| apply(bytes, &edits)),
    ]
}

fn valid_stream(encoding: Encoding) -> BoxedStrategy<Vec<u8>> {
    vec(message_for(encoding), 1..4)
        .prop_map(move |messages| match encoding {
            Encoding::MessagePack => framed(&MessagePackHubProtocol::new(), &messages),
            _ => framed(&JsonHubProtocol::new(), &messages),
        })
        .boxed()
}

/// Does everything an application may do with a received message; none of it may panic.
fn use_message(message: &HubMessage) {
    let _ = JsonHubProtocol::new().to_bytes(message);
    let _ = MessagePackHubProtocol::new().to_bytes(message);
    for value in values_of(message) {
        let _ = value.deserialize::<Value>();
        let _ = value.to_encoding(Encoding::Json);
        let _ = value.to_encoding(Encoding::MessagePack);
    }
}

fn read_garbage<P: HubProtocol>(protocol: P, limit: Option<usize>, bytes: &[u8], split: &Split) {
    let mut reader = MessageReader::new(protocol, limit);
    for (i, range) in pieces(bytes.len(), split).into_iter().enumerate() {
        feed_piece(&mut reader, &bytes[range], i);
        loop {
            match reader.next_message() {
                Ok(Some(message)) => use_message(&message),
                Ok(None) => break,
                // After an error the stream is not recoverable.
                Err(_) => return,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Handshake and negotiate
// ---------------------------------------------------------------------------------------

/// A negotiate response and what it reads back as.
fn negotiate_response() -> impl Strategy<Value = (NegotiateResponse, NegotiateResponse)> {
    let transport = (prop::option::of(text(12)), vec(text(8), 0..3))
        .prop_map(|(name, formats)| AvailableTransport::with_names(name, formats));
    let success = (
        any::<i32>(),
        non_empty_text(16),
        non_empty_text(16),
        prop::option::of(text(16)),
        prop::option::of(text(16)),
        vec(transport, 0..4),
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(String::new()))],
    )
        .prop_map(
            |(version, id, token, url, access_token, transports, stateful, error)| {
                let mut r = NegotiateResponse::new(version);
                r.connection_id = Some(id);
                r.connection_token = Some(token);
                r.url = url;
                r.access_token = access_token;
                r.available_transports = transports;
                r.use_stateful_reconnect = stateful;
                r.error = error;
                let mut expected = r.clone();
                let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
                expected.url = non_empty(expected.url);
                expected.access_token = non_empty(expected.access_token);
                expected.error = None;
                if version <= 0 {
                    expected.connection_token = None;
                }
                (r, expected)
            },
        );
    let refusal = (
        non_empty_text(24),
        any::<bool>(),
        any::<i32>(),
        prop::option::of(text(8)),
    )
        .prop_map(|(error, stateful, version, id)| {
            let mut r = NegotiateResponse::error(error.clone());
            r.use_stateful_reconnect = stateful;
            r.negotiate_version = version;
            r.connection_id = id;
            let mut expected = NegotiateResponse::error(error);
            expected.use_stateful_reconnect = stateful;
            (r, expected)
        });
    prop_oneof![3 => success, 1 => refusal]
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// 1. Every message written with the JSON protocol reads back as itself.
    #[test]
    fn json_round_trip(message in message_for(Encoding::Json)) {
        let protocol = JsonHubProtocol::new();
        let bytes = protocol.to_bytes(&message)?;
        let parsed = parse_all(protocol, &bytes)?;
        prop_assert_eq!(parsed, vec![normalised(message)]);
    }

    /// 1. Every message written with the MessagePack protocol reads back as itself.
    #[test]
    fn msgpack_round_trip(message in message_for(Encoding::MessagePack)) {
        let protocol = MessagePackHubProtocol::new();
        let bytes = protocol.to_bytes(&message)?;
        let parsed = parse_all(protocol, &bytes)?;
        prop_assert_eq!(parsed, vec![normalised(message)]);
    }

    /// 2. JSON values written with the MessagePack protocol keep their meaning.
    #[test]
    fn json_values_through_msgpack(message in hub_message(Encoding::MessagePack, Encoding::Json)) {
        let protocol = MessagePackHubProtocol::new();
        let bytes = protocol.to_bytes(&message)?;
        let parsed = parse_all(protocol, &bytes)?;
        prop_assert_eq!(parsed.len(), 1);
        check_same_values(&normalised(message), &parsed[0], Encoding::MessagePack)?;
    }

    /// 2. MessagePack values written with the JSON protocol keep their meaning.
    #[test]
    fn msgpack_values_through_json(message in hub_message(Encoding::Json, Encoding::MessagePack)) {
        let protocol = JsonHubProtocol::new();
        let bytes = protocol.to_bytes(&message)?;
        let parsed = parse_all(protocol, &bytes)?;
        prop_assert_eq!(parsed.len(), 1);
        check_same_values(&normalised(message), &parsed[0], Encoding::Json)?;
    }

    /// 3. A JSON stream parses the same however it is split.
    #[test]
    fn json_any_split(messages in vec(message_for(Encoding::Json), 0..6), split in split()) {
        let protocol = JsonHubProtocol::new();
        let bytes = framed(&protocol, &messages);
        let whole = parse_all(protocol, &bytes)?;
        prop_assert_eq!(&whole, &messages.into_iter().map(normalised).collect::<Vec<_>>());
        prop_assert_eq!(parse_split(protocol, &bytes, &split)?, whole);
    }

    /// 3. A MessagePack stream parses the same however it is split.
    #[test]
    fn msgpack_any_split(messages in vec(message_for(Encoding::MessagePack), 0..6), split in split()) {
        let protocol = MessagePackHubProtocol::new();
        let bytes = framed(&protocol, &messages);
        let whole = parse_all(protocol, &bytes)?;
        prop_assert_eq!(&whole, &messages.into_iter().map(normalised).collect::<Vec<_>>());
        prop_assert_eq!(parse_split(protocol, &bytes, &split)?, whole);
    }

    /// 4. JSON: messages within the limit parse; a first message over it fails early.
    #[test]
    fn json_size_limit(
        messages in vec(message_for(Encoding::Json), 1..4),
        slack in 0usize..8,
        under in any::<Index>(),
        split in split(),
    ) {
        check_size_limit(JsonHubProtocol::new(), &messages, slack, under, &split)?;
    }

    /// 4. MessagePack: messages within the limit parse; a first message over it fails early.
    #[test]
    fn msgpack_size_limit(
        messages in vec(message_for(Encoding::MessagePack), 1..4),
        slack in 0usize..8,
        under in any::<Index>(),
        split in split(),
    ) {
        check_size_limit(MessagePackHubProtocol::new(), &messages, slack, under, &split)?;
    }

    /// 5. Garbage never makes the JSON reader panic, nor does using what it returns.
    #[test]
    fn json_garbage(bytes in garbage(valid_stream(Encoding::Json)), limit in prop::option::of(1usize..300), split in split()) {
        read_garbage(JsonHubProtocol::new(), limit, &bytes, &split);
    }

    /// 5. Garbage never makes the MessagePack reader panic, nor does using what it returns.
    #[test]
    fn msgpack_garbage(bytes in garbage(valid_stream(Encoding::MessagePack)), limit in prop::option::of(1usize..300), split in split()) {
        read_garbage(MessagePackHubProtocol::new(), limit, &bytes, &split);
    }

    /// 5. Garbage never makes the handshake parsers panic.
    #[test]
    fn handshake_garbage(
        bytes in garbage(
            (text(12), any::<u32>(), prop::option::of(text(12)))
                .prop_map(|(p, v, e)| {
                    let mut out = HandshakeRequest::new(p, v).to_bytes().to_vec();
                    out.extend_from_slice(&e.map_or_else(HandshakeResponse::success, HandshakeResponse::error).to_bytes());
                    out
                })
                .boxed()
        ),
        limit in prop::option::of(1usize..100),
        split in split(),
    ) {
        let mut request = BytesMut::new();
        let mut response = BytesMut::new();
        let (mut request_done, mut response_done) = (false, false);
        for range in pieces(bytes.len(), &split) {
            request.extend_from_slice(&bytes[range.clone()]);
            response.extend_from_slice(&bytes[range]);
            while !request_done {
                match HandshakeRequest::parse(&mut request, limit) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => request_done = true,
                }
            }
            while !response_done {
                match HandshakeResponse::parse(&mut response, limit) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => response_done = true,
                }
            }
        }
    }

    /// 5. Garbage never makes the negotiate parser panic.
    #[test]
    fn negotiate_garbage(bytes in garbage(negotiate_response().prop_map(|(r, _)| r.to_bytes().to_vec()).boxed())) {
        let _ = NegotiateResponse::parse(&bytes);
    }

    /// 5. Garbage never makes the SSE decoder panic.
    #[test]
    fn sse_garbage(
        bytes in garbage(
            vec(vec(any::<u8>(), 0..20), 1..4)
                .prop_map(|payloads| {
                    let mut out = BytesMut::new();
                    for p in payloads {
                        write_sse_event(&p, &mut out);
                    }
                    out.to_vec()
                })
                .boxed()
        ),
        limit in prop::option::of(1usize..100),
        split in split(),
    ) {
        let mut sse = SseDecoder::new(limit);
        'feed: for range in pieces(bytes.len(), &split) {
            sse.feed(&bytes[range]);
            loop {
                match sse.next_event() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    /// 5. Garbage never makes the value constructors panic.
    #[test]
    fn value_garbage(bytes in garbage(valid_stream(Encoding::MessagePack))) {
        if let Ok(v) = RawValue::from_msgpack(bytes.clone()) {
            let _ = v.deserialize::<Value>();
            let _ = v.to_encoding(Encoding::Json);
        }
        if let Ok(v) = RawValue::from_json(bytes) {
            let _ = v.deserialize::<Value>();
            let _ = v.to_encoding(Encoding::MessagePack);
        }
    }

    /// 6. A handshake request reads back as itself, leaving what follows it in the buffer.
    #[test]
    fn handshake_request_round_trip(
        protocol in text(24),
        version in any::<u32>(),
        tail in vec(any::<u8>(), 0..16),
        split in split(),
    ) {
        let request = HandshakeRequest::new(protocol, version);
        let mut bytes = request.to_bytes().to_vec();
        let framed_len = bytes.len();
        bytes.extend_from_slice(&tail);
        let mut buf = BytesMut::new();
        let mut parsed = None;
        for range in pieces(bytes.len(), &split) {
            buf.extend_from_slice(&bytes[range.clone()]);
            if parsed.is_none() {
                parsed = HandshakeRequest::parse(&mut buf, Some(framed_len))?;
                if parsed.is_none() {
                    // No separator yet: nothing may have been taken.
                    prop_assert!(range.end < framed_len);
                }
            }
        }
        prop_assert_eq!(parsed, Some(request));
        prop_assert_eq!(&buf[..], &tail[..]);
    }

    /// 6. A handshake response reads back as itself (an empty error is success).
    #[test]
    fn handshake_response_round_trip(error in prop::option::of(text(24)), tail in vec(any::<u8>(), 0..16)) {
        let response = error.clone().map_or_else(HandshakeResponse::success, HandshakeResponse::error);
        let mut buf = BytesMut::from(&response.to_bytes()[..]);
        buf.extend_from_slice(&tail);
        let parsed = HandshakeResponse::parse(&mut buf, None)?.expect("complete");
        prop_assert_eq!(parsed.error, error.filter(|e| !e.is_empty()));
        prop_assert_eq!(&buf[..], &tail[..]);
    }

    /// 6. A negotiate response reads back as itself, after the documented normalisation.
    #[test]
    fn negotiate_round_trip((response, expected) in negotiate_response()) {
        let bytes = response.to_bytes();
        prop_assert!(serde_json::from_slice::<Value>(&bytes).is_ok(), "not JSON: {:?}", bytes);
        prop_assert_eq!(NegotiateResponse::parse(&bytes)?, expected);
    }

    /// 7. SSE events carry any payload without `\r` through any split.
    #[test]
    fn sse_round_trip(
        payloads in vec(
            vec(prop_oneof![3 => any::<u8>(), 1 => prop::sample::select(b"\n:data \x1e".to_vec())], 1..40)
                .prop_map(|p| p.into_iter().map(|b| if b == b'\r' { b'\n' } else { b }).collect::<Vec<u8>>()),
            0..5,
        ),
        comments in vec(any::<bool>(), 5),
        split in split(),
    ) {
        let mut bytes = BytesMut::new();
        for (payload, comment) in payloads.iter().zip(comments.iter().chain(std::iter::repeat(&false))) {
            if *comment {
                // A keep-alive comment and an empty event, neither of which is an event.
                bytes.extend_from_slice(b":\r\n");
                write_sse_event(b"", &mut bytes);
            }
            write_sse_event(payload, &mut bytes);
        }
        let mut sse = SseDecoder::new(None);
        let mut events = Vec::new();
        for range in pieces(bytes.len(), &split) {
            sse.feed(&bytes[range]);
            while let Some(event) = sse.next_event()? {
                events.push(event.to_vec());
            }
        }
        prop_assert_eq!(events, payloads);
    }
}

/// The two messages are the same apart from their values' encoding, and the values mean the
/// same (floats within a tolerance).
fn check_same_values(
    original: &HubMessage,
    parsed: &HubMessage,
    encoding: Encoding,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(without_values(original), without_values(parsed));
    let (before, after) = (values_of(original), values_of(parsed));
    prop_assert_eq!(before.len(), after.len());
    for (b, a) in before.into_iter().zip(after) {
        prop_assert_eq!(a.encoding(), encoding);
        let b: Value = b
            .deserialize()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let a: Value = a
            .deserialize()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(approx_eq(&b, &a), "{} != {}", b, a);
    }
    Ok(())
}

fn check_size_limit<P: HubProtocol + Copy>(
    protocol: P,
    messages: &[HubMessage],
    slack: usize,
    under: Index,
    split: &Split,
) -> Result<(), TestCaseError> {
    let sizes: Vec<usize> = messages
        .iter()
        .map(|m| protocol.to_bytes(m).map(|b| b.len()))
        .collect::<Result<_, _>>()?;
    let bytes = framed(&protocol, messages);
    let expected: Vec<HubMessage> = messages.iter().cloned().map(normalised).collect();

    // Every message fits: the stream parses fully, even at exactly the largest size.
    let limit = sizes.iter().copied().max().unwrap_or(0) + slack;
    let mut reader = MessageReader::new(protocol, Some(limit));
    let mut parsed = Vec::new();
    for range in pieces(bytes.len(), split) {
        reader.feed(&bytes[range]);
        while let Some(m) = reader.next_message()? {
            parsed.push(m);
        }
    }
    prop_assert_eq!(parsed, expected);
    prop_assert_eq!(reader.buffered(), 0);

    // The first message is over the limit: an error, decided by the piece that took the
    // buffer to the limit or earlier.
    prop_assert!(sizes[0] >= 2, "every framed message has at least two bytes");
    let limit = 1 + under.index(sizes[0] - 1);
    let mut reader = MessageReader::new(protocol, Some(limit));
    for range in pieces(bytes.len(), split) {
        let piece = range.len();
        reader.feed(&bytes[range]);
        match reader.next_message() {
            Ok(None) => {}
            Ok(Some(m)) => prop_assert!(false, "parsed {:?} despite the limit {}", m, limit),
            Err(e) => {
                prop_assert_eq!(e, ProtocolError::MessageTooLarge { limit });
                prop_assert!(
                    reader.buffered() < limit + piece,
                    "decided with {} bytes buffered, limit {}, last piece {}",
                    reader.buffered(),
                    limit,
                    piece
                );
                return Ok(());
            }
        }
    }
    prop_assert!(
        false,
        "a first message of {} bytes passed the limit {}",
        sizes[0],
        limit
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Deep nesting
// ---------------------------------------------------------------------------------------

/// Set in the child process that [`deeply_nested_msgpack_values_never_overflow_the_stack`]
/// starts: a stack overflow aborts the whole process, so the check runs in a child and the
/// parent reports the outcome as an ordinary test failure.
const DEEP_NESTING_CHILD: &str = "SIGNALR_CORE_PROPERTIES_DEEP_NESTING_CHILD";

/// The stack of a Tokio worker thread and of `std::thread::spawn`: 2 MiB.
const WORKER_STACK: usize = 2 << 20;

/// 5 (continued). A received MessagePack value nested arbitrarily deep can be deserialized
/// and transcoded to JSON (Ok or Err) on a 2 MiB worker thread without a stack overflow,
/// which would abort the process. JSON values are safe: serde_json stops at depth 128.
#[test]
fn deeply_nested_msgpack_values_never_overflow_the_stack() {
    if std::env::var_os(DEEP_NESTING_CHILD).is_some() {
        std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn(use_deeply_nested_values)
            .expect("spawn")
            .join()
            .expect("no panic");
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "deeply_nested_msgpack_values_never_overflow_the_stack",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DEEP_NESTING_CHILD, "1")
        .output()
        .expect("run the test binary");
    assert!(
        output.status.success(),
        "using a deeply nested MessagePack argument crashed a {} KiB thread ({}):\n{}{}",
        WORKER_STACK >> 10,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn use_deeply_nested_values() {
    for depth in [
        0, 1, 64, 128, 256, 400, 500, 600, 800, 1000, 1023, 1024, 1025, 4096, 100_000,
    ] {
        // `[[[...nil...]]]` and `{"k":{"k":...nil...}}`.
        let mut arrays = vec![0x91u8; depth];
        arrays.push(0xc0);
        let mut maps = b"\x81\xa1k".repeat(depth);
        maps.push(0xc0);
        for arg in [arrays, maps] {
            let arg = RawValue::from_msgpack(arg).expect("well-formed MessagePack");
            let message = HubMessage::from(Invocation::new("Deep", vec![arg]));
            let protocol = MessagePackHubProtocol::new();
            let bytes = protocol.to_bytes(&message).expect("copied verbatim");
            let parsed = parse_all(protocol, &bytes).expect("the frame is well-formed");
            println!("depth {depth}");
            use_message(&parsed[0]);
        }
    }
}
