//! The JSON hub protocol's message layouts.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue as Json;

use crate::error::ProtocolError;
use crate::framing::RECORD_SEPARATOR;
use crate::message::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, Headers, HubMessage, Invocation,
    Sequence, StreamInvocation, StreamItem,
};
use crate::value::{Encoding, RawValue};

/// The properties of a JSON hub message, each kept as raw JSON until its type is known.
#[derive(Default)]
struct Fields<'a> {
    ty: Option<&'a Json>,
    headers: Option<&'a Json>,
    invocation_id: Option<&'a Json>,
    target: Option<&'a Json>,
    arguments: Option<&'a Json>,
    stream_ids: Option<&'a Json>,
    item: Option<&'a Json>,
    result: Option<&'a Json>,
    error: Option<&'a Json>,
    allow_reconnect: Option<&'a Json>,
    sequence_id: Option<&'a Json>,
}

enum Field {
    Type,
    Headers,
    InvocationId,
    Target,
    Arguments,
    StreamIds,
    Item,
    Result,
    Error,
    AllowReconnect,
    SequenceId,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a property name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "type" => Field::Type,
                    "headers" => Field::Headers,
                    "invocationId" => Field::InvocationId,
                    "target" => Field::Target,
                    "arguments" => Field::Arguments,
                    "streamIds" => Field::StreamIds,
                    "item" => Field::Item,
                    "result" => Field::Result,
                    "error" => Field::Error,
                    "allowReconnect" => Field::AllowReconnect,
                    "sequenceId" => Field::SequenceId,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut f = Fields::default();
                // Duplicate properties: the last one wins, as with System.Text.Json's reader.
                while let Some(key) = map.next_key::<Field>()? {
                    let slot = match key {
                        Field::Type => &mut f.ty,
                        Field::Headers => &mut f.headers,
                        Field::InvocationId => &mut f.invocation_id,
                        Field::Target => &mut f.target,
                        Field::Arguments => &mut f.arguments,
                        Field::StreamIds => &mut f.stream_ids,
                        Field::Item => &mut f.item,
                        Field::Result => &mut f.result,
                        Field::Error => &mut f.error,
                        Field::AllowReconnect => &mut f.allow_reconnect,
                        Field::SequenceId => &mut f.sequence_id,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(f)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// The properties of the first JSON object in `bytes`, in order and with duplicates, as raw
/// JSON. Anything after that object is ignored.
pub(crate) fn object_pairs(bytes: &[u8]) -> Result<Vec<(String, &Json)>, serde_json::Error> {
    struct PairsVisitor;
    impl<'de> Visitor<'de> for PairsVisitor {
        type Value = Vec<(String, &'de Json)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                out.push((key, map.next_value()?));
            }
            Ok(out)
        }
    }
    serde_json::Deserializer::from_slice(bytes).deserialize_map(PairsVisitor)
}

fn first_byte(raw: &Json) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b' ')
}

fn number(raw: &Json, property: &'static str) -> Result<i64, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|_| ProtocolError::UnexpectedType {
        property,
        expected: "Number",
    })
}

fn optional_string(
    raw: Option<&Json>,
    property: &'static str,
) -> Result<Option<String>, ProtocolError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| ProtocolError::UnexpectedType {
            property,
            expected: "String",
        }),
    }
}

fn required_string(raw: Option<&Json>, property: &'static str) -> Result<String, ProtocolError> {
    optional_string(raw, property)?.ok_or(ProtocolError::MissingProperty(property))
}

fn headers(raw: Option<&Json>) -> Result<Headers, ProtocolError> {
    let Some(raw) = raw else {
        return Ok(Headers::new());
    };
    let parsed = object_pairs(raw.get().as_bytes()).map_err(|_| ProtocolError::UnexpectedType {
        property: "headers",
        expected: "Object",
    })?;
    let mut headers = Headers::new();
    for (name, value) in parsed {
        match serde_json::from_str::<String>(value.get()) {
            Ok(value) => headers.insert(name, value),
            Err(_) => return Err(ProtocolError::InvalidHeaderValue(name)),
        }
    }
    Ok(headers)
}

fn value(frame: &Bytes, raw: &Json) -> RawValue {
    RawValue::new_unchecked(Encoding::Json, frame.slice_ref(raw.get().as_bytes()))
}

