//! Shared helpers for the signalr-core fuzz targets.
//!
//! The stream targets (`json_messages`, `msgpack_messages`, `sse`) read a small header
//! before the payload, so that libFuzzer controls the size limit and where the stream is
//! cut into chunks:
//!
//! ```text
//! byte 0      size limit: 0 = none, n = n * 16 bytes (16 ..= 4080)
//! byte 1      k = (byte & 0x0f): the number of chunk lengths that follow
//! k bytes     the lengths of the first k chunks (0 = an empty feed); clamped to what is left
//! rest        the payload; whatever the k chunks did not take is the last chunk
//! ```
//!
//! So `00 00` followed by a valid frame is "no limit, one chunk".

use bytes::BytesMut;
use signalr_core::{
    Binary, CompletionResult, Encoding, HubMessage, HubProtocol, MessageReader, ProtocolError,
    RawValue, SseDecoder, Timestamp,
};

/// A stream target's input: the size limit, and the payload cut into chunks.
#[derive(Debug)]
pub struct StreamInput<'a> {
    /// The size limit for the reader or decoder.
    pub limit: Option<usize>,
    /// The whole payload.
    pub payload: &'a [u8],
    /// The payload cut into consecutive chunks; their concatenation is `payload`.
    pub chunks: Vec<&'a [u8]>,
}

impl<'a> StreamInput<'a> {
    /// Splits raw fuzzer input into header and chunks; `None` when the header is incomplete.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&limit, rest) = data.split_first()?;
        let (&count, rest) = rest.split_first()?;
        let count = usize::from(count & 0x0f);
        if rest.len() < count {
            return None;
        }
        let (lengths, payload) = rest.split_at(count);
        let limit = (limit != 0).then(|| usize::from(limit) * 16);
        let mut chunks = Vec::with_capacity(count + 1);
        let mut left = payload;
        for &len in lengths {
            let (chunk, tail) = left.split_at(usize::from(len).min(left.len()));
            chunks.push(chunk);
            left = tail;
        }
        chunks.push(left);
        Some(Self {
            limit,
            payload,
            chunks,
        })
    }
}

/// Reads messages until the reader needs more bytes or fails; after an error the stream is
/// dead, so nothing more is read. Returns whether it stopped on an error.
fn drain<P: HubProtocol>(
    reader: &mut MessageReader<P>,
    out: &mut Vec<Result<HubMessage, ProtocolError>>,
) -> bool {
    loop {
        match reader.next_message() {
            Ok(Some(message)) => out.push(Ok(message)),
            Ok(None) => return false,
            Err(err) => {
                out.push(Err(err));
                return true;
            }
        }
    }
}

