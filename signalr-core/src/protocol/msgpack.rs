//! The MessagePack hub protocol's message layouts.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::framing::write_varint;
use crate::message::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, Headers, HubMessage, Invocation,
    Sequence, StreamInvocation, StreamItem,
};
use crate::value::{Encoding, RawValue};

/// Returns the offset just past the MessagePack value that starts at `pos`, or `Err(())`
/// when the bytes end first or hold a reserved marker. Iterative, so nesting depth costs no
/// stack.
pub(crate) fn skip_value(buf: &[u8], mut pos: usize) -> Result<usize, ()> {
    fn be(buf: &[u8], pos: usize, n: usize) -> Result<usize, ()> {
        let bytes = buf.get(pos..pos.checked_add(n).ok_or(())?).ok_or(())?;
        Ok(bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
    }
    let mut remaining: u64 = 1;
    while remaining > 0 {
        remaining -= 1;
        let marker = *buf.get(pos).ok_or(())?;
        pos += 1;
        let skip = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
            0x80..=0x8f => {
                remaining += 2 * u64::from(marker & 0x0f);
                0
            }
            0x90..=0x9f => {
                remaining += u64::from(marker & 0x0f);
                0
            }
            0xa0..=0xbf => usize::from(marker & 0x1f),
            0xc4 | 0xd9 => 1 + be(buf, pos, 1)?,
            0xc5 | 0xda => 2 + be(buf, pos, 2)?,
            0xc6 | 0xdb => 4 + be(buf, pos, 4)?,
            0xc7 => 2 + be(buf, pos, 1)?,
            0xc8 => 3 + be(buf, pos, 2)?,
            0xc9 => 5 + be(buf, pos, 4)?,
            0xca => 4,
            0xcb => 8,
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xce | 0xd2 => 4,
            0xcf | 0xd3 => 8,
            0xd4 => 2,
            0xd5 => 3,
            0xd6 => 5,
            0xd7 => 9,
            0xd8 => 17,
            0xdc | 0xdd => {
                let n = if marker == 0xdc { 2 } else { 4 };
                remaining += be(buf, pos, n)? as u64;
                n
            }
            0xde | 0xdf => {
                let n = if marker == 0xde { 2 } else { 4 };
                remaining += 2 * be(buf, pos, n)? as u64;
                n
            }
            0xc1 => return Err(()),
        };
        pos = pos.checked_add(skip).ok_or(())?;
        if pos > buf.len() {
            return Err(());
        }
    }
    Ok(pos)
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.frame.get(self.pos).copied()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let frame: &'a [u8] = self.frame;
        let bytes = frame.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn array_len(&mut self) -> Option<u32> {
        let marker = self.peek()?;
        let len = match marker {
            0x90..=0x9f => {
                self.pos += 1;
                u64::from(marker & 0x0f)
            }
            0xdc => {
                self.pos += 1;
                self.be(2)?
            }
            0xdd => {
                self.pos += 1;
                self.be(4)?
            }
            _ => return None,
        };
        u32::try_from(len).ok()
    }

    fn map_len(&mut self) -> Option<u32> {
        let marker = self.peek()?;
        let len = match marker {
            0x80..=0x8f => {
                self.pos += 1;
                u64::from(marker & 0x0f)
            }
            0xde => {
                self.pos += 1;
                self.be(2)?
            }
            0xdf => {
                self.pos += 1;
                self.be(4)?
            }
            _ => return None,
        };
        u32::try_from(len).ok()
    }

    fn int(&mut self) -> Option<i64> {
        let marker = self.peek()?;
        self.pos += 1;
        let value = match marker {
            0x00..=0x7f => i64::from(marker),
            0xe0..=0xff => i64::from(marker as i8),
            0xcc => i64::try_from(self.be(1)?).ok()?,
            0xcd => i64::try_from(self.be(2)?).ok()?,
            0xce => i64::try_from(self.be(4)?).ok()?,
            0xcf => i64::try_from(self.be(8)?).ok()?,
            0xd0 => i64::from(i8::from_be_bytes(self.array()?)),
            0xd1 => i64::from(i16::from_be_bytes(self.array()?)),
            0xd2 => i64::from(i32::from_be_bytes(self.array()?)),
            0xd3 => i64::from_be_bytes(self.array()?),
            _ => {
                self.pos -= 1;
                return None;
            }
        };
        Some(value)
    }

    fn int32(&mut self, field: &'static str) -> Result<i64, ProtocolError> {
        self.int()
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or(ProtocolError::MessagePackField {
                field,
                expected: "Int32",
            })
    }

    /// A string or nil.
    fn str_or_nil(&mut self, field: &'static str) -> Result<Option<String>, ProtocolError> {
        let err = ProtocolError::MessagePackField {
            field,
            expected: "String",
        };
        let marker = self.peek().ok_or_else(|| err.clone())?;
        let len = match marker {
            0xc0 => {
                self.pos += 1;
                return Ok(None);
            }
            0xa0..=0xbf => {
                self.pos += 1;
                u64::from(marker & 0x1f)
            }
            0xd9..=0xdb => {
                self.pos += 1;
                let n = 1 << (marker - 0xd9);
                self.be(n).ok_or_else(|| err.clone())?
            }
            _ => return Err(err),
        };
        let len = usize::try_from(len).map_err(|_| err.clone())?;
        let bytes = self.take(len).ok_or_else(|| err.clone())?;
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| err)
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        let value = match self.peek() {
            Some(0xc2) => false,
            Some(0xc3) => true,
            _ => {
                return Err(ProtocolError::MessagePackField {
                    field,
                    expected: "Boolean",
                });
            }
        };
        self.pos += 1;
        Ok(value)
    }

    fn raw(&mut self, field: &'static str) -> Result<RawValue, ProtocolError> {
        let end =
            skip_value(self.frame, self.pos).map_err(|()| ProtocolError::MessagePackField {
                field,
                expected: "a value",
            })?;
        let value = RawValue::new_unchecked(Encoding::MessagePack, self.frame.slice(self.pos..end));
        self.pos = end;
        Ok(value)
    }

    /// One header key or value: a non-empty string.
    fn header_part(
        &mut self,
        index: usize,
        part: &'static str,
        empty: ProtocolError,
    ) -> Result<String, ProtocolError> {
        self.str_or_nil(part)
            .map_err(|_| ProtocolError::MessagePackHeaderField { index, part })?
            .filter(|s| !s.is_empty())
            .ok_or(empty)
    }

    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        let len = self.map_len().ok_or(ProtocolError::MessagePackHeaders)?;
        let mut headers = Headers::new();
        for index in 0..len as usize {
            let key = self.header_part(index, "Key", ProtocolError::EmptyHeader)?;
            let value = self.header_part(index, "Value", ProtocolError::EmptyHeaderValue)?;
            headers.insert(key, value);
        }
        Ok(headers)
    }

    fn arguments(&mut self) -> Result<Vec<RawValue>, ProtocolError> {
        let len = self.array_len().ok_or(ProtocolError::MessagePackField {
            field: "arguments",
            expected: "Array",
        })?;
        // Every argument takes at least one byte: cap the preallocation by what is left.
        let mut args = Vec::with_capacity((len as usize).min(self.frame.len() - self.pos));
        for _ in 0..len {
            args.push(self.raw("arguments")?);
        }
        Ok(args)
    }

    fn stream_ids(&mut self) -> Result<Vec<String>, ProtocolError> {
        let len = self.array_len().ok_or(ProtocolError::MessagePackField {
            field: "streamIds",
            expected: "Array",
        })?;
        let mut ids = Vec::with_capacity((len as usize).min(self.frame.len() - self.pos));
        for _ in 0..len {
            ids.push(
                self.str_or_nil("streamIds")?
                    .filter(|id| !id.is_empty())
                    .ok_or(ProtocolError::EmptyStreamId)?,
            );
        }
        Ok(ids)
    }

    fn required_id(&mut self, message: &'static str) -> Result<String, ProtocolError> {
        self.str_or_nil("invocationId")?
            .filter(|id| !id.is_empty())
            .ok_or(ProtocolError::EmptyInvocationId(message))
    }

    fn target(&mut self, message: &'static str) -> Result<String, ProtocolError> {
        self.str_or_nil("target")?
            .filter(|t| !t.is_empty())
            .ok_or(ProtocolError::EmptyTarget(message))
    }
}

