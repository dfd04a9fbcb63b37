//! Authentication (who is calling) and authorization (what they may do).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::identity::{Identity, RequestInfo};

/// Why an authenticator refused a request's credentials (logged, never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    reason: String,
}

impl AuthRejection {
    /// A rejection; `reason` is logged, never sent.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// The reason, for logs.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Turns a request into an identity: runs on negotiate and on every transport request of
/// a hub that has one.
///
/// `token` is the bearer token from `Authorization: Bearer ...` or, when that header is
/// absent, from the `access_token` query parameter (which browsers and the JavaScript
/// client's Server-Sent Events use, since they cannot set headers there).
///
/// Return `Ok(Some(identity))` for an authenticated caller, `Ok(None)` for an anonymous
/// one (no credentials), and `Err` for bad credentials. As with ASP.NET Core's
/// authentication, a caller with bad credentials is treated as anonymous (the reason is
/// logged): a hub with an [`authorize`](crate::HubBuilder::authorize) policy then answers
/// 401, a hub without one lets the caller in without an identity.
///
/// ```
/// use futures_util::future::BoxFuture;
/// use signalr_server::{AuthRejection, Authenticator, Identity, RequestInfo};
///
/// /// Accepts the single token "let-me-in" as user "guest".
/// struct Fixed;
///
/// impl Authenticator for Fixed {
///     fn authenticate<'a>(
///         &'a self,
///         _request: &'a RequestInfo,
///         token: Option<&'a str>,
///     ) -> BoxFuture<'a, Result<Option<Identity>, AuthRejection>> {
///         Box::pin(async move {
///             match token {
///                 None => Ok(None),
///                 Some("let-me-in") => Ok(Some(Identity::user("guest"))),
///                 Some(_) => Err(AuthRejection::new("unknown token")),
///             }
///         })
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates one request.
    fn authenticate<'a>(
        &'a self,
        request: &'a RequestInfo,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Identity>, AuthRejection>>;
}

/// The bearer token of a request: `Authorization: Bearer X`, else `?access_token=X`.
pub(crate) fn bearer_token(request: &RequestInfo) -> Option<String> {
    if let Some(value) = request.header("authorization") {
        let mut parts = value.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next()) {
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                return Some(token.trim().to_owned());
            }
        }
    }
    request.query("access_token").filter(|t| !t.is_empty())
}

/// A rule over the caller's identity (`None` for anonymous callers).
pub type Policy = Arc<dyn Fn(Option<&Identity>) -> bool + Send + Sync>;

/// Builds a [`Policy`] from a closure.
pub fn policy(rule: impl Fn(Option<&Identity>) -> bool + Send + Sync + 'static) -> Policy {
    Arc::new(rule)
}

/// A policy that admits any authenticated caller.
pub fn authenticated() -> Policy {
    policy(|identity| identity.is_some())
}
