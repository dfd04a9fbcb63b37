//! Who is connected: the HTTP request behind a connection, the authenticated identity, the
//! user id, and per-connection items.

use std::sync::{Mutex, OnceLock};

use http::{HeaderMap, Method, Uri};

/// The claim type ASP.NET Core's default user-id provider reads
/// (`ClaimTypes.NameIdentifier`).
pub const NAME_IDENTIFIER: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";

/// One claim of an identity: a type and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claim type, for example [`NAME_IDENTIFIER`].
    pub kind: String,
    /// The claim's value.
    pub value: String,
}

/// An authenticated identity: a list of claims.
///
/// Put one in the request's extensions (in an axum middleware or, later, through an
/// authenticator) and the connection made by that request carries it; the default
/// [`UserIdProvider`] takes the user id from its [`NAME_IDENTIFIER`] claim.
///
/// ```
/// use signalr_server::Identity;
///
/// let alice = Identity::user("alice").with_claim("role", "admin");
/// assert_eq!(alice.name_identifier(), Some("alice"));
/// assert_eq!(alice.find("role"), Some("admin"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    claims: Vec<Claim>,
}

impl Identity {
    /// An identity with no claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// An identity whose name identifier is `user_id`.
    pub fn user(user_id: impl Into<String>) -> Self {
        Self::new().with_claim(NAME_IDENTIFIER, user_id)
    }

    /// Adds a claim.
    pub fn with_claim(mut self, kind: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims.push(Claim {
            kind: kind.into(),
            value: value.into(),
        });
        self
    }

    /// Every claim.
    pub fn claims(&self) -> &[Claim] {
        &self.claims
    }

    /// The value of the first claim of type `kind`.
    pub fn find(&self, kind: &str) -> Option<&str> {
        self.claims
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.value.as_str())
    }

    /// The [`NAME_IDENTIFIER`] claim.
    pub fn name_identifier(&self) -> Option<&str> {
        self.find(NAME_IDENTIFIER)
    }
}

/// A snapshot of the HTTP request that opened the connection's transport (the WebSocket
/// upgrade, the SSE request or the first poll).
///
/// Kept for the connection's whole life, so it is compact: the headers are held as one
/// block of text, and the [`HeaderMap`] that [`RequestInfo::headers`] returns is built from
/// it on first use. [`RequestInfo::header`] and [`RequestInfo::cookie`] read the block
/// directly.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    method: Method,
    uri: Uri,
    /// `name:value\n` for each header, in order. Names are lowercase tokens (no `:`) and
    /// values hold no control characters but tab (`HeaderValue` refuses them), so the
    /// lines split unambiguously.
    raw_headers: Box<[u8]>,
    headers: OnceLock<HeaderMap>,
}

impl RequestInfo {
    /// A snapshot from request parts.
    ///
    /// The URI and header values are copied: kept as they are, they would share (and keep
    /// alive for the connection's whole life) the HTTP server's read buffer.
    pub fn new(method: Method, uri: Uri, headers: HeaderMap) -> Self {
        let uri = Uri::try_from(uri.to_string()).unwrap_or(uri);
        let size = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 2)
            .sum();
        let mut raw = Vec::with_capacity(size);
        for (name, value) in &headers {
            raw.extend_from_slice(name.as_str().as_bytes());
            raw.push(b':');
            raw.extend_from_slice(value.as_bytes());
            raw.push(b'\n');
        }
        Self {
            method,
            uri,
            raw_headers: raw.into_boxed_slice(),
            headers: OnceLock::new(),
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request headers (built on first use).
    pub fn headers(&self) -> &HeaderMap {
        self.headers.get_or_init(|| {
            let mut map = HeaderMap::new();
            for (name, value) in self.header_lines() {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name),
                    http::HeaderValue::from_bytes(value),
                ) {
                    map.append(name, value);
                }
            }
            map
        })
    }

    /// A header's value (the first, when repeated), when present and visible ASCII, as
    /// `HeaderValue::to_str` gives it. The name is matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// Every value of a header that is visible ASCII, in order.
    fn header_values<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        self.header_lines()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .filter_map(|(_, value)| {
                let visible = value.iter().all(|&b| b == b'\t' || (32..127).contains(&b));
                visible.then(|| std::str::from_utf8(value).ok()).flatten()
            })
    }

    fn header_lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.raw_headers.split(|&b| b == b'\n').filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
    }

    /// A query parameter's decoded value (the first, when repeated).
    pub fn query(&self, name: &str) -> Option<String> {
        query_param(self.uri.query().unwrap_or(""), name)
    }

    /// A cookie's value from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header_values("cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    }
}