/// Parses one MessagePack hub message (without its length prefix).
///
/// Fields are read one after another, as ASP.NET Core reads them: the array's declared
/// length only decides whether optional trailing fields are read (stream ids when it is 6
/// or more, `allowReconnect` when it is 3 or more), and a field that is missing because the
/// frame ends fails with that field's own error. Anything after the fields read is ignored.
pub(crate) fn parse(frame: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let mut r = Reader { frame, pos: 0 };
    let len = r.array_len().ok_or(ProtocolError::MessagePackField {
        field: "messageType",
        expected: "Int32",
    })?;
    let ty = r.int32("messageType")?;
    let message = match ty {
        1 | 4 => {
            let headers = r.headers()?;
            let kind = if ty == 1 {
                "Invocation"
            } else {
                "StreamInvocation"
            };
            let invocation_id = if ty == 1 {
                r.str_or_nil("invocationId")?.filter(|id| !id.is_empty())
            } else {
                Some(r.required_id(kind)?)
            };
            let target = r.target(kind)?;
            let arguments = r.arguments()?;
            // Clients before stream ids existed send five elements.
            let stream_ids = if len > 5 { r.stream_ids()? } else { Vec::new() };
            match invocation_id {
                Some(invocation_id) if ty == 4 => HubMessage::StreamInvocation(StreamInvocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                }),
                invocation_id => HubMessage::Invocation(Invocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                }),
            }
        }
        2 => {
            let headers = r.headers()?;
            let invocation_id = r.required_id("StreamItem")?;
            let item = r.raw("item")?;
            HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item,
            })
        }
        3 => {
            let headers = r.headers()?;
            let invocation_id = r.required_id("Completion")?;
            let result = match r.int32("resultKind")? {
                1 => CompletionResult::Error(r.str_or_nil("error")?.unwrap_or_default()),
                2 => CompletionResult::Void,
                3 => CompletionResult::Value(r.raw("result")?),
                _ => return Err(ProtocolError::InvalidResultKind),
            };
            HubMessage::Completion(Completion {
                headers,
                invocation_id,
                result,
            })
        }
        5 => {
            let headers = r.headers()?;
            let invocation_id = r.required_id("CancelInvocation")?;
            HubMessage::CancelInvocation(CancelInvocation {
                headers,
                invocation_id,
            })
        }
        6 => HubMessage::Ping,
        7 => {
            let error = r.str_or_nil("error")?;
            // Clients before stateful reconnect send two elements.
            let allow_reconnect = if len > 2 {
                r.bool("allowReconnect")?
            } else {
                false
            };
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }
        8 | 9 => {
            let sequence_id = r.int().ok_or(ProtocolError::MessagePackField {
                field: "sequenceId",
                expected: "Int64",
            })?;
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

/// Writes `message` with its VarInt length prefix.
pub(crate) fn write(message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
    const MAX_PREFIX: usize = 5;
    let start = out.len();
    out.put_bytes(0, MAX_PREFIX);
    if let Err(err) = write_body(message, out) {
        out.truncate(start);
        return Err(err);
    }
    let body_len = out.len() - start - MAX_PREFIX;
    let Some(len) = u32::try_from(body_len)
        .ok()
        .filter(|l| *l <= i32::MAX as u32)
    else {
        out.truncate(start);
        return Err(ProtocolError::LengthPrefixTooLarge);
    };
    let mut prefix = [0u8; MAX_PREFIX];
    let mut cursor = &mut prefix[..];
    write_varint(len, &mut cursor);
    let prefix_len = MAX_PREFIX - cursor.len();
    out.copy_within(start + MAX_PREFIX.., start + prefix_len);
    out[start..start + prefix_len].copy_from_slice(&prefix[..prefix_len]);
    out.truncate(start + prefix_len + body_len);
    Ok(())
}

fn put_array_len(out: &mut BytesMut, len: usize) -> Result<(), ProtocolError> {
    let len = u32::try_from(len).map_err(|_| ProtocolError::Serialize("array too long".into()))?;
    if let Some(small) = u8::try_from(len).ok().filter(|n| *n < 16) {
        out.put_u8(0x90 | small);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xdc);
        out.put_u16(len);
    } else {
        out.put_u8(0xdd);
        out.put_u32(len);
    }
    Ok(())
}

