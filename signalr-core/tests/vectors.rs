//! Golden vectors from ASP.NET Core's protocol tests (the reference's Appendix A), checked in
//! both directions: our writer produces the upstream bytes, and our parser reads them back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::{Bytes, BytesMut};
use signalr_core::{
    Ack, CancelInvocation, Close, Completion, Encoding, Headers, HubMessage, HubProtocol,
    Invocation, JsonHubProtocol, MessagePackHubProtocol, MessageReader, ProtocolError, RawValue,
    Sequence, StreamInvocation, StreamItem,
};

fn json(v: impl serde::Serialize) -> RawValue {
    RawValue::encode(Encoding::Json, &v).unwrap()
}

fn mp(v: impl serde::Serialize) -> RawValue {
    RawValue::encode(Encoding::MessagePack, &v).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// Parses one framed message, requiring that it consumes the whole input.
fn parse_one(protocol: &dyn HubProtocol, framed: &[u8]) -> Result<HubMessage, ProtocolError> {
    let mut reader = MessageReader::new(protocol, None);
    reader.feed(framed);
    let message = reader.next_message()?.expect("a complete message");
    assert_eq!(reader.buffered(), 0, "trailing bytes");
    Ok(message)
}

fn json_both_ways(message: HubMessage, text: &str) {
    let protocol = JsonHubProtocol::new();
    let written = protocol.to_bytes(&message).unwrap();
    let mut expected = text.as_bytes().to_vec();
    expected.push(0x1e);
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(
        parse_one(&protocol, &expected).unwrap(),
        message,
        "parse {text}"
    );
}

/// MessagePack vectors are unframed in the upstream tests; frame them with the VarInt prefix.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    signalr_core::framing::write_varint(u32::try_from(body.len()).unwrap(), &mut out);
    out.extend_from_slice(body);
    out
}

fn msgpack_both_ways(message: HubMessage, body_hex: &str) {
    let protocol = MessagePackHubProtocol::new();
    let body = hex(body_hex);
    let written = protocol.to_bytes(&message).unwrap();
    assert_eq!(
        written.as_ref(),
        framed(&body).as_slice(),
        "write {message:?}"
    );
    assert_eq!(
        parse_one(&protocol, &framed(&body)).unwrap(),
        message,
        "parse {body_hex}"
    );
}

fn json_error(text: &str) -> String {
    let mut input = text.as_bytes().to_vec();
    input.push(0x1e);
    parse_one(&JsonHubProtocol::new(), &input)
        .unwrap_err()
        .to_string()
}

fn msgpack_error(body_hex: &str) -> String {
    parse_one(&MessagePackHubProtocol::new(), &framed(&hex(body_hex)))
        .unwrap_err()
        .to_string()
}

#[test]
fn a8_a9_json_invocations() {
    json_both_ways(
        Invocation::new("Target", vec![json(1), json("Foo")])
            .with_invocation_id("123")
            .into(),
        r#"{"type":1,"invocationId":"123","target":"Target","arguments":[1,"Foo"]}"#,
    );
    json_both_ways(
        Invocation::new("Target", vec![json(42)])
            .with_stream_ids(vec!["__test_id__".into()])
            .into(),
        r#"{"type":1,"target":"Target","arguments":[42],"streamIds":["__test_id__"]}"#,
    );
}

#[test]
fn a10_a11_json_items_and_completions() {
    json_both_ways(
        StreamItem::new("123", json(1)).into(),
        r#"{"type":2,"invocationId":"123","item":1}"#,
    );
    json_both_ways(
        Completion::with_result("123", json(1)).into(),
        r#"{"type":3,"invocationId":"123","result":1}"#,
    );
    json_both_ways(
        Completion::void("123").into(),
        r#"{"type":3,"invocationId":"123"}"#,
    );
    json_both_ways(
        Completion::with_error("123", "Whoops!").into(),
        r#"{"type":3,"invocationId":"123","error":"Whoops!"}"#,
    );
    // A null result is a result, not a void completion.
    json_both_ways(
        Completion::with_result("123", json(())).into(),
        r#"{"type":3,"invocationId":"123","result":null}"#,
    );
    json_both_ways(
        StreamItem::new("123", json(())).into(),
        r#"{"type":2,"invocationId":"123","item":null}"#,
    );
}

