//! Values in their wire form, and the serde helpers for MessagePack's `bin` and timestamps.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::error::ValueError;
use crate::protocol::msgpack::skip_value;

/// How a [`RawValue`] is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// UTF-8 JSON text, as the `json` hub protocol carries it.
    Json,
    /// MessagePack, as the `messagepack` hub protocol carries it.
    MessagePack,
}

/// One argument, stream item or result, kept in the encoding it arrived in.
///
/// Parsing a hub message does not build a generic value tree: each argument is a cheap slice
/// of the received frame ([`Bytes`]), deserialized only when a caller asks for its own type
/// with [`RawValue::deserialize`]. Writing a message copies a value verbatim when the target
/// protocol uses the same encoding, and transcodes it (without a value tree) otherwise.
///
/// ```
/// use signalr_core::{Encoding, RawValue};
///
/// let value = RawValue::encode(Encoding::Json, &vec![1, 2, 3])?;
/// assert_eq!(value.as_bytes(), b"[1,2,3]");
/// let back: Vec<u8> = value.deserialize()?;
/// assert_eq!(back, [1, 2, 3]);
///
/// let packed = value.to_encoding(Encoding::MessagePack)?;
/// assert_eq!(packed.as_bytes(), [0x93, 1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawValue {
    encoding: Encoding,
    bytes: Bytes,
}

impl RawValue {
    /// Serializes `value` with the given encoding.
    ///
    /// MessagePack uses the conventions of ASP.NET Core's MessagePack protocol: structs are
    /// maps keyed by field name, unit enum variants are strings. Use [`Binary`] for byte
    /// arrays and [`Timestamp`] for instants to get `bin` and the timestamp extension.
    pub fn encode<T: Serialize + ?Sized>(
        encoding: Encoding,
        value: &T,
    ) -> Result<Self, ValueError> {
        // Most arguments are small; starting with room for them avoids growing the buffer
        // through many tiny serializer writes.
        let mut buf = BytesMut::with_capacity(64);
        write_value(encoding, value, &mut buf)?;
        Ok(Self {
            encoding,
            bytes: buf.freeze(),
        })
    }

    /// A JSON `null` or MessagePack `nil`.
    pub fn null(encoding: Encoding) -> Self {
        let bytes = match encoding {
            Encoding::Json => Bytes::from_static(b"null"),
            Encoding::MessagePack => Bytes::from_static(&[0xc0]),
        };
        Self { encoding, bytes }
    }

    /// Wraps bytes that hold exactly one JSON value, checking that they do.
    pub fn from_json(bytes: impl Into<Bytes>) -> Result<Self, ValueError> {
        let bytes = bytes.into();
        serde_json::from_slice::<de::IgnoredAny>(&bytes)?;
        Ok(Self::new_unchecked(Encoding::Json, bytes))
    }

    /// Wraps bytes that hold exactly one MessagePack value, checking that they do.
    pub fn from_msgpack(bytes: impl Into<Bytes>) -> Result<Self, ValueError> {
        let bytes = bytes.into();
        match skip_value(&bytes, 0) {
            Ok(end) if end == bytes.len() => Ok(Self::new_unchecked(Encoding::MessagePack, bytes)),
            Ok(_) => Err(ValueError::new("trailing bytes after a MessagePack value")),
            Err(_) => Err(ValueError::new("malformed MessagePack value")),
        }
    }

    pub(crate) fn new_unchecked(encoding: Encoding, bytes: Bytes) -> Self {
        Self { encoding, bytes }
    }

    /// The value's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Whether this is JSON `null` or MessagePack `nil`.
    pub fn is_null(&self) -> bool {
        match self.encoding {
            Encoding::Json => self.bytes.as_ref() == b"null",
            Encoding::MessagePack => self.bytes.as_ref() == [0xc0],
        }
    }

