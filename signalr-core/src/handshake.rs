//! The handshake: the first message each way, always JSON and `0x1E`-terminated.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::framing::{RECORD_SEPARATOR, next_frame};
use crate::protocol::TransferFormat;
use crate::protocol::json::{for_each_property, put_str as put_json_str};

/// The client's first message: which hub protocol and version it wants.
///
/// ```
/// use bytes::BytesMut;
/// use signalr_core::HandshakeRequest;
///
/// let mut buf = BytesMut::from(&b"{\"protocol\":\"json\",\"version\":2}\x1e{\"type\":6}\x1e"[..]);
/// let request = HandshakeRequest::parse(&mut buf, Some(32 * 1024))?.expect("complete");
/// assert_eq!((request.protocol.as_str(), request.version), ("json", 2));
/// assert_eq!(&buf[..], b"{\"type\":6}\x1e"); // what follows stays for the hub protocol
/// # Ok::<(), signalr_core::ProtocolError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeRequest {
    /// The hub protocol's name (`json`, `messagepack`).
    pub protocol: String,
    /// The hub protocol's version (2 for current clients; 2 enables stateful reconnect).
    pub version: u32,
}

impl HandshakeRequest {
    /// A request for `protocol` at `version`.
    pub fn new(protocol: impl Into<String>, version: u32) -> Self {
        Self {
            protocol: protocol.into(),
            version,
        }
    }

    /// Takes a handshake request off the front of `buf`, leaving whatever follows it.
    ///
    /// Returns `Ok(None)` until the `0x1E` has arrived. With a `limit`, more than `limit`
    /// bytes without a separator is an error. Unknown properties are skipped and duplicates
    /// are last-wins; only the first JSON value before the separator counts, and it must be
    /// an object. Properties are checked in document order, as ASP.NET Core reads them.
    pub fn parse(buf: &mut BytesMut, limit: Option<usize>) -> Result<Option<Self>, ProtocolError> {
        let Some(frame) = next_frame(TransferFormat::Text, buf, limit)? else {
            return Ok(None);
        };
        let mut protocol = None;
        let mut version = None;
        for_each_property(&frame, |key, value| {
            match key {
                "protocol" => {
                    protocol = Some(serde_json::from_str::<String>(value.get()).map_err(|_| {
                        ProtocolError::UnexpectedType {
                            property: "protocol",
                            expected: "String",
                        }
                    })?);
                }
                "version" => {
                    version = Some(serde_json::from_str::<u32>(value.get()).map_err(|_| {
                        ProtocolError::UnexpectedType {
                            property: "version",
                            expected: "Number",
                        }
                    })?);
                }
                _ => {}
            }
            Ok(())
        })?;
        let content = || String::from_utf8_lossy(&frame).into_owned();
        let protocol = protocol.ok_or_else(|| ProtocolError::HandshakeMissingProperty {
            property: "protocol",
            content: content(),
        })?;
        let version = version.ok_or_else(|| ProtocolError::HandshakeMissingProperty {
            property: "version",
            content: content(),
        })?;
        Ok(Some(Self { protocol, version }))
    }

    /// Appends the request, `0x1E`-terminated.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_slice(b"{\"protocol\":");
        put_json_str(out, &self.protocol);
        out.put_slice(b",\"version\":");
        out.put_slice(self.version.to_string().as_bytes());
        out.put_u8(b'}');
        out.put_u8(RECORD_SEPARATOR);
    }

    /// The request as bytes, `0x1E`-terminated.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write(&mut out);
        out.freeze()
    }
}

/// The server's answer to the handshake: `{}` on success, `{"error":"..."}` on failure.
///
/// ```
/// use signalr_core::HandshakeResponse;
///
/// assert_eq!(&HandshakeResponse::success().to_bytes()[..], b"{}\x1e");
/// let failed = HandshakeResponse::error("The protocol 'xml' is not supported.");
/// assert_eq!(&failed.to_bytes()[..], b"{\"error\":\"The protocol 'xml' is not supported.\"}\x1e");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeResponse {
    /// Why the handshake failed; `None` on success.
    pub error: Option<String>,
}

impl HandshakeResponse {
    /// A successful handshake.
    pub fn success() -> Self {
        Self { error: None }
    }