#[test]
fn a12_json_headers_with_newlines() {
    let headers: Headers = [
        ("Foo", "Bar"),
        ("KeyWith\nNew\r\nLines", "Still Works"),
        ("ValueWithNewLines", "Also\nWorks\r\nFine"),
    ]
    .into_iter()
    .collect();
    let mut cancel = CancelInvocation::new("123");
    cancel.headers = headers;
    json_both_ways(
        cancel.into(),
        r#"{"type":5,"headers":{"Foo":"Bar","KeyWith\nNew\r\nLines":"Still Works","ValueWithNewLines":"Also\nWorks\r\nFine"},"invocationId":"123"}"#,
    );
}

#[test]
fn a13_json_ping_and_close() {
    json_both_ways(HubMessage::Ping, r#"{"type":6}"#);
    json_both_ways(Close::default().into(), r#"{"type":7}"#);
    json_both_ways(
        Close::new(Some("Error!".into()), true).into(),
        r#"{"type":7,"error":"Error!","allowReconnect":true}"#,
    );
    json_both_ways(
        Close::new(None, true).into(),
        r#"{"type":7,"allowReconnect":true}"#,
    );
    json_both_ways(Ack::new(36).into(), r#"{"type":8,"sequenceId":36}"#);
    json_both_ways(Sequence::new(19).into(), r#"{"type":9,"sequenceId":19}"#);
    json_both_ways(
        StreamInvocation::new("1", "Counter", vec![json(10)]).into(),
        r#"{"type":4,"invocationId":"1","target":"Counter","arguments":[10]}"#,
    );
}

#[test]
fn a14_out_of_order_properties() {
    let protocol = JsonHubProtocol::new();
    let message = parse_one(
        &protocol,
        b"{ \"type\":3, \"result\": 10, \"invocationId\": \"15\" }\x1e",
    )
    .unwrap();
    let HubMessage::Completion(c) = message else {
        panic!()
    };
    assert_eq!(c.invocation_id, "15");
    let signalr_core::CompletionResult::Value(v) = c.result else {
        panic!()
    };
    assert_eq!(v.deserialize::<i32>().unwrap(), 10);
    // Arguments may come before the target.
    let message = parse_one(
        &protocol,
        b"{\"arguments\":[1,{\"a\":[2]}],\"type\":1,\"target\":\"T\",\"unknown\":{\"x\":[1,2]}}\x1e",
    )
    .unwrap();
    let HubMessage::Invocation(i) = message else {
        panic!()
    };
    assert_eq!(i.target, "T");
    assert_eq!(i.arguments[1].as_bytes(), br#"{"a":[2]}"#);
}

#[test]
fn a15_and_invalid_json_messages() {
    assert_eq!(
        json_error(r#"{"type":3,"invocationId":"42","error":"foo","result":true}"#),
        "The 'error' and 'result' properties are mutually exclusive."
    );
    let cases = [
        ("{}", "Missing required property 'type'."),
        (r#"{"type":"foo"}"#, "Expected 'type' to be of type Number."),
        (r#"{"type":1}"#, "Missing required property 'target'."),
        (
            r#"{"type":1,"target":"T"}"#,
            "Missing required property 'arguments'.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":{}}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (
            r#"{"type":2,"item":1}"#,
            "Missing required property 'invocationId'.",
        ),
        (
            r#"{"type":2,"invocationId":"1"}"#,
            "Missing required property 'item'.",
        ),
        (r#"{"type":3}"#, "Missing required property 'invocationId'."),
        (
            r#"{"type":4,"target":"T","arguments":[]}"#,
            "Missing required property 'invocationId'.",
        ),
        (r#"{"type":5}"#, "Missing required property 'invocationId'."),
        (r#"{"type":8}"#, "Missing required property 'sequenceId'."),
        (r#"{"type":9}"#, "Missing required property 'sequenceId'."),
        (
            r#"{"type":5,"invocationId":"1","headers":{"a":1}}"#,
            "Expected header 'a' to be of type String.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":[],"streamIds":[null]}"#,
            "Null value for 'streamIds' is not valid.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":[}"#,
            "Error reading JSON.",
        ),
        (
            "[1]",
            "Unexpected JSON Token Type 'Array'. Expected a JSON Object.",
        ),
        ("", "Error reading JSON."),
    ];
    for (input, expected) in cases {
        assert_eq!(json_error(input), expected, "{input}");
    }
}

#[test]
fn a16_a17_arguments_are_checked_by_the_caller() {
    // Binding happens where the method's parameter types are known: the parser keeps the
    // raw arguments, so a count or type mismatch is visible to the dispatcher.
    let protocol = JsonHubProtocol::new();
    let m = parse_one(
        &protocol,
        b"{\"type\":1,\"invocationId\":\"42\",\"target\":\"foo\",\"arguments\":[]}\x1e",
    )
    .unwrap();
    let HubMessage::Invocation(i) = m else {
        panic!()
    };
    assert_eq!(i.arguments.len(), 0);
    let m = parse_one(
        &protocol,
        b"{\"type\":1,\"invocationId\":\"42\",\"target\":\"foo\",\"arguments\":[ \"abc\", \"xyz\"]}\x1e",
    )
    .unwrap();
    let HubMessage::Invocation(i) = m else {
        panic!()
    };
    assert!(i.arguments[0].deserialize::<i32>().is_err());
    assert_eq!(i.arguments[1].deserialize::<String>().unwrap(), "xyz");
}

#[test]
fn a18_json_message_sizes() {
    let protocol = JsonHubProtocol::new();
    let size = |m: HubMessage| protocol.to_bytes(&m).unwrap().len();
    assert_eq!(size(Invocation::new("Target", vec![json(1)]).into()), 45);
    assert_eq!(size(Close::default().into()), 11);
    assert_eq!(size(Completion::void("1").into()), 30);
    assert_eq!(size(Completion::with_result("1", json(1)).into()), 41);
}

#[test]
fn a19_to_a21_msgpack_invocations() {
    msgpack_both_ways(
        Invocation::new("method", vec![])
            .with_invocation_id("xyz")
            .into(),
        "96 01 80 a3 78 79 7a a6 6d 65 74 68 6f 64 90 90",
    );
    msgpack_both_ways(
        Invocation::new("method", vec![mp(42)]).into(),
        "96 01 80 c0 a6 6d 65 74 68 6f 64 91 2a 90",
    );
    msgpack_both_ways(
        Invocation::new("Target", vec![])
            .with_stream_ids(vec!["__test_id__".into()])
            .into(),
        "96 01 80 c0 a6 54 61 72 67 65 74 90 91 ab 5f 5f 74 65 73 74 5f 69 64 5f 5f",
    );
}

#[test]
fn a22_to_a26_msgpack_items_completions_streams_cancels() {
    msgpack_both_ways(
        StreamItem::new("xyz", mp(42)).into(),
        "94 02 80 a3 78 79 7a 2a",
    );
    msgpack_both_ways(
        StreamItem::new("xyz", mp(42.0f32)).into(),
        "94 02 80 a3 78 79 7a ca 42 28 00 00",
    );
    msgpack_both_ways(
        Completion::with_error("xyz", "Error not found!").into(),
        "95 03 80 a3 78 79 7a 01 b0 45 72 72 6f 72 20 6e 6f 74 20 66 6f 75 6e 64 21",
    );
    msgpack_both_ways(Completion::void("xyz").into(), "94 03 80 a3 78 79 7a 02");
    msgpack_both_ways(
        Completion::with_result("xyz", mp(42)).into(),
        "95 03 80 a3 78 79 7a 03 2a",
    );
    msgpack_both_ways(
        StreamInvocation::new("xyz", "method", vec![mp(42)]).into(),
        "96 04 80 a3 78 79 7a a6 6d 65 74 68 6f 64 91 2a 90",
    );
    msgpack_both_ways(CancelInvocation::new("xyz").into(), "93 05 80 a3 78 79 7a");
}

#[test]
fn a27_a28_msgpack_ping_and_close() {
    assert_eq!(
        MessagePackHubProtocol::new()
            .to_bytes(&HubMessage::Ping)
            .unwrap()
            .as_ref(),
        [0x02, 0x91, 0x06]
    );
    msgpack_both_ways(HubMessage::Ping, "91 06");
    msgpack_both_ways(Close::default().into(), "93 07 c0 c2");
    msgpack_both_ways(
        Close::new(Some("Error!".into()), false).into(),
        "93 07 a6 45 72 72 6f 72 21 c2",
    );
    msgpack_both_ways(Close::new(None, true).into(), "93 07 c0 c3");
    msgpack_both_ways(
        Close::new(Some("Error!".into()), true).into(),
        "93 07 a6 45 72 72 6f 72 21 c3",
    );
    // Older peers send a two-element Close: allowReconnect is then false.
    let protocol = MessagePackHubProtocol::new();
    assert_eq!(
        parse_one(&protocol, &framed(&hex("92 07 c0"))).unwrap(),
        Close::default().into()
    );
}

#[test]
fn a29_msgpack_ack_and_sequence() {
    // The spec's examples use a uint8 encoding; MessagePack-CSharp (and we) write the
    // smallest one, and every integer width is accepted when reading.
    let protocol = MessagePackHubProtocol::new();
    assert_eq!(
        parse_one(&protocol, &framed(&hex("92 08 cc 24"))).unwrap(),
        Ack::new(36).into()
    );
    assert_eq!(
        parse_one(&protocol, &framed(&hex("92 09 cc 13"))).unwrap(),
        Sequence::new(19).into()
    );
    msgpack_both_ways(Ack::new(36).into(), "92 08 24");
    msgpack_both_ways(Sequence::new(19).into(), "92 09 13");
    msgpack_both_ways(Ack::new(180).into(), "92 08 cc b4");
    msgpack_both_ways(Ack::new(70000).into(), "92 08 ce 00 01 11 70");
}

#[test]
fn a30_msgpack_headers() {
    let headers: Headers = [("x", "y"), ("z", "z")].into_iter().collect();
    msgpack_both_ways(
        Invocation::new("method", vec![mp(42)])
            .with_invocation_id("xyz")
            .with_headers(headers)
            .into(),
        "96 01 82 a1 78 a1 79 a1 7a a1 7a a3 78 79 7a a6 6d 65 74 68 6f 64 91 2a 90",
    );
}

#[test]
fn a31_a32_msgpack_invalid() {
    assert_eq!(
        msgpack_error("91 a3 66 6f 6f"),
        "Reading 'messageType' as Int32 failed."
    );
    assert_eq!(
        msgpack_error("92 01 80"),
        "Reading 'invocationId' as String failed."
    );
    assert_eq!(
        msgpack_error("93 01 80 a3 78 79 7a"),
        "Reading 'target' as String failed."
    );
    assert_eq!(
        msgpack_error("95 03 80 a3 78 79 7a 04 2a"),
        "Invalid invocation result kind."
    );
    assert_eq!(
        msgpack_error("94 02 80 c0 2a"),
        "Null or empty invocation ID for StreamItem message."
    );
    assert_eq!(
        msgpack_error("95 01 80 c0 a0 90"),
        "Null or empty target for Invocation message."
    );
    assert_eq!(
        msgpack_error("93 05 81 a0 a1 78 a1 79"),
        "Null or empty key in header."
    );
    assert_eq!(
        msgpack_error("93 05 90 a1 78"),
        "Reading map length for 'headers' failed."
    );
    assert_eq!(
        msgpack_error("c0"),
        "Reading 'messageType' as Int32 failed."
    );
    assert_eq!(msgpack_error(""), "Reading 'messageType' as Int32 failed.");
    // A truncated argument inside the frame.
    assert!(
        parse_one(
            &MessagePackHubProtocol::new(),
            &framed(&hex("96 01 80 c0 a1 54 91 a5 61"))
        )
        .is_err()
    );
}

#[test]
fn a33_msgpack_extra_items_are_ignored() {
    let protocol = MessagePackHubProtocol::new();
    let body = hex("98 01 80 a3 78 79 7a a6 6d 65 74 68 6f 64 90 90 c3 a2 65 78");
    assert_eq!(
        parse_one(&protocol, &framed(&body)).unwrap(),
        Invocation::new("method", vec![])
            .with_invocation_id("xyz")
            .into()
    );
    // Five-element invocations from older clients have no stream ids.
    let body = hex("95 01 80 a3 78 79 7a a6 6d 65 74 68 6f 64 90");
    assert_eq!(
        parse_one(&protocol, &framed(&body)).unwrap(),
        Invocation::new("method", vec![])
            .with_invocation_id("xyz")
            .into()
    );
}

#[test]
fn unknown_message_types_are_skipped() {
    let mut reader = MessageReader::new(JsonHubProtocol::new(), Some(1024));
    reader.feed(b"{\"type\":99,\"x\":1}\x1e{\"type\":6}\x1e");
    assert_eq!(reader.next_message().unwrap(), Some(HubMessage::Ping));
    let mut reader = MessageReader::new(MessagePackHubProtocol::new(), Some(1024));
    reader.feed(&[0x02, 0x91, 0x63, 0x02, 0x91, 0x06]);
    assert_eq!(reader.next_message().unwrap(), Some(HubMessage::Ping));
}

#[test]
fn values_cross_protocols() {
    // A JSON client's argument forwarded to a MessagePack client, and back.
    let invocation: HubMessage =
        Invocation::new("Send", vec![json(serde_json::json!({"a": [1, "x", null]}))]).into();
    let packed = MessagePackHubProtocol::new().to_bytes(&invocation).unwrap();
    assert_eq!(
        packed.as_ref(),
        framed(&hex(
            "96 01 80 c0 a4 53 65 6e 64 91 81 a1 61 93 01 a1 78 c0 90"
        ))
        .as_slice()
    );
    let back = parse_one(&MessagePackHubProtocol::new(), &packed).unwrap();
    let text = JsonHubProtocol::new().to_bytes(&back).unwrap();
    assert_eq!(
        text.as_ref(),
        b"{\"type\":1,\"target\":\"Send\",\"arguments\":[{\"a\":[1,\"x\",null]}]}\x1e"
    );
}

#[test]
fn written_messages_are_shareable_bytes() {
    let protocol = JsonHubProtocol::new();
    let bytes: Bytes = protocol.to_bytes(&HubMessage::Ping).unwrap();
    let copies: Vec<Bytes> = (0..3).map(|_| bytes.clone()).collect();
    assert!(copies.iter().all(|c| c.as_ptr() == bytes.as_ptr()));
    // Writing several messages into one buffer, as a connection's writer does.
    let mut out = BytesMut::new();
    protocol.write_message(&HubMessage::Ping, &mut out).unwrap();
    protocol
        .write_message(&Ack::new(1).into(), &mut out)
        .unwrap();
    assert_eq!(
        out.as_ref(),
        b"{\"type\":6}\x1e{\"type\":8,\"sequenceId\":1}\x1e"
    );
}

#[test]
fn parsed_arguments_share_the_frame() {
    let frame =
        Bytes::from_static(b"{\"type\":1,\"target\":\"T\",\"arguments\":[\"a long argument\"]}");
    let HubMessage::Invocation(i) = JsonHubProtocol::new()
        .parse_frame(frame.clone())
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    let arg = i.arguments[0].as_bytes();
    let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    assert!(
        range.contains(&(arg.as_ptr() as usize)),
        "argument was copied"
    );
}

/// Invalid UTF-8 inside a JSON string fails the frame; after the object, where the reader
/// does not look, it is ignored, as everything else there is.
#[test]
fn json_invalid_utf8() {
    let protocol = JsonHubProtocol::new();
    let mut inside = br#"{"type":1,"target":"Ec"#.to_vec();
    inside.extend_from_slice(&[0xff, 0xfe]);
    inside.extend_from_slice(br#"ho","arguments":[]}"#);
    inside.push(0x1e);
    assert!(parse_one(&protocol, &inside).is_err());

    let mut after = br#"{"type":6} "#.to_vec();
    after.extend_from_slice(&[0xff, 0xfe]);
    after.push(0x1e);
    assert_eq!(parse_one(&protocol, &after).unwrap(), HubMessage::Ping);

    let mut in_argument = br#"{"type":1,"target":"Echo","arguments":[""#.to_vec();
    in_argument.extend_from_slice(&[0xc3, 0x28]);
    in_argument.extend_from_slice(br#""]}"#);
    in_argument.push(0x1e);
    assert!(parse_one(&protocol, &in_argument).is_err());
}