fn put_str(out: &mut BytesMut, s: &str) -> Result<(), ProtocolError> {
    let len =
        u32::try_from(s.len()).map_err(|_| ProtocolError::Serialize("string too long".into()))?;
    if let Some(small) = u8::try_from(len).ok().filter(|n| *n < 32) {
        out.put_u8(0xa0 | small);
    } else if let Ok(len) = u8::try_from(len) {
        out.put_u8(0xd9);
        out.put_u8(len);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xda);
        out.put_u16(len);
    } else {
        out.put_u8(0xdb);
        out.put_u32(len);
    }
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_int(out: &mut BytesMut, v: i64) {
    // rmp picks the smallest encoding, as MessagePack-CSharp does.
    let _ = rmp::encode::write_sint(&mut out.writer(), v);
}

fn put_headers(out: &mut BytesMut, headers: &Headers) -> Result<(), ProtocolError> {
    let len = u32::try_from(headers.len())
        .map_err(|_| ProtocolError::Serialize("too many headers".into()))?;
    if let Some(small) = u8::try_from(len).ok().filter(|n| *n < 16) {
        out.put_u8(0x80 | small);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xde);
        out.put_u16(len);
    } else {
        out.put_u8(0xdf);
        out.put_u32(len);
    }
    for (k, v) in headers.iter() {
        put_str(out, k)?;
        put_str(out, v)?;
    }
    Ok(())
}

