//! The three transports, client side: each gives a stream of received bytes and a sink.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::sink::SinkExt;
use futures_util::stream::{BoxStream, StreamExt};
use http::HeaderMap;
use reqwest::cookie::{CookieStore, Jar};
use signalr_core::{SseDecoder, TransferFormat, TransportType};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use url::Url;

use crate::error::{Error, ErrorKind};

/// Where a connection's bytes go.
pub(crate) trait Sink: Send + 'static {
    fn send(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), Error>>;
    /// Closes the transport on purpose (a close frame, the end of the stream, DELETE).
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

/// How the transport's incoming stream ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ended {
    /// The server closed it on purpose (close frame, 204 to a poll, end of events).
    pub(crate) graceful: bool,
    /// Why, when it failed.
    pub(crate) error: Option<String>,
}

/// A started transport.
pub(crate) struct Started {
    pub(crate) kind: TransportType,
    pub(crate) incoming: BoxStream<'static, Result<Bytes, Ended>>,
    pub(crate) sink: Box<dyn Sink>,
}

/// Everything a transport request carries.
#[derive(Clone)]
pub(crate) struct RequestParts {
    pub(crate) http: reqwest::Client,
    /// The cookies `http` keeps (negotiate may set some), for the WebSocket upgrade.
    pub(crate) cookies: Arc<Jar>,
    pub(crate) headers: HeaderMap,
    pub(crate) token: Option<String>,
}

/// The official clients' `User-Agent`, in its Rust form.
pub(crate) fn user_agent() -> String {
    format!(
        "Microsoft SignalR/{} ({}; {}; Rust; {})",
        env!("CARGO_PKG_VERSION_MAJOR").to_owned() + "." + env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        option_env!("CARGO_PKG_RUST_VERSION").unwrap_or("unknown"),
    )
}

impl RequestParts {
    fn apply(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request = request.headers(self.headers.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }
}

fn io(err: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io(err.to_string()))
}

/// Starts `kind` at `url` (which already carries `?id=` when negotiated).
pub(crate) async fn start(
    kind: TransportType,
    url: &Url,
    format: TransferFormat,
    parts: &RequestParts,
) -> Result<Started, Error> {
    match kind {
        TransportType::WebSockets => websocket(url, format, parts).await,
        TransportType::ServerSentEvents => server_sent_events(url, parts).await,
        TransportType::LongPolling => long_polling(url, parts).await,
    }
}

async fn websocket(
    url: &Url,
    format: TransferFormat,
    parts: &RequestParts,
) -> Result<Started, Error> {
    let mut ws_url = url.clone();
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    ws_url.set_scheme(scheme).map_err(|()| {
        Error::new(ErrorKind::Config(format!(
            "cannot use {url} for WebSockets"
        )))
    })?;
    let mut request = ws_url.as_str().into_client_request().map_err(io)?;
    // What every HTTP request of the connection carries: the User-Agent and the cookies
    // (as the official clients send them on the upgrade too), then the configured headers.
    let headers = request.headers_mut();
    headers.insert(http::header::USER_AGENT, user_agent().parse().map_err(io)?);
    if let Some(cookies) = parts.cookies.cookies(url) {
        headers.insert(http::header::COOKIE, cookies);
    }
    for (name, value) in &parts.headers {
        headers.insert(name, value.clone());
    }
    if let Some(token) = &parts.token {
        let value = format!("Bearer {token}").parse().map_err(io)?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(io)?;
    let (sink, stream) = socket.split();
    let incoming = futures_util::stream::unfold(Some(stream), |stream| async move {
        let mut stream = stream?;
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Some((Ok(Bytes::from(text)), Some(stream)));
                }
                Some(Ok(Message::Binary(data))) => return Some((Ok(data), Some(stream))),
                Some(Ok(Message::Close(_))) => {
                    return Some((
                        Err(Ended {
                            graceful: true,
                            error: None,
                        }),
                        None,
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    return Some((
                        Err(Ended {
                            graceful: false,
                            error: Some(err.to_string()),
                        }),
                        None,
                    ));
                }
                None => return Some((Err(Ended::default()), None)),
            }
        }
    })
    .boxed();
    struct WsSink<S>(S, TransferFormat);
    impl<S> Sink for WsSink<S>
    where
        S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
            + Unpin
            + Send
            + 'static,
    {
        fn send(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async move {
                let message = match self.1 {
                    TransferFormat::Text => {
                        let text = String::from_utf8(data.to_vec()).map_err(io)?;
                        Message::text(text)
                    }
                    TransferFormat::Binary => Message::binary(data),
                };
                self.0.send(message).await.map_err(io)
            })
        }
        fn close(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                let _ = self.0.close().await;
            })
        }
    }
    Ok(Started {
        kind: TransportType::WebSockets,
        incoming,
        sink: Box::new(WsSink(sink, format)),
    })
}

