//! Raw connections: the HTTP transports without the hub protocol (ASP.NET Core's
//! `MapConnectionHandler`).

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use signalr_core::{TransferFormat, TransportType};

use crate::dispatch::TransportSink;
use crate::error::{Error, ErrorKind};
use crate::identity::{Identity, RequestInfo};

/// A connection on a raw endpoint ([`SignalR::connection`](crate::SignalR::connection)):
/// bytes in, bytes out, over whichever transport the client negotiated.
pub struct RawConnection {
    pub(crate) connection_id: String,
    pub(crate) transport: TransportType,
    pub(crate) request: RequestInfo,
    pub(crate) identity: Option<Identity>,
    pub(crate) incoming: BoxStream<'static, Bytes>,
    pub(crate) sink: Box<dyn TransportSink>,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection")
            .field("connection_id", &self.connection_id)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl RawConnection {
    /// The public connection id.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// The transport in use.
    pub fn transport(&self) -> TransportType {
        self.transport
    }

    /// The HTTP request that opened the transport.
    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    /// The caller's identity, when an outer middleware set one.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The next piece of data the client sent (a WebSocket message, a POST body), or
    /// `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.incoming.next().await
    }

    /// Sends data. Over WebSockets, valid UTF-8 goes as a text frame and anything else as
    /// a binary frame; Server-Sent Events carry text only.
    pub async fn send(&mut self, data: Bytes) -> Result<(), Error> {
        let format = if std::str::from_utf8(&data).is_ok() {
            TransferFormat::Text
        } else if self.transport == TransportType::ServerSentEvents {
            return Err(Error::new(ErrorKind::InvalidArgument(
                "Server-Sent Events can only carry UTF-8 text.".into(),
            )));
        } else {
            TransferFormat::Binary
        };
        // No send timeout here: the caller decides how long to wait.
        self.sink
            .send(data, format, Duration::from_secs(365 * 24 * 3600))
            .await
            .map_err(|()| Error::new(ErrorKind::Disconnected(self.connection_id.clone())))
    }

    /// Closes the connection cleanly (a WebSocket close frame with code 1000, the end of
    /// the event stream, or a 204 to the pending poll).
    pub async fn close(mut self) {
        self.sink.close().await;
    }
}
