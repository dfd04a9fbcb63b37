//! Framing: the `0x1E` record separator (text), the VarInt length prefix (binary), the
//! incremental [`MessageReader`], and the Server-Sent Events `data:` encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::message::HubMessage;
use crate::protocol::{HubProtocol, TransferFormat};

/// The byte that ends every JSON message and every handshake: ASCII record separator.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The longest VarInt length prefix, in bytes.
const MAX_VARINT_LEN: usize = 5;

/// Appends the VarInt encoding of `len` (7 bits a byte, low group first).
pub fn write_varint(mut len: u32, out: &mut impl BufMut) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// Reads a VarInt length prefix from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` ends inside the prefix, and `Ok(Some((length,
/// prefix_len)))` otherwise. A length of 2 GiB or more is an error, as in ASP.NET Core.
pub fn read_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i == MAX_VARINT_LEN - 1 && byte > 7 {
                return Err(ProtocolError::LengthPrefixTooLarge);
            }
            let len = usize::try_from(value).map_err(|_| ProtocolError::LengthPrefixTooLarge)?;
            return Ok(Some((len, i + 1)));
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        return Err(ProtocolError::LengthPrefixTooLarge);
    }
    Ok(None)
}

/// Takes the next complete frame off the front of `buf`, without its framing (the `0x1E` or
/// the length prefix).
///
/// Returns `Ok(None)` when `buf` holds no complete frame yet; the caller reads more and calls
/// again. With a `limit`, a frame whose framed size exceeds it is an error as soon as that is
/// known: when a length prefix announces it, or when `limit` bytes arrived without a
/// separator. The caller's buffer therefore never has to hold more than `limit` bytes plus
/// one read.
pub fn next_frame(
    format: TransferFormat,
    buf: &mut BytesMut,
    limit: Option<usize>,
) -> Result<Option<Bytes>, ProtocolError> {
    let Some(at) = locate(format, buf, limit)? else {
        return Ok(None);
    };
    let mut frame = buf.split_to(at.consumed);
    frame.advance(at.start);
    frame.truncate(at.end - at.start);
    Ok(Some(frame.freeze()))
}

/// Where the next complete frame lies in a buffer.
struct FrameAt {
    /// The frame's content, without its framing.
    start: usize,
    end: usize,
    /// Bytes to take off the buffer's front: the frame and its framing.
    consumed: usize,
}

/// Finds the next complete frame at the front of `buf` (see [`next_frame`] for the limit).
fn locate(
    format: TransferFormat,
    buf: &[u8],
    limit: Option<usize>,
) -> Result<Option<FrameAt>, ProtocolError> {
    let incomplete = || match limit {
        Some(limit) if buf.len() >= limit => Err(ProtocolError::MessageTooLarge { limit }),
        _ => Ok(None),
    };
    match format {
        TransferFormat::Text => {
            let window = limit.map_or(buf.len(), |l| buf.len().min(l));
            match memchr::memchr(RECORD_SEPARATOR, &buf[..window]) {
                Some(pos) => Ok(Some(FrameAt {
                    start: 0,
                    end: pos,
                    consumed: pos + 1,
                })),
                None => incomplete(),
            }
        }
        TransferFormat::Binary => {
            let Some((len, prefix)) = read_varint(buf)? else {
                return incomplete();
            };
            let total = prefix.saturating_add(len);
            if let Some(limit) = limit {
                if total > limit {
                    return Err(ProtocolError::MessageTooLarge { limit });
                }
            }
            if buf.len() < total {
                return Ok(None);
            }
            Ok(Some(FrameAt {
                start: prefix,
                end: total,
                consumed: total,
            }))
        }
    }
}

/// Reassembles hub messages from a byte stream that arrives in pieces of any size.
///
/// Feed it whatever a transport delivers (a WebSocket frame, an SSE event, a poll or POST
/// body); take messages out until it returns `Ok(None)`. Messages of unknown types are
/// skipped, as ASP.NET Core's parsers do.
///
/// ```
/// use signalr_core::{HubMessage, JsonHubProtocol, MessageReader};
///
/// let mut reader = MessageReader::new(JsonHubProtocol::new(), Some(32 * 1024));
/// reader.feed(b"{\"type\":6}\x1e{\"ty");
/// assert_eq!(reader.next_message()?, Some(HubMessage::Ping));
/// assert_eq!(reader.next_message()?, None);
/// reader.feed(b"pe\":6}\x1e");
/// assert_eq!(reader.next_message()?, Some(HubMessage::Ping));
/// # Ok::<(), signalr_core::ProtocolError>(())
/// ```
#[derive(Debug)]
pub struct MessageReader<P> {
    protocol: P,
    /// A chunk given whole to [`MessageReader::feed_bytes`], parsed in place: its frames
    /// are slices of it, with no copy. When it ends in part of a frame, that part moves to
    /// `buf`. Never holds bytes while `buf` does.
    chunk: Bytes,
    buf: BytesMut,
    limit: Option<usize>,
}

