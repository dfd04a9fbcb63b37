//! The hub protocol seam and the two stock protocols.

pub(crate) mod json;
pub(crate) mod msgpack;

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::message::{CompletionResult, HubMessage};
use crate::value::Encoding;

/// How a transport must carry a protocol's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text: WebSocket text frames; Server-Sent Events can carry it.
    Text,
    /// Arbitrary bytes: WebSocket binary frames; Server-Sent Events cannot carry it.
    Binary,
}

impl TransferFormat {
    /// The name negotiate uses: `Text` or `Binary`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        }
    }

    /// Parses a negotiate name (`Text`, `Binary`), case-sensitively as the clients do.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Text" => Some(TransferFormat::Text),
            "Binary" => Some(TransferFormat::Binary),
            _ => None,
        }
    }
}

impl fmt::Display for TransferFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hub protocol: how hub messages become bytes and back.
///
/// Framing follows the transfer format: text protocols end each message with `0x1E`, binary
/// ones prefix it with a VarInt length (see [`crate::framing`]). The stock implementations are
/// [`JsonHubProtocol`] and [`MessagePackHubProtocol`]; a custom protocol implements the same
/// four facts and two operations.
pub trait HubProtocol: fmt::Debug + Send + Sync {
    /// The name clients ask for in the handshake (`json`, `messagepack`).
    fn name(&self) -> &str;

    /// The highest protocol version this implementation speaks.
    fn version(&self) -> u32;

    /// Whether a client asking for `version` can be served. Default: `version <= self.version()`.
    fn is_version_supported(&self, version: u32) -> bool {
        version <= self.version()
    }

    /// The transfer format, which decides framing and which transports can carry it.
    fn transfer_format(&self) -> TransferFormat;

    /// How arguments, items and results are encoded inside messages.
    fn encoding(&self) -> Encoding;

    /// Parses one frame's content (framing already removed). Returns `Ok(None)` for a
    /// message of a type this protocol does not know, which callers skip.
    fn parse_frame(&self, frame: Bytes) -> Result<Option<HubMessage>, ProtocolError>;

    /// Appends `message` to `out`, framed.
    fn write_message(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError>;

    /// `message` framed, as immutable bytes that can be sent to any number of connections.
    fn to_bytes(&self, message: &HubMessage) -> Result<Bytes, ProtocolError> {
        let mut out = BytesMut::with_capacity(size_hint(message));
        self.write_message(message, &mut out)?;
        Ok(out.freeze())
    }
}

/// Room for `message` written in either protocol, so that writing it seldom grows the
/// buffer: its variable parts (ids, target, values; text may be escaped a little), plus
/// the fixed part.
fn size_hint(message: &HubMessage) -> usize {
    const FIXED: usize = 64;
    let variable = match message {
        HubMessage::Invocation(m) => {
            m.invocation_id.as_ref().map_or(0, String::len)
                + m.target.len()
                + m.arguments
                    .iter()
                    .map(|a| a.as_bytes().len() + 1)
                    .sum::<usize>()
        }
        HubMessage::StreamItem(m) => m.invocation_id.len() + m.item.as_bytes().len(),
        HubMessage::Completion(m) => {
            m.invocation_id.len()
                + match &m.result {
                    CompletionResult::Void => 0,
                    CompletionResult::Value(value) => value.as_bytes().len(),
                    CompletionResult::Error(error) => error.len(),
                }
        }
        _ => 0,
    };
    FIXED + variable + variable / 8
}

impl<P: HubProtocol + ?Sized> HubProtocol for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn version(&self) -> u32 {
        (**self).version()
    }
    fn is_version_supported(&self, version: u32) -> bool {
        (**self).is_version_supported(version)
    }
    fn transfer_format(&self) -> TransferFormat {
        (**self).transfer_format()
    }
    fn encoding(&self) -> Encoding {
        (**self).encoding()
    }
    fn parse_frame(&self, frame: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        (**self).parse_frame(frame)
    }
    fn write_message(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
        (**self).write_message(message, out)
    }
    fn to_bytes(&self, message: &HubMessage) -> Result<Bytes, ProtocolError> {
        (**self).to_bytes(message)
    }
}

impl<P: HubProtocol + ?Sized> HubProtocol for &P {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn version(&self) -> u32 {
        (**self).version()
    }
    fn is_version_supported(&self, version: u32) -> bool {
        (**self).is_version_supported(version)
    }
    fn transfer_format(&self) -> TransferFormat {
        (**self).transfer_format()
    }
    fn encoding(&self) -> Encoding {
        (**self).encoding()
    }
    fn parse_frame(&self, frame: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        (**self).parse_frame(frame)
    }
    fn write_message(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
        (**self).write_message(message, out)
    }
    fn to_bytes(&self, message: &HubMessage) -> Result<Bytes, ProtocolError> {
        (**self).to_bytes(message)
    }
}

/// The JSON hub protocol: name `json`, version 2, text, `0x1E`-terminated.
///
/// ```
/// use signalr_core::{HubProtocol, Invocation, JsonHubProtocol, RawValue, Encoding};
///
/// let protocol = JsonHubProtocol::new();
/// let args = vec![RawValue::encode(Encoding::Json, &42)?];
/// let bytes = protocol.to_bytes(&Invocation::new("Send", args).into())?;
/// assert_eq!(&bytes[..], b"{\"type\":1,\"target\":\"Send\",\"arguments\":[42]}\x1e");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonHubProtocol {
    _priv: (),
}

impl JsonHubProtocol {
    /// The protocol's handshake name.
    pub const NAME: &'static str = "json";
    /// The protocol version ASP.NET Core announces (2 enables stateful reconnect).
    pub const VERSION: u32 = 2;

    /// The JSON hub protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

impl HubProtocol for JsonHubProtocol {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn version(&self) -> u32 {
        Self::VERSION
    }
    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Text
    }
    fn encoding(&self) -> Encoding {
        Encoding::Json
    }
    fn parse_frame(&self, frame: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        json::parse(&frame)
    }
    fn write_message(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
        json::write(message, out)
    }
}

/// The MessagePack hub protocol: name `messagepack`, version 2, binary, VarInt-prefixed.
///
/// ```
/// use signalr_core::{HubMessage, HubProtocol, MessagePackHubProtocol};
///
/// let bytes = MessagePackHubProtocol::new().to_bytes(&HubMessage::Ping)?;
/// assert_eq!(&bytes[..], [0x02, 0x91, 0x06]);
/// # Ok::<(), signalr_core::ProtocolError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePackHubProtocol {
    _priv: (),
}

impl MessagePackHubProtocol {
    /// The protocol's handshake name.
    pub const NAME: &'static str = "messagepack";
    /// The protocol version ASP.NET Core announces (2 enables stateful reconnect).
    pub const VERSION: u32 = 2;

    /// The MessagePack hub protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

impl HubProtocol for MessagePackHubProtocol {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn version(&self) -> u32 {
        Self::VERSION
    }
    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Binary
    }
    fn encoding(&self) -> Encoding {
        Encoding::MessagePack
    }
    fn parse_frame(&self, frame: Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        msgpack::parse(&frame)
    }
    fn write_message(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), ProtocolError> {
        msgpack::write(message, out)
    }
}
