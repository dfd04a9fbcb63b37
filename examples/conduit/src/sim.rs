//! The simulated gateway behind the events: task execution with progress, provider health,
//! model discovery, spend tracking with budget alerts and summaries. Durations are
//! realistic at `--time-scale 1` and multiplied by it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signalr_server::CancellationToken;

use crate::app::{App, Health, SpendRecord, Task, TaskKind, TaskStatus, lock, now, uuid};
use crate::events::{
    HIGH, LOW, MEDIUM, MODEL_AVAILABILITY_CHANGED, MODEL_DISCOVERY, PROVIDER_HEALTH,
    SERVICE_DEGRADATION, SERVICE_RESTORATION,
};
use crate::webhooks;

// ---------------------------------------------------------------- tasks

/// Creates a task of `owner` and starts running it.
pub(crate) async fn start_task(
    app: &App,
    owner: u64,
    task_type: String,
    kind: TaskKind,
    fail: bool,
) -> Task {
    let prefix = match kind {
        TaskKind::Image { .. } => "img",
        TaskKind::Video { .. } => "vid",
        TaskKind::Generic { .. } => "task",
    };
    let task = Task {
        id: format!("{prefix}_{}", uuid()),
        task_type,
        kind,
        owner,
        status: TaskStatus::Pending,
        progress: 0,
        result: None,
        error: None,
        fail,
        cancel: CancellationToken::new(),
        created_at: now(),
        finished: None,
    };
    lock(&app.tasks).insert(task.id.clone(), task.clone());
    if let Some(redis) = &app.redis {
        redis.put_task_owner(&task.id, owner).await;
    }
    tracing::info!(task = %task.id, owner, task_type = %task.task_type, "task created");
    tokio::spawn(run(app.clone(), task.id.clone()));
    task
}

/// Sleeps a scaled `seconds`; false when the task was cancelled meanwhile.
async fn pause(app: &App, cancel: &CancellationToken, seconds: f64) -> bool {
    tokio::select! {
        () = tokio::time::sleep(app.scaled(seconds)) => true,
        () = cancel.cancelled() => false,
    }
}

