//! Shared helpers for the integration tests: an in-process server on a loopback port, a
//! tiny HTTP/1.1 client for negotiate, and a raw SignalR client over WebSockets that
//! speaks the hub protocols through `signalr-core`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use signalr_core::{
    Close, Completion, CompletionResult, HandshakeRequest, HandshakeResponse, HubMessage,
    HubProtocol, Invocation, JsonHubProtocol, MessagePackHubProtocol, MessageReader, RawValue,
    StreamInvocation, StreamItem, TransferFormat,
};
use signalr_server::{Hub, SignalR};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// The longest any single wait in a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// A server on `127.0.0.1:<random port>`, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// How many accepted TCP connections the server still holds open.
    pub fn open_sockets(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits until the server holds exactly `count` TCP connections open.
    pub async fn wait_open_sockets(&self, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.open_sockets() == count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `hub` at `/hub`.
pub async fn serve(hub: Hub) -> TestServer {
    serve_router(SignalR::new().hub("/hub", hub).into_router()).await
}

/// Serves an axum router.
pub async fn serve_router(router: axum::Router) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let tracking = TrackingListener {
        inner: listener,
        open: open.clone(),
    };
    let task = tokio::spawn(async move {
        axum::serve(tracking, router).await.unwrap();
    });
    TestServer { addr, open, task }
}

/// A listener that counts the server's open TCP connections.
struct TrackingListener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TrackingListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((stream, addr)) = self.inner.accept().await {
                self.open.fetch_add(1, Ordering::SeqCst);
                let tracked = TrackedStream {
                    inner: stream,
                    open: self.open.clone(),
                };
                return (tracked, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A server-side TCP stream that decrements the open count when dropped.
struct TrackedStream {
    inner: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// ---------------------------------------------------------------------------------------
// Events recorded by hub code
// ---------------------------------------------------------------------------------------

/// A list that hub code appends to and tests wait on. Cheap to clone.
pub struct Log<T> {
    inner: Arc<(Mutex<Vec<T>>, Notify)>,
}

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone> Default for Log<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> Log<T> {
    pub fn new() -> Self {
        Self {
            inner: Arc::new((Mutex::new(Vec::new()), Notify::new())),
        }
    }

    pub fn push(&self, value: T) {
        self.inner.0.lock().unwrap().push(value);
        self.inner.1.notify_waiters();
    }

    pub fn snapshot(&self) -> Vec<T> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the entries, at most [`TIMEOUT`]; panics otherwise.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[T]) -> bool) -> Vec<T> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let entries = self.inner.0.lock().unwrap();
                if done(&entries) {
                    return entries.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {what}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with an empty body, on its own TCP connection.
pub async fn http(addr: SocketAddr, method: &str, target: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("HTTP response timed out")
        .unwrap();
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> HttpResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("incomplete HTTP head");
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .expect("status code")
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        match headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            Some((_, len)) => rest[..len.parse::<usize>().unwrap()].to_vec(),
            None => rest.to_vec(),
        }
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `POST {path}/negotiate?{query}`.
pub async fn negotiate(addr: SocketAddr, path: &str, query: &str) -> HttpResponse {
    let target = if query.is_empty() {
        format!("{path}/negotiate")
    } else {
        format!("{path}/negotiate?{query}")
    };
    http(addr, "POST", &target).await
}

// ---------------------------------------------------------------------------------------
// WebSockets
// ---------------------------------------------------------------------------------------

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `path_and_query`; with `recv_buffer`, the client's TCP receive
/// buffer is made that small (for clients that stop reading).
pub async fn ws_connect(
    addr: SocketAddr,
    path_and_query: &str,
    recv_buffer: Option<u32>,
) -> Result<Ws, tungstenite::Error> {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}{path_and_query}");
    let (ws, _response) =
        tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(url, stream))
            .await
            .expect("WebSocket connect timed out")?;
    Ok(ws)
}

/// The status and body of a refused WebSocket request (101 when it was accepted).
pub async fn ws_status(addr: SocketAddr, path_and_query: &str) -> (u16, String) {
    match ws_connect(addr, path_and_query, None).await {
        Ok(_) => (101, String::new()),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            (response.status().as_u16(), body)
        }
        Err(err) => panic!("unexpected WebSocket error: {err}"),
    }
}

/// The next data frame's payload; `None` when the socket closed (close frame, EOF, reset).
async fn read_data(ws: &mut Ws) -> Option<Bytes> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(Bytes::from(text)),
            Ok(Message::Binary(data)) => return Some(data),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn protocol_named(name: &str) -> Arc<dyn HubProtocol> {
    if name.eq_ignore_ascii_case("messagepack") {
        Arc::new(MessagePackHubProtocol::new())
    } else {
        Arc::new(JsonHubProtocol::new())
    }
}

/// Sends a handshake request and reads the response. `Err(())` when the socket closed
/// before a complete response arrived.
pub async fn handshake(
    ws: &mut Ws,
    protocol: &str,
    version: u32,
) -> Result<(HandshakeResponse, BytesMut), ()> {
    let request = HandshakeRequest::new(protocol, version).to_bytes();
    let frame = if protocol_named(protocol).transfer_format() == TransferFormat::Binary {
        Message::Binary(request)
    } else {
        Message::Text(String::from_utf8(request.to_vec()).unwrap().into())
    };
    ws.send(frame).await.unwrap();
    read_handshake_response(ws).await
}

/// Reads a handshake response (the server may send one without a request, on timeout).
pub async fn read_handshake_response(ws: &mut Ws) -> Result<(HandshakeResponse, BytesMut), ()> {
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(response) = HandshakeResponse::parse(&mut buf, None).unwrap() {
            return Ok((response, buf));
        }
        match tokio::time::timeout_at(deadline, read_data(ws)).await {
            Err(_) => panic!("timed out waiting for the handshake response"),
            Ok(Some(data)) => buf.extend_from_slice(&data),
            Ok(None) => return Err(()),
        }
    }
}

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct Options {
    /// The hub's path.
    pub path: String,
    /// The hub protocol (`json`, `messagepack`).
    pub protocol: String,
    /// The hub protocol version in the handshake.
    pub version: u32,
    /// Negotiate first (version 1) and connect with `?id=<token>`; otherwise connect
    /// directly (skip negotiation).
    pub negotiate: bool,
    /// Extra query string for negotiate and the WebSocket (`user=alice`).
    pub query: String,
    /// A small TCP receive buffer, for clients that stop reading.
    pub recv_buffer: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            path: "/hub".into(),
            protocol: "json".into(),
            version: 1,
            negotiate: true,
            query: String::new(),
            recv_buffer: None,
        }
    }
}