fn put_value(out: &mut BytesMut, value: &RawValue) -> Result<(), ProtocolError> {
    value
        .write_as(Encoding::MessagePack, out)
        .map_err(|e| ProtocolError::Transcode(e.message().to_owned()))
}

fn put_call(
    out: &mut BytesMut,
    ty: u8,
    headers: &Headers,
    invocation_id: Option<&str>,
    target: &str,
    arguments: &[RawValue],
    stream_ids: &[String],
) -> Result<(), ProtocolError> {
    out.put_u8(0x96);
    out.put_u8(ty);
    put_headers(out, headers)?;
    match invocation_id.filter(|id| !id.is_empty()) {
        Some(id) => put_str(out, id)?,
        None => out.put_u8(0xc0),
    }
    put_str(out, target)?;
    put_array_len(out, arguments.len())?;
    for arg in arguments {
        put_value(out, arg)?;
    }
    put_array_len(out, stream_ids.len())?;
    for id in stream_ids {
        put_str(out, id)?;
    }
    Ok(())
}

fn write_body(message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
    match message {
        HubMessage::Invocation(m) => put_call(
            out,
            1,
            &m.headers,
            m.invocation_id.as_deref(),
            &m.target,
            &m.arguments,
            &m.stream_ids,
        )?,
        HubMessage::StreamInvocation(m) => put_call(
            out,
            4,
            &m.headers,
            Some(&m.invocation_id),
            &m.target,
            &m.arguments,
            &m.stream_ids,
        )?,
        HubMessage::StreamItem(m) => {
            out.put_slice(&[0x94, 0x02]);
            put_headers(out, &m.headers)?;
            put_str(out, &m.invocation_id)?;
            put_value(out, &m.item)?;
        }
        HubMessage::Completion(m) => {
            let len = if matches!(m.result, CompletionResult::Void) {
                0x94
            } else {
                0x95
            };
            out.put_slice(&[len, 0x03]);
            put_headers(out, &m.headers)?;
            put_str(out, &m.invocation_id)?;
            match &m.result {
                CompletionResult::Error(error) => {
                    out.put_u8(1);
                    put_str(out, error)?;
                }
                CompletionResult::Void => out.put_u8(2),
                CompletionResult::Value(result) => {
                    out.put_u8(3);
                    put_value(out, result)?;
                }
            }
        }
        HubMessage::CancelInvocation(m) => {
            out.put_slice(&[0x93, 0x05]);
            put_headers(out, &m.headers)?;
            put_str(out, &m.invocation_id)?;
        }
        HubMessage::Ping => out.put_slice(&[0x91, 0x06]),
        HubMessage::Close(m) => {
            out.put_slice(&[0x93, 0x07]);
            match m.error.as_deref().filter(|e| !e.is_empty()) {
                Some(error) => put_str(out, error)?,
                None => out.put_u8(0xc0),
            }
            out.put_u8(if m.allow_reconnect { 0xc3 } else { 0xc2 });
        }
        HubMessage::Ack(Ack { sequence_id }) => {
            out.put_slice(&[0x92, 0x08]);
            put_int(out, *sequence_id);
        }
        HubMessage::Sequence(Sequence { sequence_id }) => {
            out.put_slice(&[0x92, 0x09]);
            put_int(out, *sequence_id);
        }
    }
    Ok(())
}
