//! The MessagePack payloads ASP.NET Core's Redis backplane publishes
//! (`RedisProtocol.cs`), written and read with `rmp`.
//!
//! Writers produce the bytes .NET produces (minimal integer widths, `bin` values); readers
//! accept any integer width and ignore trailing array items, as .NET's do.

use bytes::Bytes;

/// A payload that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Group command action, as .NET's `GroupAction` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupAction {
    Add = 1,
    Remove = 2,
}

/// An invocation for the all, group, user and connection channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisInvocation {
    /// Connection ids not to deliver to.
    pub(crate) excluded: Vec<String>,
    /// The framed message per hub-protocol name.
    pub(crate) serialized: Vec<(String, Bytes)>,
    /// For a client-result invocation: the invocation id and the return channel.
    pub(crate) client_result: Option<(String, String)>,
}

/// `[id, serverName, action, groupName, connectionId]` on the groups channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisGroupCommand {
    pub(crate) id: i32,
    pub(crate) server: String,
    pub(crate) action: GroupAction,
    pub(crate) group: String,
    pub(crate) connection_id: String,
}

/// `[protocolName, bin]` on a return channel: a client's completion, framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisCompletion {
    pub(crate) protocol: String,
    pub(crate) bytes: Bytes,
}

// Writing into a Vec<u8> cannot fail: every rmp write below returns a Result only for the
// writer's I/O error, which a Vec never has.

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = rmp::encode::write_str(out, s);
}

fn write_int(out: &mut Vec<u8>, value: i32) {
    // MessagePack-CSharp's WriteInt32 picks the smallest encoding, unsigned for
    // non-negative values (180 is `CC B4`, not `D0`/`D1`).
    match u64::try_from(value) {
        Ok(unsigned) => {
            let _ = rmp::encode::write_uint(out, unsigned);
        }
        Err(_) => {
            let _ = rmp::encode::write_sint(out, i64::from(value));
        }
    }
}

fn write_len(out: &mut Vec<u8>, len: usize, write: fn(&mut Vec<u8>, u32)) {
    // Lengths past u32::MAX cannot be represented in MessagePack at all; nothing this crate
    // publishes comes near (Redis caps a value at 512 MB).
    write(out, u32::try_from(len).unwrap_or(u32::MAX));
}

fn array_len(out: &mut Vec<u8>, len: u32) {
    let _ = rmp::encode::write_array_len(out, len);
}

fn map_len(out: &mut Vec<u8>, len: u32) {
    let _ = rmp::encode::write_map_len(out, len);
}

impl RedisInvocation {
    /// `[excluded, {protocol: bin}]`, or the 4-element client-result form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let size: usize = self
            .serialized
            .iter()
            .map(|(n, b)| n.len() + b.len() + 10)
            .sum();
        let mut out = Vec::with_capacity(size + 16);
        array_len(&mut out, if self.client_result.is_some() { 4 } else { 2 });
        write_len(&mut out, self.excluded.len(), array_len);
        for id in &self.excluded {
            write_str(&mut out, id);
        }
        write_len(&mut out, self.serialized.len(), map_len);
        for (protocol, bytes) in &self.serialized {
            write_str(&mut out, protocol);
            let _ = rmp::encode::write_bin(&mut out, bytes);
        }
        if let Some((invocation_id, return_channel)) = &self.client_result {
            write_str(&mut out, invocation_id);
            write_str(&mut out, return_channel);
        }
        out
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut rd = Reader::new(data);
        let len = rd.array(2, "Invocation")?;
        let count = rd.array_len()?;
        let mut excluded = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            excluded.push(rd.string()?);
        }
        let count = rd.map_len()?;
        let mut serialized = Vec::with_capacity(count.min(16) as usize);
        for _ in 0..count {
            let protocol = rd.string()?;
            let bytes = rd.bin()?;
            serialized.push((protocol, Bytes::copy_from_slice(bytes)));
        }
        let client_result = if len >= 4 {
            let invocation_id = rd.string()?;
            let return_channel = rd.string()?;
            Some((invocation_id, return_channel))
        } else {
            None
        };
        Ok(Self {
            excluded,
            serialized,
            client_result,
        })
    }
}

impl RedisGroupCommand {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.server.len() + self.group.len());
        array_len(&mut out, 5);
        write_int(&mut out, self.id);
        write_str(&mut out, &self.server);
        let _ = rmp::encode::write_uint(&mut out, self.action as u64);
        write_str(&mut out, &self.group);
        write_str(&mut out, &self.connection_id);
        out
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut rd = Reader::new(data);
        rd.array(5, "GroupCommand")?;
        let id = rd.int()?;
        let server = rd.string()?;
        let action = match rd.int()? {
            1 => GroupAction::Add,
            2 => GroupAction::Remove,
            other => return Err(DecodeError(format!("Unknown group action {other}."))),
        };
        let group = rd.string()?;
        let connection_id = rd.string()?;
        Ok(Self {
            id,
            server,
            action,
            group,
            connection_id,
        })
    }
}