impl Options {
    pub fn messagepack() -> Self {
        Self {
            protocol: "messagepack".into(),
            ..Self::default()
        }
    }

    pub fn query(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            ..Self::default()
        }
    }
}

/// What the connection delivered next.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(HubMessage),
    /// The socket ended: a close frame, EOF or a reset.
    Closed,
}

/// A raw SignalR client.
pub struct Client {
    ws: Ws,
    reader: MessageReader<Arc<dyn HubProtocol>>,
    pub protocol: Arc<dyn HubProtocol>,
    /// The negotiated connection id (empty when negotiation was skipped).
    pub connection_id: String,
    /// Messages read while waiting for something else.
    backlog: VecDeque<HubMessage>,
    ended: bool,
    next_id: u64,
    /// Every byte received after the handshake, when `keep_raw` is on.
    pub raw: Vec<u8>,
    pub keep_raw: bool,
}

impl Client {
    /// Negotiates, connects with JSON and completes the handshake.
    pub async fn connect(addr: SocketAddr) -> Client {
        Self::connect_with(addr, &Options::default()).await
    }

    pub async fn connect_with(addr: SocketAddr, options: &Options) -> Client {
        let join = |base: String| {
            if options.query.is_empty() {
                base
            } else if base.contains('?') {
                format!("{base}&{}", options.query)
            } else {
                format!("{base}?{}", options.query)
            }
        };
        let (connection_id, target) = if options.negotiate {
            let query = if options.query.is_empty() {
                "negotiateVersion=1".to_owned()
            } else {
                format!("negotiateVersion=1&{}", options.query)
            };
            let response = negotiate(addr, &options.path, &query).await;
            assert_eq!(response.status, 200, "negotiate: {}", response.text());
            let body = response.json();
            let id = body["connectionId"]
                .as_str()
                .expect("connectionId")
                .to_owned();
            let token = body["connectionToken"]
                .as_str()
                .expect("connectionToken")
                .to_owned();
            (id, join(format!("{}?id={token}", options.path)))
        } else {
            (String::new(), join(options.path.clone()))
        };
        let ws = ws_connect(addr, &target, options.recv_buffer)
            .await
            .unwrap_or_else(|e| panic!("WebSocket to {target}: {e}"));
        let mut client = Self::handshaken(ws, &options.protocol, options.version).await;
        client.connection_id = connection_id;
        client
    }