/// The first value of `name` in a URL query string, percent-decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k).eq_ignore_ascii_case(name)).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.extend(u8::try_from(high * 16 + low).ok());
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Picks the user id of a connection; the hub's `Clients::user` targets it.
///
/// Evaluated once, when the connection's handshake completes. The default,
/// [`DefaultUserIdProvider`], returns the identity's [`NAME_IDENTIFIER`] claim.
pub trait UserIdProvider: Send + Sync + 'static {
    /// The user id for a connection with this identity and request, or `None`.
    fn user_id(&self, identity: Option<&Identity>, request: &RequestInfo) -> Option<String>;
}

/// The default [`UserIdProvider`]: the identity's [`NAME_IDENTIFIER`] claim.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultUserIdProvider;

impl UserIdProvider for DefaultUserIdProvider {
    fn user_id(&self, identity: Option<&Identity>, _: &RequestInfo) -> Option<String> {
        identity
            .and_then(Identity::name_identifier)
            .map(str::to_owned)
    }
}

impl<F> UserIdProvider for F
where
    F: Fn(Option<&Identity>, &RequestInfo) -> Option<String> + Send + Sync + 'static,
{
    fn user_id(&self, identity: Option<&Identity>, request: &RequestInfo) -> Option<String> {
        self(identity, request)
    }
}

/// Values kept per connection for its lifetime (ASP.NET Core's `Context.Items`), one per
/// type.
#[derive(Debug, Default)]
pub struct Items(Mutex<http::Extensions>);

impl Items {
    fn lock(&self) -> std::sync::MutexGuard<'_, http::Extensions> {
        // Inserting or removing a value is atomic; a poisoned lock still holds a valid map.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock().insert(value)
    }

    /// A clone of the stored value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().get::<T>().cloned()
    }

    /// Removes and returns the stored value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().remove::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_cookies() {
        assert_eq!(query_param("a=1&id=x%2By&b", "id").as_deref(), Some("x+y"));
        assert_eq!(query_param("a=1&b", "b").as_deref(), Some(""));
        assert_eq!(query_param("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(query_param("a=%4", "a").as_deref(), Some("%4"));
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=1; testCookie=testValue".parse().unwrap(),
        );
        let info = RequestInfo::new(Method::GET, Uri::from_static("/x?numRedirects=3"), headers);
        assert_eq!(info.cookie("testCookie").as_deref(), Some("testValue"));
        assert_eq!(info.cookie("missing"), None);
        assert_eq!(info.query("numRedirects").as_deref(), Some("3"));
    }

    #[test]
    fn headers_kept_compactly() {
        let mut headers = HeaderMap::new();
        headers.append("x-api-key", "k1".parse().unwrap());
        headers.append("x-api-key", "k2".parse().unwrap());
        headers.append("cookie", "a=1".parse().unwrap());
        headers.append("cookie", "b=\"2\"; c=3".parse().unwrap());
        headers.append("x-empty", "".parse().unwrap());
        headers.append("x-colon", "a:b".parse().unwrap());
        headers.append(
            "x-bin",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        let info = RequestInfo::new(Method::GET, Uri::from_static("/x"), headers.clone());
        assert_eq!(info.header("X-Api-Key"), Some("k1"));
        assert_eq!(info.header("x-empty"), Some(""));
        assert_eq!(info.header("x-colon"), Some("a:b"));
        assert_eq!(info.header("x-bin"), None);
        assert_eq!(info.header("missing"), None);
        assert_eq!(info.cookie("b").as_deref(), Some("2"));
        assert_eq!(info.cookie("c").as_deref(), Some("3"));
        let clone = info.clone();
        assert_eq!(info.headers(), &headers);
        assert_eq!(clone.headers().get_all("x-api-key").iter().count(), 2);
    }
}