fn arguments(frame: &Bytes, raw: Option<&Json>) -> Result<Vec<RawValue>, ProtocolError> {
    let raw = raw.ok_or(ProtocolError::MissingProperty("arguments"))?;
    let items: Vec<&Json> =
        serde_json::from_str(raw.get()).map_err(|_| ProtocolError::UnexpectedType {
            property: "arguments",
            expected: "Array",
        })?;
    Ok(items.into_iter().map(|item| value(frame, item)).collect())
}

fn stream_ids(raw: Option<&Json>) -> Result<Vec<String>, ProtocolError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let ids: Vec<Option<String>> =
        serde_json::from_str(raw.get()).map_err(|_| ProtocolError::UnexpectedType {
            property: "streamIds",
            expected: "Array",
        })?;
    ids.into_iter()
        .map(|id| id.ok_or(ProtocolError::NullStreamId))
        .collect()
}

/// Parses one JSON hub message (without its `0x1E`).
pub(crate) fn parse(frame: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let mut de = serde_json::Deserializer::from_slice(frame);
    let f = Fields::deserialize(&mut de).map_err(|_| ProtocolError::InvalidJson)?;
    de.end().map_err(|_| ProtocolError::InvalidJson)?;

    let ty = number(f.ty.ok_or(ProtocolError::MissingProperty("type"))?, "type")?;
    let message = match ty {
        1 => {
            let target = required_string(f.target, "target")?;
            let arguments = arguments(frame, f.arguments)?;
            let invocation_id =
                optional_string(f.invocation_id, "invocationId")?.filter(|id| !id.is_empty());
            HubMessage::Invocation(Invocation {
                headers: headers(f.headers)?,
                invocation_id,
                target,
                arguments,
                stream_ids: stream_ids(f.stream_ids)?,
            })
        }
        2 => {
            let invocation_id = required_string(f.invocation_id, "invocationId")?;
            let item = f.item.ok_or(ProtocolError::MissingProperty("item"))?;
            HubMessage::StreamItem(StreamItem {
                headers: headers(f.headers)?,
                invocation_id,
                item: value(frame, item),
            })
        }
        3 => {
            let invocation_id = required_string(f.invocation_id, "invocationId")?;
            let error = optional_string(f.error, "error")?;
            let result = match (error, f.result) {
                (Some(_), Some(_)) => return Err(ProtocolError::ErrorAndResult),
                (Some(error), None) => CompletionResult::Error(error),
                (None, Some(result)) => CompletionResult::Value(value(frame, result)),
                (None, None) => CompletionResult::Void,
            };
            HubMessage::Completion(Completion {
                headers: headers(f.headers)?,
                invocation_id,
                result,
            })
        }
        4 => {
            let invocation_id = required_string(f.invocation_id, "invocationId")?;
            let target = required_string(f.target, "target")?;
            let arguments = arguments(frame, f.arguments)?;
            HubMessage::StreamInvocation(StreamInvocation {
                headers: headers(f.headers)?,
                invocation_id,
                target,
                arguments,
                stream_ids: stream_ids(f.stream_ids)?,
            })
        }
        5 => HubMessage::CancelInvocation(CancelInvocation {
            headers: headers(f.headers)?,
            invocation_id: required_string(f.invocation_id, "invocationId")?,
        }),
        6 => HubMessage::Ping,
        7 => {
            let error = optional_string(f.error, "error")?;
            let allow_reconnect = match f.allow_reconnect {
                None => false,
                Some(raw) => match first_byte(raw) {
                    b't' | b'f' => raw.get() == "true",
                    _ => {
                        return Err(ProtocolError::UnexpectedType {
                            property: "allowReconnect",
                            expected: "Boolean",
                        });
                    }
                },
            };
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }
        8 | 9 => {
            let raw = f
                .sequence_id
                .ok_or(ProtocolError::MissingProperty("sequenceId"))?;
            let sequence_id = number(raw, "sequenceId")?;
            if ty == 8 {
                HubMessage::Ack(Ack { sequence_id })
            } else {
                HubMessage::Sequence(Sequence { sequence_id })
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(message))
}

pub(crate) fn put_str(out: &mut BytesMut, s: &str) {
    // Writing a `str` to memory cannot fail: the only errors serde_json reports for strings
    // come from the writer, and `BytesMut` never fails.
    let _ = serde_json::to_writer(out.writer(), s);
}

fn put_headers(out: &mut BytesMut, headers: &Headers) {
    if headers.is_empty() {
        return;
    }
    out.put_slice(b",\"headers\":{");
    for (i, (k, v)) in headers.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        put_str(out, k);
        out.put_u8(b':');
        put_str(out, v);
    }
    out.put_u8(b'}');
}

fn put_value(out: &mut BytesMut, value: &RawValue) -> Result<(), ProtocolError> {
    value
        .write_as(Encoding::Json, out)
        .map_err(|e| ProtocolError::Transcode(e.message().to_owned()))
}

fn put_call(
    out: &mut BytesMut,
    invocation_id: Option<&str>,
    target: &str,
    arguments: &[RawValue],
    stream_ids: &[String],
) -> Result<(), ProtocolError> {
    if let Some(id) = invocation_id.filter(|id| !id.is_empty()) {
        out.put_slice(b",\"invocationId\":");
        put_str(out, id);
    }
    out.put_slice(b",\"target\":");
    put_str(out, target);
    out.put_slice(b",\"arguments\":[");
    for (i, arg) in arguments.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        put_value(out, arg)?;
    }
    out.put_u8(b']');
    if !stream_ids.is_empty() {
        out.put_slice(b",\"streamIds\":[");
        for (i, id) in stream_ids.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            put_str(out, id);
        }
        out.put_u8(b']');
    }
    Ok(())
}