    /// Completes the handshake on an open WebSocket; panics when it fails.
    pub async fn handshaken(mut ws: Ws, protocol: &str, version: u32) -> Client {
        let (response, leftover) = handshake(&mut ws, protocol, version)
            .await
            .expect("the server closed during the handshake");
        assert_eq!(response.error, None, "handshake failed");
        let protocol = protocol_named(protocol);
        let mut reader = MessageReader::new(protocol.clone(), None);
        reader.feed(&leftover);
        Client {
            ws,
            reader,
            protocol,
            connection_id: String::new(),
            backlog: VecDeque::new(),
            ended: false,
            next_id: 0,
            raw: leftover.to_vec(),
            keep_raw: true,
        }
    }

    /// The raw bytes received so far, as text (JSON connections).
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    // --- sending -------------------------------------------------------------------------

    pub fn encode(&self, value: &serde_json::Value) -> RawValue {
        RawValue::encode(self.protocol.encoding(), value).unwrap()
    }

    /// Encodes a JSON array as arguments.
    pub fn encode_args(&self, args: &serde_json::Value) -> Vec<RawValue> {
        args.as_array()
            .expect("arguments must be a JSON array")
            .iter()
            .map(|a| self.encode(a))
            .collect()
    }

    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn ws_message(&self, bytes: Bytes) -> Message {
        match self.protocol.transfer_format() {
            TransferFormat::Text => {
                Message::Text(String::from_utf8(bytes.to_vec()).unwrap().into())
            }
            TransferFormat::Binary => Message::Binary(bytes),
        }
    }

    pub async fn send_bytes(&mut self, bytes: Bytes) {
        let frame = self.ws_message(bytes);
        self.ws.send(frame).await.unwrap();
    }

    /// Sends each chunk as a WebSocket message of its own, all in one write, so that they
    /// reach the server together.
    pub async fn send_burst(&mut self, chunks: impl IntoIterator<Item = Bytes>) {
        for chunk in chunks {
            let frame = self.ws_message(chunk);
            self.ws.feed(frame).await.unwrap();
        }
        self.ws.flush().await.unwrap();
    }

    /// A blocking invocation, encoded.
    pub fn invocation_bytes(&self, id: &str, target: &str, args: serde_json::Value) -> Bytes {
        let args = self.encode_args(&args);
        let message: HubMessage = Invocation::new(target, args).with_invocation_id(id).into();
        self.protocol.to_bytes(&message).unwrap()
    }

    pub async fn send(&mut self, message: HubMessage) {
        let bytes = self.protocol.to_bytes(&message).unwrap();
        self.send_bytes(bytes).await;
    }