    /// Deserializes the value into `T`.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ValueError> {
        match self.encoding {
            Encoding::Json => Ok(serde_json::from_slice(&self.bytes)?),
            Encoding::MessagePack => {
                let mut de = msgpack_deserializer(&self.bytes);
                Ok(Deserialize::deserialize(&mut de)?)
            }
        }
    }

    /// Deserializes the value into an owned `T`.
    pub fn deserialize_owned<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        self.deserialize()
    }

    /// The same value in another encoding, transcoded without a value tree. Returns a cheap
    /// clone when the encoding is already the requested one.
    ///
    /// MessagePack `bin` becomes a JSON array of numbers, since JSON has no byte strings.
    pub fn to_encoding(&self, encoding: Encoding) -> Result<RawValue, ValueError> {
        if encoding == self.encoding {
            return Ok(self.clone());
        }
        let mut buf = BytesMut::with_capacity(self.bytes.len() + 8);
        self.write_as(encoding, &mut buf)?;
        Ok(RawValue::new_unchecked(encoding, buf.freeze()))
    }

    /// Appends the value to `out` in `encoding`, transcoding when needed.
    pub(crate) fn write_as(
        &self,
        encoding: Encoding,
        out: &mut BytesMut,
    ) -> Result<(), ValueError> {
        match (self.encoding, encoding) {
            (a, b) if a == b => {
                out.extend_from_slice(&self.bytes);
                Ok(())
            }
            (Encoding::Json, Encoding::MessagePack) => {
                let mut de = serde_json::Deserializer::from_slice(&self.bytes);
                let mut se = msgpack_serializer(out);
                serde_transcode::transcode(&mut de, &mut se)?;
                Ok(())
            }
            (Encoding::MessagePack, Encoding::Json) => {
                let mut de = msgpack_deserializer(&self.bytes);
                let mut se = serde_json::Serializer::new(out.writer());
                serde_transcode::transcode(&mut de, &mut se)?;
                Ok(())
            }
            _ => Err(ValueError::new("unsupported encoding pair")),
        }
    }
}

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encoding {
            Encoding::Json => write!(f, "Json({})", String::from_utf8_lossy(&self.bytes)),
            Encoding::MessagePack => write!(f, "MessagePack({:02x?})", self.bytes.as_ref()),
        }
    }
}

/// The deepest nesting a MessagePack value may have when deserialized or transcoded: the
/// same limit serde_json applies to JSON, far below what overflows a thread's stack.
const MAX_DEPTH: usize = 128;

fn msgpack_deserializer(
    bytes: &[u8],
) -> rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'_, [u8]>> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    de
}

fn msgpack_serializer(
    out: &mut BytesMut,
) -> rmp_serde::Serializer<
    bytes::buf::Writer<&mut BytesMut>,
    rmp_serde::config::StructMapConfig<rmp_serde::config::DefaultConfig>,
> {
    rmp_serde::Serializer::new(out.writer()).with_struct_map()
}

/// Serializes `value` with `encoding`, appending to `out`.
pub(crate) fn write_value<T: Serialize + ?Sized>(
    encoding: Encoding,
    value: &T,
    out: &mut BytesMut,
) -> Result<(), ValueError> {
    match encoding {
        Encoding::Json => serde_json::to_writer(out.writer(), value)?,
        Encoding::MessagePack => value.serialize(&mut msgpack_serializer(out))?,
    }
    Ok(())
}

/// A byte array that MessagePack carries as `bin` and JSON as a base64 string, as ASP.NET
/// Core does for `byte[]`.
///
/// Plain `Vec<u8>` serializes as an array of numbers in both encodings; wrap it in `Binary`
/// to match what the official clients send and expect. Deserializing accepts `bin`, a base64
/// string or an array of numbers.
///
/// ```
/// use signalr_core::{Binary, Encoding, RawValue};
///
/// let json = RawValue::encode(Encoding::Json, &Binary::from(vec![1, 2, 3]))?;
/// assert_eq!(json.as_bytes(), br#""AQID""#);
/// let packed = RawValue::encode(Encoding::MessagePack, &Binary::from(vec![1, 2, 3]))?;
/// assert_eq!(packed.as_bytes(), [0xc4, 3, 1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binary(pub Vec<u8>);

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<Binary> for Vec<u8> {
    fn from(bytes: Binary) -> Self {
        bytes.0
    }
}