impl<P: HubProtocol> MessageReader<P> {
    /// A reader for `protocol` that fails on any framed message larger than `limit` bytes.
    pub fn new(protocol: P, limit: Option<usize>) -> Self {
        Self {
            protocol,
            chunk: Bytes::new(),
            buf: BytesMut::new(),
            limit,
        }
    }

    /// The protocol this reader parses.
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.spill();
        self.buf.extend_from_slice(data);
    }

    /// Appends received bytes. When nothing is buffered, the frames in `data` are parsed
    /// in place, as slices of it: no copy, no allocation.
    pub fn feed_bytes(&mut self, data: Bytes) {
        if self.buf.is_empty() && self.chunk.is_empty() {
            self.chunk = data;
        } else {
            self.spill();
            self.buf.extend_from_slice(&data);
        }
    }

    /// Moves what is left of the chunk into the buffer, in front of anything fed later.
    fn spill(&mut self) {
        if !self.chunk.is_empty() {
            self.buf.extend_from_slice(&self.chunk);
            self.chunk = Bytes::new();
        }
    }

    /// Bytes received but not yet parsed into a message.
    pub fn buffered(&self) -> usize {
        self.chunk.len() + self.buf.len()
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed.
    ///
    /// After an error the stream is not recoverable: the connection should be closed.
    pub fn next_message(&mut self) -> Result<Option<HubMessage>, ProtocolError> {
        let format = self.protocol.transfer_format();
        loop {
            let frame = if self.chunk.is_empty() {
                match next_frame(format, &mut self.buf, self.limit)? {
                    Some(frame) => frame,
                    None => return Ok(None),
                }
            } else {
                match locate(format, &self.chunk, self.limit)? {
                    Some(at) => {
                        let frame = self.chunk.slice(at.start..at.end);
                        self.chunk.advance(at.consumed);
                        if self.chunk.is_empty() {
                            // Let go of the transport's buffer (the frames keep what they use).
                            self.chunk = Bytes::new();
                        }
                        frame
                    }
                    None => {
                        self.spill();
                        return Ok(None);
                    }
                }
            };
            if let Some(message) = self.protocol.parse_frame(frame)? {
                return Ok(Some(message));
            }
        }
    }
}

/// Appends one Server-Sent Events event carrying `payload`: each line becomes a
/// `data: ` line, a trailing `\r` on a line is dropped, and a blank line ends the event. An
/// empty payload is a lone `\r\n`.
pub fn write_sse_event(payload: &[u8], out: &mut BytesMut) {
    if !payload.is_empty() {
        for line in payload.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.reserve(line.len() + 8);
            out.put_slice(b"data: ");
            out.put_slice(line);
            out.put_slice(b"\r\n");
        }
    }
    out.put_slice(b"\r\n");
}

/// Decodes a Server-Sent Events stream into the data of each event, incrementally.
///
/// Lines may end in `\r\n`, `\n` or `\r`; `data:` lines are joined with `\n`; comment lines
/// (starting with `:`) and other fields are ignored.
///
/// ```
/// use signalr_core::SseDecoder;
///
/// let mut sse = SseDecoder::new(Some(1024));
/// sse.feed(b":\r\ndata: Hello\r\ndata: World\r\n");
/// assert_eq!(sse.next_event()?, None);
/// sse.feed(b"\r\n");
/// assert_eq!(sse.next_event()?.as_deref(), Some(&b"Hello\nWorld"[..]));
/// # Ok::<(), signalr_core::ProtocolError>(())
/// ```
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    data: BytesMut,
    has_data: bool,
    limit: Option<usize>,
    skip_lf: bool,
}