    /// Sends a blocking invocation with the given id.
    pub async fn send_invocation(&mut self, id: &str, target: &str, args: serde_json::Value) {
        let args = self.encode_args(&args);
        self.send(Invocation::new(target, args).with_invocation_id(id).into())
            .await;
    }

    /// Sends a non-blocking invocation (no id, no completion).
    pub async fn send_fire_and_forget(&mut self, target: &str, args: serde_json::Value) {
        let args = self.encode_args(&args);
        self.send(Invocation::new(target, args).into()).await;
    }

    /// Sends a blocking invocation with upload stream ids.
    pub async fn send_invocation_with_streams(
        &mut self,
        id: &str,
        target: &str,
        args: serde_json::Value,
        stream_ids: &[&str],
    ) {
        let args = self.encode_args(&args);
        let ids = stream_ids.iter().map(|s| (*s).to_owned()).collect();
        self.send(
            Invocation::new(target, args)
                .with_invocation_id(id)
                .with_stream_ids(ids)
                .into(),
        )
        .await;
    }

    pub async fn send_stream_invocation(
        &mut self,
        id: &str,
        target: &str,
        args: serde_json::Value,
    ) {
        let args = self.encode_args(&args);
        self.send(StreamInvocation::new(id, target, args).into())
            .await;
    }

    pub async fn send_item(&mut self, stream_id: &str, item: serde_json::Value) {
        let item = self.encode(&item);
        self.send(StreamItem::new(stream_id, item).into()).await;
    }

    pub async fn send_completion(&mut self, completion: Completion) {
        self.send(completion.into()).await;
    }

    pub async fn ping(&mut self) {
        self.send(HubMessage::Ping).await;
    }

    /// Closes the WebSocket cleanly and waits for the server's end of it.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    // --- receiving -----------------------------------------------------------------------

    /// The next message (pings included) or the socket's end, within `within`.
    pub async fn next_event_within(&mut self, within: Duration) -> Option<Event> {
        if let Some(message) = self.backlog.pop_front() {
            return Some(Event::Message(message));
        }
        let deadline = Instant::now() + within;
        loop {
            match self.reader.next_message() {
                Ok(Some(message)) => return Some(Event::Message(message)),
                Ok(None) => {}
                Err(err) => panic!("the client could not parse what the server sent: {err}"),
            }
            if self.ended {
                return Some(Event::Closed);
            }
            match tokio::time::timeout_at(deadline, read_data(&mut self.ws)).await {
                Err(_) => return None,
                Ok(Some(data)) => {
                    if self.keep_raw {
                        self.raw.extend_from_slice(&data);
                    }
                    self.reader.feed_bytes(data);
                }
                Ok(None) => self.ended = true,
            }
        }
    }

    /// The next event, within [`TIMEOUT`].
    pub async fn next_event(&mut self) -> Event {
        self.next_event_within(TIMEOUT)
            .await
            .expect("timed out waiting for a message")
    }

