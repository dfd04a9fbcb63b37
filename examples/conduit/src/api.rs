//! The HTTP API (see CONTRACT.md), `/metrics`, `/health/signalr` and the dashboard files.

use std::path::PathBuf;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use signalr_server::RequestInfo;

use crate::app::{App, Health, KeyEntry, TaskKind, Webhook, lock, uuid};
use crate::events::{MEDIUM, MODEL_MAPPING_CHANGED, SYSTEM_ANNOUNCEMENT};
use crate::secure::{self, KeyRecord};
use crate::sim;

/// An API error: a status and `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }
    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn reply(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("Invalid JSON body: {e}")))
}

fn request_info(headers: &HeaderMap, uri: &Uri) -> RequestInfo {
    RequestInfo::new(Method::GET, uri.clone(), headers.clone())
}

/// The master key from `Authorization: Bearer`, `X-Master-Key` or `X-API-Key`.
fn require_master(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    let info = request_info(headers, uri);
    let presented = [
        info.header("x-master-key").map(str::to_owned),
        secure::presented_key(&info),
    ];
    if presented.iter().flatten().any(|k| app.guard.is_master(k)) {
        return Ok(());
    }
    app.guard.record_auth_failure("master key required");
    Err(ApiError::unauthorized())
}

/// Refuses a new task when key `id` has too many running.
fn task_slot(app: &App, id: u64) -> Result<(), ApiError> {
    if app.tasks_running_of(id) >= crate::app::MAX_RUNNING_TASKS {
        tracing::warn!(key = id, "task refused: too many running");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many running tasks for this key",
        ));
    }
    Ok(())
}

/// The caller's usable virtual key.
fn require_key(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<KeyRecord, ApiError> {
    let info = request_info(headers, uri);
    let Some(key) = secure::presented_key(&info) else {
        app.guard.record_auth_failure("no virtual key");
        return Err(ApiError::unauthorized());
    };
    app.guard.resolve(&key).map_err(|reason| {
        app.guard.record_auth_failure(reason);
        ApiError::unauthorized()
    })
}

/// Routes of the API and the dashboard, with `app` as state.
pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/api/keys", post(create_key).get(list_keys))
        .route("/api/keys/{id}", patch(update_key))
        .route("/api/me", get(me))
        .route("/api/images/generations", post(create_image))
        .route("/api/videos/generations", post(create_video))
        .route("/api/tasks", post(create_task))
        .route("/api/tasks/{id}", get(task_status))
        .route("/api/tasks/{id}/cancel", post(cancel_task))
        .route("/api/spend", post(report_spend))
        .route("/api/spend/summary", post(spend_summary))
        .route("/api/webhooks", post(create_webhook).get(list_webhooks))
        .route("/api/providers", get(list_providers))
        .route("/api/providers/{id}/health", put(provider_health))
        .route("/api/model-mappings", post(model_mapping))
        .route("/api/models/discover", post(discover))
        .route("/api/announcements", post(announce))
        .route("/metrics", get(metrics))
        .route("/health/signalr", get(health))
        .route("/", get(index))
        .route("/static/signalr.min.js", get(signalr_js))
        .nest_service(
            "/static",
            tower_http::services::ServeDir::new(app.config.static_dir.clone()),
        )
        .with_state(app)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewKey {
    name: Option<String>,
    budget: Option<f64>,
    #[serde(default)]
    is_admin: bool,
    max_connections: Option<u32>,
    rate_limit_per_minute: Option<u32>,
    key: Option<String>,
}

fn valid_budget(budget: Option<f64>) -> Result<Option<f64>, ApiError> {
    match budget {
        Some(b) if !(0.0..=1e9).contains(&b) => {
            Err(ApiError::bad("budget must be between 0 and 1e9"))
        }
        other => Ok(other),
    }
}

async fn create_key(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    require_master(&app, &headers, &uri)?;
    let new: NewKey = parse(&body)?;
    let name = new.name.unwrap_or_else(|| "unnamed".into());
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad("name must be 1 to 100 characters"));
    }
    let budget = valid_budget(new.budget)?;
    let key = match new.key {
        Some(key) if !secure::is_well_formed(&key) => {
            return Err(ApiError::bad(
                "key must be condt_ followed by 32 letters or digits",
            ));
        }
        Some(key) => key,
        None => secure::generate_key(),
    };
    let max_connections = new.max_connections.unwrap_or(20).clamp(1, 10_000);
    let rate = new.rate_limit_per_minute.unwrap_or(600).min(1_000_000);
    let Some(entry) = app
        .keys
        .insert(&key, name, budget, new.is_admin, max_connections, rate)
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "That key already exists",
        ));
    };
    tracing::info!(key = entry.id, name = %entry.name, admin = entry.is_admin, "virtual key created");
    let mut body = entry.info();
    body["key"] = json!(key);
    reply(StatusCode::CREATED, body)
}

