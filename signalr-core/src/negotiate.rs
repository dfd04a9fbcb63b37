//! Negotiate: `POST {hub}/negotiate?negotiateVersion=1` and its JSON answer, and the names of
//! transports.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue as Json;

use crate::error::ProtocolError;
use crate::protocol::TransferFormat;
use crate::protocol::json::{for_each_property, put_str, token_name};

/// The three HTTP transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportType {
    /// WebSockets: one socket both ways, text or binary frames.
    WebSockets,
    /// Server-Sent Events down, HTTP POST up; text only.
    ServerSentEvents,
    /// HTTP long polling down, HTTP POST up.
    LongPolling,
}

impl TransportType {
    /// Every transport, in the order negotiate lists them.
    pub const ALL: [TransportType; 3] = [
        TransportType::WebSockets,
        TransportType::ServerSentEvents,
        TransportType::LongPolling,
    ];

    /// The name negotiate uses: `WebSockets`, `ServerSentEvents`, `LongPolling`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransportType::WebSockets => "WebSockets",
            TransportType::ServerSentEvents => "ServerSentEvents",
            TransportType::LongPolling => "LongPolling",
        }
    }

    /// Parses a negotiate name, case-sensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The transfer formats this transport can carry.
    pub fn transfer_formats(&self) -> &'static [TransferFormat] {
        match self {
            TransportType::ServerSentEvents => &[TransferFormat::Text],
            TransportType::WebSockets | TransportType::LongPolling => {
                &[TransferFormat::Text, TransferFormat::Binary]
            }
        }
    }
}

impl fmt::Display for TransportType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `availableTransports`.
///
/// The fields are strings, not enums, so that a client can read a server that lists a
/// transport or format it does not know; [`transport_type`](Self::transport_type) and
/// [`supports`](Self::supports) interpret them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AvailableTransport {
    /// The transport's name (`null` on the wire when absent, as ASP.NET Core writes it).
    pub transport: Option<String>,
    /// The transfer formats (`Text`, `Binary`) it accepts.
    pub transfer_formats: Vec<String>,
}

impl AvailableTransport {
    /// An entry for `transport` with the formats it can carry.
    pub fn new(transport: TransportType) -> Self {
        Self {
            transport: Some(transport.as_str().to_owned()),
            transfer_formats: transport
                .transfer_formats()
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
        }
    }

    /// An entry with arbitrary names.
    pub fn with_names(transport: Option<String>, transfer_formats: Vec<String>) -> Self {
        Self {
            transport,
            transfer_formats,
        }
    }

    /// The transport, when its name is one of the three known ones.
    pub fn transport_type(&self) -> Option<TransportType> {
        self.transport.as_deref().and_then(TransportType::from_name)
    }

    /// Whether the entry lists `format`.
    pub fn supports(&self, format: TransferFormat) -> bool {
        self.transfer_formats.iter().any(|f| f == format.as_str())
    }
}

/// The answer to a negotiate request.
///
/// A server fills `connection_id`, `connection_token` (version 1) and
/// `available_transports`; a redirecting service sets `url` and `access_token`; a refusal
/// sets only `error`. The response always travels with HTTP 200.
///
/// ```
/// use signalr_core::{AvailableTransport, NegotiateResponse, TransportType};
///
/// let mut response = NegotiateResponse::new(1);
/// response.connection_id = Some("abc".into());
/// response.connection_token = Some("xyz".into());
/// response.available_transports.push(AvailableTransport::new(TransportType::WebSockets));
/// let json = response.to_bytes();
/// assert_eq!(
///     &json[..],
///     br#"{"negotiateVersion":1,"connectionId":"abc","connectionToken":"xyz","availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#
/// );
/// assert_eq!(NegotiateResponse::parse(&json)?, response);
/// # Ok::<(), signalr_core::ProtocolError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NegotiateResponse {
    /// The negotiate protocol version the server chose (0 or 1).
    pub negotiate_version: i32,
    /// The public connection id.
    pub connection_id: Option<String>,
    /// The secret token that later requests carry as `?id=` (version 1 and above).
    pub connection_token: Option<String>,
    /// The transports the client may use, in the server's order of preference.
    pub available_transports: Vec<AvailableTransport>,
    /// Whether the server agreed to stateful reconnect.
    pub use_stateful_reconnect: bool,
    /// Redirect: negotiate again against this URL.
    pub url: Option<String>,
    /// Redirect: the bearer token to use against `url`.
    pub access_token: Option<String>,
    /// Refusal: why the connection cannot be made.
    pub error: Option<String>,
}

