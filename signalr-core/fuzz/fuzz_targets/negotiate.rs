//! `NegotiateResponse::parse` on arbitrary bytes (the raw input, no header). Every response
//! parsed is written with `to_bytes` and parsed again; the result must be exactly what the
//! writer's documented rules predict, and writing that again must give the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr_core::{NegotiateResponse, ProtocolError};

fn missing(property: &'static str) -> ProtocolError {
    ProtocolError::InvalidNegotiateResponse(ProtocolError::MissingProperty(property).to_string())
}

/// What parsing `response.to_bytes()` must give. The writer, like ASP.NET Core's, drops
/// some of what the parser keeps:
/// - a non-empty `error` is written alone (with `useStatefulReconnect` when true);
/// - an empty `error` is no error, and empty strings are not written at all;
/// - `connectionToken` is written only for `negotiateVersion` 1 and above.
///
/// The parser, like the official clients, checks the required properties only when `url`
/// and `error` are absent (null), so an input with `"url":""` or `"error":""` parses without
/// them, and what the writer makes of it may not parse any more.
fn expected(response: &NegotiateResponse) -> Result<NegotiateResponse, ProtocolError> {
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    if let Some(error) = non_empty(&response.error) {
        let mut refusal = NegotiateResponse::error(error);
        refusal.use_stateful_reconnect = response.use_stateful_reconnect;
        return Ok(refusal);
    }
    let mut kept = response.clone();
    kept.error = None;
    kept.url = non_empty(&response.url);
    kept.access_token = non_empty(&response.access_token);
    kept.connection_id = non_empty(&response.connection_id);
    kept.connection_token =
        non_empty(&response.connection_token).filter(|_| response.negotiate_version > 0);
    if kept.url.is_none() {
        if kept.connection_id.is_none() {
            return Err(missing("connectionId"));
        }
        if kept.negotiate_version > 0 && kept.connection_token.is_none() {
            return Err(missing("connectionToken"));
        }
    }
    Ok(kept)
}

fuzz_target!(|data: &[u8]| {
    let Ok(response) = NegotiateResponse::parse(data) else {
        return;
    };
    let bytes = response.to_bytes();
    let expected = expected(&response);
    let reparsed = NegotiateResponse::parse(&bytes);
    assert_eq!(
        reparsed,
        expected,
        "round trip changed the response\noriginal: {response:?}\nwritten: {}",
        String::from_utf8_lossy(&bytes)
    );
    if let Ok(reparsed) = reparsed {
        assert_eq!(reparsed.to_bytes(), bytes, "writing is not a fixpoint");
    }
});
