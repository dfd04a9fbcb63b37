//! ASP.NET Core's own SignalR protocol test vectors, run against this crate.
//!
//! JSON and MessagePack hub protocols, handshake, negotiate, binary and text framing, and
//! Server-Sent Events. The vectors that depend on ASP.NET Core's forward-only reading are
//! in the tests at the end, with the known differences (`known_difference_*`, and the
//! `*_is_left_to_the_caller` binding tests). Section numbers (§) follow the extracted vector
//! list; vectors marked [derived] are not upstream's but follow from its code; each
//! table row names the upstream test case. MessagePack vectors are kept in the base64 form
//! the upstream baselines use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use signalr_core::framing::{RECORD_SEPARATOR, next_frame, read_varint, write_varint};
use signalr_core::{
    Ack, AvailableTransport, Binary, CancelInvocation, Close, Completion, CompletionResult,
    Encoding, HandshakeRequest, HandshakeResponse, Headers, HubMessage, HubProtocol, Invocation,
    JsonHubProtocol, MessagePackHubProtocol, MessageReader, NegotiateResponse, ProtocolError,
    RawValue, Sequence, SseDecoder, StreamInvocation, StreamItem, Timestamp, TransferFormat,
    write_sse_event,
};

// ---------------------------------------------------------------------------------------------
// Helpers and shared fixtures (§0.3)
// ---------------------------------------------------------------------------------------------

fn j<T: Serialize + ?Sized>(value: &T) -> RawValue {
    RawValue::encode(Encoding::Json, value).unwrap()
}

fn m<T: Serialize + ?Sized>(value: &T) -> RawValue {
    RawValue::encode(Encoding::MessagePack, value).unwrap()
}

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// Upstream `Frame(json)`: the text followed by the record separator.
fn framed_json(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(RECORD_SEPARATOR);
    out
}

/// Upstream MessagePack baselines are unframed; the parse tests prepend the VarInt prefix.
fn framed_mp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(u32::try_from(body.len()).unwrap(), &mut out);
    out.extend_from_slice(body);
    out
}

/// Parses one framed message that must use up the whole input.
fn parse_one(protocol: &dyn HubProtocol, framed: &[u8]) -> Result<HubMessage, ProtocolError> {
    let mut reader = MessageReader::new(protocol, None);
    reader.feed(framed);
    let message = reader.next_message()?.expect("a complete message");
    assert_eq!(reader.buffered(), 0, "trailing bytes");
    Ok(message)
}

fn parse_json(text: &str) -> Result<HubMessage, ProtocolError> {
    parse_one(&JsonHubProtocol::new(), &framed_json(text))
}

fn parse_mp(body: &[u8]) -> Result<HubMessage, ProtocolError> {
    parse_one(&MessagePackHubProtocol::new(), &framed_mp(body))
}

fn json_error(text: &str) -> String {
    match parse_json(text) {
        Ok(message) => format!("parsed: {message:?}"),
        Err(err) => err.to_string(),
    }
}

fn mp_error(base64: &str) -> String {
    match parse_mp(&b64(base64)) {
        Ok(message) => format!("parsed: {message:?}"),
        Err(err) => err.to_string(),
    }
}

/// Write: exact framed text. Parse: the same message back.
fn json_both_ways(name: &str, message: &HubMessage, text: &str) {
    let written = JsonHubProtocol::new().to_bytes(message).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&framed_json(text)),
        "write {name}"
    );
    assert_eq!(&parse_json(text).unwrap(), message, "parse {name}");
}

/// Write: exact framed bytes. Parse: the same message back.
fn msgpack_both_ways(name: &str, message: &HubMessage, base64: &str) {
    let body = b64(base64);
    let written = MessagePackHubProtocol::new().to_bytes(message).unwrap();
    assert_eq!(
        written.as_ref(),
        framed_mp(&body).as_slice(),
        "write {name}"
    );
    assert_eq!(&parse_mp(&body).unwrap(), message, "parse {name}");
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn inv(id: Option<&str>, target: &str, args: Vec<RawValue>, stream_ids: &[&str]) -> HubMessage {
    let call = Invocation::new(target, args).with_stream_ids(strings(stream_ids));
    match id {
        Some(id) => call.with_invocation_id(id).into(),
        None => call.into(),
    }
}

fn sinv(id: &str, target: &str, args: Vec<RawValue>, stream_ids: &[&str]) -> HubMessage {
    StreamInvocation::new(id, target, args)
        .with_stream_ids(strings(stream_ids))
        .into()
}

fn item(id: &str, value: RawValue) -> HubMessage {
    StreamItem::new(id, value).into()
}

fn result(id: &str, value: RawValue) -> HubMessage {
    Completion::with_result(id, value).into()
}

fn error(id: &str, error: &str) -> HubMessage {
    Completion::with_error(id, error).into()
}

fn void(id: &str) -> HubMessage {
    Completion::void(id).into()
}

fn cancel(id: &str) -> HubMessage {
    CancelInvocation::new(id).into()
}

fn close(error: Option<&str>, allow_reconnect: bool) -> HubMessage {
    Close::new(error.map(str::to_owned), allow_reconnect).into()
}

/// `TestHeaders`: real CR/LF characters in a key and a value.
fn test_headers() -> Headers {
    [
        ("Foo", "Bar"),
        ("KeyWith\nNew\r\nLines", "Still Works"),
        ("ValueWithNewLines", "Also\nWorks\r\nFine"),
    ]
    .into_iter()
    .collect()
}

/// The message with `TestHeaders`.
fn hdr(mut message: HubMessage) -> HubMessage {
    let headers = test_headers();
    match &mut message {
        HubMessage::Invocation(x) => x.headers = headers,
        HubMessage::StreamInvocation(x) => x.headers = headers,
        HubMessage::StreamItem(x) => x.headers = headers,
        HubMessage::Completion(x) => x.headers = headers,
        HubMessage::CancelInvocation(x) => x.headers = headers,
        other => panic!("{other:?} has no headers"),
    }
    message
}

/// `CustomObject()` with its default values, field names and order as MessagePack-CSharp
/// writes them (a map keyed by the C# property names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CustomObject {
    string_prop: String,
    double_prop: f64,
    int_prop: i32,
    date_time_prop: Timestamp,
    null_prop: Option<String>,
    byte_arr_prop: Binary,
}

impl Default for CustomObject {
    #[allow(clippy::approx_constant, reason = "upstream's literal, not TAU")]
    fn default() -> Self {
        Self {
            string_prop: "SignalR!".into(),
            double_prop: 6.283_185_307_1,
            int_prop: 42,
            // 2017-04-11T00:00:00Z
            date_time_prop: Timestamp::from_unix(1_491_868_800, 0).unwrap(),
            null_prop: None,
            byte_arr_prop: Binary(vec![1, 2, 3]),
        }
    }
}

/// `CustomObject()` as System.Text.Json writes it under the vector's `useCamelCase` and
/// `ignoreNullValues` settings. Naming and null handling belong to the payload serializer,
/// which here is the caller's: this serializer shows a caller can produce each form.
struct JsonCustomObject {
    camel_case: bool,
    ignore_nulls: bool,
}

impl Serialize for JsonCustomObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = CustomObject::default();
        let name = |pascal: &str| {
            let mut name = pascal.to_owned();
            if self.camel_case {
                name[..1].make_ascii_lowercase();
            }
            name
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(&name("StringProp"), &o.string_prop)?;
        map.serialize_entry(&name("DoubleProp"), &o.double_prop)?;
        map.serialize_entry(&name("IntProp"), &o.int_prop)?;
        map.serialize_entry(&name("DateTimeProp"), &o.date_time_prop)?;
        if !self.ignore_nulls {
            map.serialize_entry(&name("NullProp"), &o.null_prop)?;
        }
        map.serialize_entry(&name("ByteArrProp"), &o.byte_arr_prop)?;
        map.end()
    }
}

/// JSON `CustomObject()` with `useCamelCase` and `ignoreNullValues`.
fn co(camel_case: bool, ignore_nulls: bool) -> RawValue {
    j(&JsonCustomObject {
        camel_case,
        ignore_nulls,
    })
}

/// MessagePack `CustomObject()`.
fn mco() -> RawValue {
    m(&CustomObject::default())
}

/// MessagePack `new[] { CustomObject(), CustomObject() }`.
fn mco2() -> RawValue {
    m(&[CustomObject::default(), CustomObject::default()])
}

/// `enum TestEnum { Zero = 0, One }`: MessagePack-CSharp writes enums by name.
#[derive(Serialize)]
enum TestEnum {
    One,
}