/// Every value a message carries (arguments, stream item, completion result).
pub fn values(message: &HubMessage) -> Vec<&RawValue> {
    match message {
        HubMessage::Invocation(m) => m.arguments.iter().collect(),
        HubMessage::StreamInvocation(m) => m.arguments.iter().collect(),
        HubMessage::StreamItem(m) => vec![&m.item],
        HubMessage::Completion(m) => match &m.result {
            CompletionResult::Value(v) => vec![v],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Deserializes and transcodes a value, ignoring errors but checking that a successful
/// transcode produces exactly one well-formed value in the target encoding.
pub fn exercise_value(value: &RawValue, other: Encoding) {
    let _ = value.deserialize::<serde_json::Value>();
    let _ = value.deserialize::<Binary>();
    let _ = value.deserialize::<Timestamp>();
    let _ = value.deserialize::<(i64, String, bool)>();
    if let Ok(converted) = value.to_encoding(other) {
        assert_eq!(converted.encoding(), other);
        let bytes = converted.as_bytes().to_vec();
        let valid = match other {
            Encoding::Json => RawValue::from_json(bytes).map(drop),
            Encoding::MessagePack => RawValue::from_msgpack(bytes).map(drop),
            _ => Ok(()),
        };
        assert!(
            valid.is_ok(),
            "to_encoding({other:?}) of {value:?} produced an invalid value {converted:?}: {valid:?}"
        );
        // And back again; the result need not be byte-identical, only not a panic.
        let _ = converted.to_encoding(value.encoding());
    }
}

/// What parsing a written message must give back.
#[derive(Debug, PartialEq)]
pub enum Expected {
    /// This message: the original, or the original minus a distinction the writer drops on
    /// purpose (as ASP.NET Core's writers drop it).
    Message(HubMessage),
    /// This error: a known finding, pinned so that the fuzzer can look past it (see the
    /// README's "Findings" section). Remove the case once the crate is fixed.
    Error(ProtocolError),
}

/// Maps a parsed message to what parsing it after a round trip through the writer must give.
pub type Normalize = fn(&HubMessage) -> Expected;

/// The fuzz body shared by `json_messages` and `msgpack_messages`.
///
/// 1. Reads the payload in the chunks the input describes and checks that the messages (and
///    the error that ends the stream, if any) are the same as when it arrives in one piece.
/// 2. For every message: writes it with the same protocol, parses the bytes back, and checks
///    that exactly one message comes back, equal to the normalized original, and that
///    writing that one again gives the same bytes.
/// 3. Deserializes and transcodes every value, and writes the message with `cross` (the other
///    protocol), ignoring errors.
pub fn fuzz_messages<P, Q>(protocol: P, cross: Q, data: &[u8], normalize: Normalize)
where
    P: HubProtocol + Copy,
    Q: HubProtocol + Copy,
{
    let Some(input) = StreamInput::parse(data) else {
        return;
    };

    let mut whole = Vec::new();
    let mut reader = MessageReader::new(protocol, input.limit);
    reader.feed(input.payload);
    drain(&mut reader, &mut whole);

    let mut chunked = Vec::new();
    let mut reader = MessageReader::new(protocol, input.limit);
    for chunk in &input.chunks {
        reader.feed(chunk);
        if drain(&mut reader, &mut chunked) {
            break;
        }
    }
    assert_eq!(whole, chunked, "chunking changed the result");

    for message in whole.iter().filter_map(|r| r.as_ref().ok()) {
        round_trip(protocol, message, normalize);
        for value in values(message) {
            exercise_value(value, cross.encoding());
        }
        if let Ok(bytes) = cross.to_bytes(message) {
            let mut reader = MessageReader::new(cross, None);
            reader.feed(&bytes);
            if let Ok(Some(crossed)) = reader.next_message() {
                let _ = protocol.to_bytes(&crossed);
            }
        }
    }
}

fn round_trip<P: HubProtocol + Copy>(protocol: P, message: &HubMessage, normalize: Normalize) {
    let bytes = protocol
        .to_bytes(message)
        .unwrap_or_else(|e| panic!("writing a parsed message failed: {e}\nmessage: {message:?}"));
    let mut reader = MessageReader::new(protocol, None);
    reader.feed(&bytes);
    let expected = normalize(message);
    let reparsed = match (reader.next_message(), expected) {
        (Ok(Some(reparsed)), Expected::Message(expected)) => {
            assert_eq!(
                reparsed, expected,
                "round trip changed the message\noriginal: {message:?}\nbytes: {bytes:02x?}"
            );
            reparsed
        }
        (Err(err), Expected::Error(expected)) if err == expected => return,
        (other, expected) => panic!(
            "re-parsing a written message gave {other:?}, expected {expected:?}\nmessage: {message:?}\nbytes: {bytes:02x?}"
        ),
    };
    assert_eq!(
        reader.buffered(),
        0,
        "the writer wrote more than one frame: {bytes:02x?}"
    );
    let again = protocol
        .to_bytes(&reparsed)
        .expect("writing a re-parsed message failed");
    assert_eq!(again, bytes, "writing is not a fixpoint");
}

/// Decodes SSE until the decoder needs more bytes or fails; returns whether it failed.
fn drain_sse(sse: &mut SseDecoder, out: &mut Vec<Result<bytes::Bytes, ProtocolError>>) -> bool {
    loop {
        match sse.next_event() {
            Ok(Some(event)) => out.push(Ok(event)),
            Ok(None) => return false,
            Err(err) => {
                out.push(Err(err));
                return true;
            }
        }
    }
}

/// The fuzz body of the `sse` target; see [`StreamInput`] for the input layout.
///
/// Chunking must not change the events, with one exception: the limit on a line that has
/// not ended yet is checked on whatever is buffered, so a long comment or `event:` line can
/// fail when it arrives in pieces and pass when it arrives whole. So: the events read in
/// chunks are a prefix of those read whole, and equal to them when the chunked read did not
/// fail. Every event's data, written with `write_sse_event` and decoded again, must come back
/// unchanged (an empty payload is written as a lone blank line, which is no event at all).
pub fn fuzz_sse(data: &[u8]) {
    let Some(input) = StreamInput::parse(data) else {
        return;
    };

    let mut whole = Vec::new();
    let mut sse = SseDecoder::new(input.limit);
    sse.feed(input.payload);
    drain_sse(&mut sse, &mut whole);
    if input.limit.is_none() {
        assert!(
            whole.iter().all(Result::is_ok),
            "no limit, so no error: {whole:?}"
        );
    }

    let mut chunked = Vec::new();
    let mut sse = SseDecoder::new(input.limit);
    let mut failed = false;
    for chunk in &input.chunks {
        sse.feed(chunk);
        if drain_sse(&mut sse, &mut chunked) {
            failed = true;
            break;
        }
    }
    if failed {
        let events = chunked.len() - 1;
        assert!(
            events <= whole.len() && chunked[..events] == whole[..events],
            "chunking changed the events before an error\nwhole: {whole:?}\nchunked: {chunked:?}"
        );
    } else {
        assert_eq!(whole, chunked, "chunking changed the events");
    }

    for event in whole.iter().filter_map(|r| r.as_ref().ok()) {
        let mut out = BytesMut::new();
        signalr_core::write_sse_event(event, &mut out);
        let mut sse = SseDecoder::new(None);
        sse.feed(&out);
        let decoded = sse.next_event().expect("no limit, so no error");
        if event.is_empty() {
            assert_eq!(decoded, None, "an empty payload is no event");
        } else {
            assert_eq!(
                decoded.as_deref(),
                Some(&event[..]),
                "SSE round trip changed the data"
            );
        }
        assert_eq!(sse.next_event(), Ok(None));
    }
}
