//! The JSON hub protocol's message layouts.

use std::cell::Cell;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue as Json;

use crate::error::ProtocolError;
use crate::framing::RECORD_SEPARATOR;
use crate::message::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, Headers, HubMessage, Invocation,
    Sequence, StreamInvocation, StreamItem,
};
use crate::value::{Encoding, RawValue};

/// Carries a [`ProtocolError`] out through serde_json, whose error type cannot hold one.
///
/// A visitor that finds a protocol error stores it here and returns a serde error to stop
/// the parse; the caller then reports the stored error, or "Error reading JSON." when none
/// was stored (the bytes themselves are malformed).
#[derive(Default)]
struct Failure(Cell<Option<ProtocolError>>);

impl Failure {
    fn raise<E: de::Error>(&self, err: ProtocolError) -> E {
        self.0.set(Some(err));
        E::custom("protocol error")
    }

    fn check<T, E: de::Error>(&self, result: Result<T, ProtocolError>) -> Result<T, E> {
        result.map_err(|err| self.raise(err))
    }

    fn take(&self) -> ProtocolError {
        self.0.take().unwrap_or(ProtocolError::InvalidJson)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Object,
    Array,
}

/// Requires a value to be an object or an array, judged at its first token as
/// System.Text.Json's forward-only reader does: the wrong kind is reported before anything
/// after that token is read. `inner` reads the value when it has the right kind.
struct Expect<'f, V> {
    kind: Kind,
    inner: V,
    failure: &'f Failure,
    /// The error for the wrong kind, given System.Text.Json's name for the token found.
    mismatch: fn(&'static str) -> ProtocolError,
}

impl<V> Expect<'_, V> {
    fn fail<T, E: de::Error>(self, token: &'static str) -> Result<T, E> {
        Err(self.failure.raise((self.mismatch)(token)))
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Expect<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Object => "a JSON object",
            Kind::Array => "a JSON array",
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        match self.kind {
            Kind::Object => self.inner.visit_map(map),
            Kind::Array => self.fail("Object"),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        match self.kind {
            Kind::Array => self.inner.visit_seq(seq),
            Kind::Object => self.fail("Array"),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.fail("Null")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.fail(if v { "True" } else { "False" })
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.fail("Number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.fail("Number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.fail("Number")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        self.fail("String")
    }
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Expect<'_, V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn not_an_object(token: &'static str) -> ProtocolError {
    ProtocolError::UnexpectedJsonToken {
        token,
        expected: "Object",
    }
}

/// Reads the first JSON value in `bytes`, which must be an object, with `visitor`. What
/// follows that value is ignored, as ASP.NET Core's reader stops at the end of the object.
fn read_object<'de, V: Visitor<'de>>(
    bytes: &'de [u8],
    failure: &Failure,
    visitor: V,
) -> Result<V::Value, ProtocolError> {
    let expect = Expect {
        kind: Kind::Object,
        inner: visitor,
        failure,
        mismatch: not_an_object,
    };
    // Read from bytes, serde_json checks each string it meets for UTF-8; read from text, it
    // has nothing to check. One check of the whole frame is cheaper than one per string. A
    // frame that fails it (invalid UTF-8 may sit after the object, where it is ignored) is
    // read from bytes, as before, for the same errors.
    let result = match std::str::from_utf8(bytes) {
        Ok(text) => expect.deserialize(&mut serde_json::Deserializer::from_str(text)),
        Err(_) => expect.deserialize(&mut serde_json::Deserializer::from_slice(bytes)),
    };
    result.map_err(|_| failure.take())
}

/// Calls `on_property` with each property of the first JSON value in `bytes`, in document
/// order and with duplicates, as soon as that property's value has been read: an error it
/// returns comes before any syntax error further on, as with ASP.NET Core's forward-only
/// reader. The value must be an object; what follows it is ignored.
pub(crate) fn for_each_property<'de>(
    bytes: &'de [u8],
    on_property: impl FnMut(&str, &'de Json) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    struct Walk<'f, F> {
        on_property: F,
        failure: &'f Failure,
    }
    impl<'de, F: FnMut(&str, &'de Json) -> Result<(), ProtocolError>> Visitor<'de> for Walk<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                let value: &'de Json = map.next_value()?;
                self.failure.check((self.on_property)(&key, value))?;
            }
            Ok(())
        }
    }
    let failure = Failure::default();
    read_object(
        bytes,
        &failure,
        Walk {
            on_property,
            failure: &failure,
        },
    )
}

/// System.Text.Json's name for the first token of a well-formed JSON value.
pub(crate) fn token_name(raw: &Json) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "Object",
        Some(b'[') => "Array",
        Some(b'"') => "String",
        Some(b't') => "True",
        Some(b'f') => "False",
        Some(b'n') => "Null",
        _ => "Number",
    }
}

/// A string, boolean or null, read at its first token: a number or a container where one of
/// these is required is reported (with `mismatch`) before anything inside it is read.
enum Scalar {
    Null,
    Bool(bool),
    Str(String),
}

