//! A minimal WebSocket client for SignalR: negotiate (optional), the upgrade, the
//! handshake, pre-encoded frames out, and records in. Per connection it keeps a socket
//! and two byte buffers that stay empty between messages; reads go through one scratch
//! buffer per thread.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::proto::{self, Protocol};

/// Where and how to connect.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) negotiate: bool,
    pub(crate) protocol: Protocol,
    /// Loopback source addresses to spread connections over (127.0.0.1 ..= 127.0.0.N).
    pub(crate) sources: u8,
}

impl Target {
    /// Parses `ws://127.0.0.1:5000/bench` (or `http://`). Only loopback hosts: this tool
    /// is for measuring a server on the same machine.
    pub(crate) fn parse(url: &str, protocol: Protocol, negotiate: bool) -> Result<Self, String> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("expected a ws:// or http:// URL, got {url}"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = host.replace("localhost", "127.0.0.1");
        let addr: SocketAddr = host
            .parse()
            .map_err(|_| format!("expected an IP address and port in {url}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr} is not a loopback address; only loopback targets are allowed"
            ));
        }
        Ok(Self {
            addr,
            path: path.to_owned(),
            negotiate,
            protocol,
            sources: 1,
        })
    }

    /// The source address for the `index`th connection.
    pub(crate) fn source(&self, index: usize) -> IpAddr {
        match self.addr.ip() {
            IpAddr::V4(_) => {
                let n = usize::from(self.sources.max(1));
                let last = u8::try_from(index % n + 1).unwrap_or(1);
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
            }
            IpAddr::V6(v6) => IpAddr::V6(v6),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// An open SignalR connection over WebSockets.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes of an incomplete WebSocket frame.
    raw: Vec<u8>,
    /// Bytes of an incomplete record, across frames.
    partial: Vec<u8>,
    protocol: Protocol,
    closed: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn tcp(addr: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Ports left in TIME_WAIT by an earlier run must not block this one's binds.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `POST {path}/negotiate?negotiateVersion=1`; returns the connection token.
async fn negotiate(target: &Target, source: IpAddr) -> Result<String, BoxError> {
    let mut stream = tcp(target.addr, source).await?;
    let path = target.path.trim_end_matches('/');
    let request = format!(
        "POST {path}/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        target.addr
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::with_capacity(512);
    stream.read_to_end(&mut response).await?;
    let head_end = proto::find(&response, b"\r\n\r\n").ok_or("negotiate: no response head")?;
    if !response.starts_with(b"HTTP/1.1 200") {
        let line = String::from_utf8_lossy(&response[..head_end.min(80)]).into_owned();
        return Err(format!("negotiate failed: {line}").into());
    }
    let body = &response[head_end + 4..];
    // The JSON object, whether the body came chunked or with a length.
    let from = body
        .iter()
        .position(|&b| b == b'{')
        .ok_or("negotiate: no JSON body")?;
    let to = body
        .iter()
        .rposition(|&b| b == b'}')
        .ok_or("negotiate: no JSON body")?;
    let body = body.get(from..=to).ok_or("negotiate: no JSON body")?;
    let json: serde_json::Value = serde_json::from_slice(body)?;
    let token = json
        .get("connectionToken")
        .or_else(|| json.get("connectionId"))
        .and_then(|v| v.as_str())
        .ok_or("negotiate: no connection token")?;
    Ok(token.to_owned())
}

impl Conn {
    /// Negotiates (if the target says so), upgrades and completes the SignalR handshake.
    pub(crate) async fn connect(target: &Target, index: usize) -> Result<Self, BoxError> {
        let source = target.source(index);
        let query = if target.negotiate {
            format!("?id={}", negotiate(target, source).await?)
        } else {
            String::new()
        };
        let mut stream = tcp(target.addr, source).await?;
        let request = format!(
            "GET {}{query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.path, target.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(256);
        let head_end = loop {
            let n = stream.read_buf(&mut head).await?;
            if n == 0 {
                return Err("connection closed during the upgrade".into());
            }
            if let Some(i) = proto::find(&head, b"\r\n\r\n") {
                break i + 4;
            }
            if head.len() > 16 * 1024 {
                return Err("upgrade response too long".into());
            }
        };
        if !head.starts_with(b"HTTP/1.1 101") {
            let line = String::from_utf8_lossy(&head[..head_end.min(80)]).into_owned();
            return Err(format!("upgrade refused: {line}").into());
        }
        let mut conn = Self {
            stream,
            raw: head[head_end..].to_vec(),
            partial: Vec::new(),
            protocol: target.protocol,
            closed: false,
        };
        conn.send(&target.protocol.handshake()).await?;
        // The handshake response is a JSON record whatever the protocol.
        let mut reply: Option<Vec<u8>> = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while reply.is_none() {
            if !conn.raw.is_empty() {
                let raw = std::mem::take(&mut conn.raw);
                conn.ingest(&raw, true, &mut |r| {
                    reply.get_or_insert_with(|| r.to_vec());
                });
                if reply.is_some() {
                    break;
                }
            }
            tokio::time::timeout_at(deadline, conn.stream.readable())
                .await
                .map_err(|_| "handshake timed out")??;
            conn.read_ready_inner(true, &mut |r| {
                reply.get_or_insert_with(|| r.to_vec());
            })?;
            if conn.closed && reply.is_none() {
                return Err("connection closed during the handshake".into());
            }
        }
        let reply = reply.unwrap_or_default();
        if proto::find(&reply, b"\"error\"").is_some() {
            return Err(format!("handshake refused: {}", String::from_utf8_lossy(&reply)).into());
        }
        Ok(conn)
    }

    /// Writes one pre-encoded frame.
    pub(crate) async fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.stream.write_all(frame).await
    }

    /// Sends a close frame and shuts the socket down.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.write_all(&proto::ws_close()).await;
        let _ = self.stream.shutdown().await;
    }

    /// Waits until the socket has something to read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// The hub protocol of this connection.
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the server closed the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads what is available without waiting and calls `f` with each whole record.
    pub(crate) fn read_ready(&mut self, f: &mut impl FnMut(&[u8])) -> io::Result<()> {
        self.read_ready_inner(false, f)
    }

    fn read_ready_inner(&mut self, json: bool, f: &mut impl FnMut(&[u8])) -> io::Result<()> {
        loop {
            let result: io::Result<usize> = SCRATCH.with_borrow_mut(|scratch| {
                let n = self.stream.try_read(scratch)?;
                if n == 0 {
                    self.closed = true;
                } else if self.raw.is_empty() {
                    self.ingest(&scratch[..n], json, f);
                } else {
                    let mut raw = std::mem::take(&mut self.raw);
                    raw.extend_from_slice(&scratch[..n]);
                    self.ingest(&raw, json, f);
                }
                Ok(n)
            });
            match result {
                Ok(0) => return Ok(()),
                Ok(_) if self.closed => return Ok(()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) => {
                    self.closed = true;
                    return Err(err);
                }
            }
        }
    }

    /// Parses WebSocket frames from `data`; keeps an incomplete frame in `self.raw`.
    fn ingest(&mut self, data: &[u8], json: bool, f: &mut impl FnMut(&[u8])) {
        let protocol = if json { Protocol::Json } else { self.protocol };
        let mut pos = 0;
        while let Some((opcode, start, end)) = frame_bounds(&data[pos..]) {
            let payload = &data[pos + start..pos + end];
            match opcode {
                0x0..=0x2 => {
                    if self.partial.is_empty() {
                        let used = protocol.split_records(payload, f);
                        self.partial.extend_from_slice(&payload[used..]);
                    } else {
                        self.partial.extend_from_slice(payload);
                        let partial = std::mem::take(&mut self.partial);
                        let used = protocol.split_records(&partial, f);
                        self.partial = partial[used..].to_vec();
                    }
                }
                0x8 => self.closed = true,
                // Pings from the server would need a pong; tungstenite servers send none
                // unless asked to. Pongs are ignored.
                _ => {}
            }
            pos += end;
            if json {
                // After the handshake record, leave the rest for the hub protocol.
                if !self.partial.is_empty() || pos < data.len() {
                    self.raw = data[pos..].to_vec();
                }
                return;
            }
        }
        self.raw.clear();
        self.raw.extend_from_slice(&data[pos..]);
        if self.raw.capacity() > 64 * 1024 && self.raw.len() < 1024 {
            self.raw.shrink_to_fit();
        }
    }
}

/// The opcode and the payload's bounds of the first whole server frame in `data`.
fn frame_bounds(data: &[u8]) -> Option<(u8, usize, usize)> {
    let [b0, b1, ..] = *data else {
        return None;
    };
    let opcode = b0 & 0x0f;
    let masked = b1 & 0x80 != 0;
    let (len, mut header): (usize, usize) = match b1 & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = data.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    if masked {
        header += 4;
    }
    let end = header.checked_add(len)?;
    (data.len() >= end).then_some((opcode, header, end))
}
