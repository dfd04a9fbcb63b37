//! The interop test server: the hubs and endpoints that the official SignalR clients'
//! functional tests expect from ASP.NET Core's test server (see the workspace's interop
//! contract), served by `signalr-server`.
//!
//! ```text
//! cargo run --release -p interop-server -- --bind 127.0.0.1:0
//! ```
//!
//! It prints `listening on http://127.0.0.1:PORT` once it accepts connections. With
//! `--redis redis://127.0.0.1:6379/`, every hub uses the Redis backplane with the hub's name
//! (the .NET test hubs' type names, such as `FunctionalTests.TestHub`) as its channel name,
//! so several processes (and ASP.NET Core servers) on one Redis serve the same hubs.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod auth;
mod hubs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use signalr_core::TransportType;
use signalr_server::{Hub, HubOptions, SignalR};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

#[derive(Clone)]
struct App {
    test_hub: Hub,
    redirects: Arc<AtomicU64>,
    jwt: auth::Jwt,
}

fn usage() -> ! {
    eprintln!("usage: interop-server --bind ADDR [--redis URL]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut bind = "127.0.0.1:0".to_owned();
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().unwrap_or_else(|| usage()),
            "--redis" => redis = Some(hubs::Redis::new(&args.next().unwrap_or_else(|| usage()))),
            _ => usage(),
        }
    }

    let jwt = auth::Jwt::new();
    let redis = redis.as_ref();
    let test_hub = hubs::test_hub(&jwt, TransportType::ALL, false, redis);
    let app = App {
        test_hub: test_hub.clone(),
        redirects: Arc::new(AtomicU64::new(0)),
        jwt: jwt.clone(),
    };
    let signalr = SignalR::new()
        .hub("/testhub", test_hub)
        .hub(
            "/testhub-nowebsockets",
            hubs::test_hub(
                &jwt,
                [TransportType::ServerSentEvents, TransportType::LongPolling],
                false,
                redis,
            ),
        )
        .hub(
            "/testhub-stateful",
            hubs::test_hub(&jwt, TransportType::ALL, true, redis),
        )
        .hub("/authorizedhub", hubs::authorized_hub(&jwt, redis))
        .hub("/uncreatable", hubs::uncreatable_hub(redis))
        .connection("/echo", HubOptions::default(), hubs::echo);

    let router = Router::new()
        .route("/clientresult/{id}", get(client_result))
        .route("/generateJwtToken", get(generate_token))
        .route("/generateJwtToken/{name}", get(generate_named_token))
        .with_state(app.clone())
        .fallback_service(signalr)
        .layer(middleware::from_fn_with_state(app, special_paths))
        .layer(cors())
        .layer(middleware::from_fn(options_no_content));

    // With --redis, accept connections once every backplane is subscribed (or after 10
    // seconds, with a warning: the backplanes keep reconnecting).
    for backplane in redis.map(hubs::Redis::backplanes).unwrap_or_default() {
        if !backplane
            .wait_connected(std::time::Duration::from_secs(10))
            .await
        {
            eprintln!("--redis: not connected yet: {:?}", backplane.health());
        }
    }

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// CORS as the functional tests' server does it, with tower-http: the origin, requested
/// methods and requested headers are echoed, with credentials allowed.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true)
}

/// Every `OPTIONS` answers 204, as in the reference server, with the CORS headers the
/// layer inside added.
async fn options_no_content(request: Request, next: Next) -> Response {
    let options = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if options {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// `/echoredirect...`, `/redirect...`, `/bad-negotiate...` and the negotiate cookies.
async fn special_paths(State(app): State<App>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/echoredirect") {
        let mut location = format!("/echo{}", &path["/echoredirect".len()..]);
        if let Some(query) = request.uri().query() {
            location.push('?');
            location.push_str(query);
        }
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    let mut response = if lower.starts_with("/redirect") {
        let n = app.redirects.fetch_add(1, Ordering::SeqCst) + 1;
        let base = request
            .uri()
            .query()
            .and_then(|q| {
                q.split('&')
                    .find_map(|p| p.strip_prefix("baseUrl="))
                    .map(percent_decode)
            })
            .unwrap_or_default();
        let body =
            serde_json::json!({ "url": format!("{base}/testHub?numRedirects={n}") }).to_string();
        Response::new(Body::from(body))
    } else if lower.starts_with("/bad-negotiate") {
        (StatusCode::BAD_REQUEST, "Some response from server").into_response()
    } else {
        next.run(request).await
    };
    if lower.contains("/negotiate") {
        let cookies = response.headers_mut();
        cookies.append(
            header::SET_COOKIE,
            HeaderValue::from_static("testCookie=testValue; Path=/"),
        );
        cookies.append(
            header::SET_COOKIE,
            HeaderValue::from_static("testCookie2=testValue2; Path=/"),
        );
        cookies.append(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "expiredCookie=doesntmatter; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ),
        );
    }
    response
}

fn percent_decode(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /clientresult/{id}`: invoke `Result()` on that connection and answer its value.
async fn client_result(
    State(app): State<App>,
    Path(id): Path<String>,
    _: HeaderMap,
    _: Query<Vec<(String, String)>>,
) -> String {
    match app
        .test_hub
        .context()
        .clients()
        .client(id)
        .invoke::<i64>("Result", ())
        .await
    {
        Ok(value) => value.to_string(),
        Err(err) => err.to_string(),
    }
}

/// `GET /generateJwtToken`: a token for `testuser`.
async fn generate_token(State(app): State<App>) -> Response {
    token_response(&app, "testuser")
}

/// `GET /generateJwtToken/{name}`: a token for `name`.
async fn generate_named_token(State(app): State<App>, Path(name): Path<String>) -> Response {
    token_response(&app, &name)
}

fn token_response(app: &App, user: &str) -> Response {
    match app.jwt.issue(user) {
        Ok(token) => token.into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}