/// `[id]` on an ack channel.
pub(crate) fn encode_ack(id: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    array_len(&mut out, 1);
    write_int(&mut out, id);
    out
}

pub(crate) fn decode_ack(data: &[u8]) -> Result<i32, DecodeError> {
    let mut rd = Reader::new(data);
    rd.array(1, "Ack")?;
    rd.int()
}

impl RedisCompletion {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.protocol.len() + self.bytes.len() + 10);
        array_len(&mut out, 2);
        write_str(&mut out, &self.protocol);
        let _ = rmp::encode::write_bin(&mut out, &self.bytes);
        out
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut rd = Reader::new(data);
        rd.array(2, "CompletionMessage")?;
        let protocol = rd.string()?;
        let bytes = Bytes::copy_from_slice(rd.bin()?);
        Ok(Self { protocol, bytes })
    }
}

/// A cursor over a payload.
struct Reader<'a> {
    data: &'a [u8],
}

fn err(what: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError(format!("Reading '{what}' failed: {e}"))
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The outer array header, with at least `min` items.
    fn array(&mut self, min: u32, kind: &str) -> Result<u32, DecodeError> {
        let len = self.array_len()?;
        if len < min {
            return Err(DecodeError(format!("Insufficient items in {kind} array.")));
        }
        Ok(len)
    }

    fn array_len(&mut self) -> Result<u32, DecodeError> {
        rmp::decode::read_array_len(&mut self.data).map_err(|e| err("array", e))
    }

    fn map_len(&mut self) -> Result<u32, DecodeError> {
        rmp::decode::read_map_len(&mut self.data).map_err(|e| err("map", e))
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        rmp::decode::read_int(&mut self.data).map_err(|e| err("int", e))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = rmp::decode::read_str_len(&mut self.data).map_err(|e| err("str", e))?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| err("str", e))
    }

    fn bin(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = rmp::decode::read_bin_len(&mut self.data).map_err(|e| err("bin", e))?;
        self.take(len)
    }

    fn take(&mut self, len: u32) -> Result<&'a [u8], DecodeError> {
        let len = len as usize;
        if self.data.len() < len {
            return Err(DecodeError("Unexpected end of payload.".to_owned()));
        }
        let (head, tail) = self.data.split_at(len);
        self.data = tail;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(excluded: &[&str]) -> RedisInvocation {
        RedisInvocation {
            excluded: excluded.iter().map(|s| (*s).to_owned()).collect(),
            serialized: vec![
                ("p1".to_owned(), Bytes::from_static(&[0x2A])),
                ("p2".to_owned(), Bytes::from_static(&[0x2A])),
            ],
            client_result: None,
        }
    }

    // A41: RedisProtocolTests ack vectors.
    #[test]
    fn ack_vectors_both_ways() {
        let vectors: [(i32, &[u8]); 5] = [
            (0, &[0x91, 0x00]),
            (42, &[0x91, 0x2A]),
            (180, &[0x91, 0xCC, 0xB4]),
            (384, &[0x91, 0xCD, 0x01, 0x80]),
            (70_000, &[0x91, 0xCE, 0x00, 0x01, 0x11, 0x70]),
        ];
        for (id, bytes) in vectors {
            assert_eq!(encode_ack(id), bytes, "write {id}");
            assert_eq!(decode_ack(bytes), Ok(id), "read {id}");
        }
    }

    #[test]
    fn ack_reader_accepts_any_int_width_and_extra_items() {
        // 42 as int32 (D2) and as uint64 (CF), with a trailing item.
        assert_eq!(decode_ack(&[0x91, 0xD2, 0, 0, 0, 42]), Ok(42));
        assert_eq!(
            decode_ack(&[0x92, 0xCF, 0, 0, 0, 0, 0, 0, 0, 42, 0xC0]),
            Ok(42)
        );
        assert_eq!(
            decode_ack(&[0x90]),
            Err(DecodeError("Insufficient items in Ack array.".into()))
        );
    }

    // A42.
    #[test]
    fn group_command_vectors_both_ways() {
        for (action, byte) in [(GroupAction::Add, 0x01), (GroupAction::Remove, 0x02)] {
            let command = RedisGroupCommand {
                id: 42,
                server: "S".into(),
                action,
                group: "G".into(),
                connection_id: "C".into(),
            };
            let bytes = [0x95, 0x2A, 0xA1, b'S', byte, 0xA1, b'G', 0xA1, b'C'];
            assert_eq!(command.encode(), bytes);
            assert_eq!(RedisGroupCommand::decode(&bytes), Ok(command));
        }
    }

    #[test]
    fn group_command_reader_tolerates_widths_and_extras() {
        // id as int16 (D1), action as uint8 (CC), one extra item.
        let bytes = [
            0x96, 0xD1, 0x01, 0x80, 0xA1, b'S', 0xCC, 0x02, 0xA1, b'G', 0xA1, b'C', 0xC3,
        ];
        let command = RedisGroupCommand::decode(&bytes).unwrap();
        assert_eq!(command.id, 384);
        assert_eq!(command.action, GroupAction::Remove);
        assert_eq!(command.connection_id, "C");
        assert!(RedisGroupCommand::decode(&[0x94, 1, 0xA1, b'S', 1, 0xA1, b'G']).is_err());
    }

    // A43, A44 and upstream's ManyExcludedIds.
    #[test]
    fn invocation_vectors_both_ways() {
        let map = [
            0x82, 0xA2, b'p', b'1', 0xC4, 0x01, 0x2A, 0xA2, b'p', b'2', 0xC4, 0x01, 0x2A,
        ];
        let cases: [(&[&str], Vec<u8>); 3] = [
            (&[], [&[0x92, 0x90][..], &map].concat()),
            (&["a"], [&[0x92, 0x91, 0xA1, b'a'][..], &map].concat()),
            (
                &["a", "b", "c", "d", "e", "f"],
                [
                    &[
                        0x92, 0x96, 0xA1, b'a', 0xA1, b'b', 0xA1, b'c', 0xA1, b'd', 0xA1, b'e',
                        0xA1, b'f',
                    ][..],
                    &map,
                ]
                .concat(),
            ),
        ];
        for (excluded, bytes) in cases {
            let message = invocation(excluded);
            assert_eq!(message.encode(), bytes, "write {excluded:?}");
            assert_eq!(
                RedisInvocation::decode(&bytes),
                Ok(message),
                "read {excluded:?}"
            );
        }
    }

    #[test]
    fn invocation_client_result_form_both_ways() {
        let mut message = invocation(&[]);
        message.client_result = Some(("id".into(), "R".into()));
        let bytes = [
            &[0x94, 0x90][..],
            &[
                0x82, 0xA2, b'p', b'1', 0xC4, 0x01, 0x2A, 0xA2, b'p', b'2', 0xC4, 0x01, 0x2A,
            ],
            &[0xA2, b'i', b'd', 0xA1, b'R'],
        ]
        .concat();
        assert_eq!(message.encode(), bytes);
        assert_eq!(RedisInvocation::decode(&bytes), Ok(message));
    }

    #[test]
    fn invocation_reader_ignores_a_third_item_and_rejects_short_arrays() {
        // Three items: not the client-result form; the extra item is ignored.
        let bytes = [0x93, 0x90, 0x80, 0xC0];
        let message = RedisInvocation::decode(&bytes).unwrap();
        assert!(message.client_result.is_none() && message.serialized.is_empty());
        assert_eq!(
            RedisInvocation::decode(&[0x91, 0x90]),
            Err(DecodeError(
                "Insufficient items in Invocation array.".into()
            ))
        );
        // Truncated bin.
        assert!(RedisInvocation::decode(&[0x92, 0x90, 0x81, 0xA1, b'p', 0xC4, 0x05, 1]).is_err());
    }

    // A45.
    #[test]
    fn json_completion_vector_both_ways() {
        let json = br#"{"type":3,"invocationId":"1","result":1}"#;
        assert_eq!(json.len(), 40);
        let completion = RedisCompletion {
            protocol: "json".into(),
            bytes: Bytes::from_static(json),
        };
        let bytes = [
            &[0x92, 0xA4, b'j', b's', b'o', b'n', 0xC4, 0x28][..],
            &json[..],
        ]
        .concat();
        assert_eq!(completion.encode(), bytes);
        assert_eq!(RedisCompletion::decode(&bytes), Ok(completion));
    }

    // A46.
    #[test]
    fn messagepack_completion_vector_both_ways() {
        let completion = RedisCompletion {
            protocol: "messagepack".into(),
            bytes: Bytes::from_static(&[0x95, 0x03, 0x80, 0xA3, 0x78, 0x79, 0x7A, 0x03, 0x2A]),
        };
        let bytes = [
            0x92, 0xAB, 0x6D, 0x65, 0x73, 0x73, 0x61, 0x67, 0x65, 0x70, 0x61, 0x63, 0x6B, 0xC4,
            0x09, 0x95, 0x03, 0x80, 0xA3, 0x78, 0x79, 0x7A, 0x03, 0x2A,
        ];
        assert_eq!(completion.encode(), bytes);
        assert_eq!(RedisCompletion::decode(&bytes), Ok(completion));
    }

    #[test]
    fn long_strings_and_bins_use_wider_headers() {
        let id = "x".repeat(40);
        let message = RedisInvocation {
            excluded: vec![id],
            serialized: vec![("json".into(), Bytes::from(vec![b'a'; 300]))],
            client_result: None,
        };
        let bytes = message.encode();
        // str8 for a 40-byte string, bin16 for 300 bytes.
        assert_eq!(&bytes[..4], &[0x92, 0x91, 0xD9, 40]);
        assert!(bytes.windows(3).any(|w| w == [0xC5, 0x01, 0x2C]));
        assert_eq!(RedisInvocation::decode(&bytes), Ok(message));
    }
}