async fn list_keys(State(app): State<App>, headers: HeaderMap, uri: Uri) -> ApiResult {
    require_master(&app, &headers, &uri)?;
    let keys: Vec<Value> = app.keys.list().iter().map(KeyEntry::info).collect();
    reply(StatusCode::OK, json!(keys))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyChange {
    enabled: Option<bool>,
    budget: Option<f64>,
    max_connections: Option<u32>,
    rate_limit_per_minute: Option<u32>,
}

async fn update_key(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_master(&app, &headers, &uri)?;
    let id: u64 = id.parse().map_err(|_| ApiError::not_found())?;
    let change: KeyChange = parse(&body)?;
    let budget = valid_budget(change.budget)?;
    let entry = app
        .keys
        .update(id, |k| {
            if let Some(enabled) = change.enabled {
                k.enabled = enabled;
            }
            if budget.is_some() {
                k.budget = budget;
            }
            if let Some(n) = change.max_connections {
                k.max_connections = n.clamp(1, 10_000);
            }
            if let Some(n) = change.rate_limit_per_minute {
                k.rate_limit_per_minute = n.min(1_000_000);
            }
        })
        .ok_or_else(ApiError::not_found)?;
    if budget.is_some() {
        sim::reset_budget_alerts(&app, id);
    }
    if change.enabled == Some(false) {
        let closed = app.guard.close_connections(id, "key disabled");
        tracing::info!(key = id, closed, "virtual key disabled");
    }
    reply(StatusCode::OK, entry.info())
}

async fn me(State(app): State<App>, headers: HeaderMap, uri: Uri) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    let entry = app.keys.get(key.id).ok_or_else(ApiError::unauthorized)?;
    reply(StatusCode::OK, entry.info())
}

fn text_field(
    value: Option<String>,
    name: &str,
    default: &str,
    max: usize,
) -> Result<String, ApiError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    if value.len() > max {
        return Err(ApiError::bad(format!(
            "{name} is too long (at most {max} bytes)"
        )));
    }
    Ok(value)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewImage {
    prompt: Option<String>,
    n: Option<u32>,
    size: Option<String>,
    model: Option<String>,
    #[serde(default)]
    fail: bool,
}