struct ScalarSeed<'a> {
    failure: &'a Failure,
    mismatch: &'a dyn Fn() -> ProtocolError,
}

impl ScalarSeed<'_> {
    fn fail<T, E: de::Error>(&self) -> Result<T, E> {
        Err(self.failure.raise((self.mismatch)()))
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_> {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a boolean or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar, E> {
        self.fail()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar, E> {
        self.fail()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
        self.fail()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Scalar, A::Error> {
        self.fail()
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Scalar, A::Error> {
        self.fail()
    }
}

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_> {
    type Value = Scalar;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Scalar, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The next property value as a string; null reads as absent.
fn next_string<'de, A: MapAccess<'de>>(
    map: &mut A,
    failure: &Failure,
    property: &'static str,
) -> Result<Option<String>, A::Error> {
    let mismatch = || ProtocolError::UnexpectedType {
        property,
        expected: "String",
    };
    match map.next_value_seed(ScalarSeed {
        failure,
        mismatch: &mismatch,
    })? {
        Scalar::Str(s) => Ok(Some(s)),
        Scalar::Null => Ok(None),
        Scalar::Bool(_) => Err(failure.raise(mismatch())),
    }
}

/// The next property value as a boolean.
fn next_bool<'de, A: MapAccess<'de>>(
    map: &mut A,
    failure: &Failure,
    property: &'static str,
) -> Result<bool, A::Error> {
    let mismatch = || ProtocolError::UnexpectedType {
        property,
        expected: "Boolean",
    };
    match map.next_value_seed(ScalarSeed {
        failure,
        mismatch: &mismatch,
    })? {
        Scalar::Bool(b) => Ok(b),
        Scalar::Null | Scalar::Str(_) => Err(failure.raise(mismatch())),
    }
}

/// The next property value as an integer. Numbers are checked on the raw value (so that
/// serde_json's `arbitrary_precision` feature, which changes how numbers are visited, makes
/// no difference): a container where a number is required is reported once it has been
/// read whole, so a syntax error inside it comes first.
fn next_number<'de, A: MapAccess<'de>>(
    map: &mut A,
    failure: &Failure,
    property: &'static str,
) -> Result<i64, A::Error> {
    let raw: &Json = map.next_value()?;
    failure.check(
        serde_json::from_str(raw.get()).map_err(|_| ProtocolError::UnexpectedType {
            property,
            expected: "Number",
        }),
    )
}

/// `headers`: an object whose values are strings.
struct HeadersVisitor<'f> {
    failure: &'f Failure,
}

impl<'de> Visitor<'de> for HeadersVisitor<'_> {
    type Value = Headers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
        let mut headers = Headers::new();
        while let Some(name) = map.next_key::<String>()? {
            let mismatch = || ProtocolError::InvalidHeaderValue(name.clone());
            match map.next_value_seed(ScalarSeed {
                failure: self.failure,
                mismatch: &mismatch,
            })? {
                Scalar::Str(value) => headers.insert(name, value),
                Scalar::Null | Scalar::Bool(_) => return Err(self.failure.raise(mismatch())),
            }
        }
        Ok(headers)
    }
}

/// `arguments`: an array of raw values, each a slice of the frame.
struct ArgumentsVisitor<'b> {
    frame: &'b Bytes,
}

impl<'de> Visitor<'de> for ArgumentsVisitor<'_> {
    type Value = Vec<RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de Json>()? {
            items.push(value(self.frame, item));
        }
        Ok(items)
    }
}

/// `streamIds`: an array of strings.
struct StreamIdsVisitor<'f> {
    failure: &'f Failure,
}

impl<'de> Visitor<'de> for StreamIdsVisitor<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mismatch = || ProtocolError::UnexpectedType {
            property: "streamIds",
            expected: "Array",
        };
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element_seed(ScalarSeed {
            failure: self.failure,
            mismatch: &mismatch,
        })? {
            match id {
                Scalar::Str(id) => ids.push(id),
                Scalar::Null => return Err(self.failure.raise(ProtocolError::NullStreamId)),
                Scalar::Bool(_) => return Err(self.failure.raise(mismatch())),
            }
        }
        Ok(ids)
    }
}

/// The properties of a JSON hub message. Each is checked as soon as it is read, whatever
/// the message type, in document order, as ASP.NET Core does: a property of the wrong type
/// is reported before a later syntax error and before any missing property.
#[derive(Default)]
struct Fields<'a> {
    ty: Option<i64>,
    headers: Option<Headers>,
    invocation_id: Option<String>,
    target: Option<String>,
    arguments: Option<Vec<RawValue>>,
    stream_ids: Option<Vec<String>>,
    item: Option<&'a Json>,
    result: Option<&'a Json>,
    error: Option<String>,
    allow_reconnect: Option<bool>,
    sequence_id: Option<i64>,
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

struct FieldsVisitor<'f> {
    failure: &'f Failure,
    frame: &'f Bytes,
}