impl NegotiateResponse {
    /// An empty response for `negotiate_version`.
    pub fn new(negotiate_version: i32) -> Self {
        Self {
            negotiate_version,
            ..Self::default()
        }
    }

    /// A refusal carrying only `error`.
    pub fn error(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            ..Self::default()
        }
    }

    /// A redirect to `url`, with an optional bearer token for it.
    pub fn redirect(url: impl Into<String>, access_token: Option<String>) -> Self {
        Self {
            url: Some(url.into()),
            access_token,
            ..Self::default()
        }
    }

    /// Appends the response as ASP.NET Core writes it: `useStatefulReconnect` (only when
    /// true), `negotiateVersion`, `url`, `accessToken`, `connectionId`, `connectionToken`
    /// (version 1 and above), `availableTransports`. An error response is `{"error":"..."}`.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_u8(b'{');
        if self.use_stateful_reconnect {
            out.put_slice(b"\"useStatefulReconnect\":true,");
        }
        if let Some(error) = self.error.as_deref().filter(|e| !e.is_empty()) {
            out.put_slice(b"\"error\":");
            put_str(out, error);
            out.put_u8(b'}');
            return;
        }
        out.put_slice(b"\"negotiateVersion\":");
        out.put_slice(self.negotiate_version.to_string().as_bytes());
        let strings = [
            ("url", self.url.as_deref()),
            ("accessToken", self.access_token.as_deref()),
            ("connectionId", self.connection_id.as_deref()),
            (
                "connectionToken",
                self.connection_token
                    .as_deref()
                    .filter(|_| self.negotiate_version > 0),
            ),
        ];
        for (name, value) in strings {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                out.put_slice(b",\"");
                out.put_slice(name.as_bytes());
                out.put_slice(b"\":");
                put_str(out, value);
            }
        }
        out.put_slice(b",\"availableTransports\":[");
        for (i, transport) in self.available_transports.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(b"{\"transport\":");
            match &transport.transport {
                Some(name) => put_str(out, name),
                None => out.put_slice(b"null"),
            }
            out.put_slice(b",\"transferFormats\":[");
            for (j, format) in transport.transfer_formats.iter().enumerate() {
                if j > 0 {
                    out.put_u8(b',');
                }
                put_str(out, format);
            }
            out.put_slice(b"]}");
        }
        out.put_slice(b"]}");
    }

    /// The response as JSON bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(256);
        self.write(&mut out);
        out.freeze()
    }

    /// Parses a response as the official clients do: unknown properties are skipped,
    /// duplicates are last-wins, and unless `url` or `error` is present, `connectionId`,
    /// `connectionToken` (version 1 and above) and `availableTransports` are required.
    pub fn parse(json: &[u8]) -> Result<Self, ProtocolError> {
        Self::parse_inner(json).map_err(|e| match e {
            ProtocolError::LegacyServer => e,
            other => ProtocolError::InvalidNegotiateResponse(other.to_string()),
        })
    }

    fn parse_inner(json: &[u8]) -> Result<Self, ProtocolError> {
        let mut response = NegotiateResponse::default();
        let mut has_transports = false;
        for_each_property(json, |key, value| {
            match key {
                "negotiateVersion" => {
                    response.negotiate_version =
                        serde_json::from_str(value.get()).map_err(|_| {
                            ProtocolError::UnexpectedType {
                                property: "negotiateVersion",
                                expected: "Number",
                            }
                        })?;
                }
                "connectionId" => response.connection_id = string(value, "connectionId")?,
                "connectionToken" => response.connection_token = string(value, "connectionToken")?,
                "url" => response.url = string(value, "url")?,
                "accessToken" => response.access_token = string(value, "accessToken")?,
                "error" => response.error = string(value, "error")?,
                "useStatefulReconnect" => {
                    response.use_stateful_reconnect =
                        serde_json::from_str(value.get()).map_err(|_| {
                            ProtocolError::UnexpectedType {
                                property: "useStatefulReconnect",
                                expected: "Boolean",
                            }
                        })?;
                }
                "availableTransports" => {
                    response.available_transports = transports(value)?;
                    has_transports = true;
                }
                "ProtocolVersion" => return Err(ProtocolError::LegacyServer),
                _ => {}
            }
            Ok(())
        })?;
        if response.url.is_none() && response.error.is_none() {
            if response.connection_id.is_none() {
                return Err(ProtocolError::MissingProperty("connectionId"));
            }
            if response.negotiate_version > 0 && response.connection_token.is_none() {
                return Err(ProtocolError::MissingProperty("connectionToken"));
            }
            if !has_transports {
                return Err(ProtocolError::MissingProperty("availableTransports"));
            }
        }
        Ok(response)
    }
}

