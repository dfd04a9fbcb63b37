//! HS256 bearer tokens from `/generateJwtToken`, checked on every hub.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use signalr_server::{AuthRejection, Authenticator, Identity, RequestInfo};

/// How long a generated token is valid.
const LIFETIME: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The name identifier, under its short JWT name as .NET writes it.
    nameid: String,
    iss: String,
    aud: String,
    exp: u64,
}

/// Signs and checks tokens with a key made at startup.
#[derive(Clone)]
pub(crate) struct Jwt {
    key: [u8; 32],
}

impl Jwt {
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 32];
        // Without a random key every token would be forgeable; refuse to start instead.
        if getrandom::fill(&mut key).is_err() {
            eprintln!("the operating system's random number generator failed");
            std::process::exit(1);
        }
        Self { key }
    }

    /// A token for `user`, valid for five seconds.
    pub(crate) fn issue(&self, user: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| (d + LIFETIME).as_secs());
        let claims = Claims {
            nameid: user.to_owned(),
            iss: "SignalRTestServer".into(),
            aud: "SignalRTests".into(),
            exp,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.key),
        )
    }
}

impl Authenticator for Jwt {
    fn authenticate<'a>(
        &'a self,
        _request: &'a RequestInfo,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Identity>, AuthRejection>> {
        Box::pin(async move {
            let Some(token) = token else { return Ok(None) };
            let mut validation = Validation::new(Algorithm::HS256);
            // As the reference server: issuer and audience are not checked, the lifetime
            // is, with ASP.NET Core's default clock skew of five minutes.
            validation.validate_aud = false;
            validation.leeway = 300;
            let data = jsonwebtoken::decode::<Claims>(
                token,
                &DecodingKey::from_secret(&self.key),
                &validation,
            )
            .map_err(|e| AuthRejection::new(e.to_string()))?;
            Ok(Some(Identity::user(data.claims.nameid)))
        })
    }
}
