//! Negotiate, with redirects.

use signalr_core::NegotiateResponse;
use url::Url;

use crate::error::{Error, ErrorKind};
use crate::transport::RequestParts;

/// The most redirects followed, as the official clients.
const MAX_REDIRECTS: usize = 100;

/// The outcome: where to connect and how.
pub(crate) struct Negotiated {
    /// The hub URL after redirects.
    pub(crate) url: Url,
    pub(crate) response: NegotiateResponse,
}

/// `{url}/negotiate` with the URL's own query kept and `negotiateVersion=1` added.
pub(crate) fn negotiate_url(url: &Url, stateful: bool) -> Url {
    let mut negotiate = url.clone();
    let path = format!("{}/negotiate", url.path().trim_end_matches('/'));
    negotiate.set_path(&path);
    let has_version = url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("negotiateVersion"));
    {
        let mut query = negotiate.query_pairs_mut();
        if !has_version {
            query.append_pair("negotiateVersion", "1");
        }
        if stateful {
            query.append_pair("useStatefulReconnect", "true");
        }
    }
    negotiate
}

fn negotiate_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Negotiate(message.into()))
}

/// Negotiates, following `url`/`accessToken` redirects; `parts.token` becomes the
/// redirect's token when it gives one.
pub(crate) async fn negotiate(
    url: &Url,
    parts: &mut RequestParts,
    stateful: bool,
) -> Result<Negotiated, Error> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let request = parts
            .http
            .post(negotiate_url(&url, stateful))
            .headers(parts.headers.clone());
        let request = match &parts.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| negotiate_error(e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| negotiate_error(e.to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let reason = if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("").to_owned()
            } else {
                text.into_owned()
            };
            return Err(negotiate_error(format!(
                "Error: {reason}: Status code '{}'",
                status.as_u16()
            )));
        }
        let parsed = NegotiateResponse::parse(&body).map_err(|e| negotiate_error(e.to_string()))?;
        if let Some(error) = parsed.error.clone() {
            return Err(negotiate_error(error));
        }
        if let Some(redirect) = parsed.url.clone() {
            url = Url::parse(&redirect)
                .map_err(|e| negotiate_error(format!("invalid redirect URL '{redirect}': {e}")))?;
            if let Some(token) = parsed.access_token {
                parts.token = Some(token);
            }
            continue;
        }
        if parsed.use_stateful_reconnect && !stateful {
            return Err(negotiate_error(
                "Client didn't negotiate Stateful Reconnect but the server did.",
            ));
        }
        return Ok(Negotiated {
            url,
            response: parsed,
        });
    }
    Err(negotiate_error("Negotiate redirection limit exceeded."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_url_keeps_the_query() {
        let url = Url::parse("http://h/hub?a=1").unwrap();
        assert_eq!(
            negotiate_url(&url, false).as_str(),
            "http://h/hub/negotiate?a=1&negotiateVersion=1"
        );
        let url = Url::parse("http://h/hub/").unwrap();
        assert_eq!(
            negotiate_url(&url, true).as_str(),
            "http://h/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true"
        );
    }
}