    /// A failed handshake; the server closes the connection after sending it.
    pub fn error(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
        }
    }

    /// Takes a handshake response off the front of `buf`, leaving whatever follows it.
    ///
    /// The first JSON value before the separator must be an object. An object with a `type`
    /// property is a hub message, not a handshake response, and is an error. Unknown
    /// properties are skipped. `error` must be a string, as in ASP.NET Core (`null` is an
    /// error); an empty `error` means success, as the JavaScript client reads it.
    pub fn parse(buf: &mut BytesMut, limit: Option<usize>) -> Result<Option<Self>, ProtocolError> {
        let Some(frame) = next_frame(TransferFormat::Text, buf, limit)? else {
            return Ok(None);
        };
        let mut error = None;
        for_each_property(&frame, |key, value| {
            match key {
                "type" => return Err(ProtocolError::NotAHandshakeResponse),
                "error" => {
                    error = Some(serde_json::from_str::<String>(value.get()).map_err(|_| {
                        ProtocolError::UnexpectedType {
                            property: "error",
                            expected: "String",
                        }
                    })?);
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(Some(Self {
            // Deliberately unlike ASP.NET Core's .NET client, which keeps `""` and then fails
            // the handshake because `Error != null`: the JavaScript client treats an empty
            // error as success, and so does this crate (its writer never sends one).
            error: error.filter(|e| !e.is_empty()),
        }))
    }

    /// Appends the response, `0x1E`-terminated.
    pub fn write(&self, out: &mut BytesMut) {
        match self.error.as_deref().filter(|e| !e.is_empty()) {
            Some(error) => {
                out.put_slice(b"{\"error\":");
                put_json_str(out, error);
                out.put_u8(b'}');
            }
            None => out.put_slice(b"{}"),
        }
        out.put_u8(RECORD_SEPARATOR);
    }

    /// The response as bytes, `0x1E`-terminated.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(input: &[u8]) -> Result<Option<HandshakeRequest>, ProtocolError> {
        HandshakeRequest::parse(&mut BytesMut::from(input), None)
    }

    #[test]
    fn request_vectors_a1_to_a6() {
        assert_eq!(
            request(b"{\"protocol\":\"dummy\",\"version\":1}\x1e").unwrap(),
            Some(HandshakeRequest::new("dummy", 1))
        );
        assert_eq!(
            request(b"{\"protocol\":\"firstProtocol\",\"protocol\":\"secondProtocol\",\"version\":1,\"version\":75}\x1e")
                .unwrap(),
            Some(HandshakeRequest::new("secondProtocol", 75))
        );
        assert_eq!(
            request(b"{\"protocol\":\"dummy\",\"version\":1}{\"protocol\":\"wrong\",\"version\":99}\x1e").unwrap(),
            Some(HandshakeRequest::new("dummy", 1))
        );
        assert_eq!(
            request(b"{}\x1e").unwrap_err().to_string(),
            "Missing required property 'protocol'. Message content: {}"
        );
        assert_eq!(
            request(b"{\"version\":\"123\"}\x1e")
                .unwrap_err()
                .to_string(),
            "Expected 'version' to be of type Number."
        );
        assert_eq!(
            request(b"{\"protocol\":\"json\",\"version\":1}").unwrap(),
            None
        );
    }

    #[test]
    fn response_vectors_a7() {
        let parse = |b: &[u8]| {
            HandshakeResponse::parse(&mut BytesMut::from(b), None)
                .unwrap()
                .unwrap()
        };
        assert_eq!(parse(b"{}\x1e").error, None);
        assert_eq!(
            parse(b"{\"error\":\"dummy\"}\x1e").error.as_deref(),
            Some("dummy")
        );
        assert_eq!(parse(b"{\"unknown\":null}\x1e").error, None);
        assert_eq!(
            HandshakeResponse::parse(&mut BytesMut::from(&b"{\"type\":6}\x1e"[..]), None),
            Err(ProtocolError::NotAHandshakeResponse)
        );
    }

    #[test]
    fn request_writes_what_clients_send() {
        assert_eq!(
            &HandshakeRequest::new("messagepack", 2).to_bytes()[..],
            b"{\"protocol\":\"messagepack\",\"version\":2}\x1e"
        );
    }

    #[test]
    fn handshake_respects_the_limit() {
        let mut buf = BytesMut::from(&b"{\"protocol\":\"json\",\"version\":1"[..]);
        assert!(HandshakeRequest::parse(&mut buf, Some(10)).is_err());
    }
}