impl<'de> Visitor<'de> for FieldsVisitor<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let failure = self.failure;
        let mut f = Fields::default();
        // Duplicate properties: each is checked, the last one wins, as with ASP.NET Core.
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Type => f.ty = Some(next_number(&mut map, failure, "type")?),
                Field::Headers => {
                    f.headers = Some(map.next_value_seed(Expect {
                        kind: Kind::Object,
                        inner: HeadersVisitor { failure },
                        failure,
                        // System.Text.Json's `JsonTokenType.StartObject`, as upstream
                        // formats it.
                        mismatch: |_| ProtocolError::UnexpectedType {
                            property: "headers",
                            expected: "StartObject",
                        },
                    })?);
                }
                Field::InvocationId => {
                    f.invocation_id = next_string(&mut map, failure, "invocationId")?;
                }
                Field::Target => f.target = next_string(&mut map, failure, "target")?,
                Field::Arguments => {
                    f.arguments = Some(map.next_value_seed(Expect {
                        kind: Kind::Array,
                        inner: ArgumentsVisitor { frame: self.frame },
                        failure,
                        mismatch: |_| ProtocolError::UnexpectedType {
                            property: "arguments",
                            expected: "Array",
                        },
                    })?);
                }
                Field::StreamIds => {
                    f.stream_ids = Some(map.next_value_seed(Expect {
                        kind: Kind::Array,
                        inner: StreamIdsVisitor { failure },
                        failure,
                        mismatch: |_| ProtocolError::UnexpectedType {
                            property: "streamIds",
                            expected: "Array",
                        },
                    })?);
                }
                Field::Item => f.item = Some(map.next_value()?),
                Field::Result => f.result = Some(map.next_value()?),
                Field::Error => f.error = next_string(&mut map, failure, "error")?,
                Field::AllowReconnect => {
                    f.allow_reconnect = Some(next_bool(&mut map, failure, "allowReconnect")?);
                }
                Field::SequenceId => {
                    f.sequence_id = Some(next_number(&mut map, failure, "sequenceId")?);
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }
}

fn value(frame: &Bytes, raw: &Json) -> RawValue {
    RawValue::new_unchecked(Encoding::Json, frame.slice_ref(raw.get().as_bytes()))
}

fn arguments(raw: Option<Vec<RawValue>>) -> Result<Vec<RawValue>, ProtocolError> {
    raw.ok_or(ProtocolError::MissingProperty("arguments"))
}

/// A property that must be present and non-empty, as ASP.NET Core requires of targets and
/// invocation ids.
fn required(value: Option<String>, property: &'static str) -> Result<String, ProtocolError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(ProtocolError::MissingProperty(property))
}

/// Parses one JSON hub message (without its `0x1E`).
///
/// Only the first JSON value of the frame counts: whatever follows it is ignored, as
/// ASP.NET Core's reader stops at the end of the first object.
pub(crate) fn parse(frame: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let failure = Failure::default();
    let f = read_object(
        frame,
        &failure,
        FieldsVisitor {
            failure: &failure,
            frame,
        },
    )?;

    let ty = f.ty.ok_or(ProtocolError::MissingProperty("type"))?;
    let headers = f.headers.unwrap_or_default();
    let message = match ty {
        1 => {
            let target = required(f.target, "target")?;
            let arguments = arguments(f.arguments)?;
            HubMessage::Invocation(Invocation {
                headers,
                invocation_id: f.invocation_id.filter(|id| !id.is_empty()),
                target,
                arguments,
                stream_ids: f.stream_ids.unwrap_or_default(),
            })
        }
        2 => {
            let invocation_id = required(f.invocation_id, "invocationId")?;
            let item = f.item.ok_or(ProtocolError::MissingProperty("item"))?;
            HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item: value(frame, item),
            })
        }
        3 => {
            let invocation_id = required(f.invocation_id, "invocationId")?;
            let result = match (f.error, f.result) {
                (Some(_), Some(_)) => return Err(ProtocolError::ErrorAndResult),
                (Some(error), None) => CompletionResult::Error(error),
                (None, Some(result)) => CompletionResult::Value(value(frame, result)),
                (None, None) => CompletionResult::Void,
            };
            HubMessage::Completion(Completion {
                headers,
                invocation_id,
                result,
            })
        }
        4 => {
            let invocation_id = required(f.invocation_id, "invocationId")?;
            let target = required(f.target, "target")?;
            let arguments = arguments(f.arguments)?;
            HubMessage::StreamInvocation(StreamInvocation {
                headers,
                invocation_id,
                target,
                arguments,
                stream_ids: f.stream_ids.unwrap_or_default(),
            })
        }
        5 => HubMessage::CancelInvocation(CancelInvocation {
            headers,
            invocation_id: required(f.invocation_id, "invocationId")?,
        }),
        6 => HubMessage::Ping,
        7 => HubMessage::Close(Close {
            error: f.error,
            allow_reconnect: f.allow_reconnect.unwrap_or(false),
        }),
        8 | 9 => {
            let sequence_id = f
                .sequence_id
                .ok_or(ProtocolError::MissingProperty("sequenceId"))?;
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