fn update(app: &App, id: &str, change: impl FnOnce(&mut Task)) {
    if let Some(task) = lock(&app.tasks).get_mut(id) {
        change(task);
    }
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

fn is_batch(task: &Task) -> bool {
    task.task_type.starts_with("batch_")
}

/// How a task advances: the number of steps and the seconds per step.
fn plan(kind: &TaskKind) -> (u32, f64) {
    match kind {
        TaskKind::Image { n, .. } => (n * 4, 0.75),
        TaskKind::Video { duration, .. } => (10, f64::from(*duration) * 0.5),
        TaskKind::Generic { items, .. } => (*items, 0.3),
    }
}

async fn run(app: App, id: String) {
    let Some(task) = lock(&app.tasks).get(&id).cloned() else {
        return;
    };
    let notifier = app.notifier();
    let cancel = task.cancel.clone();
    if !pause(&app, &cancel, 0.5).await {
        return cancelled(&app, &task).await;
    }
    update(&app, &id, |t| t.status = TaskStatus::Running);
    let started = Instant::now();
    let (steps, step_seconds) = plan(&task.kind);
    let metadata = match &task.kind {
        TaskKind::Image {
            prompt,
            n,
            size,
            model,
        } => {
            notifier
                .image(
                    "ImageGenerationStarted",
                    &id,
                    json!({
                        "taskId": id, "prompt": prompt, "numberOfImages": n, "size": size,
                        "model": model, "style": null, "startedAt": now(),
                    }),
                )
                .await;
            json!({ "model": model, "numberOfImages": n, "size": size })
        }
        TaskKind::Video {
            prompt,
            model,
            duration,
        } => {
            notifier
                .video("VideoGenerationStarted", &id, json!({
                    "taskId": id, "provider": "replicate", "model": model, "prompt": prompt,
                    "startedAt": now(),
                    "estimatedSeconds": app.scaled(f64::from(*duration) * 5.0).as_secs_f64().ceil(),
                }))
                .await;
            json!({ "model": model, "duration": duration })
        }
        TaskKind::Generic { items, .. } => json!({ "items": items }),
    };
    notifier
        .task_started(&id, &task.task_type, task.owner, metadata)
        .await;
    if is_batch(&task) {
        let operation = task.task_type.trim_start_matches("batch_");
        notifier
            .batch(
                "BatchOperationStarted",
                &id,
                task.owner,
                &task.task_type,
                json!({
                    "operationId": id, "operationType": operation, "totalItems": steps,
                    "virtualKeyId": task.owner, "maxDegreeOfParallelism": 1,
                    "supportsCancellation": true, "supportsResume": false, "startedAt": now(),
                    "metadata": {},
                }),
            )
            .await;
    }

    let mut last_progress = 0;
    for step in 1..=steps {
        if !pause(&app, &cancel, step_seconds).await {
            return cancelled(&app, &task).await;
        }
        let progress = step * 100 / steps.max(1);
        if task.fail && progress >= 60 {
            return failed(
                &app,
                &task,
                "Provider returned an error (simulated failure)",
                true,
            )
            .await;
        }
        if let TaskKind::Generic {
            timeout_seconds: Some(limit),
            ..
        } = task.kind
        {
            if started.elapsed() >= app.scaled(f64::from(limit)) && step < steps {
                return timed_out(&app, &task, limit).await;
            }
        }
        if progress == last_progress {
            continue;
        }
        last_progress = progress;
        update(&app, &id, |t| t.progress = progress);
        let message = progress_message(&task.kind, step, steps);
        notifier.task_progress(&id, progress, message.clone()).await;
        match &task.kind {
            TaskKind::Image { n, .. } => {
                notifier
                    .image(
                        "ImageGenerationProgress",
                        &id,
                        json!({
                            "taskId": id, "progressPercentage": progress, "status": "processing",
                            "imagesCompleted": step / 4, "totalImages": n, "message": message,
                            "timestamp": now(),
                        }),
                    )
                    .await;
            }
            TaskKind::Video { duration, .. } => {
                let total_frames = duration * 24;
                notifier
                    .video(
                        "VideoGenerationProgress",
                        &id,
                        json!({
                            "taskId": id, "status": "processing", "progress": progress,
                            "message": message, "framesCompleted": total_frames * progress / 100,
                            "totalFrames": total_frames, "timestamp": now(),
                        }),
                    )
                    .await;
            }
            TaskKind::Generic { .. } => {}
        }
        if is_batch(&task) {
            let elapsed = started.elapsed();
            let rate = f64::from(step) / elapsed.as_secs_f64().max(0.001);
            let remaining = Duration::from_secs_f64(f64::from(steps - step) / rate.max(0.001));
            notifier
                .batch(
                    "BatchOperationProgress",
                    &id,
                    task.owner,
                    &task.task_type,
                    json!({
                        "operationId": id, "processedCount": step, "successCount": step,
                        "failedCount": 0, "progressPercentage": progress, "itemsPerSecond": rate,
                        "elapsedTime": hms(elapsed), "estimatedTimeRemaining": hms(remaining),
                        "currentItem": format!("item-{step}"), "message": message,
                        "timestamp": now(),
                    }),
                )
                .await;
        }
    }
    completed(&app, &task, started.elapsed()).await;
}

fn progress_message(kind: &TaskKind, step: u32, steps: u32) -> String {
    match kind {
        TaskKind::Image { n, .. } => format!(
            "Generating image {} of {n}",
            (step.saturating_sub(1) / 4 + 1).min(*n)
        ),
        TaskKind::Video { .. } => format!("Rendering segment {step} of {steps}"),
        TaskKind::Generic { .. } => format!("Processed {step} of {steps} items"),
    }
}

/// Marks the task final unless it already is; false when it was.
fn finish(
    app: &App,
    task: &Task,
    status: TaskStatus,
    result: Option<Value>,
    error: Option<String>,
) -> bool {
    let mut tasks = lock(&app.tasks);
    let Some(t) = tasks.get_mut(&task.id) else {
        return false;
    };
    if t.status.is_final() {
        return false;
    }
    t.status = status;
    t.finished = Some(Instant::now());
    if status == TaskStatus::Completed {
        t.progress = 100;
    }
    t.result = result;
    t.error = error;
    true
}

async fn completed(app: &App, task: &Task, took: Duration) {
    let id = &task.id;
    let result = match &task.kind {
        TaskKind::Image { n, size, model, .. } => {
            let urls: Vec<String> = (0..*n)
                .map(|i| format!("/media/images/{id}/{i}.png"))
                .collect();
            json!({ "imageUrls": urls, "model": model, "size": size, "cost": 0.04 * f64::from(*n) })
        }
        TaskKind::Video {
            duration, model, ..
        } => json!({
            "videoUrl": format!("/media/videos/{id}.mp4"), "model": model, "duration": duration,
            "resolution": "1280x720", "cost": 0.1 * f64::from(*duration),
        }),
        TaskKind::Generic { items, .. } => {
            json!({ "processedItems": items, "succeeded": items, "failed": 0 })
        }
    };
    if !finish(app, task, TaskStatus::Completed, Some(result.clone()), None) {
        return;
    }
    tracing::info!(task = %id, "task completed");
    let notifier = app.notifier();
    match &task.kind {
        TaskKind::Image { .. } => {
            notifier
                .image("ImageGenerationCompleted", id, json!({
                    "taskId": id, "imageUrls": result["imageUrls"], "durationSeconds": took.as_secs_f64(),
                    "cost": result["cost"], "completedAt": now(),
                }))
                .await;
        }
        TaskKind::Video {
            duration, model, ..
        } => {
            notifier
                .video(
                    "VideoGenerationCompleted",
                    id,
                    json!({
                        "taskId": id, "status": "completed", "videoUrl": result["videoUrl"],
                        "previewUrl": format!("/media/videos/{id}.jpg"), "duration": duration,
                        "resolution": "1280x720", "fileSize": u64::from(*duration) * 1_500_000,
                        "cost": result["cost"], "provider": "replicate", "model": model,
                        "completedAt": now(), "generationDuration": took.as_secs_f64(),
                    }),
                )
                .await;
        }
        TaskKind::Generic { .. } => {}
    }
    if is_batch(task) {
        let total = plan(&task.kind).0;
        notifier
            .batch(
                "BatchOperationCompleted",
                id,
                task.owner,
                &task.task_type,
                json!({
                    "operationId": id, "status": "completed", "totalItems": total,
                    "successCount": total, "failedCount": 0, "duration": hms(took), "errors": [],
                    "resultSummary": result, "completedAt": now(),
                }),
            )
            .await;
    }
    notifier.task_completed(id, result.clone()).await;
    webhooks::deliver(
        app,
        task.owner,
        id,
        "task.completed",
        json!({
            "eventType": "task.completed", "taskId": id, "taskType": task.task_type,
            "status": "completed", "result": result, "timestamp": now(),
        }),
    );
}

async fn failed(app: &App, task: &Task, error: &str, retryable: bool) {
    if !finish(app, task, TaskStatus::Failed, None, Some(error.to_owned())) {
        return;
    }
    tracing::info!(task = %task.id, error, "task failed");
    let id = &task.id;
    let notifier = app.notifier();
    match &task.kind {
        TaskKind::Image { .. } => {
            notifier
                .image(
                    "ImageGenerationFailed",
                    id,
                    json!({
                        "taskId": id, "error": error, "isRetryable": retryable, "failedAt": now(),
                    }),
                )
                .await;
        }
        TaskKind::Video { .. } => {
            notifier
                .video("VideoGenerationFailed", id, json!({
                    "taskId": id, "status": "failed", "error": error, "errorCode": "provider_error",
                    "isRetryable": retryable, "retryCount": 0, "maxRetries": 3,
                    "nextRetryAt": null, "failedAt": now(),
                }))
                .await;
        }
        TaskKind::Generic { .. } => {}
    }
    if is_batch(task) {
        let progress = lock(&app.tasks).get(id).map_or(0, |t| t.progress);
        let total = plan(&task.kind).0;
        let done = total * progress / 100;
        notifier
            .batch(
                "BatchOperationCompleted",
                id,
                task.owner,
                &task.task_type,
                json!({
                    "operationId": id, "status": "failed", "totalItems": total,
                    "successCount": done, "failedCount": total - done, "errors": [error],
                    "completedAt": now(),
                }),
            )
            .await;
    }
    notifier.task_failed(id, error, retryable).await;
    webhooks::deliver(
        app,
        task.owner,
        id,
        "task.failed",
        json!({
            "eventType": "task.failed", "taskId": id, "taskType": task.task_type,
            "status": "failed", "error": error, "timestamp": now(),
        }),
    );
}

async fn timed_out(app: &App, task: &Task, limit: u32) {
    if !finish(
        app,
        task,
        TaskStatus::Failed,
        None,
        Some(format!("Timed out after {limit} seconds")),
    ) {
        return;
    }
    tracing::info!(task = %task.id, limit, "task timed out");
    app.notifier().task_timed_out(&task.id, limit).await;
    webhooks::deliver(
        app,
        task.owner,
        &task.id,
        "task.failed",
        json!({
            "eventType": "task.failed", "taskId": task.id, "taskType": task.task_type,
            "status": "failed", "error": "timed out", "timestamp": now(),
        }),
    );
}

async fn cancelled(app: &App, task: &Task) {
    let reason = "Cancelled by the owner";
    if !finish(app, task, TaskStatus::Cancelled, None, Some(reason.into())) {
        return;
    }
    tracing::info!(task = %task.id, "task cancelled");
    let id = &task.id;
    let notifier = app.notifier();
    let payload = json!({ "taskId": id, "reason": reason, "cancelledAt": now() });
    match &task.kind {
        TaskKind::Image { .. } => {
            notifier
                .image("ImageGenerationCancelled", id, payload)
                .await;
        }
        TaskKind::Video { .. } => {
            notifier
                .video("VideoGenerationCancelled", id, payload)
                .await;
        }
        TaskKind::Generic { .. } => {}
    }
    if is_batch(task) {
        notifier
            .batch(
                "BatchOperationCompleted",
                id,
                task.owner,
                &task.task_type,
                json!({
                    "operationId": id, "status": "cancelled", "completedAt": now(),
                }),
            )
            .await;
    }
    notifier.task_cancelled(id, reason).await;
}

// ---------------------------------------------------------------- providers

/// Sets a provider's health; pushes events only when the status changes. `None`: no such
/// provider.
pub(crate) async fn set_health(
    app: &App,
    id: u32,
    status: Health,
    response_time_ms: Option<u32>,
) -> Option<Value> {
    let (provider, previous, outage) = {
        let mut providers = lock(&app.providers);
        let p = providers.iter_mut().find(|p| p.id == id)?;
        if let Some(ms) = response_time_ms {
            p.response_time_ms = ms;
        }
        let previous = p.status;
        let outage = p.down_since.map(|t| t.elapsed());
        if previous != status {
            p.status = status;
            p.down_since = match (previous, status) {
                (_, Health::Healthy) => None,
                (Health::Healthy, _) => Some(Instant::now()),
                _ => p.down_since,
            };
        }
        (p.clone(), previous, outage)
    };
    if previous == status {
        tracing::debug!(
            provider = provider.name,
            status = status.name(),
            "provider health unchanged"
        );
        return Some(provider.view());
    }
    tracing::info!(
        provider = provider.name,
        from = previous.name(),
        to = status.name(),
        "provider health changed"
    );
    let notifier = app.notifier();
    let priority = if status == Health::Unhealthy {
        HIGH
    } else {
        MEDIUM
    };
    notifier
        .notify(
            "OnProviderHealthChanged",
            PROVIDER_HEALTH,
            priority,
            None,
            json!({
                "providerId": provider.id, "providerName": provider.name, "status": status.name(),
                "healthStatus": status as u8, "previousStatus": previous.name(),
                "responseTimeMs": provider.response_time_ms, "details": null,
            }),
        )
        .await;
    if status != Health::Healthy && (previous == Health::Healthy || status == Health::Unhealthy) {
        notifier
            .notify(
                "ServiceDegraded",
                SERVICE_DEGRADATION,
                priority,
                None,
                json!({
                    "service": provider.name,
                    "reason": format!("Provider {} is {}", provider.name, status.name()),
                    "estimatedResolution": null,
                }),
            )
            .await;
    }
    if status == Health::Healthy {
        notifier
            .notify(
                "ServiceRestored",
                SERVICE_RESTORATION,
                MEDIUM,
                None,
                json!({
                    "service": provider.name,
                    "outageDuration": outage.map(hms),
                }),
            )
            .await;
    }
    if (previous == Health::Unhealthy) != (status == Health::Unhealthy) {
        let available = status != Health::Unhealthy;
        for model in provider.models {
            notifier
                .notify(
                    "OnModelAvailabilityChanged",
                    MODEL_AVAILABILITY_CHANGED,
                    MEDIUM,
                    None,
                    json!({
                        "modelId": model, "providerId": provider.id, "providerName": provider.name,
                        "isAvailable": available,
                    }),
                )
                .await;
        }
    }
    Some(provider.view())
}

/// Periodic health checks: refresh response times; status changes come from
/// `set_health` (the API plays the provider's failures), so nothing is pushed unless a
/// status changes.
pub(crate) async fn health_checks(app: App) {
    let mut tick = 0u32;
    loop {
        tokio::time::sleep(app.scaled(30.0).max(Duration::from_secs(1))).await;
        tick = tick.wrapping_add(1);
        let mut providers = lock(&app.providers);
        for p in providers.iter_mut() {
            let base = match p.status {
                Health::Healthy => 120,
                Health::Degraded => 900,
                Health::Unhealthy => 5000,
            };
            p.response_time_ms = base + (tick.wrapping_mul(37).wrapping_add(p.id * 11)) % 60;
        }
        let swept = app.sweep_tasks();
        tracing::debug!(swept, "provider health checks done, old tasks swept");
    }
}

/// Simulated model discovery: one `OnModelsDiscovered` per provider.
pub(crate) async fn discover(app: App) {
    let providers = lock(&app.providers).clone();
    for p in providers {
        tokio::time::sleep(app.scaled(1.0)).await;
        let count = |pred: fn(&str) -> bool| p.models.iter().filter(|m| pred(m)).count();
        app.notifier()
            .notify(
                "OnModelsDiscovered",
                MODEL_DISCOVERY,
                LOW,
                None,
                json!({
                    "providerId": p.id, "providerName": p.name, "modelCount": p.models.len(),
                    "embeddingCount": count(|m| m.contains("embedding")),
                    "visionCount": count(|m| m.starts_with("gpt-4o") || m.starts_with("claude")),
                    "imageGenCount": count(|m| m.starts_with("dall-e") || m.starts_with("flux")),
                    "videoGenCount": count(|m| m.contains("video")),
                    "details": { "models": p.models },
                }),
            )
            .await;
    }
    tracing::info!("model discovery done");
}

// ---------------------------------------------------------------- spend

fn period() -> String {
    let today = time::OffsetDateTime::now_utc();
    format!("{}-{:02}", today.year(), u8::from(today.month()))
}

/// Records spend of key `id`; pushes `SpendUpdate`, each newly crossed `BudgetAlert` (once
/// per period) and `UnusualSpendingDetected`. Returns (total, budget).
pub(crate) async fn report_spend(
    app: &App,
    id: u64,
    amount: f64,
    model: String,
    provider: String,
) -> Option<(f64, Option<f64>)> {
    let entry = app.keys.update(id, |k| k.spend += amount)?;
    let budget = entry.budget.filter(|b| *b > 0.0);
    let percentage = budget.map_or(0.0, |b| entry.spend / b * 100.0);
    let notifier = app.notifier();
    notifier
        .spend("SpendUpdate", id, json!({
            "timestamp": now(), "totalSpend": entry.spend, "newSpend": amount,
            "budget": budget, "budgetRemaining": budget.map(|b| (b - entry.spend).max(0.0)),
            "budgetUtilization": percentage / 100.0, "budgetPercentage": percentage,
            "provider": provider, "model": model,
            "metadata": { "requestId": uuid(), "endpoint": "/api/spend", "inputTokens": null, "outputTokens": null, "durationMs": null },
        }))
        .await;

    let (alerts, unusual) = {
        let mut all = lock(&app.spend);
        let state = all.entry(id).or_default();
        let current = period();
        let lowest = app.config.budget_thresholds.first().copied().unwrap_or(100);
        if state.period != current || percentage < f64::from(lowest) {
            state.period = current;
            state.fired.clear();
        }
        let alerts: Vec<u32> = if budget.is_some() {
            app.config
                .budget_thresholds
                .iter()
                .copied()
                .filter(|t| percentage >= f64::from(*t) && state.fired.insert(*t))
                .collect()
        } else {
            Vec::new()
        };
        let unusual = unusual_spending(state, amount);
        state.history.push_back(SpendRecord {
            at: Instant::now(),
            amount,
            model: model.clone(),
            provider: provider.clone(),
        });
        while state.history.len() > 10_000
            || state
                .history
                .front()
                .is_some_and(|r| r.at.elapsed() > Duration::from_secs(7 * 86_400))
        {
            state.history.pop_front();
        }
        (alerts, unusual)
    };
    for threshold in alerts {
        let (alert_type, severity) = match threshold {
            t if t >= 100 => ("budget_exceeded".to_owned(), "critical"),
            t if t >= 90 => (format!("budget_{t}_percent"), "critical"),
            t if t >= 75 => (format!("budget_{t}_percent"), "warning"),
            t => (format!("budget_{t}_percent"), "info"),
        };
        tracing::info!(key = id, threshold, "budget alert");
        notifier
            .spend("BudgetAlert", id, json!({
                "timestamp": now(), "alertType": alert_type, "threshold": threshold,
                "message": format!("You have used {threshold}% of your budget"),
                "currentSpend": entry.spend, "budgetLimit": budget, "percentageUsed": percentage,
                "severity": severity,
                "recommendations": if threshold >= 90 {
                    vec!["Raise the key's budget or pause non-essential workloads"]
                } else {
                    vec!["Review usage by model on the dashboard"]
                },
                "budgetPeriodEnd": null,
            }))
            .await;
    }
    if let Some(payload) = unusual {
        tracing::info!(key = id, "unusual spending detected");
        notifier.spend("UnusualSpendingDetected", id, payload).await;
    }
    Some((entry.spend, budget))
}

/// A spike (one amount over 5x the recent average) or sustained high spending (over 20
/// requests and $10 in ten minutes); each kind at most every five minutes.
fn unusual_spending(state: &mut crate::app::SpendState, amount: f64) -> Option<Value> {
    let recent: Vec<f64> = state
        .history
        .iter()
        .filter(|r| r.at.elapsed() < Duration::from_secs(3600))
        .map(|r| r.amount)
        .collect();
    let window: Vec<f64> = state
        .history
        .iter()
        .filter(|r| r.at.elapsed() < Duration::from_secs(600))
        .map(|r| r.amount)
        .collect();
    let average = if recent.is_empty() {
        0.0
    } else {
        recent.iter().sum::<f64>() / recent.len() as f64
    };
    let in_window: f64 = window.iter().sum::<f64>() + amount;
    let (kind, description, current, normal) =
        if recent.len() >= 5 && amount >= 1.0 && amount > average * 5.0 {
            (
                "spend_spike",
                format!("A single request cost {amount:.2}, over 5x the recent average"),
                amount,
                average,
            )
        } else if window.len() >= 20 && in_window > 10.0 {
            (
                "sustained_high_spending",
                "More than 20 requests and $10 in ten minutes".to_owned(),
                in_window * 6.0,
                average * 6.0,
            )
        } else {
            return None;
        };
    if state
        .last_unusual
        .get(kind)
        .is_some_and(|at| at.elapsed() < Duration::from_secs(300))
    {
        return None;
    }
    state.last_unusual.insert(kind, Instant::now());
    Some(json!({
        "timestamp": now(), "activityType": kind, "description": description,
        "currentRate": current, "normalRate": normal,
        "deviationPercentage": if normal > 0.0 { (current / normal - 1.0) * 100.0 } else { 0.0 },
        "providerType": null, "model": null,
        "recommendations": ["Check for runaway clients or loops", "Consider a lower rate limit for this key"],
    }))
}

/// Forgets the budget alerts already sent to key `id` (after a budget change).
pub(crate) fn reset_budget_alerts(app: &App, id: u64) {
    if let Some(state) = lock(&app.spend).get_mut(&id) {
        state.fired.clear();
    }
}

/// The spend summary of key `id` over the last day (`daily`) or week (`weekly`).
pub(crate) fn spend_summary(app: &App, id: u64, period_type: &str) -> Value {
    let span = if period_type == "weekly" {
        7 * 86_400
    } else {
        86_400
    };
    let all = lock(&app.spend);
    let records: Vec<&SpendRecord> = all
        .get(&id)
        .map(|s| {
            s.history
                .iter()
                .filter(|r| r.at.elapsed() < Duration::from_secs(span))
                .collect()
        })
        .unwrap_or_default();
    let total: f64 = records.iter().map(|r| r.amount).sum();
    let top = |field: fn(&SpendRecord) -> &str, label: &str| {
        let mut by: HashMap<&str, (f64, u64)> = HashMap::new();
        for r in &records {
            let e = by.entry(field(r)).or_default();
            e.0 += r.amount;
            e.1 += 1;
        }
        let mut list: Vec<Value> = by
            .into_iter()
            .map(|(name, (spend, count))| {
                json!({
                    label: name, "spend": spend, "requestCount": count,
                    "percentage": if total > 0.0 { spend / total * 100.0 } else { 0.0 },
                })
            })
            .collect();
        list.sort_by(|a, b| {
            b["spend"]
                .as_f64()
                .partial_cmp(&a["spend"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        list.truncate(5);
        list
    };
    json!({
        "timestamp": now(),
        "period": if period_type == "weekly" { "last_7_days" } else { "last_24_hours" },
        "periodType": period_type,
        "totalSpend": total,
        "requestCount": records.len(),
        "averageRequestCost": if records.is_empty() { 0.0 } else { total / records.len() as f64 },
        "topProviders": top(|r| &r.provider, "providerType"),
        "topModels": top(|r| &r.model, "model"),
        "comparison": null,
    })
}

/// Daily and weekly summaries to every key with spend, on a (scaled) timer.
pub(crate) async fn summaries(app: App) {
    let day = app.scaled(86_400.0).max(Duration::from_secs(10));
    let mut days = 0u64;
    loop {
        tokio::time::sleep(day).await;
        days += 1;
        let keys: Vec<u64> = lock(&app.spend).keys().copied().collect();
        for id in keys {
            let daily = spend_summary(&app, id, "daily");
            app.notifier().spend("SpendSummary", id, daily).await;
            if days % 7 == 0 {
                let weekly = spend_summary(&app, id, "weekly");
                app.notifier().spend("SpendSummary", id, weekly).await;
            }
        }
    }
}