fn string(raw: &Json, property: &'static str) -> Result<Option<String>, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|_| ProtocolError::UnexpectedType {
        property,
        expected: "String",
    })
}

/// The items of a JSON array; anything else fails as ASP.NET Core's `EnsureArrayStart` does.
fn array(raw: &Json) -> Result<Vec<&Json>, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|_| ProtocolError::UnexpectedJsonToken {
        token: token_name(raw),
        expected: "Array",
    })
}

fn transports(raw: &Json) -> Result<Vec<AvailableTransport>, ProtocolError> {
    let items = array(raw)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut transport = None;
        let mut formats = None;
        for_each_property(item.get().as_bytes(), |key, value| {
            match key {
                "transport" => transport = Some(string(value, "transport")?),
                "transferFormats" => {
                    let names = array(value)?
                        .into_iter()
                        .map(|name| serde_json::from_str::<String>(name.get()))
                        .collect::<Result<Vec<String>, _>>()
                        .map_err(|_| ProtocolError::UnexpectedType {
                            property: "transferFormats",
                            expected: "Array",
                        })?;
                    formats = Some(names);
                }
                _ => {}
            }
            Ok(())
        })?;
        out.push(AvailableTransport {
            transport: transport.ok_or(ProtocolError::MissingProperty("transport"))?,
            transfer_formats: formats.ok_or(ProtocolError::MissingProperty("transferFormats"))?,
        });
    }
    Ok(out)
}

/// Why a negotiate request's `negotiateVersion` was refused; the text goes in the
/// response's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiateVersionError {
    /// The value is not an integer.
    #[error("The client requested a non-integer protocol version.")]
    NotAnInteger,
    /// The value is below the server's minimum.
    #[error("The client requested version '{0}', but the server does not support this version.")]
    Unsupported(i64),
}