/// POSTs each send to the connection URL (Server-Sent Events and Long Polling).
struct PostSink {
    url: Url,
    parts: RequestParts,
    delete_on_close: bool,
}

impl Sink for PostSink {
    fn send(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let response = self
                .parts
                .apply(self.parts.http.post(self.url.clone()))
                .body(data)
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(io(format!(
                    "POST failed with status code '{}'",
                    response.status().as_u16()
                )));
            }
            Ok(())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.delete_on_close {
                let _ = self
                    .parts
                    .apply(self.parts.http.delete(self.url.clone()))
                    .send()
                    .await;
            }
        })
    }
}

async fn server_sent_events(url: &Url, parts: &RequestParts) -> Result<Started, Error> {
    let response = parts
        .apply(parts.http.get(url.clone()))
        .header(http::header::ACCEPT, "text/event-stream")
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(io(format!(
            "Server-Sent Events failed with status code '{}'",
            response.status().as_u16()
        )));
    }
    let body = response.bytes_stream();
    let incoming =
        futures_util::stream::unfold(Some((body, SseDecoder::new(None))), |state| async move {
            let (mut body, mut decoder) = state?;
            loop {
                match decoder.next_event() {
                    Ok(Some(event)) => return Some((Ok(event), Some((body, decoder)))),
                    Ok(None) => {}
                    Err(err) => {
                        return Some((
                            Err(Ended {
                                graceful: false,
                                error: Some(err.to_string()),
                            }),
                            None,
                        ));
                    }
                }
                match body.next().await {
                    Some(Ok(chunk)) => decoder.feed(&chunk),
                    Some(Err(err)) => {
                        return Some((
                            Err(Ended {
                                graceful: false,
                                error: Some(err.to_string()),
                            }),
                            None,
                        ));
                    }
                    None => {
                        return Some((
                            Err(Ended {
                                graceful: true,
                                error: None,
                            }),
                            None,
                        ));
                    }
                }
            }
        })
        .boxed();
    Ok(Started {
        kind: TransportType::ServerSentEvents,
        incoming,
        sink: Box::new(PostSink {
            url: url.clone(),
            parts: parts.clone(),
            delete_on_close: false,
        }),
    })
}

async fn long_polling(url: &Url, parts: &RequestParts) -> Result<Started, Error> {
    // The first poll starts the connection and answers at once.
    let response = parts.apply(parts.http.get(url.clone())).send().await?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(io(format!(
            "Long polling failed with status code '{}'",
            response.status().as_u16()
        )));
    }
    let poll_url = url.clone();
    let poll_parts = parts.clone();
    let incoming = futures_util::stream::unfold(Some(()), move |state| {
        let url = poll_url.clone();
        let parts = poll_parts.clone();
        async move {
            state?;
            loop {
                // Longer than the server's poll timeout (90 s by default).
                let poll = parts
                    .apply(parts.http.get(url.clone()))
                    .timeout(std::time::Duration::from_secs(120));
                let response = match poll.send().await {
                    Ok(response) => response,
                    Err(err) => {
                        return Some((
                            Err(Ended {
                                graceful: false,
                                error: Some(err.to_string()),
                            }),
                            None,
                        ));
                    }
                };
                match response.status() {
                    reqwest::StatusCode::NO_CONTENT => {
                        return Some((
                            Err(Ended {
                                graceful: true,
                                error: None,
                            }),
                            None,
                        ));
                    }
                    reqwest::StatusCode::OK => match response.bytes().await {
                        Ok(body) if body.is_empty() => {}
                        Ok(body) => return Some((Ok(body), Some(()))),
                        Err(err) => {
                            return Some((
                                Err(Ended {
                                    graceful: false,
                                    error: Some(err.to_string()),
                                }),
                                None,
                            ));
                        }
                    },
                    status => {
                        let error =
                            format!("Long polling failed with status code '{}'", status.as_u16());
                        return Some((
                            Err(Ended {
                                graceful: false,
                                error: Some(error),
                            }),
                            None,
                        ));
                    }
                }
            }
        }
    })
    .boxed();
    Ok(Started {
        kind: TransportType::LongPolling,
        incoming,
        sink: Box::new(PostSink {
            url: url.clone(),
            parts: parts.clone(),
            delete_on_close: true,
        }),
    })
}