/// Writes `message` as JSON followed by `0x1E`, in ASP.NET Core's property order.
pub(crate) fn write(message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
    let start = out.len();
    let result = write_inner(message, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_inner(message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
    out.put_slice(b"{\"type\":");
    out.put_slice(itoa_small(message.message_type()));
    match message {
        HubMessage::Invocation(m) => {
            put_headers(out, &m.headers);
            put_call(
                out,
                m.invocation_id.as_deref(),
                &m.target,
                &m.arguments,
                &m.stream_ids,
            )?;
        }
        HubMessage::StreamInvocation(m) => {
            put_headers(out, &m.headers);
            put_call(
                out,
                Some(&m.invocation_id),
                &m.target,
                &m.arguments,
                &m.stream_ids,
            )?;
        }
        HubMessage::StreamItem(m) => {
            put_headers(out, &m.headers);
            out.put_slice(b",\"invocationId\":");
            put_str(out, &m.invocation_id);
            out.put_slice(b",\"item\":");
            put_value(out, &m.item)?;
        }
        HubMessage::Completion(m) => {
            put_headers(out, &m.headers);
            out.put_slice(b",\"invocationId\":");
            put_str(out, &m.invocation_id);
            match &m.result {
                CompletionResult::Error(error) if !error.is_empty() => {
                    out.put_slice(b",\"error\":");
                    put_str(out, error);
                }
                CompletionResult::Value(result) => {
                    out.put_slice(b",\"result\":");
                    put_value(out, result)?;
                }
                CompletionResult::Error(_) | CompletionResult::Void => {}
            }
        }
        HubMessage::CancelInvocation(m) => {
            put_headers(out, &m.headers);
            out.put_slice(b",\"invocationId\":");
            put_str(out, &m.invocation_id);
        }
        HubMessage::Ping => {}
        HubMessage::Close(m) => {
            if let Some(error) = &m.error {
                out.put_slice(b",\"error\":");
                put_str(out, error);
            }
            if m.allow_reconnect {
                out.put_slice(b",\"allowReconnect\":true");
            }
        }
        HubMessage::Ack(Ack { sequence_id }) | HubMessage::Sequence(Sequence { sequence_id }) => {
            out.put_slice(b",\"sequenceId\":");
            out.put_slice(sequence_id.to_string().as_bytes());
        }
    }
    out.put_u8(b'}');
    out.put_u8(RECORD_SEPARATOR);
    Ok(())
}

fn itoa_small(n: u8) -> &'static [u8] {
    const DIGITS: [&[u8]; 10] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
    DIGITS.get(usize::from(n)).copied().unwrap_or(b"0")
}