impl SseDecoder {
    /// A decoder that fails on a line or event larger than `limit` bytes.
    pub fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The data of the next complete event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
                self.skip_lf = false;
            }
            let Some(end) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if let Some(limit) = self.limit {
                    if self.buf.len() + self.data.len() > limit {
                        return Err(ProtocolError::MessageTooLarge { limit });
                    }
                }
                return Ok(None);
            };
            if let Some(limit) = self.limit {
                // The same rule whether the line arrived whole or in pieces.
                if end > limit {
                    return Err(ProtocolError::MessageTooLarge { limit });
                }
            }
            let line = self.buf.split_to(end);
            let terminator = self.buf[0];
            self.buf.advance(1);
            if terminator == b'\r' {
                self.skip_lf = true;
            }
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Ok(Some(self.data.split().freeze()));
                }
                continue;
            }
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.put_u8(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                if let Some(limit) = self.limit {
                    if self.data.len() > limit {
                        return Err(ProtocolError::MessageTooLarge { limit });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(len, &mut out);
        out
    }

    #[test]
    fn varint_vectors() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(11), [0x0b]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(5248), [0x80, 0x29]);
        assert_eq!(varint(0x7fff_ffff), [0xff, 0xff, 0xff, 0xff, 0x07]);
        for len in [0, 11, 127, 128, 5248, 0x7fff_ffff] {
            let bytes = varint(len);
            assert_eq!(
                read_varint(&bytes).unwrap(),
                Some((len as usize, bytes.len()))
            );
        }
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x08]),
            Err(ProtocolError::LengthPrefixTooLarge)
        );
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(ProtocolError::LengthPrefixTooLarge)
        );
        assert_eq!(read_varint(&[0x80, 0x80]).unwrap(), None);
        assert_eq!(read_varint(&[]).unwrap(), None);
    }

    #[test]
    fn binary_frames_a34_a35() {
        let mut out = BytesMut::new();
        for payload in [&b""[..], b"Hello,\r\nWorld!"] {
            write_varint(u32::try_from(payload.len()).unwrap(), &mut out);
            out.put_slice(payload);
        }
        assert_eq!(out.as_ref(), b"\x00\x0eHello,\r\nWorld!");
        assert_eq!(
            next_frame(TransferFormat::Binary, &mut out, None)
                .unwrap()
                .unwrap(),
            ""[..]
        );
        assert_eq!(
            next_frame(TransferFormat::Binary, &mut out, None)
                .unwrap()
                .unwrap(),
            "Hello,\r\nWorld!"[..]
        );
        assert!(out.is_empty());
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(4), [0x04]);
    }

    #[test]
    fn text_frames_split_and_limit() {
        let mut buf = BytesMut::from(&b"ab\x1ecd\x1eef"[..]);
        assert_eq!(
            next_frame(TransferFormat::Text, &mut buf, None)
                .unwrap()
                .unwrap(),
            "ab"[..]
        );
        assert_eq!(
            next_frame(TransferFormat::Text, &mut buf, None)
                .unwrap()
                .unwrap(),
            "cd"[..]
        );
        assert_eq!(
            next_frame(TransferFormat::Text, &mut buf, None).unwrap(),
            None
        );
        assert_eq!(buf.as_ref(), b"ef");

        // The framed message must fit in the limit, separator included.
        let mut buf = BytesMut::from(&b"abcd\x1e"[..]);
        assert_eq!(
            next_frame(TransferFormat::Text, &mut buf.clone(), Some(5))
                .unwrap()
                .unwrap(),
            "abcd"[..]
        );
        assert_eq!(
            next_frame(TransferFormat::Text, &mut buf, Some(4)),
            Err(ProtocolError::MessageTooLarge { limit: 4 })
        );
        let mut partial = BytesMut::from(&b"abcd"[..]);
        assert_eq!(
            next_frame(TransferFormat::Text, &mut partial.clone(), Some(5)).unwrap(),
            None
        );
        assert!(next_frame(TransferFormat::Text, &mut partial, Some(4)).is_err());
    }

    #[test]
    fn binary_limit_is_checked_from_the_prefix() {
        // Only the prefix has arrived, announcing 200 bytes: fail without waiting for them.
        let mut buf = BytesMut::from(&[0xc8, 0x01][..]);
        assert_eq!(
            next_frame(TransferFormat::Binary, &mut buf, Some(100)),
            Err(ProtocolError::MessageTooLarge { limit: 100 })
        );
        let mut buf = BytesMut::from(&[0x03, 1, 2, 3][..]);
        assert!(next_frame(TransferFormat::Binary, &mut buf.clone(), Some(3)).is_err());
        assert!(
            next_frame(TransferFormat::Binary, &mut buf, Some(4))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn sse_vectors_a36() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"", b"\r\n"),
            (b"Hello, World", b"data: Hello, World\r\n\r\n"),
            (b"Hello\nWorld", b"data: Hello\r\ndata: World\r\n\r\n"),
            (b"Hello\r\nWorld", b"data: Hello\r\ndata: World\r\n\r\n"),
            (b"Hello\n", b"data: Hello\r\ndata: \r\n\r\n"),
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
        }
    }

    #[test]
    fn sse_decoder_reads_what_the_writer_writes() {
        let mut out = BytesMut::from(&b":\r\n"[..]);
        write_sse_event(b"{\"type\":6}\x1e", &mut out);
        write_sse_event(b"a\nb", &mut out);
        let mut sse = SseDecoder::new(None);
        for byte in out.iter() {
            sse.feed(&[*byte]);
        }
        assert_eq!(sse.next_event().unwrap().unwrap(), b"{\"type\":6}\x1e"[..]);
        assert_eq!(sse.next_event().unwrap().unwrap(), b"a\nb"[..]);
        assert_eq!(sse.next_event().unwrap(), None);
    }
}