/// The invocation-type fields of an Invocation or StreamInvocation: type, id, target, args.
fn call_parts(message: &HubMessage) -> (u8, Option<&str>, &str, &[RawValue]) {
    match message {
        HubMessage::Invocation(i) => (1, i.invocation_id.as_deref(), &i.target, &i.arguments),
        HubMessage::StreamInvocation(s) => (4, Some(&s.invocation_id), &s.target, &s.arguments),
        other => panic!("not an invocation: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// §1 JsonHubProtocolTestsBase
// ---------------------------------------------------------------------------------------------

#[test]
fn json_protocol_test_data_both_ways() {
    // §1.1 ProtocolTestData (53 vectors). useCamelCase / ignoreNullValues only shape the
    // CustomObject payloads; `co(camel_case, ignore_nulls)` produces each form.
    let cases: Vec<(&str, HubMessage, &str)> = vec![
        (
            "InvocationMessage_HasInvocationId",
            inv(Some("123"), "Target", vec![j(&1), j("Foo")], &[]),
            r#"{"type":1,"invocationId":"123","target":"Target","arguments":[1,"Foo"]}"#,
        ),
        (
            "InvocationMessage_HasBoolArgument",
            inv(None, "Target", vec![j(&true)], &[]),
            r#"{"type":1,"target":"Target","arguments":[true]}"#,
        ),
        (
            "InvocationMessage_HasNullArgument",
            inv(None, "Target", vec![j(&())], &[]),
            r#"{"type":1,"target":"Target","arguments":[null]}"#,
        ),
        (
            "InvocationMessage_HasStreamArgument",
            inv(None, "Target", vec![], &["__test_id__"]),
            r#"{"type":1,"target":"Target","arguments":[],"streamIds":["__test_id__"]}"#,
        ),
        (
            "InvocationMessage_HasStreamAndNormalArgument",
            inv(None, "Target", vec![j(&42)], &["__test_id__"]),
            r#"{"type":1,"target":"Target","arguments":[42],"streamIds":["__test_id__"]}"#,
        ),
        (
            "InvocationMessage_HasMultipleStreams",
            inv(None, "Target", vec![], &["__test_id__", "__test_id2__"]),
            r#"{"type":1,"target":"Target","arguments":[],"streamIds":["__test_id__","__test_id2__"]}"#,
        ),
        // A .NET DateTimeOffset keeps its +12:34 offset; `Timestamp` is an instant written in
        // UTC, so a caller that must keep the offset sends the text (instant checked below).
        (
            "InvocationMessage_DateTimeOffsetArgument",
            inv(None, "Method", vec![j("2016-05-10T13:51:20+12:34")], &[]),
            r#"{"type":1,"target":"Method","arguments":["2016-05-10T13:51:20+12:34"]}"#,
        ),
        (
            "InvocationMessage_StringIsoDateArgument",
            inv(None, "Method", vec![j("2016-05-10T13:51:20+12:34")], &[]),
            r#"{"type":1,"target":"Method","arguments":["2016-05-10T13:51:20+12:34"]}"#,
        ),
        (
            "InvocationMessage_HasNonAsciiArgument",
            inv(None, "Method", vec![j("מחרוזת כלשהי")], &[]),
            r#"{"type":1,"target":"Method","arguments":["מחרוזת כלשהי"]}"#,
        ),
        (
            "InvocationMessage_HasCustomArgumentWithNoCamelCase",
            inv(None, "Target", vec![co(false, true)], &[]),
            r#"{"type":1,"target":"Target","arguments":[{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","ByteArrProp":"AQID"}]}"#,
        ),
        (
            "InvocationMessage_HasCustomArgumentWithNullValueIgnore",
            inv(None, "Target", vec![co(true, true)], &[]),
            r#"{"type":1,"target":"Target","arguments":[{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","byteArrProp":"AQID"}]}"#,
        ),
        (
            "InvocationMessage_HasCustomArgumentWithNullValueIgnoreAndNoCamelCase",
            inv(None, "Target", vec![co(false, false)], &[]),
            r#"{"type":1,"target":"Target","arguments":[{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","NullProp":null,"ByteArrProp":"AQID"}]}"#,
        ),
        (
            "InvocationMessage_HasCustomArgumentWithNullValueInclude",
            inv(None, "Target", vec![co(true, false)], &[]),
            r#"{"type":1,"target":"Target","arguments":[{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","nullProp":null,"byteArrProp":"AQID"}]}"#,
        ),
        (
            "StreamItemMessage_HasHeaders",
            hdr(item("123", co(true, false))),
            r#"{"type":2,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123","item":{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","nullProp":null,"byteArrProp":"AQID"}}"#,
        ),
        (
            "StreamItemMessage_HasCustomItemWithNoCamelCase",
            item("123", co(false, true)),
            r#"{"type":2,"invocationId":"123","item":{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","ByteArrProp":"AQID"}}"#,
        ),
        (
            "StreamItemMessage_HasCustomItemWithNullValueIgnore",
            item("123", co(true, true)),
            r#"{"type":2,"invocationId":"123","item":{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","byteArrProp":"AQID"}}"#,
        ),
        (
            "StreamItemMessage_HasCustomItemWithNullValueIgnoreAndNoCamelCase",
            item("123", co(false, false)),
            r#"{"type":2,"invocationId":"123","item":{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","NullProp":null,"ByteArrProp":"AQID"}}"#,
        ),
        (
            "StreamItemMessage_HasCustomItemWithNullValueInclude",
            item("123", co(true, false)),
            r#"{"type":2,"invocationId":"123","item":{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","nullProp":null,"byteArrProp":"AQID"}}"#,
        ),
        (
            "StreamItemMessage_HasIntegerItem",
            item("123", j(&1)),
            r#"{"type":2,"invocationId":"123","item":1}"#,
        ),
        (
            "StreamItemMessage_HasStringItem",
            item("123", j("Foo")),
            r#"{"type":2,"invocationId":"123","item":"Foo"}"#,
        ),
        (
            "StreamItemMessage_HasBoolItem",
            item("123", j(&true)),
            r#"{"type":2,"invocationId":"123","item":true}"#,
        ),
        (
            "StreamItemMessage_HasNullItem",
            item("123", j(&())),
            r#"{"type":2,"invocationId":"123","item":null}"#,
        ),
        (
            "CompletionMessage_HasCustomResultWithNoCamelCase",
            result("123", co(false, true)),
            r#"{"type":3,"invocationId":"123","result":{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","ByteArrProp":"AQID"}}"#,
        ),
        (
            "CompletionMessage_HasCustomResultWithNullValueIgnore",
            result("123", co(true, true)),
            r#"{"type":3,"invocationId":"123","result":{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","byteArrProp":"AQID"}}"#,
        ),
        (
            "CompletionMessage_HasCustomResultWithNullValueIncludeAndNoCamelCase",
            result("123", co(false, false)),
            r#"{"type":3,"invocationId":"123","result":{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","NullProp":null,"ByteArrProp":"AQID"}}"#,
        ),
        (
            "CompletionMessage_HasCustomResultWithNullValueInclude",
            result("123", co(true, false)),
            r#"{"type":3,"invocationId":"123","result":{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","nullProp":null,"byteArrProp":"AQID"}}"#,
        ),
        (
            "CompletionMessage_HasErrorAndCamelCase",
            void("123"),
            r#"{"type":3,"invocationId":"123"}"#,
        ),
        (
            "CompletionMessage_HasTestHeadersAndCustomItemResult",
            hdr(result("123", co(true, false))),
            r#"{"type":3,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123","result":{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","nullProp":null,"byteArrProp":"AQID"}}"#,
        ),
        (
            "CompletionMessage_HasErrorAndHeadersAndCamelCase",
            hdr(void("123")),
            r#"{"type":3,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123"}"#,
        ),
        (
            "CompletionMessage_HasIntegerResult",
            result("123", j(&1)),
            r#"{"type":3,"invocationId":"123","result":1}"#,
        ),
        (
            "CompletionMessage_HasStringResult",
            result("123", j("Foo")),
            r#"{"type":3,"invocationId":"123","result":"Foo"}"#,
        ),
        (
            "CompletionMessage_HasBoolResult",
            result("123", j(&true)),
            r#"{"type":3,"invocationId":"123","result":true}"#,
        ),
        (
            "CompletionMessage_HasNullResult",
            result("123", j(&())),
            r#"{"type":3,"invocationId":"123","result":null}"#,
        ),
        (
            "CompletionMessage_HasError",
            error("123", "Whoops!"),
            r#"{"type":3,"invocationId":"123","error":"Whoops!"}"#,
        ),
        (
            "CompletionMessage_HasErrorAndHeaders",
            hdr(error("123", "Whoops!")),
            r#"{"type":3,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123","error":"Whoops!"}"#,
        ),
        (
            "StreamInvocationMessage_HasHeaders",
            hdr(sinv("123", "Target", vec![co(true, false)], &[])),
            r#"{"type":4,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123","target":"Target","arguments":[{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","nullProp":null,"byteArrProp":"AQID"}]}"#,
        ),
        (
            "StreamInvocationMessage_HasCustomArgumentWithNoCamelCase",
            sinv("123", "Target", vec![co(false, true)], &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","ByteArrProp":"AQID"}]}"#,
        ),
        (
            "StreamInvocationMessage_HasCustomArgumentWithNullValueIgnore",
            sinv("123", "Target", vec![co(true, true)], &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","byteArrProp":"AQID"}]}"#,
        ),
        (
            "StreamInvocationMessage_HasCustomArgumentWithNullValueIgnoreAndNoCamelCase",
            sinv("123", "Target", vec![co(false, false)], &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[{"StringProp":"SignalR!","DoubleProp":6.2831853071,"IntProp":42,"DateTimeProp":"2017-04-11T00:00:00Z","NullProp":null,"ByteArrProp":"AQID"}]}"#,
        ),
        (
            "StreamInvocationMessage_HasCustomArgumentWithNullValueInclude",
            sinv("123", "Target", vec![co(true, false)], &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[{"stringProp":"SignalR!","doubleProp":6.2831853071,"intProp":42,"dateTimeProp":"2017-04-11T00:00:00Z","nullProp":null,"byteArrProp":"AQID"}]}"#,
        ),
        (
            "StreamInvocationMessage_HasInvocationId",
            sinv("123", "Target", vec![j(&1), j("Foo")], &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[1,"Foo"]}"#,
        ),
        (
            "StreamInvocationMessage_HasBoolArgument",
            sinv("123", "Target", vec![j(&true)], &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[true]}"#,
        ),
        (
            "StreamInvocationMessage_HasNullArgument",
            sinv("123", "Target", vec![j(&())], &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[null]}"#,
        ),
        (
            "StreamInvocationMessage_HasStreamArgument",
            sinv("123", "Target", vec![], &["__test_id__"]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[],"streamIds":["__test_id__"]}"#,
        ),
        (
            "CancelInvocationMessage_HasInvocationId",
            cancel("123"),
            r#"{"type":5,"invocationId":"123"}"#,
        ),
        (
            "CancelInvocationMessage_HasHeaders",
            hdr(cancel("123")),
            r#"{"type":5,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123"}"#,
        ),
        ("PingMessage", HubMessage::Ping, r#"{"type":6}"#),
        ("CloseMessage", close(None, false), r#"{"type":7}"#),
        (
            "CloseMessage_HasError",
            close(Some("Error!"), false),
            r#"{"type":7,"error":"Error!"}"#,
        ),
        (
            "CloseMessage_HasErrorEmptyString",
            close(Some(""), false),
            r#"{"type":7,"error":""}"#,
        ),
        (
            "CloseMessage_HasErrorWithCamelCase",
            close(Some("Error!"), false),
            r#"{"type":7,"error":"Error!"}"#,
        ),
        (
            "CloseMessage_HasAllowReconnect",
            close(None, true),
            r#"{"type":7,"allowReconnect":true}"#,
        ),
        (
            "CloseMessage_HasErrorAndAllowReconnect",
            close(Some("Error!"), true),
            r#"{"type":7,"error":"Error!","allowReconnect":true}"#,
        ),
    ];
    assert_eq!(cases.len(), 53);
    for (name, message, text) in &cases {
        json_both_ways(name, message, text);
    }

    // InvocationMessage_DateTimeOffsetArgument: the argument binds to the same instant.
    let parsed =
        parse_json(r#"{"type":1,"target":"Method","arguments":["2016-05-10T13:51:20+12:34"]}"#)
            .unwrap();
    let instant: Timestamp = call_parts(&parsed).3[0].deserialize().unwrap();
    assert_eq!(instant, Timestamp::from_unix(1_462_843_040, 0).unwrap());

    // The PascalCase payload binds back to the caller's type (base64 bytes, RFC 3339 date).
    let parsed = parse_json(&format!(
        r#"{{"type":3,"invocationId":"123","result":{}}}"#,
        String::from_utf8(co(false, false).as_bytes().to_vec()).unwrap()
    ))
    .unwrap();
    let HubMessage::Completion(Completion {
        result: CompletionResult::Value(value),
        ..
    }) = parsed
    else {
        panic!("not a completion with a result: {parsed:?}")
    };
    assert_eq!(
        value.deserialize::<CustomObject>().unwrap(),
        CustomObject::default()
    );
}

#[test]
fn json_out_of_order_properties() {
    // §1.2 OutOfOrderJsonTestData (6 vectors), parse only.
    let cases: Vec<(&str, &str, HubMessage)> = vec![
        (
            "InvocationMessage_StringIsoDateArgumentFirst",
            r#"{ "arguments": ["2016-05-10T13:51:20+12:34"], "type":1, "target": "Method" }"#,
            inv(None, "Method", vec![j("2016-05-10T13:51:20+12:34")], &[]),
        ),
        (
            "InvocationMessage_DateTimeOffsetArgumentFirst",
            r#"{ "arguments": ["2016-05-10T13:51:20+12:34"], "type":1, "target": "Method" }"#,
            inv(None, "Method", vec![j("2016-05-10T13:51:20+12:34")], &[]),
        ),
        (
            "InvocationMessage_IntegerArrayArgumentFirst",
            r#"{ "arguments": [1,2], "type":1, "target": "Method" }"#,
            inv(None, "Method", vec![j(&1), j(&2)], &[]),
        ),
        (
            "StreamInvocationMessage_IntegerArrayArgumentFirst",
            r#"{ "type":4, "arguments": [1,2], "target": "Method", "invocationId": "3" }"#,
            sinv("3", "Method", vec![j(&1), j(&2)], &[]),
        ),
        (
            "CompletionMessage_ResultFirst",
            r#"{ "type":3, "result": 10, "invocationId": "15" }"#,
            result("15", j(&10)),
        ),
        (
            "StreamItemMessage_ItemFirst",
            r#"{ "item": "foo", "invocationId": "1a", "type":2 }"#,
            item("1a", j("foo")),
        ),
    ];
    for (name, text, expected) in cases {
        assert_eq!(parse_json(text).unwrap(), expected, "{name}");
    }
    let parsed = parse_json(
        r#"{ "arguments": ["2016-05-10T13:51:20+12:34"], "type":1, "target": "Method" }"#,
    )
    .unwrap();
    let instant: Timestamp = call_parts(&parsed).3[0].deserialize().unwrap();
    assert_eq!(instant.unix_seconds(), 1_462_843_040);
}

#[test]
fn json_invalid_messages() {
    // §1.3 InvalidMessages: 18 of 26 (the other 8 are in
    // `json_frames_are_read_in_document_order`), then §1.6 and §2.1 CustomInvalidMessages
    // (5 of 6).
    let cases = [
        (r#"{}"#, "Missing required property 'type'."),
        (r#"{"type":1}"#, "Missing required property 'target'."),
        (
            r#"{"type":1,"invocationId":"42"}"#,
            "Missing required property 'target'.",
        ),
        (
            r#"{"type":1,"invocationId":"42","target":42}"#,
            "Expected 'target' to be of type String.",
        ),
        (
            r#"{"type":1,"invocationId":"42","target":"foo"}"#,
            "Missing required property 'arguments'.",
        ),
        (
            r#"{"type":1,"invocationId":"42","target":"foo","arguments":{}}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (r#"{"type":2}"#, "Missing required property 'invocationId'."),
        (
            r#"{"type":2,"invocationId":42}"#,
            "Expected 'invocationId' to be of type String.",
        ),
        (
            r#"{"type":2,"invocationId":"42"}"#,
            "Missing required property 'item'.",
        ),
        (r#"{"type":3}"#, "Missing required property 'invocationId'."),
        (
            r#"{"type":3,"invocationId":42}"#,
            "Expected 'invocationId' to be of type String.",
        ),
        (
            r#"{"type":3,"invocationId":"42","error":[]}"#,
            "Expected 'error' to be of type String.",
        ),
        (r#"{"type":4}"#, "Missing required property 'invocationId'."),
        (
            r#"{"type":4,"invocationId":42}"#,
            "Expected 'invocationId' to be of type String.",
        ),
        (
            r#"{"type":4,"invocationId":"42","target":42}"#,
            "Expected 'target' to be of type String.",
        ),
        (
            r#"{"type":4,"invocationId":"42","target":"foo"}"#,
            "Missing required property 'arguments'.",
        ),
        (
            r#"{"type":4,"invocationId":"42","target":"foo","arguments":{}}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (
            r#"{"type":3,"invocationId":"42","error":"foo","result":true}"#,
            "The 'error' and 'result' properties are mutually exclusive.",
        ),
        // §1.6 InvalidNestingWhileBindingTypesFails.
        (
            r#"{"type":1,"invocationId":"42","target":"foo","arguments":[[}]}"#,
            "Error reading JSON.",
        ),
        // §2.1 CustomInvalidMessages (vector 2, `42`, is in
        // `json_frames_are_read_in_document_order`).
        ("", "Error reading JSON."),
        (r#"{"type":"foo"}"#, "Expected 'type' to be of type Number."),
        (
            r#"{"type":3,"invocationId":"42","result":true"#,
            "Error reading JSON.",
        ),
        (
            r#"{"type":8,"sequenceId":true}"#,
            "Expected 'sequenceId' to be of type Number.",
        ),
        (
            r#"{"type":9,"sequenceId":"value"}"#,
            "Expected 'sequenceId' to be of type Number.",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(json_error(input), expected, "{input}");
    }

    // [derived] §1.3 vectors 5-8 with their trailing syntax error (`arguments:[]`, unquoted)
    // fixed: the header check itself gives the upstream text.
    for header in ["42", "true", "null", "[]"] {
        let input =
            format!(r#"{{"type":1,"headers":{{"Foo": {header}}},"target":"test","arguments":[]}}"#);
        assert_eq!(
            json_error(&input),
            "Expected header 'Foo' to be of type String.",
            "{input}"
        );
    }
}

#[test]
fn json_binding_is_left_to_the_caller() {
    // §1.4, §1.5 (9 of 10; vector 8 is in `json_frames_are_read_in_document_order`), §1.9.
    // ASP.NET Core binds arguments while parsing and reports "Invocation provides N
    // argument(s) but target expects 2." / "Error binding arguments. ..." as an
    // InvocationBindingFailureMessage. This crate keeps arguments raw and binding is the
    // server's job, so these parse, and the raw arguments show the mismatch: binder `[int, string]`.
    fn binds(args: &[RawValue]) -> bool {
        args.len() == 2
            && args[0].deserialize::<i32>().is_ok()
            && args[1].deserialize::<String>().is_ok()
    }
    let cases = [
        (
            r#"{"type":1,"invocationId":"42","target":"foo","arguments":[]}"#,
            1,
            0,
        ),
        (
            r#"{"type":1,"arguments":[], "invocationId":"42","target":"foo"}"#,
            1,
            0,
        ),
        (
            r#"{"type":1,"invocationId":"42","target":"foo","arguments":[ "abc", "xyz"]}"#,
            1,
            2,
        ),
        (
            r#"{"type":1,"invocationId":"42","arguments":[ "abc", "xyz"], "target":"foo"}"#,
            1,
            2,
        ),
        (
            r#"{"type":4,"invocationId":"42","target":"foo","arguments":[]}"#,
            4,
            0,
        ),
        (
            r#"{"type":4,"invocationId":"42","target":"foo","arguments":[ "abc", "xyz"]}"#,
            4,
            2,
        ),
        (
            r#"{"type":1,"invocationId":"42","target":"foo","arguments":[1,"",{"1":1,"2":2}]}"#,
            1,
            3,
        ),
        (
            r#"{"type":1,"invocationId":"42","target":"foo","arguments":[1,[1]]}"#,
            1,
            2,
        ),
        (
            r#"{"type":1,"invocationId":"42","target":"foo","arguments":[1,[]]}"#,
            1,
            2,
        ),
    ];
    for (input, ty, count) in cases {
        let message = parse_json(input).unwrap();
        let (got_ty, id, target, args) = call_parts(&message);
        assert_eq!(
            (got_ty, id, target, args.len()),
            (ty, Some("42"), "foo", count),
            "{input}"
        );
        assert!(!binds(args), "{input} should not bind to (int, string)");
    }

    // §1.4 ExtraItemsInMessageAreIgnored.
    let message = parse_json(
        r#"{"type":1,"invocationId":"42","target":"foo","arguments":[],"extraParameter":"1"}"#,
    )
    .unwrap();
    assert_eq!(message, inv(Some("42"), "foo", vec![], &[]));

    // §1.9 ReadToEndOfArgumentArrayOnError: a nested "target" is not the message's target.
    let message = parse_json(
        r#"{"type":1,"invocationId":"42","target":"foo","arguments":[[],{"target":"foo2"}]}"#,
    )
    .unwrap();
    let (_, _, target, args) = call_parts(&message);
    assert_eq!(target, "foo");
    assert_eq!(args.len(), 2);
    assert!(args[0].deserialize::<String>().is_err());
}

#[test]
fn json_dates_and_payload_settings() {
    // §1.7 DateTimeArgumentPreservesUtcKind and §1.8 DateTimeReturnValuePreservesUtcKind:
    // DateTimeKind is .NET's; here the value binds to the UTC instant. 2007-03-01T13:00:00Z.
    let expected = Timestamp::from_unix(1_172_754_000, 0).unwrap();
    for input in [
        r#"{"type":1,"invocationId":"42","target":"foo","arguments":["2007-03-01T13:00:00Z"]}"#,
        r#"{"type":1,"invocationId":"42","arguments":["2007-03-01T13:00:00Z"],"target":"foo"}"#,
    ] {
        let message = parse_json(input).unwrap();
        let args = call_parts(&message).3;
        assert_eq!(args.len(), 1);
        assert_eq!(
            args[0].deserialize::<Timestamp>().unwrap(),
            expected,
            "{input}"
        );
    }
    for input in [
        r#"{"type":3,"invocationId":"42","target":"foo","arguments":[],"result":"2007-03-01T13:00:00Z"}"#,
        r#"{"type":3,"target":"foo","arguments":[],"result":"2007-03-01T13:00:00Z","invocationId":"42"}"#,
    ] {
        // The stray target/arguments on a Completion are ignored.
        assert_eq!(
            parse_json(input).unwrap(),
            result("42", j("2007-03-01T13:00:00Z")),
            "{input}"
        );
        let HubMessage::Completion(Completion {
            result: CompletionResult::Value(value),
            ..
        }) = parse_json(input).unwrap()
        else {
            panic!("{input}")
        };
        assert_eq!(value.deserialize::<Timestamp>().unwrap(), expected);
    }

    // §1.10 ReadCaseInsensitivePropertiesByDefault: case-insensitive property matching and an
    // offset-less DateTime are System.Text.Json payload settings, left to the caller's
    // deserializer; only the envelope is checked here.
    let payload = r#"{"StrIngProp":"test","DoublePrOp":3.14159,"IntProp":43,"DateTimeProp":"2019-06-03T22:00:00","NuLLProp":null,"ByteARRProp":"AgQG"}"#;
    let message = parse_json(&format!(
        r#"{{"type":2,"invocationId":"123","item":{payload}}}"#
    ))
    .unwrap();
    let HubMessage::StreamItem(stream_item) = message else {
        panic!("not a stream item: {message:?}")
    };
    assert_eq!(stream_item.invocation_id, "123");
    assert_eq!(stream_item.item.as_bytes(), payload.as_bytes());
}

#[test]
fn json_message_sizes() {
    // §1.11 MessageSizeData (14 vectors): framed length, 0x1E included.
    let cases = [
        (
            "InvocationMessage_WithoutInvocationId",
            inv(None, "Target", vec![j(&1)], &[]),
            45,
        ),
        (
            "InvocationMessage_WithInvocationId",
            inv(Some("1"), "Target", vec![j(&1)], &[]),
            64,
        ),
        (
            "InvocationMessage_WithInvocationIdAndStreamId",
            inv(Some("1"), "Target", vec![j(&1)], &["2"]),
            82,
        ),
        ("CloseMessage_Empty", close(None, false), 11),
        ("CloseMessage_WithError", close(Some("error"), false), 27),
        ("StreamItemMessage_WithNullItem", item("1", j(&())), 42),
        ("StreamItemMessage_WithItem", item("1", j(&1)), 39),
        ("CompletionMessage_Empty", void("1"), 30),
        ("CompletionMessage_WithResult", result("1", j(&1)), 41),
        ("CompletionMessage_WithError", error("1", "error"), 46),
        (
            "StreamInvocationMessage",
            sinv("1", "target", vec![], &[]),
            63,
        ),
        (
            "StreamInvocationMessage_WithStreamId",
            sinv("1", "target", vec![], &["2"]),
            81,
        ),
        ("CancelInvocationMessage", cancel("1"), 30),
        ("PingMessage", HubMessage::Ping, 11),
    ];
    for (name, message, size) in cases {
        assert_eq!(
            JsonHubProtocol::new().to_bytes(&message).unwrap().len(),
            size,
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// §2 JsonHubProtocolTests (System.Text.Json)
// ---------------------------------------------------------------------------------------------

#[test]
fn json_custom_protocol_test_data() {
    // §2.2 CustomProtocolTestData (5 vectors). System.Text.Json writes the float 2.0f as `2`;
    // serde_json writes `2.0`, a payload-serializer choice: the caller writes the number 2,
    // and the parsed argument binds to 2.0f32 as upstream's binder does.
    let args = || vec![j(&1), j("Foo"), j(&2)];
    let cases = [
        (
            "InvocationMessage_HasFloatArgument",
            inv(None, "Target", args(), &[]),
            r#"{"type":1,"target":"Target","arguments":[1,"Foo",2]}"#,
        ),
        (
            "InvocationMessage_HasHeaders",
            hdr(inv(Some("123"), "Target", args(), &[])),
            r#"{"type":1,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123","target":"Target","arguments":[1,"Foo",2]}"#,
        ),
        (
            "StreamItemMessage_HasFloatItem",
            item("123", j(&2)),
            r#"{"type":2,"invocationId":"123","item":2}"#,
        ),
        (
            "CompletionMessage_HasFloatResult",
            result("123", j(&2)),
            r#"{"type":3,"invocationId":"123","result":2}"#,
        ),
        (
            "StreamInvocationMessage_HasFloatArgument",
            sinv("123", "Target", args(), &[]),
            r#"{"type":4,"invocationId":"123","target":"Target","arguments":[1,"Foo",2]}"#,
        ),
    ];
    for (name, message, text) in &cases {
        json_both_ways(name, message, text);
    }
    let parsed = parse_json(cases[0].2).unwrap();
    assert_eq!(call_parts(&parsed).3[2].deserialize::<f32>().unwrap(), 2.0);
}

/// `JsonPersonExtended { Name = "Person", Age = 99 }` as System.Text.Json writes it under
/// `[JsonPolymorphic]`: the discriminator first, derived properties before base ones.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct JsonPersonExtended {
    #[serde(rename = "$type")]
    type_name: String,
    age: i32,
    name: String,
    child: Option<Box<JsonPersonExtended>>,
    parent: Option<Box<JsonPersonExtended>>,
}

/// `JsonPersonExtended2 { Name = "Person", Location = "Canada" }`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct JsonPersonExtended2 {
    #[serde(rename = "$type")]
    type_name: String,
    location: String,
    name: String,
    child: Option<Box<JsonPersonExtended2>>,
    parent: Option<Box<JsonPersonExtended2>>,
}

#[test]
fn json_polymorphic_payloads() {
    // §2.3 (3 vectors). Polymorphism is the payload serializer's: a struct with the same
    // property names and order produces the bytes, and reads them back.
    let extended = JsonPersonExtended {
        type_name: "JsonPersonExtended".into(),
        age: 99,
        name: "Person".into(),
        child: None,
        parent: None,
    };
    let extended2 = JsonPersonExtended2 {
        type_name: "JsonPersonExtended2".into(),
        location: "Canada".into(),
        name: "Person".into(),
        child: None,
        parent: None,
    };
    let cases = [
        (
            "PolymorphicWorksWithInvocation",
            inv(None, "method", vec![j(&extended)], &[]),
            r#"{"type":1,"target":"method","arguments":[{"$type":"JsonPersonExtended","age":99,"name":"Person","child":null,"parent":null}]}"#,
        ),
        (
            "PolymorphicWorksWithStreamItem",
            item("1", j(&extended)),
            r#"{"type":2,"invocationId":"1","item":{"$type":"JsonPersonExtended","age":99,"name":"Person","child":null,"parent":null}}"#,
        ),
        (
            "PolymorphicWorksWithCompletion",
            result("1", j(&extended2)),
            r#"{"type":3,"invocationId":"1","result":{"$type":"JsonPersonExtended2","location":"Canada","name":"Person","child":null,"parent":null}}"#,
        ),
    ];
    for (name, message, text) in &cases {
        json_both_ways(name, message, text);
    }
    let parsed = parse_json(cases[0].2).unwrap();
    assert_eq!(
        call_parts(&parsed).3[0]
            .deserialize::<JsonPersonExtended>()
            .unwrap(),
        extended
    );
    let HubMessage::Completion(Completion {
        result: CompletionResult::Value(value),
        ..
    }) = parse_json(cases[2].2).unwrap()
    else {
        panic!("PolymorphicWorksWithCompletion: no result")
    };
    assert_eq!(
        value.deserialize::<JsonPersonExtended2>().unwrap(),
        extended2
    );
    // §2.4 MagicCast is skipped upstream (`[Fact(Skip = ...)]`): not a requirement.
}

// ---------------------------------------------------------------------------------------------
// §3 MessagePackHubProtocolTestBase and §4 MessagePackHubProtocolTests
// ---------------------------------------------------------------------------------------------

#[test]
fn msgpack_base_test_data_both_ways() {
    // §3.1 BaseTestData (33 vectors).
    let cases: Vec<(&str, HubMessage, &str)> = vec![
        (
            "InvocationWithNoHeadersAndNoArgs",
            inv(Some("xyz"), "method", vec![], &[]),
            "lgGAo3h5eqZtZXRob2SQkA==",
        ),
        (
            "InvocationWithNoHeadersNoIdAndNoArgs",
            inv(None, "method", vec![], &[]),
            "lgGAwKZtZXRob2SQkA==",
        ),
        (
            "InvocationWithNoHeadersNoIdAndSingleIntArg",
            inv(None, "method", vec![m(&42)], &[]),
            "lgGAwKZtZXRob2SRKpA=",
        ),
        (
            "InvocationWithNoHeadersNoIdIntAndStringArgs",
            inv(None, "method", vec![m(&42), m("string")], &[]),
            "lgGAwKZtZXRob2SSKqZzdHJpbmeQ",
        ),
        (
            "InvocationWithStreamArgument",
            inv(None, "Target", vec![], &["__test_id__"]),
            "lgGAwKZUYXJnZXSQkatfX3Rlc3RfaWRfXw==",
        ),
        (
            "InvocationWithStreamAndNormalArgument",
            inv(None, "Target", vec![m(&42)], &["__test_id__"]),
            "lgGAwKZUYXJnZXSRKpGrX190ZXN0X2lkX18=",
        ),
        (
            "InvocationWithMultipleStreams",
            inv(None, "Target", vec![], &["__test_id__", "__test_id2__"]),
            "lgGAwKZUYXJnZXSQkqtfX3Rlc3RfaWRfX6xfX3Rlc3RfaWQyX18=",
        ),
        (
            "StreamItemWithNoHeadersAndIntItem",
            item("xyz", m(&42)),
            "lAKAo3h5eio=",
        ),
        (
            "StreamItemWithNoHeadersAndFloatItem",
            item("xyz", m(&42.0f32)),
            "lAKAo3h5espCKAAA",
        ),
        (
            "StreamItemWithNoHeadersAndStringItem",
            item("xyz", m("string")),
            "lAKAo3h5eqZzdHJpbmc=",
        ),
        (
            "StreamItemWithNoHeadersAndBoolItem",
            item("xyz", m(&true)),
            "lAKAo3h5esM=",
        ),
        (
            "CompletionWithNoHeadersAndError",
            error("xyz", "Error not found!"),
            "lQOAo3h5egGwRXJyb3Igbm90IGZvdW5kIQ==",
        ),
        (
            "CompletionWithHeadersAndError",
            hdr(error("xyz", "Error not found!")),
            "lQODo0Zvb6NCYXKyS2V5V2l0aApOZXcNCkxpbmVzq1N0aWxsIFdvcmtzsVZhbHVlV2l0aE5ld0xpbmVzsEFsc28KV29ya3MNCkZpbmWjeHl6AbBFcnJvciBub3QgZm91bmQh",
        ),
        (
            "CompletionWithNoHeadersAndNoResult",
            void("xyz"),
            "lAOAo3h5egI=",
        ),
        (
            "CompletionWithHeadersAndNoResult",
            hdr(void("xyz")),
            "lAODo0Zvb6NCYXKyS2V5V2l0aApOZXcNCkxpbmVzq1N0aWxsIFdvcmtzsVZhbHVlV2l0aE5ld0xpbmVzsEFsc28KV29ya3MNCkZpbmWjeHl6Ag==",
        ),
        (
            "CompletionWithNoHeadersAndIntResult",
            result("xyz", m(&42)),
            "lQOAo3h5egMq",
        ),
        (
            "CompletionWithNoHeadersAndFloatResult",
            result("xyz", m(&42.0f32)),
            "lQOAo3h5egPKQigAAA==",
        ),
        (
            "CompletionWithNoHeadersAndStringResult",
            result("xyz", m("string")),
            "lQOAo3h5egOmc3RyaW5n",
        ),
        (
            "CompletionWithNoHeadersAndBooleanResult",
            result("xyz", m(&true)),
            "lQOAo3h5egPD",
        ),
        (
            "StreamInvocationWithNoHeadersAndNoArgs",
            sinv("xyz", "method", vec![], &[]),
            "lgSAo3h5eqZtZXRob2SQkA==",
        ),
        (
            "StreamInvocationWithNoHeadersAndIntArg",
            sinv("xyz", "method", vec![m(&42)], &[]),
            "lgSAo3h5eqZtZXRob2SRKpA=",
        ),
        (
            "StreamInvocationWithStreamArgument",
            sinv("xyz", "method", vec![], &["__test_id__"]),
            "lgSAo3h5eqZtZXRob2SQkatfX3Rlc3RfaWRfXw==",
        ),
        (
            "StreamInvocationWithStreamAndNormalArgument",
            sinv("xyz", "method", vec![m(&42)], &["__test_id__"]),
            "lgSAo3h5eqZtZXRob2SRKpGrX190ZXN0X2lkX18=",
        ),
        (
            "StreamInvocationWithNoHeadersAndIntAndStringArgs",
            sinv("xyz", "method", vec![m(&42), m("string")], &[]),
            "lgSAo3h5eqZtZXRob2SSKqZzdHJpbmeQ",
        ),
        (
            "CancelInvocationWithNoHeaders",
            cancel("xyz"),
            "kwWAo3h5eg==",
        ),
        (
            "CancelInvocationWithHeaders",
            hdr(cancel("xyz")),
            "kwWDo0Zvb6NCYXKyS2V5V2l0aApOZXcNCkxpbmVzq1N0aWxsIFdvcmtzsVZhbHVlV2l0aE5ld0xpbmVzsEFsc28KV29ya3MNCkZpbmWjeHl6",
        ),
        ("Ping", HubMessage::Ping, "kQY="),
        ("CloseMessage", close(None, false), "kwfAwg=="),
        (
            "CloseMessage_HasError",
            close(Some("Error!"), false),
            "kwemRXJyb3Ihwg==",
        ),
        (
            "CloseMessage_HasAllowReconnect",
            close(None, true),
            "kwfAww==",
        ),
        (
            "CloseMessage_HasErrorAndAllowReconnect",
            close(Some("Error!"), true),
            "kwemRXJyb3Ihww==",
        ),
        ("AckMessage", Ack::new(42).into(), "kggq"),
        ("SequenceMessage", Sequence::new(146).into(), "kgnMkg=="),
    ];
    assert_eq!(cases.len(), 33);
    for (name, message, base64) in &cases {
        msgpack_both_ways(name, message, base64);
    }

    // §3.2 ParseMessageWithExtraData: the two trailing elements are ignored.
    assert_eq!(
        parse_mp(&b64("mAGAo3h5eqZtZXRob2SQkMOiZXg=")).unwrap(),
        inv(Some("xyz"), "method", vec![], &[])
    );
}

#[test]
fn msgpack_invalid_payloads() {
    // §3.3 BaseInvalidPayloads: 29 of 36 (the other 7 are in
    // `msgpack_fields_are_read_sequentially`).
    let cases = [
        (
            "MessageTypeString",
            "kaNmb28=",
            "Reading 'messageType' as Int32 failed.",
        ),
        (
            "HeadersNotAMap",
            "kgGjZm9v",
            "Reading map length for 'headers' failed.",
        ),
        (
            "HeaderKeyEmptyString",
            "kgGCoKNmb28=",
            "Null or empty key in header.",
        ),
        (
            "InvocationMissingId",
            "kgGA",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "InvocationTargetMissing",
            "kwGAo2FiYw==",
            "Reading 'target' as String failed.",
        ),
        (
            "InvocationTargetInt",
            "lAGAo2FiYyo=",
            "Reading 'target' as String failed.",
        ),
        (
            "InvocationTargetEmptyString",
            "lAGAo2FiY6A=",
            "Null or empty target for Invocation message.",
        ),
        (
            "StreamInvocationMissingId",
            "kgSA",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "StreamInvocationEmptyStringId",
            "kwSAoA==",
            "Null or empty invocation ID for StreamInvocation message.",
        ),
        (
            "StreamInvocationIdBoolean",
            "kwSAwg==",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "StreamInvocationTargetMissing",
            "kwSAo2FiYw==",
            "Reading 'target' as String failed.",
        ),
        (
            "StreamInvocationTargetInt",
            "lASAo2FiYyo=",
            "Reading 'target' as String failed.",
        ),
        (
            "StreamInvocationTargetEmptyString",
            "lASAo2FiY6A=",
            "Null or empty target for StreamInvocation message.",
        ),
        (
            "StreamItemMissingId",
            "kgKA",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "StreamItemEmptyStringId",
            "kwKAoA==",
            "Null or empty invocation ID for StreamItem message.",
        ),
        (
            "StreamItemInvocationIdBoolean",
            "kwKAwg==",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "CompletionMissingId",
            "kgOA",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "CompletionEmptyStringId",
            "kwOAoA==",
            "Null or empty invocation ID for Completion message.",
        ),
        (
            "CompletionIdBoolean",
            "kwOAwg==",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "CompletionResultKindString",
            "lAOAo3h5eqN4eXo=",
            "Reading 'resultKind' as Int32 failed.",
        ),
        (
            "CompletionResultKindOutOfRange",
            "lAOAo3h5eio=",
            "Invalid invocation result kind.",
        ),
        (
            "CompletionErrorMissing",
            "lAOAo3h5egE=",
            "Reading 'error' as String failed.",
        ),
        (
            "CompletionErrorInt",
            "lQOAo3h5egEq",
            "Reading 'error' as String failed.",
        ),
        (
            "CancelInvocationMissingId",
            "kgWA",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "CancelInvocationEmptyStringId",
            "kwWAoA==",
            "Null or empty invocation ID for CancelInvocation message.",
        ),
        (
            "AckSequenceIdMissing",
            "kQg=",
            "Reading 'sequenceId' as Int64 failed.",
        ),
        (
            "AckSequenceIdNull",
            "kQjA",
            "Reading 'sequenceId' as Int64 failed.",
        ),
        (
            "SequenceMessageSequenceIdMissing",
            "kQk=",
            "Reading 'sequenceId' as Int64 failed.",
        ),
        (
            "SequenceMessageSequenceIdNull",
            "kQnA",
            "Reading 'sequenceId' as Int64 failed.",
        ),
    ];
    for (name, base64, expected) in cases {
        assert_eq!(mp_error(base64), expected, "{name}");
    }
}

#[test]
fn msgpack_binding_is_left_to_the_caller() {
    // §3.4 ArgumentBindingErrors (6 of 10; the 4 missing/not-an-array cases are in
    // `known_difference_msgpack_arguments_not_array`). ASP.NET Core reports these count and type
    // mismatches as an InvocationBindingFailureMessage; this crate keeps arguments raw and
    // binding is the server's job: binder `[string]`.
    let cases = [
        (
            "InvocationArgumentArraySizeMismatchEmpty",
            "lQGAo2FiY6N4eXqQ",
            1,
            0,
        ),
        (
            "InvocationArgumentArraySizeMismatchTooLarge",
            "lQGAo2FiY6N4eXqSoWGhYg==",
            1,
            2,
        ),
        (
            "InvocationArgumentTypeMismatch",
            "lQGAo2FiY6N4eXqRKg==",
            1,
            1,
        ),
        (
            "StreamInvocationArgumentArraySizeMismatchEmpty",
            "lQSAo2FiY6N4eXqQ",
            4,
            0,
        ),
        (
            "StreamInvocationArgumentArraySizeMismatchTooLarge",
            "lQSAo2FiY6N4eXqSoWGhYg==",
            4,
            2,
        ),
        (
            "StreamInvocationArgumentTypeMismatch",
            "lQSAo2FiY6N4eXqRKg==",
            4,
            1,
        ),
    ];
    for (name, base64, ty, count) in cases {
        let message = parse_mp(&b64(base64)).unwrap();
        let (got_ty, id, target, args) = call_parts(&message);
        assert_eq!(
            (got_ty, id, target, args.len()),
            (ty, Some("abc"), "xyz", count),
            "{name}"
        );
        let binds = args.len() == 1 && args[0].deserialize::<String>().is_ok();
        assert!(!binds, "{name} should not bind to (string)");
    }

    // §3.5 ParserDoesNotConsumePartialData: the prefix announces 5 bytes, 1 arrived.
    let mut reader = MessageReader::new(MessagePackHubProtocol::new(), None);
    reader.feed(&[0x05, 0x01]);
    assert_eq!(reader.next_message().unwrap(), None);
    assert_eq!(reader.buffered(), 2);
}

#[test]
fn msgpack_message_sizes() {
    // §3.6 MessageSizeData (14 vectors): framed length, VarInt prefix included.
    let cases = [
        (
            "InvocationMessage_WithoutInvocationId",
            inv(None, "Target", vec![m(&1)], &[]),
            15,
        ),
        (
            "InvocationMessage_WithInvocationId",
            inv(Some("1"), "Target", vec![m(&1)], &[]),
            16,
        ),
        (
            "InvocationMessage_WithInvocationIdAndStreamId",
            inv(Some("1"), "Target", vec![m(&1)], &["2"]),
            18,
        ),
        ("CloseMessage_Empty", close(None, false), 5),
        ("CloseMessage_WithError", close(Some("error"), false), 10),
        ("StreamItemMessage_WithNullItem", item("1", m(&())), 7),
        ("StreamItemMessage_WithItem", item("1", m(&1)), 7),
        ("CompletionMessage_Empty", void("1"), 7),
        ("CompletionMessage_WithResult", result("1", m(&1)), 8),
        ("CompletionMessage_WithError", error("1", "error"), 13),
        (
            "StreamInvocationMessage",
            sinv("1", "target", vec![], &[]),
            15,
        ),
        (
            "StreamInvocationMessage_WithStreamId",
            sinv("1", "target", vec![], &["2"]),
            17,
        ),
        ("CancelInvocationMessage", cancel("1"), 6),
        ("PingMessage", HubMessage::Ping, 3),
    ];
    for (name, message, size) in cases {
        assert_eq!(
            MessagePackHubProtocol::new()
                .to_bytes(&message)
                .unwrap()
                .len(),
            size,
            "{name}"
        );
    }
}

#[test]
fn msgpack_object_payloads_both_ways() {
    // §4.4 TestData (20 vectors): CustomObject is a map keyed by the C# property names,
    // DateTime the timestamp extension, byte[] `bin`, enums their name.
    let cases: Vec<(&str, HubMessage, &str)> = vec![
        (
            "CompletionWithNoHeadersAndNullResult",
            result("xyz", m(&())),
            "lQOAo3h5egPA",
        ),
        (
            "CompletionWithNoHeadersAndCustomObjectResult",
            result("xyz", mco()),
            "lQOAo3h5egOGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgM=",
        ),
        (
            "CompletionWithNoHeadersAndCustomObjectArrayResult",
            result("xyz", mco2()),
            "lQOAo3h5egOShqpTdHJpbmdQcm9wqFNpZ25hbFIhqkRvdWJsZVByb3DLQBkh+1RCzxKnSW50UHJvcCqsRGF0ZVRpbWVQcm9w1v9Y7ByAqE51bGxQcm9wwKtCeXRlQXJyUHJvcMQDAQIDhqpTdHJpbmdQcm9wqFNpZ25hbFIhqkRvdWJsZVByb3DLQBkh+1RCzxKnSW50UHJvcCqsRGF0ZVRpbWVQcm9w1v9Y7ByAqE51bGxQcm9wwKtCeXRlQXJyUHJvcMQDAQID",
        ),
        (
            "CompletionWithHeadersAndCustomObjectArrayResult",
            hdr(result("xyz", mco2())),
            "lQODo0Zvb6NCYXKyS2V5V2l0aApOZXcNCkxpbmVzq1N0aWxsIFdvcmtzsVZhbHVlV2l0aE5ld0xpbmVzsEFsc28KV29ya3MNCkZpbmWjeHl6A5KGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgM=",
        ),
        (
            "CompletionWithNoHeadersAndEnumResult",
            result("xyz", m(&TestEnum::One)),
            "lQOAo3h5egOjT25l",
        ),
        (
            "InvocationWithNoHeadersNoIdAndSingleNullArg",
            inv(None, "method", vec![m(&())], &[]),
            "lgGAwKZtZXRob2SRwJA=",
        ),
        (
            "InvocationWithNoHeadersNoIdIntAndEnumArgs",
            inv(None, "method", vec![m(&42), m(&TestEnum::One)], &[]),
            "lgGAwKZtZXRob2SSKqNPbmWQ",
        ),
        (
            "InvocationWithNoHeadersNoIdAndCustomObjectArg",
            inv(None, "method", vec![m(&42), m("string"), mco()], &[]),
            "lgGAwKZtZXRob2STKqZzdHJpbmeGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOQ",
        ),
        (
            "InvocationWithNoHeadersNoIdAndArrayOfCustomObjectArgs",
            inv(None, "method", vec![mco(), mco()], &[]),
            "lgGAwKZtZXRob2SShqpTdHJpbmdQcm9wqFNpZ25hbFIhqkRvdWJsZVByb3DLQBkh+1RCzxKnSW50UHJvcCqsRGF0ZVRpbWVQcm9w1v9Y7ByAqE51bGxQcm9wwKtCeXRlQXJyUHJvcMQDAQIDhqpTdHJpbmdQcm9wqFNpZ25hbFIhqkRvdWJsZVByb3DLQBkh+1RCzxKnSW50UHJvcCqsRGF0ZVRpbWVQcm9w1v9Y7ByAqE51bGxQcm9wwKtCeXRlQXJyUHJvcMQDAQIDkA==",
        ),
        (
            "InvocationWithHeadersNoIdAndArrayOfCustomObjectArgs",
            hdr(inv(None, "method", vec![mco(), mco()], &[])),
            "lgGDo0Zvb6NCYXKyS2V5V2l0aApOZXcNCkxpbmVzq1N0aWxsIFdvcmtzsVZhbHVlV2l0aE5ld0xpbmVzsEFsc28KV29ya3MNCkZpbmXApm1ldGhvZJKGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOQ",
        ),
        (
            "StreamItemWithNoHeadersAndNullItem",
            item("xyz", m(&())),
            "lAKAo3h5esA=",
        ),
        (
            "StreamItemWithNoHeadersAndEnumItem",
            item("xyz", m(&TestEnum::One)),
            "lAKAo3h5eqNPbmU=",
        ),
        (
            "StreamItemWithNoHeadersAndCustomObjectItem",
            item("xyz", mco()),
            "lAKAo3h5eoaqU3RyaW5nUHJvcKhTaWduYWxSIapEb3VibGVQcm9wy0AZIftUQs8Sp0ludFByb3AqrERhdGVUaW1lUHJvcNb/WOwcgKhOdWxsUHJvcMCrQnl0ZUFyclByb3DEAwECAw==",
        ),
        (
            "StreamItemWithNoHeadersAndCustomObjectArrayItem",
            item("xyz", mco2()),
            "lAKAo3h5epKGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgM=",
        ),
        (
            "StreamItemWithHeadersAndCustomObjectArrayItem",
            hdr(item("xyz", mco2())),
            "lAKDo0Zvb6NCYXKyS2V5V2l0aApOZXcNCkxpbmVzq1N0aWxsIFdvcmtzsVZhbHVlV2l0aE5ld0xpbmVzsEFsc28KV29ya3MNCkZpbmWjeHl6koaqU3RyaW5nUHJvcKhTaWduYWxSIapEb3VibGVQcm9wy0AZIftUQs8Sp0ludFByb3AqrERhdGVUaW1lUHJvcNb/WOwcgKhOdWxsUHJvcMCrQnl0ZUFyclByb3DEAwECA4aqU3RyaW5nUHJvcKhTaWduYWxSIapEb3VibGVQcm9wy0AZIftUQs8Sp0ludFByb3AqrERhdGVUaW1lUHJvcNb/WOwcgKhOdWxsUHJvcMCrQnl0ZUFyclByb3DEAwECAw==",
        ),
        (
            "StreamInvocationWithNoHeadersAndEnumArg",
            sinv("xyz", "method", vec![m(&TestEnum::One)], &[]),
            "lgSAo3h5eqZtZXRob2SRo09uZZA=",
        ),
        (
            "StreamInvocationWithNoHeadersAndNullArg",
            sinv("xyz", "method", vec![m(&())], &[]),
            "lgSAo3h5eqZtZXRob2SRwJA=",
        ),
        (
            "StreamInvocationWithNoHeadersAndIntStringAndCustomObjectArgs",
            sinv("xyz", "method", vec![m(&42), m("string"), mco()], &[]),
            "lgSAo3h5eqZtZXRob2STKqZzdHJpbmeGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOQ",
        ),
        (
            "StreamInvocationWithNoHeadersAndCustomObjectArrayArg",
            sinv("xyz", "method", vec![mco(), mco()], &[]),
            "lgSAo3h5eqZtZXRob2SShqpTdHJpbmdQcm9wqFNpZ25hbFIhqkRvdWJsZVByb3DLQBkh+1RCzxKnSW50UHJvcCqsRGF0ZVRpbWVQcm9w1v9Y7ByAqE51bGxQcm9wwKtCeXRlQXJyUHJvcMQDAQIDhqpTdHJpbmdQcm9wqFNpZ25hbFIhqkRvdWJsZVByb3DLQBkh+1RCzxKnSW50UHJvcCqsRGF0ZVRpbWVQcm9w1v9Y7ByAqE51bGxQcm9wwKtCeXRlQXJyUHJvcMQDAQIDkA==",
        ),
        (
            "StreamInvocationWithHeadersAndCustomObjectArrayArg",
            hdr(sinv("xyz", "method", vec![mco(), mco()], &[])),
            "lgSDo0Zvb6NCYXKyS2V5V2l0aApOZXcNCkxpbmVzq1N0aWxsIFdvcmtzsVZhbHVlV2l0aE5ld0xpbmVzsEFsc28KV29ya3MNCkZpbmWjeHl6pm1ldGhvZJKGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOGqlN0cmluZ1Byb3CoU2lnbmFsUiGqRG91YmxlUHJvcMtAGSH7VELPEqdJbnRQcm9wKqxEYXRlVGltZVByb3DW/1jsHICoTnVsbFByb3DAq0J5dGVBcnJQcm9wxAMBAgOQ",
        ),
    ];
    assert_eq!(cases.len(), 20);
    for (name, message, base64) in &cases {
        msgpack_both_ways(name, message, base64);
    }

    // The parsed payloads bind back to the caller's types.
    let HubMessage::Completion(Completion {
        result: CompletionResult::Value(value),
        ..
    }) = parse_mp(&b64(cases[2].2)).unwrap()
    else {
        panic!("CompletionWithNoHeadersAndCustomObjectArrayResult: no result")
    };
    assert_eq!(
        value.deserialize::<Vec<CustomObject>>().unwrap(),
        [CustomObject::default(), CustomObject::default()]
    );
    let parsed = parse_mp(&b64(cases[7].2)).unwrap();
    let args = call_parts(&parsed).3;
    assert_eq!(
        args[2].deserialize::<CustomObject>().unwrap(),
        CustomObject::default()
    );
}

#[test]
fn msgpack_serializer_and_dates() {
    // §4.1 SerializerCanSerializeTypesWithNoDefaultCtor: a read-only collection is an array.
    let written = MessagePackHubProtocol::new()
        .to_bytes(&result("0", m(&vec![42])))
        .unwrap();
    assert_eq!(written.as_ref(), framed_mp(&b64("lQOAoTADkSo=")).as_slice());

    // §4.2 WriteAndParseDateTimeConvertsToUTC, kind = Utc: the instant round-trips. The Local
    // and Unspecified kinds are .NET DateTimeKind conversions with no counterpart in
    // `Timestamp` (always an instant), so those 2 vectors are skipped.
    // §4.3 WriteAndParseDateTimeOffset: 2018-04-09T00:00:00+10:00 keeps its instant.
    let utc = Timestamp::from_unix(1_523_232_000, 0).unwrap();
    let offset: Timestamp = j("2018-04-09T00:00:00+10:00").deserialize().unwrap();
    assert_eq!(offset.unix_seconds(), 1_523_196_000);
    for instant in [utc, offset] {
        let bytes = MessagePackHubProtocol::new()
            .to_bytes(&result("xyz", m(&instant)))
            .unwrap();
        let HubMessage::Completion(Completion {
            result: CompletionResult::Value(value),
            ..
        }) = parse_one(&MessagePackHubProtocol::new(), &bytes).unwrap()
        else {
            panic!("no result")
        };
        assert_eq!(value.deserialize::<Timestamp>().unwrap(), instant);
    }
}

// ---------------------------------------------------------------------------------------------
// §5 HandshakeProtocolTests
// ---------------------------------------------------------------------------------------------

fn parse_request(input: &[u8]) -> Result<Option<HandshakeRequest>, ProtocolError> {
    HandshakeRequest::parse(&mut BytesMut::from(input), None)
}

fn parse_response(input: &[u8]) -> Result<Option<HandshakeResponse>, ProtocolError> {
    HandshakeResponse::parse(&mut BytesMut::from(input), None)
}

#[test]
fn handshake_requests() {
    // §5.1 (9 vectors + the one-byte-segments case) and §5.3.
    let cases = [
        (r#"{"protocol":"dummy","version":1}"#, "dummy", 1),
        (r#"{"protocol":"","version":10}"#, "", 10),
        (r#"{"protocol":"","version":10,"unknown":null}"#, "", 10),
        (
            r#"{"protocol":"firstProtocol","protocol":"secondProtocol","version":1}"#,
            "secondProtocol",
            1,
        ),
        (
            r#"{"protocol":"firstProtocol","protocol":"secondProtocol","version":1,"version":75}"#,
            "secondProtocol",
            75,
        ),
        (
            r#"{"protocol":"dummy","version":1,"ignoredField":99}"#,
            "dummy",
            1,
        ),
        (
            r#"{"protocol":"dummy","version":1}{"protocol":"wrong","version":99}"#,
            "dummy",
            1,
        ),
        (r#"{"protocol":"\u0064ummy","version":1}"#, "dummy", 1),
        (
            r#"{"\u0070rotoco\u006c":"\u0064ummy","version":1}"#,
            "dummy",
            1,
        ),
    ];
    for (input, protocol, version) in cases {
        let request = parse_request(&framed_json(input))
            .unwrap()
            .expect("complete");
        assert_eq!(request, HandshakeRequest::new(protocol, version), "{input}");
    }

    // ...WithMultipleSegments: one byte at a time.
    let mut buf = BytesMut::new();
    let input = framed_json(r#"{"protocol":"json","version":1}"#);
    for (i, byte) in input.iter().enumerate() {
        buf.put_u8(*byte);
        let parsed = HandshakeRequest::parse(&mut buf, None).unwrap();
        if i + 1 < input.len() {
            assert_eq!(parsed, None);
        } else {
            assert_eq!(parsed, Some(HandshakeRequest::new("json", 1)));
        }
    }
    assert!(buf.is_empty());

    // §5.3 ParsingHandshakeRequestNotCompleteReturnsFalse.
    assert_eq!(parse_request(b"42").unwrap(), None);
}

#[test]
fn handshake_invalid_requests() {
    // §5.4: 6 of 10 (the non-object ones are in `handshake_values_must_be_objects_and_strings`).
    let cases = [
        (
            "{}",
            "Missing required property 'protocol'. Message content: {}",
        ),
        (
            r#"{"protocol":"json"}"#,
            r#"Missing required property 'version'. Message content: {"protocol":"json"}"#,
        ),
        (
            r#"{"version":1}"#,
            r#"Missing required property 'protocol'. Message content: {"version":1}"#,
        ),
        (
            r#"{"type":4,"invocationId":"42","target":"foo","arguments":{}}"#,
            r#"Missing required property 'protocol'. Message content: {"type":4,"invocationId":"42","target":"foo","arguments":{}}"#,
        ),
        (
            r#"{"version":"123"}"#,
            "Expected 'version' to be of type Number.",
        ),
        (
            r#"{"protocol":null,"version":123}"#,
            "Expected 'protocol' to be of type String.",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse_request(&framed_json(input)).unwrap_err().to_string(),
            expected,
            "{input}"
        );
    }
}

#[test]
fn handshake_responses() {
    // §5.2: 4 of 5 vectors (`{"error":""}` is in `handshake_empty_error_is_success`).
    let cases = [
        (r#"{"error":"dummy"}"#, Some("dummy")),
        ("{}", None),
        (r#"{"unknown":null}"#, None),
    ];
    for (input, error) in cases {
        let response = parse_response(&framed_json(input))
            .unwrap()
            .expect("complete");
        assert_eq!(response.error.as_deref(), error, "{input}");
    }

    // ...WithMultipleSegments: one byte at a time.
    let mut buf = BytesMut::new();
    let input = framed_json(r#"{"error":"dummy"}"#);
    for (i, byte) in input.iter().enumerate() {
        buf.put_u8(*byte);
        let parsed = HandshakeResponse::parse(&mut buf, None).unwrap();
        assert_eq!(parsed.is_some(), i + 1 == input.len());
        if let Some(response) = parsed {
            assert_eq!(response.error.as_deref(), Some("dummy"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §6, §7 Binary framing (VarInt length prefix)
// ---------------------------------------------------------------------------------------------

fn ascending(len: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(len).collect()
}

#[test]
fn binary_message_parser() {
    let mut long = vec![0x80, 0x01];
    long.extend(ascending(128));
    // §6.1 ReadMessage (3) and §6.2 ReadBinaryMessage (3).
    let cases: [(Vec<u8>, Vec<u8>); 6] = [
        (hex("00"), b"".to_vec()),
        (hex("03 41 42 43"), b"ABC".to_vec()),
        (
            hex("0b 41 0a 52 0d 43 0d 0a 3b 44 45 46"),
            b"A\nR\rC\r\n;DEF".to_vec(),
        ),
        (hex("00"), vec![]),
        (hex("04 ab cd ef 12"), hex("ab cd ef 12")),
        (long, ascending(128)),
    ];
    for (encoded, payload) in cases {
        let mut buf = BytesMut::from(encoded.as_slice());
        let frame = next_frame(TransferFormat::Binary, &mut buf, None)
            .unwrap()
            .expect("a frame");
        assert_eq!(frame.as_ref(), payload.as_slice(), "{encoded:02x?}");
        assert!(buf.is_empty());
    }

    // §6.3 BinaryMessageParserThrowsForMessagesOver2GB (3).
    for encoded in ["ff ff ff ff ff", "80 80 80 80 08", "ff ff ff ff ff ff"] {
        let err = read_varint(&hex(encoded)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Messages over 2GB in size are not supported.",
            "{encoded}"
        );
        let mut buf = BytesMut::from(hex(encoded).as_slice());
        assert_eq!(
            next_frame(TransferFormat::Binary, &mut buf, None),
            Err(err),
            "{encoded}"
        );
    }

    // §6.4 BinaryMessageParserReturnsFalseForPartialPayloads (4) and §6.6
    // ReadIncompleteMessages (2): nothing is consumed.
    for encoded in ["", "04 ab cd ef", "ff ff ff ff 07", "80", "", "09 00 00"] {
        let mut buf = BytesMut::from(hex(encoded).as_slice());
        assert_eq!(
            next_frame(TransferFormat::Binary, &mut buf, None).unwrap(),
            None,
            "{encoded}"
        );
        assert_eq!(buf.as_ref(), hex(encoded).as_slice(), "{encoded}");
    }
    // "ff ff ff ff 07" is int.MaxValue: a legal length, not an error.
    assert_eq!(
        read_varint(&hex("ff ff ff ff 07")).unwrap(),
        Some((0x7fff_ffff, 5))
    );

    // §6.5 ReadMultipleMessages.
    let mut buf = BytesMut::from(hex("00 0e 48 65 6c 6c 6f 2c 0d 0a 57 6f 72 6c 64 21").as_slice());
    let first = next_frame(TransferFormat::Binary, &mut buf, None)
        .unwrap()
        .expect("first");
    let second = next_frame(TransferFormat::Binary, &mut buf, None)
        .unwrap()
        .expect("second");
    assert_eq!(first.as_ref(), b"");
    assert_eq!(second.as_ref(), b"Hello,\r\nWorld!");
    assert!(buf.is_empty());
}

fn write_binary(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for payload in payloads {
        write_varint(u32::try_from(payload.len()).unwrap(), &mut out);
        out.extend_from_slice(payload);
    }
    out
}

#[test]
fn binary_message_formatter() {
    // §7.1 WriteMultipleMessages.
    assert_eq!(
        write_binary(&[b"", b"Hello,\r\nWorld!"]),
        hex("00 0e 48 65 6c 6c 6f 2c 0d 0a 57 6f 72 6c 64 21")
    );
    // §7.2 WriteBinaryMessage (3) and §7.3 WriteTextMessage (3).
    let mut long = vec![0x80, 0x01];
    long.extend(ascending(128));
    let cases: [(Vec<u8>, Vec<u8>); 6] = [
        (vec![], hex("00")),
        (ascending(128), long),
        (hex("ab cd ef 12"), hex("04 ab cd ef 12")),
        (b"".to_vec(), hex("00")),
        (b"ABC".to_vec(), hex("03 41 42 43")),
        (
            b"A\nR\rC\r\n;DEF".to_vec(),
            hex("0b 41 0a 52 0d 43 0d 0a 3b 44 45 46"),
        ),
    ];
    for (payload, encoded) in cases {
        assert_eq!(write_binary(&[&payload]), encoded, "{payload:02x?}");
    }

    // §7.4 RoundTrippingTest (7 sizes); the [derived] prefixes are checked too.
    let sizes = [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "80 01"),
        (16383, "ff 7f"),
        (16384, "80 80 01"),
        (49374, "de 81 03"),
    ];
    for (size, prefix) in sizes {
        let payload = ascending(size);
        let written = write_binary(&[&payload]);
        assert!(written.starts_with(&hex(prefix)), "prefix of {size}");
        let mut buf = BytesMut::from(written.as_slice());
        let frame = next_frame(TransferFormat::Binary, &mut buf, None)
            .unwrap()
            .expect("a frame");
        assert_eq!(frame.as_ref(), payload.as_slice(), "size {size}");
        assert!(buf.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// §8 Text framing (record separator)
// ---------------------------------------------------------------------------------------------

#[test]
fn text_message_parser_and_formatter() {
    // §8.1-§8.4: each input with the frames it yields before running out.
    let cases = [
        ("ABC\u{1e}", vec!["ABC"], ""),
        ("ABC", vec![], "ABC"),
        ("ABC\u{1e}XYZ\u{1e}", vec!["ABC", "XYZ"], ""),
        ("ABC\u{1e}XYZ\u{1e}123", vec!["ABC", "XYZ"], "123"),
    ];
    for (input, frames, rest) in cases {
        let mut buf = BytesMut::from(input.as_bytes());
        for frame in frames {
            let got = next_frame(TransferFormat::Text, &mut buf, None)
                .unwrap()
                .expect("a frame");
            assert_eq!(got.as_ref(), frame.as_bytes());
        }
        assert_eq!(
            next_frame(TransferFormat::Text, &mut buf, None).unwrap(),
            None
        );
        assert_eq!(
            buf.as_ref(),
            rest.as_bytes(),
            "unconsumed rest of {input:?}"
        );
    }
    // §8.5 WriteMessage: "ABC" + RecordSeparator.
    assert_eq!(RECORD_SEPARATOR, 0x1e);
    let mut out = b"ABC".to_vec();
    out.push(RECORD_SEPARATOR);
    assert_eq!(out, hex("41 42 43 1e"));
}

// ---------------------------------------------------------------------------------------------
// §9 NegotiateProtocolTests
// ---------------------------------------------------------------------------------------------

#[test]
fn negotiate_responses() {
    // §9.1 (13 vectors): connectionId, transports, url, accessToken, version, connectionToken.
    // .NET's null AvailableTransports (redirects) is an empty list here.
    type Expected<'a> = (
        Option<&'a str>,
        &'a [&'a str],
        Option<&'a str>,
        Option<&'a str>,
        i32,
        Option<&'a str>,
    );
    let cases: [(&str, Expected<'_>); 13] = [
        (
            r#"{"connectionId":"123","availableTransports":[]}"#,
            (Some("123"), &[], None, None, 0, None),
        ),
        (
            r#"{"connectionId":"","availableTransports":[]}"#,
            (Some(""), &[], None, None, 0, None),
        ),
        (
            r#"{"url": "http://foo.com/chat"}"#,
            (None, &[], Some("http://foo.com/chat"), None, 0, None),
        ),
        (
            r#"{"url": "http://foo.com/chat", "accessToken": "token"}"#,
            (
                None,
                &[],
                Some("http://foo.com/chat"),
                Some("token"),
                0,
                None,
            ),
        ),
        (
            r#"{"connectionId":"123","availableTransports":[{"transport":"test","transferFormats":[]}]}"#,
            (Some("123"), &["test"], None, None, 0, None),
        ),
        (
            r#"{"connectionId":"123","availableTransports":[{"\u0074ransport":"test","transferFormats":[]}]}"#,
            (Some("123"), &["test"], None, None, 0, None),
        ),
        (
            r#"{"negotiateVersion":123,"connectionId":"123","connectionToken":"789","availableTransports":[{"\u0074ransport":"test","transferFormats":[]}]}"#,
            (Some("123"), &["test"], None, None, 123, Some("789")),
        ),
        (
            r#"{"negotiateVersion":123,"negotiateVersion":321, "connectionToken":"789","connectionId":"123","availableTransports":[]}"#,
            (Some("123"), &[], None, None, 321, Some("789")),
        ),
        (
            r#"{"ignore":123,"negotiateVersion":123, "connectionToken":"789","connectionId":"123","availableTransports":[]}"#,
            (Some("123"), &[], None, None, 123, Some("789")),
        ),
        (
            r#"{"connectionId":"123","availableTransports":[],"negotiateVersion":123, "connectionToken":"789"}"#,
            (Some("123"), &[], None, None, 123, Some("789")),
        ),
        (
            r#"{"connectionId":"123","connectionToken":"789","availableTransports":[]}"#,
            (Some("123"), &[], None, None, 0, Some("789")),
        ),
        (
            r#"{"connectionToken":"789","connectionId":"123","availableTransports":[],"negotiateVersion":123}"#,
            (Some("123"), &[], None, None, 123, Some("789")),
        ),
        (
            r#"{"connectionToken":"789","connectionId":"123","availableTransports":[],"negotiateVersion":123, "connectionToken":"987"}"#,
            (Some("123"), &[], None, None, 123, Some("987")),
        ),
    ];
    for (input, expected) in cases {
        let r = NegotiateResponse::parse(input.as_bytes()).unwrap();
        let transports: Vec<&str> = r
            .available_transports
            .iter()
            .map(|t| t.transport.as_deref().unwrap_or("<null>"))
            .collect();
        let got = (
            r.connection_id.as_deref(),
            transports.as_slice(),
            r.url.as_deref(),
            r.access_token.as_deref(),
            r.negotiate_version,
            r.connection_token.as_deref(),
        );
        assert_eq!(got, expected, "{input}");
    }

    // §9.3 ParsingAspNetSignalRResponseThrowsError. .NET wraps it in "Invalid negotiation
    // response received."; this crate gives it its own variant, whose text is the inner one.
    let legacy = r#"{"Url":"/signalr","ConnectionToken":"X97dw3uxW4NPPggQsYVcNcyQcuz4w2","ConnectionId":"05265228-1e2c-46c5-82a1-6a5bcc3f0143","KeepAliveTimeout":10.0,"DisconnectTimeout":5.0,"TryWebSockets":true,"ProtocolVersion":"1.5","TransportConnectTimeout":30.0,"LongPollDelay":0.0}"#;
    let err = NegotiateResponse::parse(legacy.as_bytes()).unwrap_err();
    assert_eq!(err, ProtocolError::LegacyServer);
    assert_eq!(
        err.to_string(),
        "Detected a connection attempt to an ASP.NET SignalR Server. This client only supports connecting to an ASP.NET Core SignalR Server. See https://aka.ms/signalr-core-differences for details."
    );

    // §9.4 Write (2 vectors).
    assert_eq!(
        NegotiateResponse::default().to_bytes().as_ref(),
        br#"{"negotiateVersion":0,"availableTransports":[]}"#
    );
    let mut response = NegotiateResponse::default();
    response
        .available_transports
        .push(AvailableTransport::with_names(None, vec![]));
    assert_eq!(
        response.to_bytes().as_ref(),
        br#"{"negotiateVersion":0,"availableTransports":[{"transport":null,"transferFormats":[]}]}"#
    );
}

fn negotiate_error(input: &str) -> String {
    match NegotiateResponse::parse(input.as_bytes()) {
        Err(ProtocolError::InvalidNegotiateResponse(inner)) => inner,
        other => format!("not an InvalidNegotiateResponse: {other:?}"),
    }
}

#[test]
fn negotiate_invalid_responses() {
    // §9.2: 5 of 8 (the other 3 are in `negotiate_values_must_be_objects_and_arrays`).
    let cases = [
        (
            r#"{"availableTransports":[]}"#,
            "Missing required property 'connectionId'.",
        ),
        (
            r#"{"connectionId":123,"availableTransports":[]}"#,
            "Expected 'connectionId' to be of type String.",
        ),
        (
            r#"{"connectionId":"123","availableTransports":[{"transferFormats":[]}]}"#,
            "Missing required property 'transport'.",
        ),
        (
            r#"{"connectionId":"123","availableTransports":[{"transport":"test"}]}"#,
            "Missing required property 'transferFormats'.",
        ),
        (
            r#"{"connectionId":"123","negotiateVersion":123,"availableTransports":[]}"#,
            "Missing required property 'connectionToken'.",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(negotiate_error(input), expected, "{input}");
    }
}

// ---------------------------------------------------------------------------------------------
// §10 ServerSentEventsMessageFormatterTests
// ---------------------------------------------------------------------------------------------

#[test]
fn server_sent_events() {
    // §10 (6 vectors). The ...FromMultipleSegments variants do not apply: `write_sse_event`
    // takes one contiguous payload. Instead, [derived] the decoder is fed the output byte by
    // byte and must give back the payload, line breaks normalized to `\n` (none for an empty
    // payload, whose event has no data line).
    let cases: [(&[u8], &[u8]); 6] = [
        (b"", b"\r\n"),
        (b"Hello, World", b"data: Hello, World\r\n\r\n"),
        (b"Hello\r\nWorld", b"data: Hello\r\ndata: World\r\n\r\n"),
        (b"Hello\nWorld", b"data: Hello\r\ndata: World\r\n\r\n"),
        (b"Hello\n", b"data: Hello\r\ndata: \r\n\r\n"),
        (b"Hello\r\n", b"data: Hello\r\ndata: \r\n\r\n"),
    ];
    for (payload, expected) in cases {
        let mut out = BytesMut::new();
        write_sse_event(payload, &mut out);
        assert_eq!(
            out.as_ref(),
            expected,
            "{:?}",
            String::from_utf8_lossy(payload)
        );

        let mut decoder = SseDecoder::new(None);
        let mut events = Vec::new();
        for byte in expected {
            decoder.feed(&[*byte]);
            while let Some(event) = decoder.next_event().unwrap() {
                events.push(event);
            }
        }
        let normalized = String::from_utf8_lossy(payload).replace("\r\n", "\n");
        let want: Vec<&[u8]> = if payload.is_empty() {
            vec![]
        } else {
            vec![normalized.as_bytes()]
        };
        let got: Vec<&[u8]> = events.iter().map(AsRef::as_ref).collect();
        assert_eq!(got, want, "decode {:?}", String::from_utf8_lossy(payload));
    }
}

// ---------------------------------------------------------------------------------------------
// Reading order: the vectors that need ASP.NET Core's forward-only reading (first token,
// document order, sequential MessagePack fields), and the known differences.
// ---------------------------------------------------------------------------------------------

#[test]
fn json_frames_are_read_in_document_order() {
    // §1.3 vectors 1-3 and §2.1 vector 2: a frame that is valid JSON but not an object is
    // judged by its first token.
    for (input, expected) in [
        (
            "null",
            "Unexpected JSON Token Type 'Null'. Expected a JSON Object.",
        ),
        (
            r#""foo""#,
            "Unexpected JSON Token Type 'String'. Expected a JSON Object.",
        ),
        (
            "[42]",
            "Unexpected JSON Token Type 'Array'. Expected a JSON Object.",
        ),
        (
            "42",
            "Unexpected JSON Token Type 'Number'. Expected a JSON Object.",
        ),
        // [derived] The other tokens, and an array whose rest is not even read.
        (
            "true",
            "Unexpected JSON Token Type 'True'. Expected a JSON Object.",
        ),
        (
            "false",
            "Unexpected JSON Token Type 'False'. Expected a JSON Object.",
        ),
        (
            "[}",
            "Unexpected JSON Token Type 'Array'. Expected a JSON Object.",
        ),
        // [derived] A first token that is not well-formed is a syntax error.
        (r#""foo"#, "Error reading JSON."),
        ("nul", "Error reading JSON."),
        ("{", "Error reading JSON."),
    ] {
        assert_eq!(json_error(input), expected, "{input}");
    }

    // §1.3 vectors 5-8: the bad header is reported before the later syntax error
    // (`arguments:[]`, unquoted).
    for header in ["42", "true", "null", "[]"] {
        let input =
            format!(r#"{{"type":1,"headers":{{"Foo": {header}}},"target":"test",arguments:[]}}"#);
        assert_eq!(
            json_error(&input),
            "Expected header 'Foo' to be of type String.",
            "{input}"
        );
    }

    // §1.3 vector 10: a present property's type is checked before missing properties.
    assert_eq!(
        json_error(r#"{"type":1,"invocationId":42}"#),
        "Expected 'invocationId' to be of type String."
    );

    // [derived] Type errors come in document order, whatever the message type, each at the
    // value's first token (a malformed container after it is not read).
    for (input, expected) in [
        (
            r#"{"invocationId":42,"type":"foo"}"#,
            "Expected 'invocationId' to be of type String.",
        ),
        (
            r#"{"type":"foo","invocationId":42}"#,
            "Expected 'type' to be of type Number.",
        ),
        (
            r#"{"type":6,"target":42}"#,
            "Expected 'target' to be of type String.",
        ),
        (
            r#"{"type":99,"arguments":{}}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (
            r#"{"type":1,"target":[1,}"#,
            "Expected 'target' to be of type String.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":{"a":}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (
            r#"{"type":1,"headers":{"Foo":[1,}},"target":"T","arguments":[]}"#,
            "Expected header 'Foo' to be of type String.",
        ),
        (
            r#"{"type":1,"headers":[],"target":"T","arguments":[]}"#,
            "Expected 'headers' to be of type StartObject.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":[],"streamIds":{}}"#,
            "Expected 'streamIds' to be of type Array.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":[],"streamIds":["a",null,}"#,
            "Null value for 'streamIds' is not valid.",
        ),
        (
            r#"{"type":7,"allowReconnect":"yes"}"#,
            "Expected 'allowReconnect' to be of type Boolean.",
        ),
        // A syntax error before the bad property is reported first.
        (r#"{"type":1,x,"target":42}"#, "Error reading JSON."),
    ] {
        assert_eq!(json_error(input), expected, "{input}");
    }

    // §1.5 vector 8: only the first JSON value of the frame counts; what follows it is
    // ignored (as in the handshake). The stored upstream test expects a binding failure;
    // current JsonHubProtocol checks `target is null` first and throws this text.
    assert_eq!(
        json_error(
            r#"{"type":1,"arguments":[1,"",{"1":1,"2":2}]},"invocationId":"42","target":"foo""#
        ),
        "Missing required property 'target'."
    );
    // [derived] A complete message followed by anything parses.
    assert_eq!(
        parse_json(r#"{"type":6} trailing, "not JSON"#).unwrap(),
        HubMessage::Ping
    );
    assert_eq!(
        parse_json(r#"{"type":1,"target":"T","arguments":[1]}{"type":6}"#).unwrap(),
        inv(None, "T", vec![j(&1)], &[])
    );
}

#[test]
fn msgpack_fields_are_read_sequentially() {
    // §3.3 BaseInvalidPayloads: header keys and values, the declared array length, stream
    // ids.
    for (name, base64, expected) in [
        (
            "HeaderKeyInt",
            "kgGCKqNmb28=",
            "Reading 'headers[0].Key' as String failed.",
        ),
        (
            "HeaderValueInt",
            "kgGCo2Zvbyo=",
            "Reading 'headers[0].Value' as String failed.",
        ),
        (
            "HeaderKeyArray",
            "kgGEo2Zvb6Nmb2+Qo2Zvbw==",
            "Reading 'headers[1].Key' as String failed.",
        ),
        (
            "HeaderValueArray",
            "kgGEo2Zvb6Nmb2+jZm9vkA==",
            "Reading 'headers[1].Value' as String failed.",
        ),
        (
            "HeaderValueEmptyString",
            "kgGCo2Zvb6A=",
            "Null or empty value in header.",
        ),
        // The declared array length (1) is not checked against the fields read.
        (
            "InvocationIdBoolean",
            "kQGAwg==",
            "Reading 'invocationId' as String failed.",
        ),
        (
            "InvocationEmptyStringStreamId",
            "lgGAo2FiY6FUkaCRoA==",
            "Null or empty value in streamIds received.",
        ),
    ] {
        assert_eq!(mp_error(base64), expected, "§3.3 {name}");
    }

    // [derived] The same rules in hex.
    let mp_hex_error = |text: &str| match parse_mp(&hex(text)) {
        Ok(message) => format!("parsed: {message:?}"),
        Err(err) => err.to_string(),
    };
    for (input, expected) in [
        // The key is checked before the value is read.
        ("92 01 82 a0 2a", "Null or empty key in header."),
        ("92 01 82 c0 a1 78", "Null or empty key in header."),
        ("92 01 82 a1 78 c0", "Null or empty value in header."),
        // A frame that ends inside the headers.
        (
            "92 01 81 a1 78",
            "Reading 'headers[0].Value' as String failed.",
        ),
        // A nil stream id.
        (
            "96 01 80 a3 61 62 63 a1 54 90 91 c0",
            "Null or empty value in streamIds received.",
        ),
        // Fields past the declared length are read; reading past the frame fails.
        ("91 01 80 c0", "Reading 'target' as String failed."),
        ("91 03 80 a1 78", "Reading 'resultKind' as Int32 failed."),
        ("91 07", "Reading 'error' as String failed."),
        ("91 08", "Reading 'sequenceId' as Int64 failed."),
        ("90", "Reading 'messageType' as Int32 failed."),
    ] {
        assert_eq!(mp_hex_error(input), expected, "{input}");
    }
    // [derived] Required fields that are all present parse whatever the declared length;
    // the length only decides whether optional trailing fields are read.
    assert_eq!(parse_mp(&hex("90 06")).unwrap(), HubMessage::Ping);
    assert_eq!(parse_mp(&hex("92 05 80 a1 78")).unwrap(), cancel("x"));
    assert_eq!(
        parse_mp(&hex("91 01 80 c0 a1 54 90")).unwrap(),
        inv(None, "T", vec![], &[])
    );
    // Five elements: no stream ids are read, even when the frame holds them.
    assert_eq!(
        parse_mp(&hex("95 01 80 c0 a1 54 90 91 a1 73")).unwrap(),
        inv(None, "T", vec![], &[])
    );
    assert_eq!(
        parse_mp(&hex("96 01 80 c0 a1 54 90 91 a1 73")).unwrap(),
        inv(None, "T", vec![], &["s"])
    );
    // Two elements: no allowReconnect, even when the frame holds it.
    assert_eq!(parse_mp(&hex("92 07 c0 c3")).unwrap(), close(None, false));
    assert_eq!(parse_mp(&hex("93 07 c0 c3")).unwrap(), close(None, true));
}

#[test]
fn known_difference_msgpack_arguments_not_array() {
    // §3.4: a missing or non-array `arguments`. ASP.NET Core reads it inside its argument
    // binder, so the failure ("Reading array length for 'arguments' failed.") becomes an
    // InvocationBindingFailureMessage: the connection stays up and the caller gets a
    // Completion error. This crate keeps arguments raw and has no binding-failure message,
    // so the parse itself fails, with the text below.
    for (name, base64) in [
        ("InvocationArgumentArrayMissing", "lAGAo2FiY6N4eXo="),
        ("InvocationArgumentArrayNotAnArray", "lQGAo2FiY6N4eXoq"),
        ("StreamInvocationArgumentArrayMissing", "lASAo2FiY6N4eXo="),
        (
            "StreamInvocationArgumentArrayNotAnArray",
            "lQSAo2FiY6N4eXoq",
        ),
    ] {
        assert_eq!(
            mp_error(base64),
            "Reading 'arguments' as Array failed.",
            "§3.4 {name}"
        );
    }
}

#[test]
fn handshake_values_must_be_objects_and_strings() {
    let request_error = |input: &str| match parse_request(&framed_json(input)) {
        Ok(parsed) => format!("parsed: {parsed:?}"),
        Err(err) => err.to_string(),
    };
    let response_outcome = |input: &str| match parse_response(&framed_json(input)) {
        Ok(parsed) => format!("parsed: {parsed:?}"),
        Err(err) => err.to_string(),
    };
    // §5.4 vectors 1, 2, 3, 5 and §5.5 vectors 1-4: not a JSON object.
    for (input, expected) in [
        (
            "42",
            "Unexpected JSON Token Type 'Number'. Expected a JSON Object.",
        ),
        (
            r#""42""#,
            "Unexpected JSON Token Type 'String'. Expected a JSON Object.",
        ),
        (
            "null",
            "Unexpected JSON Token Type 'Null'. Expected a JSON Object.",
        ),
        (
            "[]",
            "Unexpected JSON Token Type 'Array'. Expected a JSON Object.",
        ),
    ] {
        assert_eq!(request_error(input), expected, "§5.4 request {input}");
        assert_eq!(response_outcome(input), expected, "§5.5 response {input}");
    }
    // §5.5 vector 5: a null error is not a string.
    assert_eq!(
        response_outcome(r#"{"error":null}"#),
        "Expected 'error' to be of type String."
    );
    // [derived] Properties are checked in document order, before later syntax errors.
    assert_eq!(
        request_error(r#"{"protocol":42,x}"#),
        "Expected 'protocol' to be of type String."
    );
    assert_eq!(
        response_outcome(r#"{"type":6,x}"#),
        "Expected a handshake response from the server."
    );
}

#[test]
fn handshake_empty_error_is_success() {
    // §5.2 vector 2: deliberately unlike ASP.NET Core. Its HandshakeProtocol keeps
    // `{"error":""}` as Error = "", and its .NET client then fails the handshake
    // (`message.Error != null`). The JavaScript client tests `if (error)`, so "" is success
    // there, and this crate follows it: an empty error reads as no error. (Servers never
    // send an empty error, and this crate's writer cannot.)
    let response = parse_response(&framed_json(r#"{"error":""}"#))
        .unwrap()
        .expect("complete");
    assert_eq!(response, HandshakeResponse::success());
    assert_eq!(HandshakeResponse::error("").to_bytes().as_ref(), b"{}\x1e");
}

#[test]
fn negotiate_values_must_be_objects_and_arrays() {
    // §9.2 vectors 1, 2 and 5 (inner exception texts).
    for (input, expected) in [
        (
            "null",
            "Unexpected JSON Token Type 'Null'. Expected a JSON Object.",
        ),
        (
            "[]",
            "Unexpected JSON Token Type 'Array'. Expected a JSON Object.",
        ),
        (
            r#"{"connectionId":"123","availableTransports":null}"#,
            "Unexpected JSON Token Type 'Null'. Expected a JSON Array.",
        ),
        // [derived] The other kinds, and `transferFormats`.
        (
            r#"{"connectionId":"123","availableTransports":{}}"#,
            "Unexpected JSON Token Type 'Object'. Expected a JSON Array.",
        ),
        (
            r#"{"connectionId":"123","availableTransports":"x"}"#,
            "Unexpected JSON Token Type 'String'. Expected a JSON Array.",
        ),
        (
            r#"{"connectionId":"123","availableTransports":[{"transport":"x","transferFormats":false}]}"#,
            "Unexpected JSON Token Type 'False'. Expected a JSON Array.",
        ),
    ] {
        assert_eq!(negotiate_error(input), expected, "§9.2 {input}");
    }
    // The wrapping text is the negotiate one.
    assert_eq!(
        NegotiateResponse::parse(b"42").unwrap_err().to_string(),
        "Invalid negotiation response received. Unexpected JSON Token Type 'Number'. Expected a JSON Object."
    );
}