impl std::ops::Deref for Binary {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            use base64::Engine as _;
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinaryVisitor;
        impl<'de> Visitor<'de> for BinaryVisitor {
            type Value = Binary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes, a base64 string or an array of bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Binary, E> {
                Ok(Binary(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Binary, E> {
                Ok(Binary(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Binary, E> {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(Binary)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Binary, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Binary(out))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(BinaryVisitor)
        } else {
            deserializer.deserialize_byte_buf(BinaryVisitor)
        }
    }
}

/// An instant that MessagePack carries as the timestamp extension (type -1) and JSON as an
/// ISO 8601 / RFC 3339 string, as ASP.NET Core does for `DateTime`.
///
/// ```
/// use signalr_core::{Encoding, RawValue, Timestamp};
///
/// let t = Timestamp::from_unix(1_700_000_000, 500_000_000)?;
/// let json = RawValue::encode(Encoding::Json, &t)?;
/// assert_eq!(json.as_bytes(), br#""2023-11-14T22:13:20.5Z""#);
/// let packed = RawValue::encode(Encoding::MessagePack, &t)?;
/// assert_eq!(packed.deserialize::<Timestamp>()?, t);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    seconds: i64,
    nanos: u32,
}

impl Timestamp {
    /// An instant from seconds since the Unix epoch and nanoseconds (below one second).
    pub fn from_unix(seconds: i64, nanos: u32) -> Result<Self, ValueError> {
        if nanos >= 1_000_000_000 {
            return Err(ValueError::new("nanoseconds must be below 1,000,000,000"));
        }
        Ok(Self { seconds, nanos })
    }

    /// Whole seconds since the Unix epoch (negative before it).
    pub fn unix_seconds(&self) -> i64 {
        self.seconds
    }

    /// Nanoseconds past [`unix_seconds`](Self::unix_seconds).
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    fn to_offset_date_time(self) -> Result<time::OffsetDateTime, ValueError> {
        let whole = time::OffsetDateTime::from_unix_timestamp(self.seconds)
            .map_err(|e| ValueError::new(e.to_string()))?;
        Ok(whole + Duration::from_nanos(u64::from(self.nanos)))
    }

    /// The MessagePack timestamp extension payload (4, 8 or 12 bytes, as the spec picks).
    fn ext_payload(&self) -> Vec<u8> {
        let secs = self.seconds;
        if (0..1 << 34).contains(&secs) {
            let data64 = (u64::from(self.nanos) << 34) | secs.unsigned_abs();
            if let Ok(data32) = u32::try_from(data64) {
                // Timestamp 32: nanoseconds are zero and seconds fit in 32 bits.
                return data32.to_be_bytes().to_vec();
            }
            return data64.to_be_bytes().to_vec();
        }
        let mut out = Vec::with_capacity(12);
        out.extend_from_slice(&self.nanos.to_be_bytes());
        out.extend_from_slice(&secs.to_be_bytes());
        out
    }

    fn from_ext_payload(data: &[u8]) -> Option<Self> {
        match data.len() {
            4 => {
                let secs = u32::from_be_bytes(data.try_into().ok()?);
                Some(Self {
                    seconds: i64::from(secs),
                    nanos: 0,
                })
            }
            8 => {
                let data64 = u64::from_be_bytes(data.try_into().ok()?);
                let nanos = u32::try_from(data64 >> 34).ok()?;
                let seconds = i64::try_from(data64 & ((1 << 34) - 1)).ok()?;
                Timestamp::from_unix(seconds, nanos).ok()
            }
            12 => {
                let nanos = u32::from_be_bytes(data[..4].try_into().ok()?);
                let seconds = i64::from_be_bytes(data[4..].try_into().ok()?);
                Timestamp::from_unix(seconds, nanos).ok()
            }
            _ => None,
        }
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Self {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    Self {
                        seconds: -secs,
                        nanos: 0,
                    }
                } else {
                    Self {
                        seconds: -secs - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        let nanos = Duration::from_nanos(u64::from(t.nanos));
        if t.seconds >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.seconds.unsigned_abs()) + nanos
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(t.seconds.unsigned_abs()) + nanos
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        if serializer.is_human_readable() {
            let text = self
                .to_offset_date_time()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .map_err(|e| ValueError::new(e.to_string()))
                })
                .map_err(S::Error::custom)?;
            serializer.serialize_str(&text)
        } else {
            struct Payload(Vec<u8>);
            impl Serialize for Payload {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_bytes(&self.0)
                }
            }
            serializer.serialize_newtype_struct(
                rmp_serde::MSGPACK_EXT_STRUCT_NAME,
                &(-1i8, Payload(self.ext_payload())),
            )
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or a MessagePack timestamp extension")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                let t =
                    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))?;
                Ok(Timestamp {
                    seconds: t.unix_timestamp(),
                    nanos: t.nanosecond(),
                })
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Timestamp, D::Error> {
                let (tag, data): (i8, Binary) = Deserialize::deserialize(d)?;
                if tag != -1 {
                    return Err(de::Error::custom(format_args!(
                        "expected timestamp extension -1, found {tag}"
                    )));
                }
                Timestamp::from_ext_payload(&data)
                    .ok_or_else(|| de::Error::custom("invalid timestamp extension payload"))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(TimestampVisitor)
        } else {
            deserializer
                .deserialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, TimestampVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_ext_sizes_follow_the_spec() {
        let t32 = Timestamp::from_unix(1, 0).unwrap();
        assert_eq!(t32.ext_payload(), [0, 0, 0, 1]);
        let t64 = Timestamp::from_unix(1, 1).unwrap();
        assert_eq!(t64.ext_payload().len(), 8);
        let t96 = Timestamp::from_unix(-1, 5).unwrap();
        assert_eq!(t96.ext_payload().len(), 12);
        for t in [t32, t64, t96] {
            let v = RawValue::encode(Encoding::MessagePack, &t).unwrap();
            assert!(v.as_bytes()[0] & 0xf0 == 0xd0 || v.as_bytes()[0] == 0xc7);
            assert_eq!(v.deserialize::<Timestamp>().unwrap(), t);
            let j = RawValue::encode(Encoding::Json, &t).unwrap();
            assert_eq!(j.deserialize::<Timestamp>().unwrap(), t);
        }
        let packed = RawValue::encode(Encoding::MessagePack, &t32).unwrap();
        assert_eq!(packed.as_bytes(), [0xd6, 0xff, 0, 0, 0, 1]);
    }

    #[test]
    fn dotnet_iso_strings_parse() {
        let v = RawValue::from_json(&br#""2024-05-01T10:00:00.1234567Z""#[..]).unwrap();
        let t: Timestamp = v.deserialize().unwrap();
        assert_eq!(t.subsec_nanos(), 123_456_700);
        let v = RawValue::from_json(&br#""2024-05-01T10:00:00+02:00""#[..]).unwrap();
        let t: Timestamp = v.deserialize().unwrap();
        assert_eq!(t.unix_seconds(), 1_714_550_400);
    }

    #[test]
    fn system_time_round_trips() {
        let now = SystemTime::UNIX_EPOCH + Duration::new(1_000, 7);
        assert_eq!(SystemTime::from(Timestamp::from(now)), now);
        let before = SystemTime::UNIX_EPOCH - Duration::new(3, 5);
        let t = Timestamp::from(before);
        assert_eq!((t.unix_seconds(), t.subsec_nanos()), (-4, 999_999_995));
        assert_eq!(SystemTime::from(t), before);
    }

    #[test]
    fn binary_accepts_every_form() {
        let v = RawValue::from_json(&b"[1,2]"[..]).unwrap();
        assert_eq!(v.deserialize::<Binary>().unwrap().0, [1, 2]);
        let v = RawValue::from_msgpack(&[0xc4, 2, 1, 2][..]).unwrap();
        assert_eq!(v.deserialize::<Binary>().unwrap().0, [1, 2]);
        let v = RawValue::from_msgpack(&[0x92, 1, 2][..]).unwrap();
        assert_eq!(v.deserialize::<Binary>().unwrap().0, [1, 2]);
    }
}