    /// The next message other than a ping, within `within`; `None` on timeout. Panics when
    /// the socket ends.
    pub async fn recv_within(&mut self, within: Duration) -> Option<HubMessage> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event_within(left).await? {
                Event::Message(HubMessage::Ping) => {}
                Event::Message(message) => return Some(message),
                Event::Closed => panic!("the connection closed while a message was expected"),
            }
        }
    }

    /// The next message other than a ping, within [`TIMEOUT`].
    pub async fn recv(&mut self) -> HubMessage {
        self.recv_within(TIMEOUT)
            .await
            .expect("timed out waiting for a message")
    }

    /// Reads until a message matches, keeping the others (pings excepted) for later.
    pub async fn wait_for(
        &mut self,
        what: &str,
        matches: impl Fn(&HubMessage) -> bool,
    ) -> HubMessage {
        if let Some(pos) = self.backlog.iter().position(&matches) {
            return self.backlog.remove(pos).unwrap();
        }
        let deadline = Instant::now() + TIMEOUT;
        let mut skipped = VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = {
                // Read past the backlog: it was checked above.
                let backlog = std::mem::take(&mut self.backlog);
                let event = self.next_event_within(left).await;
                self.backlog = backlog;
                event
            };
            match event {
                None => panic!("timed out waiting for {what}; got {skipped:?}"),
                Some(Event::Closed) => {
                    panic!("connection closed while waiting for {what}; got {skipped:?}")
                }
                Some(Event::Message(HubMessage::Ping)) => {}
                Some(Event::Message(message)) if matches(&message) => {
                    self.backlog.extend(skipped);
                    return message;
                }
                Some(Event::Message(message)) => skipped.push_back(message),
            }
        }
    }

    /// Waits for the completion of invocation `id`.
    pub async fn completion(&mut self, id: &str) -> Completion {
        let message = self
            .wait_for(
                &format!("completion '{id}'"),
                |m| matches!(m, HubMessage::Completion(c) if c.invocation_id == id),
            )
            .await;
        match message {
            HubMessage::Completion(c) => c,
            _ => unreachable!(),
        }
    }

    /// Forgets the messages kept while waiting for others; returns them.
    pub fn take_backlog(&mut self) -> Vec<HubMessage> {
        self.backlog.drain(..).collect()
    }

    /// Invokes `target` and waits for its completion.
    pub async fn invoke(&mut self, target: &str, args: serde_json::Value) -> Completion {
        let id = self.new_id();
        self.send_invocation(&id, target, args).await;
        self.completion(&id).await
    }

    /// Invokes `target` and returns its result, panicking on an error.
    pub async fn invoke_value<T: DeserializeOwned>(
        &mut self,
        target: &str,
        args: serde_json::Value,
    ) -> T {
        let completion = self.invoke(target, args).await;
        match completion.result {
            CompletionResult::Value(v) => v.deserialize_owned().unwrap(),
            CompletionResult::Void => serde_json::from_value(serde_json::Value::Null).unwrap(),
            CompletionResult::Error(e) => panic!("{target} failed: {e}"),
        }
    }

    /// Invokes `target` and returns its error text, panicking on success.
    pub async fn invoke_error(&mut self, target: &str, args: serde_json::Value) -> String {
        error_of(&self.invoke(target, args).await)
    }

    /// Reads until the socket ends; returns the Close message seen on the way, if any.
    pub async fn expect_closed(&mut self) -> Option<Close> {
        let deadline = Instant::now() + TIMEOUT;
        let mut close = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event_within(left).await {
                None => panic!("timed out waiting for the server to close the connection"),
                Some(Event::Closed) => return close,
                Some(Event::Message(HubMessage::Close(c))) => close = Some(c),
                Some(Event::Message(_)) => {}
            }
        }
    }

    /// Gives up the socket without closing it (dropping it ends the TCP connection).
    pub fn into_ws(self) -> Ws {
        self.ws
    }
}

/// The error text of a completion; panics when it is not an error.
pub fn error_of(completion: &Completion) -> String {
    match &completion.result {
        CompletionResult::Error(e) => e.clone(),
        other => panic!("expected an error completion, got {other:?}"),
    }
}

/// The value of a completion, deserialized; panics on error or void.
pub fn value_of<T: DeserializeOwned>(completion: &Completion) -> T {
    match &completion.result {
        CompletionResult::Value(v) => v.deserialize_owned().unwrap(),
        other => panic!("expected a value completion, got {other:?}"),
    }
}

/// The target and arguments of an invocation; panics for other messages.
pub fn invocation_of(message: &HubMessage) -> (&str, &[RawValue]) {
    match message {
        HubMessage::Invocation(i) => (i.target.as_str(), i.arguments.as_slice()),
        other => panic!("expected an invocation, got {other:?}"),
    }
}

/// Decodes an argument.
pub fn arg<T: DeserializeOwned>(value: &RawValue) -> T {
    value.deserialize_owned().unwrap()
}
