//! `HandshakeRequest::parse` and `HandshakeResponse::parse` on arbitrary bytes (the raw
//! input, no header), taking handshakes off the front until one is incomplete or fails.
//! Every handshake parsed is written and parsed again, and must come back equal.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use signalr_core::{HandshakeRequest, HandshakeResponse};

/// The limit the targets parse with; libFuzzer's default -max_len is 4096, so inputs both
/// under and over it occur.
const LIMIT: Option<usize> = Some(1024);

fuzz_target!(|data: &[u8]| {
    for limit in [LIMIT, None] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(request)) = HandshakeRequest::parse(&mut buf, limit) {
            let bytes = request.to_bytes();
            assert_eq!(bytes.last(), Some(&0x1e), "a handshake ends with 0x1E");
            let mut again = BytesMut::from(&bytes[..]);
            let reparsed = HandshakeRequest::parse(&mut again, None);
            assert_eq!(reparsed, Ok(Some(request.clone())), "bytes: {bytes:02x?}");
            assert!(
                again.is_empty(),
                "the writer wrote more than one frame: {bytes:02x?}"
            );
        }

        let mut buf = BytesMut::from(data);
        while let Ok(Some(response)) = HandshakeResponse::parse(&mut buf, limit) {
            let bytes = response.to_bytes();
            assert_eq!(bytes.last(), Some(&0x1e), "a handshake ends with 0x1E");
            let mut again = BytesMut::from(&bytes[..]);
            let reparsed = HandshakeResponse::parse(&mut again, None);
            assert_eq!(reparsed, Ok(Some(response.clone())), "bytes: {bytes:02x?}");
            assert!(
                again.is_empty(),
                "the writer wrote more than one frame: {bytes:02x?}"
            );
        }
    }
});
