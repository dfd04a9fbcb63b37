//! Pre-encoded SignalR frames (JSON and MessagePack) and the few reads the load generator
//! makes of what comes back: where records end, their message type, and the
//! `~seq,timestamp~` marker that fan-out payloads carry.

/// The hub protocol the generator speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Json,
    MessagePack,
}

/// SignalR message types the generator looks at.
pub(crate) const INVOCATION: u8 = 1;
pub(crate) const COMPLETION: u8 = 3;
pub(crate) const PING: u8 = 6;

impl Protocol {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "msgpack" | "messagepack" => Some(Self::MessagePack),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::MessagePack => "msgpack",
        }
    }

    /// The WebSocket opcode of data frames: text for JSON, binary for MessagePack.
    fn opcode(self) -> u8 {
        match self {
            Self::Json => 0x1,
            Self::MessagePack => 0x2,
        }
    }

    /// The handshake request, as a WebSocket frame.
    pub(crate) fn handshake(self) -> Vec<u8> {
        let text = match self {
            Self::Json => "{\"protocol\":\"json\",\"version\":1}\u{1e}",
            Self::MessagePack => "{\"protocol\":\"messagepack\",\"version\":1}\u{1e}",
        };
        ws_frame(self.opcode(), text.as_bytes())
    }

    /// A ping message, as a WebSocket frame.
    pub(crate) fn ping(self) -> Vec<u8> {
        match self {
            Self::Json => ws_frame(0x1, b"{\"type\":6}\x1e"),
            Self::MessagePack => ws_frame(0x2, &[0x02, 0x91, PING]),
        }
    }

    /// An invocation of `target` with string arguments, as a WebSocket frame. With an
    /// invocation id the server answers with a completion; without, it does not.
    pub(crate) fn invocation(self, id: Option<&str>, target: &str, args: &[&str]) -> Vec<u8> {
        let record = match self {
            Self::Json => {
                let mut s = String::from("{\"type\":1,");
                if let Some(id) = id {
                    s.push_str(&format!("\"invocationId\":{},", json_string(id)));
                }
                s.push_str(&format!(
                    "\"target\":{},\"arguments\":[",
                    json_string(target)
                ));
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&json_string(arg));
                }
                s.push_str("]}\u{1e}");
                s.into_bytes()
            }
            Self::MessagePack => {
                let mut body = Vec::with_capacity(32 + target.len());
                // [1, headers {}, invocation id, target, [arguments...], [stream ids]]
                body.extend_from_slice(&[0x96, INVOCATION, 0x80]);
                match id {
                    Some(id) => write_str(&mut body, id),
                    None => body.push(0xc0),
                }
                write_str(&mut body, target);
                write_array_len(&mut body, args.len());
                for arg in args {
                    write_str(&mut body, arg);
                }
                body.push(0x90);
                let mut record = Vec::with_capacity(body.len() + 5);
                write_varint(&mut record, body.len());
                record.extend_from_slice(&body);
                record
            }
        };
        ws_frame(self.opcode(), &record)
    }

    /// Splits whole records off the front of `data`, calling `f` with each, and returns how
    /// many bytes were consumed (the rest is an incomplete record).
    pub(crate) fn split_records(self, data: &[u8], f: &mut impl FnMut(&[u8])) -> usize {
        let mut pos = 0;
        match self {
            Self::Json => {
                while let Some(end) = data[pos..].iter().position(|&b| b == 0x1e) {
                    f(&data[pos..pos + end]);
                    pos += end + 1;
                }
            }
            Self::MessagePack => {
                while let Some((len, header)) = read_varint(&data[pos..]) {
                    let start = pos + header;
                    if data.len() - start < len {
                        break;
                    }
                    f(&data[start..start + len]);
                    pos = start + len;
                }
            }
        }
        pos
    }

    /// The message type of a record, 0 when it cannot be read.
    pub(crate) fn message_type(self, record: &[u8]) -> u8 {
        match self {
            Self::Json => find(record, b"\"type\":")
                .and_then(|i| record.get(i + 7..))
                .and_then(|rest| {
                    let rest = trim_start(rest);
                    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
                })
                .unwrap_or(0),
            Self::MessagePack => match record {
                [array, kind, ..] if array & 0xf0 == 0x90 && *kind < 0x80 => *kind,
                _ => 0,
            },
        }
    }
}

/// The payload that fan-out scenarios send: a sequence number and the intended send time
/// (nanoseconds since the generator started), between tildes.
pub(crate) fn marker(seq: u64, intended_ns: u64) -> String {
    format!("~{seq},{intended_ns}~")
}

/// Reads the `~seq,timestamp~` marker out of a record, whatever its protocol.
pub(crate) fn read_marker(record: &[u8]) -> Option<(u64, u64)> {
    let start = record.iter().position(|&b| b == b'~')? + 1;
    let rest = &record[start..];
    let end = rest.iter().position(|&b| b == b'~')?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let (seq, ts) = text.split_once(',')?;
    Some((seq.parse().ok()?, ts.parse().ok()?))
}

/// A client WebSocket frame (FIN set), masked with the all-zero key: the server unmasks it
/// as any other, and the generator does not spend time masking.
pub(crate) fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | u8::try_from(len).unwrap_or(0));
    } else if let Ok(len) = u16::try_from(len) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&len.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// A close frame with status 1000.
pub(crate) fn ws_close() -> Vec<u8> {
    ws_frame(0x8, &1000u16.to_be_bytes())
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(out, s);
}

fn write_array_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let _ = rmp::encode::write_array_len(out, len);
}

fn write_varint(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = u8::try_from(value & 0x7f).unwrap_or(0);
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The VarInt length prefix of a MessagePack record: (length, prefix bytes).
fn read_varint(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &byte) in data.iter().enumerate().take(5) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn trim_start(data: &[u8]) -> &[u8] {
    let skip = data.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &data[skip..]
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(protocol: Protocol, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        protocol.split_records(data, &mut |r| out.push(r.to_vec()));
        out
    }

    #[test]
    fn json_records_and_types() {
        let data = b"{\"type\":6}\x1e{\"type\":1,\"target\":\"Receive\",\"arguments\":[\"~3,99~\"]}\x1e{\"ty";
        let recs = records(Protocol::Json, data);
        assert_eq!(recs.len(), 2);
        assert_eq!(Protocol::Json.message_type(&recs[0]), PING);
        assert_eq!(Protocol::Json.message_type(&recs[1]), INVOCATION);
        assert_eq!(read_marker(&recs[1]), Some((3, 99)));
    }

    #[test]
    fn msgpack_invocation_round_trip() {
        let frame = Protocol::MessagePack.invocation(Some("1"), "Echo", &["~5,7~"]);
        // Client frame: 2 header bytes and a 4-byte mask before the payload.
        let payload = &frame[6..];
        let recs = records(Protocol::MessagePack, payload);
        assert_eq!(recs.len(), 1);
        assert_eq!(Protocol::MessagePack.message_type(&recs[0]), INVOCATION);
        assert_eq!(read_marker(&recs[0]), Some((5, 7)));
    }
}