/// Picks the negotiate version for a request, as ASP.NET Core does: the `negotiateVersion`
/// query value (absent means 0), refused below `minimum`, clamped to 1.
///
/// ```
/// use signalr_core::select_negotiate_version;
///
/// assert_eq!(select_negotiate_version(Some("1"), 0), Ok(1));
/// assert_eq!(select_negotiate_version(Some("7"), 0), Ok(1));
/// assert_eq!(select_negotiate_version(None, 0), Ok(0));
/// assert!(select_negotiate_version(None, 1).is_err());
/// assert!(select_negotiate_version(Some("x"), 0).is_err());
/// ```
pub fn select_negotiate_version(
    requested: Option<&str>,
    minimum: i32,
) -> Result<i32, NegotiateVersionError> {
    let version = match requested {
        None => 0,
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| NegotiateVersionError::NotAnInteger)?,
    };
    if version < i64::from(minimum) {
        return Err(NegotiateVersionError::Unsupported(version));
    }
    Ok(if version >= 1 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a37_escaped_names_and_unknown_transports() {
        let r = NegotiateResponse::parse(
            br#"{"negotiateVersion":123,"connectionId":"123","connectionToken":"789","availableTransports":[{"\u0074ransport":"test","transferFormats":[]}]}"#,
        )
        .unwrap();
        assert_eq!(r.connection_id.as_deref(), Some("123"));
        assert_eq!(r.connection_token.as_deref(), Some("789"));
        assert_eq!(r.negotiate_version, 123);
        assert_eq!(r.available_transports.len(), 1);
        assert_eq!(r.available_transports[0].transport.as_deref(), Some("test"));
        assert!(r.available_transports[0].transfer_formats.is_empty());
    }

    #[test]
    fn a38_missing_token() {
        let err = NegotiateResponse::parse(
            br#"{"connectionId":"123","negotiateVersion":123,"availableTransports":[]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProtocolError::InvalidNegotiateResponse(
                "Missing required property 'connectionToken'.".into()
            )
        );
    }

    #[test]
    fn a39_a40_writer() {
        assert_eq!(
            &NegotiateResponse::default().to_bytes()[..],
            br#"{"negotiateVersion":0,"availableTransports":[]}"#
        );
        let mut r = NegotiateResponse::default();
        r.available_transports
            .push(AvailableTransport::with_names(None, vec![]));
        assert_eq!(
            &r.to_bytes()[..],
            br#"{"negotiateVersion":0,"availableTransports":[{"transport":null,"transferFormats":[]}]}"#
        );
    }

    #[test]
    fn version_zero_has_no_token_and_errors_stand_alone() {
        let mut r = NegotiateResponse::new(0);
        r.connection_id = Some("id".into());
        r.connection_token = Some("id".into());
        assert_eq!(
            &r.to_bytes()[..],
            br#"{"negotiateVersion":0,"connectionId":"id","availableTransports":[]}"#
        );
        assert_eq!(
            &NegotiateResponse::error("nope").to_bytes()[..],
            br#"{"error":"nope"}"#
        );
        let parsed = NegotiateResponse::parse(br#"{"error":"nope"}"#).unwrap();
        assert_eq!(parsed.error.as_deref(), Some("nope"));
    }

    #[test]
    fn stateful_reconnect_comes_first() {
        let mut r = NegotiateResponse::new(1);
        r.use_stateful_reconnect = true;
        r.connection_id = Some("a".into());
        r.connection_token = Some("b".into());
        for t in TransportType::ALL {
            r.available_transports.push(AvailableTransport::new(t));
        }
        assert_eq!(
            &r.to_bytes()[..],
            br#"{"useStatefulReconnect":true,"negotiateVersion":1,"connectionId":"a","connectionToken":"b","availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},{"transport":"ServerSentEvents","transferFormats":["Text"]},{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}"#
        );
        assert_eq!(NegotiateResponse::parse(&r.to_bytes()).unwrap(), r);
    }

    #[test]
    fn redirects_and_legacy_servers() {
        let r = NegotiateResponse::parse(br#"{"url":"http://x/hub","accessToken":"t"}"#).unwrap();
        assert_eq!(r.url.as_deref(), Some("http://x/hub"));
        assert_eq!(r.access_token.as_deref(), Some("t"));
        assert_eq!(
            NegotiateResponse::parse(br#"{"ProtocolVersion":"1.5"}"#),
            Err(ProtocolError::LegacyServer)
        );
        assert!(matches!(
            NegotiateResponse::parse(b"not json"),
            Err(ProtocolError::InvalidNegotiateResponse(_))
        ));
    }

    #[test]
    fn version_selection_texts() {
        assert_eq!(
            select_negotiate_version(Some("1.5"), 0)
                .unwrap_err()
                .to_string(),
            "The client requested a non-integer protocol version."
        );
        assert_eq!(
            select_negotiate_version(Some("0"), 1)
                .unwrap_err()
                .to_string(),
            "The client requested version '0', but the server does not support this version."
        );
    }
}