async fn create_image(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    task_slot(&app, key.id)?;
    let new: NewImage = parse(&body)?;
    let prompt = text_field(new.prompt, "prompt", "", 4000)?;
    if prompt.trim().is_empty() {
        return Err(ApiError::bad("prompt is required"));
    }
    let n = new.n.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return Err(ApiError::bad("n must be between 1 and 10"));
    }
    let kind = TaskKind::Image {
        prompt,
        n,
        size: text_field(new.size, "size", "1024x1024", 20)?,
        model: text_field(new.model, "model", "dall-e-3", 100)?,
    };
    let task = sim::start_task(&app, key.id, "image_generation".into(), kind, new.fail).await;
    reply(StatusCode::ACCEPTED, json!({ "taskId": task.id }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewVideo {
    prompt: Option<String>,
    model: Option<String>,
    duration: Option<u32>,
    #[serde(default)]
    fail: bool,
}

async fn create_video(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    task_slot(&app, key.id)?;
    let new: NewVideo = parse(&body)?;
    let prompt = text_field(new.prompt, "prompt", "", 4000)?;
    if prompt.trim().is_empty() {
        return Err(ApiError::bad("prompt is required"));
    }
    let duration = new.duration.unwrap_or(6);
    if !(1..=60).contains(&duration) {
        return Err(ApiError::bad("duration must be between 1 and 60"));
    }
    let kind = TaskKind::Video {
        prompt,
        model: text_field(new.model, "model", "minimax-video-01", 100)?,
        duration,
    };
    let task = sim::start_task(&app, key.id, "video_generation".into(), kind, new.fail).await;
    let ephemeral = app.issue_ephemeral(&task.id, key.id).await;
    reply(
        StatusCode::ACCEPTED,
        json!({ "taskId": task.id, "ephemeralKey": ephemeral }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewTask {
    task_type: Option<String>,
    items: Option<u32>,
    #[serde(default)]
    fail: bool,
    timeout_seconds: Option<u32>,
}

async fn create_task(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    task_slot(&app, key.id)?;
    let new: NewTask = parse(&body)?;
    let task_type = new.task_type.unwrap_or_else(|| "batch_embedding".into());
    if task_type.is_empty()
        || task_type.len() > 64
        || !task_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ApiError::bad(
            "taskType must be 1 to 64 letters, digits, '_' or '-'",
        ));
    }
    let items = new.items.unwrap_or(10);
    if !(1..=1000).contains(&items) {
        return Err(ApiError::bad("items must be between 1 and 1000"));
    }
    let kind = TaskKind::Generic {
        items,
        timeout_seconds: new.timeout_seconds.filter(|t| *t > 0),
    };
    let task = sim::start_task(&app, key.id, task_type, kind, new.fail).await;
    reply(StatusCode::ACCEPTED, json!({ "taskId": task.id }))
}

async fn task_status(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    let task = lock(&app.tasks)
        .get(&id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    if task.owner != key.id && !key.is_admin {
        return Err(ApiError::not_found());
    }
    reply(StatusCode::OK, task.view())
}

async fn cancel_task(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    let task = lock(&app.tasks)
        .get(&id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    if task.owner != key.id {
        return Err(ApiError::not_found());
    }
    if task.status.is_final() {
        return Err(ApiError::new(StatusCode::CONFLICT, "Task already finished"));
    }
    task.cancel.cancel();
    reply(
        StatusCode::ACCEPTED,
        json!({ "taskId": id, "status": "cancelling" }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSpend {
    amount: f64,
    model: Option<String>,
    provider: Option<String>,
}

async fn report_spend(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    let new: NewSpend = parse(&body)?;
    if !(0.0..=1e6).contains(&new.amount) {
        return Err(ApiError::bad("amount must be between 0 and 1e6"));
    }
    let model = text_field(new.model, "model", "unknown", 100)?;
    let provider = text_field(new.provider, "provider", "unknown", 100)?;
    let (total, budget) = sim::report_spend(&app, key.id, new.amount, model, provider)
        .await
        .ok_or_else(ApiError::unauthorized)?;
    reply(
        StatusCode::OK,
        json!({ "totalSpend": total, "budget": budget }),
    )
}

#[derive(Debug, Deserialize)]
struct SummaryRequest {
    period: Option<String>,
}

async fn spend_summary(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    let request: SummaryRequest = parse(&body)?;
    let period = request.period.unwrap_or_else(|| "daily".into());
    if period != "daily" && period != "weekly" {
        return Err(ApiError::bad("period must be daily or weekly"));
    }
    let summary = sim::spend_summary(&app, key.id, &period);
    app.notifier()
        .spend("SpendSummary", key.id, summary.clone())
        .await;
    reply(StatusCode::OK, summary)
}

#[derive(Debug, Deserialize)]
struct NewWebhook {
    url: String,
}

async fn create_webhook(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    let new: NewWebhook = parse(&body)?;
    let url = reqwest::Url::parse(&new.url).map_err(|_| ApiError::bad("url is not a valid URL"))?;
    if url.scheme() != "http" || url.host_str().is_none() || new.url.len() > 2000 {
        return Err(ApiError::bad(
            "url must be an http:// URL (this example's client has no TLS)",
        ));
    }
    let webhook = Webhook {
        webhook_id: format!("wh_{}", uuid().replace('-', "")),
        url: new.url,
    };
    {
        let mut all = lock(&app.webhooks);
        let list = all.entry(key.id).or_default();
        if list.iter().any(|w| w.url == webhook.url) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "That URL is already registered",
            ));
        }
        if list.len() >= 10 {
            return Err(ApiError::bad("At most 10 webhooks per key"));
        }
        list.push(webhook.clone());
    }
    tracing::info!(key = key.id, webhook = %webhook.webhook_id, "webhook registered");
    reply(StatusCode::CREATED, json!(webhook))
}

async fn list_webhooks(State(app): State<App>, headers: HeaderMap, uri: Uri) -> ApiResult {
    let key = require_key(&app, &headers, &uri)?;
    reply(StatusCode::OK, json!(app.webhooks_of(key.id)))
}

async fn list_providers(State(app): State<App>, headers: HeaderMap, uri: Uri) -> ApiResult {
    if require_master(&app, &headers, &uri).is_err() {
        require_key(&app, &headers, &uri)?;
    }
    let providers: Vec<Value> = lock(&app.providers)
        .iter()
        .map(crate::app::Provider::view)
        .collect();
    reply(StatusCode::OK, json!(providers))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthChange {
    status: Value,
    response_time_ms: Option<u32>,
}

async fn provider_health(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_master(&app, &headers, &uri)?;
    let id: u32 = id.parse().map_err(|_| ApiError::not_found())?;
    let change: HealthChange = parse(&body)?;
    let status = match &change.status {
        Value::String(s) => Health::parse(s),
        Value::Number(n) => Health::parse(&n.to_string()),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad("status must be Healthy, Degraded or Unhealthy"))?;
    let view = sim::set_health(&app, id, status, change.response_time_ms)
        .await
        .ok_or_else(ApiError::not_found)?;
    reply(StatusCode::OK, view)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MappingChange {
    mapping_id: i64,
    model_alias: String,
    change_type: Option<String>,
}

async fn model_mapping(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    require_master(&app, &headers, &uri)?;
    let change: MappingChange = parse(&body)?;
    let change_type = text_field(change.change_type, "changeType", "Updated", 40)?;
    let alias = text_field(Some(change.model_alias), "modelAlias", "", 200)?;
    app.notifier()
        .notify(
            "OnModelMappingChanged",
            MODEL_MAPPING_CHANGED,
            MEDIUM,
            None,
            json!({
                "mappingId": change.mapping_id, "modelAlias": alias, "changeType": change_type,
            }),
        )
        .await;
    reply(
        StatusCode::OK,
        json!({ "mappingId": change.mapping_id, "modelAlias": alias, "changeType": change_type }),
    )
}

async fn discover(State(app): State<App>, headers: HeaderMap, uri: Uri) -> ApiResult {
    require_master(&app, &headers, &uri)?;
    tokio::spawn(sim::discover(app));
    reply(StatusCode::ACCEPTED, json!({ "status": "discovering" }))
}

#[derive(Debug, Deserialize)]
struct Announcement {
    message: String,
    priority: Option<u8>,
    category: Option<String>,
}

async fn announce(State(app): State<App>, headers: HeaderMap, uri: Uri, body: Bytes) -> ApiResult {
    require_master(&app, &headers, &uri)?;
    let a: Announcement = parse(&body)?;
    let message = text_field(Some(a.message), "message", "", 2000)?;
    let priority = a.priority.unwrap_or(MEDIUM);
    if priority > 3 {
        return Err(ApiError::bad("priority must be between 0 and 3"));
    }
    let category = text_field(a.category, "category", "general", 40)?;
    app.notifier()
        .notify(
            "SystemAnnouncement",
            SYSTEM_ANNOUNCEMENT,
            priority,
            None,
            json!({
                "message": message, "category": category,
            }),
        )
        .await;
    reply(StatusCode::OK, json!({ "sent": true }))
}

async fn metrics(State(app): State<App>) -> Response {
    let lost = app
        .backplanes()
        .iter()
        .map(signalr_redis::RedisBackplane::lost_messages)
        .sum();
    let mut text = app
        .telemetry
        .prometheus(&app.guard, app.tasks_running(), lost);
    if let Some(recorder) = crate::recorder::installed() {
        text.push_str("# signalr-server's own metrics (the `metrics` facade)\n");
        text.push_str(&recorder.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn health(State(app): State<App>) -> Response {
    let mut status = "Healthy";
    let backplane = match &app.redis {
        None => json!({ "type": "in-memory", "status": "Healthy" }),
        Some(redis) => {
            let ping = redis.ping().await;
            let hubs_connected = app.backplanes().iter().all(|b| b.health().is_connected());
            status = match (&ping, hubs_connected) {
                (Err(_), _) => "Unhealthy",
                (Ok(_), false) => "Degraded",
                (Ok(_), true) => "Healthy",
            };
            json!({
                "type": "redis",
                "status": status,
                "pingMs": ping.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
                "error": ping.err(),
                "subscribed": hubs_connected,
                "lostMessages": app.backplanes().iter().map(signalr_redis::RedisBackplane::lost_messages).sum::<u64>(),
            })
        }
    };
    let active = app.telemetry.active();
    let hubs: serde_json::Map<String, Value> = app
        .hub_paths()
        .iter()
        .map(|path| {
            let label = if *path == "/hubs/navigation-state" { "/hubs/notifications" } else { path };
            ((*path).to_owned(), json!({ "status": "Healthy", "activeConnections": active.get(label).copied().unwrap_or(0) }))
        })
        .collect();
    let code = if status == "Unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        axum::Json(json!({ "status": status, "backplane": backplane, "hubs": hubs })),
    )
        .into_response()
}

const PLACEHOLDER: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Conduit</title></head>\
<body><h1>Conduit</h1><p>The dashboard (static/index.html) is not built yet. The hubs are under /hubs/, \
the API under /api/, metrics at /metrics.</p></body></html>";

async fn index(State(app): State<App>) -> Response {
    let path = app.config.static_dir.join("index.html");
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], bytes).into_response(),
        Err(_) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            PLACEHOLDER,
        )
            .into_response(),
    }
}

/// The official client's browser bundle: from `tests/node/node_modules` when installed,
/// else `static/vendor/`.
async fn signalr_js(State(app): State<App>) -> Response {
    let candidates: [PathBuf; 2] = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/node/node_modules/@microsoft/signalr/dist/browser/signalr.min.js"),
        app.config.static_dir.join("vendor/signalr.min.js"),
    ];
    for path in candidates {
        if let Ok(bytes) = tokio::fs::read(&path).await {
            return (
                [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                bytes,
            )
                .into_response();
        }
    }
    (
        StatusCode::NOT_FOUND,
        "signalr.min.js not found: run npm ci in tests/node",
    )
        .into_response()
}

/// Answers a negotiate of a key at its connection limit with 429 (the hub's filter also
/// refuses the connection itself, for negotiates that raced).
pub(crate) async fn connection_limit(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path.starts_with("/hubs/") && path.ends_with("/negotiate") {
        let info = RequestInfo::new(
            request.method().clone(),
            request.uri().clone(),
            request.headers().clone(),
        );
        if let Some(key) = secure::presented_key(&info) {
            if let Ok(record) = app.guard.resolve(&key) {
                if app.guard.at_connection_limit(&record) {
                    tracing::warn!(
                        key = record.id,
                        path,
                        limit = record.max_connections,
                        "negotiate refused: connection limit"
                    );
                    let mut response = Response::new(Body::empty());
                    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
                    return response;
                }
            }
        }
    }
    next.run(request).await
}
