//! End to end over loopback: the real `conduit` binary, its HTTP API and the Rust client.
//! Tasks followed to completion on the TaskHub and the image, video and public video hubs;
//! budget alerts once per threshold; webhook retries as events; provider health pushed once
//! per change; notification preferences; the admin metrics stream and endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[tokio::test]
async fn task_hub_follows_a_batch_task_to_completion() {
    let server = server(&[]);
    let base = &server.base;
    let (id, key) = key(base, "alice").await;
    let tasks = connect(base, "/hubs/tasks", &key).await;

    let (tx, mut events) = mpsc::unbounded_channel::<(String, Value)>();
    let t = tx.clone();
    tasks.on(
        "TaskStarted",
        move |task: String, kind: String, meta: Value| {
            let t = t.clone();
            async move {
                let _ = t.send(("TaskStarted".into(), json!([task, kind, meta])));
            }
        },
    );
    let t = tx.clone();
    tasks.on(
        "TaskProgress",
        move |task: String, progress: u32, message: Option<String>| {
            let t = t.clone();
            async move {
                let _ = t.send(("TaskProgress".into(), json!([task, progress, message])));
            }
        },
    );
    let t = tx.clone();
    tasks.on("TaskCompleted", move |task: String, result: Value| {
        let t = t.clone();
        async move {
            let _ = t.send(("TaskCompleted".into(), json!([task, result])));
        }
    });
    for name in [
        "BatchOperationStarted",
        "BatchOperationProgress",
        "BatchOperationCompleted",
    ] {
        let t = tx.clone();
        tasks.on(name, move |payload: Value| {
            let t = t.clone();
            async move {
                let _ = t.send((name.into(), payload));
            }
        });
    }

    // Subscribing to the task type gets TaskStarted before any subscription to the task.
    let _: () = within(
        "SubscribeToTaskType",
        tasks.invoke("SubscribeToTaskType", ("batch_embedding",)),
    )
    .await
    .unwrap();
    let reply = post_ok(
        &format!("{base}/api/tasks"),
        &key,
        json!({ "taskType": "batch_embedding", "items": 100 }),
        202,
    )
    .await;
    let task_id = reply["taskId"].as_str().unwrap().to_owned();
    assert!(task_id.starts_with("task_"), "{task_id}");
    let _: () = within(
        "SubscribeToTask",
        tasks.invoke("SubscribeToTask", (task_id.clone(),)),
    )
    .await
    .unwrap();

    let mut progress = Vec::new();
    let mut names = Vec::new();
    let result = loop {
        let (name, args) = next(&mut events, "task events").await;
        names.push(name.clone());
        match name.as_str() {
            "TaskStarted" => {
                assert_eq!(args[0], task_id);
                assert_eq!(args[1], "batch_embedding");
            }
            "TaskProgress" => {
                assert_eq!(args[0], task_id);
                progress.push(args[1].as_u64().unwrap());
            }
            "BatchOperationStarted" => {
                assert_eq!(args["operationId"], task_id);
                assert_eq!(args["totalItems"], 100);
                assert_eq!(args["virtualKeyId"], id);
            }
            "TaskCompleted" => break args,
            _ => {}
        }
    };
    assert_eq!(result[0], task_id);
    assert_eq!(result[1]["processedItems"], 100);
    assert!(names.contains(&"TaskStarted".to_owned()), "{names:?}");
    assert!(
        names.contains(&"BatchOperationCompleted".to_owned()),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "BatchOperationProgress"),
        "{names:?}"
    );
    assert_eq!(progress.last(), Some(&100), "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress not increasing: {progress:?}"
    );

    let (status, view) = http(
        "GET",
        &format!("{base}/api/tasks/{task_id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "completed");
    assert_eq!(view["progress"], 100);
    tasks.stop().await;
}

#[tokio::test]
async fn image_video_and_public_video_hubs_follow_tasks() {
    // Slower, so that the subscriptions made after the tasks start are in time.
    let server = server(&["--time-scale", "0.2"]);
    let base = &server.base;
    let (_, key) = key(base, "bob").await;

    // Image generation on the image hub.
    let images = connect(base, "/hubs/image-generation", &key).await;
    let mut image_progress = forward::<Value>(&images, "ImageGenerationProgress");
    let mut image_done = forward::<Value>(&images, "ImageGenerationCompleted");
    let reply = post_ok(
        &format!("{base}/api/images/generations"),
        &key,
        json!({ "prompt": "a cat", "n": 2, "model": "dall-e-3" }),
        202,
    )
    .await;
    let image_id = reply["taskId"].as_str().unwrap().to_owned();
    assert!(image_id.starts_with("img_"));
    let _: () = images
        .invoke("SubscribeToTask", (image_id.clone(),))
        .await
        .unwrap();
    let done = next(&mut image_done, "ImageGenerationCompleted").await;
    assert_eq!(done["taskId"], image_id);
    assert_eq!(done["imageUrls"].as_array().unwrap().len(), 2);
    for p in drain(&mut image_progress) {
        assert_eq!(p["taskId"], image_id);
        assert_eq!(p["totalImages"], 2);
    }

    // Video generation on the video hub and, with the ephemeral key, on the public hub
    // from two connections (the key is reusable until its TTL).
    let videos = connect(base, "/hubs/video-generation", &key).await;
    let mut video_done = forward::<Value>(&videos, "VideoGenerationCompleted");
    let mut public = Vec::new();
    let reply = post_ok(
        &format!("{base}/api/videos/generations"),
        &key,
        json!({ "prompt": "waves", "duration": 4 }),
        202,
    )
    .await;
    let video_id = reply["taskId"].as_str().unwrap().to_owned();
    let ephemeral = reply["ephemeralKey"].as_str().unwrap().to_owned();
    assert!(
        video_id.starts_with("vid_") && ephemeral.starts_with("ek_"),
        "{reply}"
    );
    let _: () = videos
        .invoke("SubscribeToTask", (video_id.clone(),))
        .await
        .unwrap();
    for _ in 0..2 {
        let connection = signalr_client::HubConnectionBuilder::new(format!(
            "{base}/hubs/public/video-generation"
        ))
        .build()
        .unwrap();
        let mut subscribed = forward::<Value>(&connection, "taskSubscribed");
        let done = forward::<Value>(&connection, "VideoGenerationCompleted");
        within("public connect", connection.start()).await.unwrap();
        let _: () = within(
            "public subscribe",
            connection.invoke("SubscribeToTask", (video_id.clone(), ephemeral.clone())),
        )
        .await
        .unwrap();
        assert_eq!(
            next(&mut subscribed, "taskSubscribed").await["taskId"],
            video_id
        );
        public.push((connection, done));
    }
    let done = next(&mut video_done, "VideoGenerationCompleted").await;
    assert_eq!(done["taskId"], video_id);
    assert_eq!(done["status"], "completed");
    for (connection, mut done) in public {
        assert_eq!(
            next(&mut done, "public VideoGenerationCompleted").await["taskId"],
            video_id
        );
        connection.stop().await;
    }
    images.stop().await;
    videos.stop().await;
}

#[tokio::test]
async fn budget_alerts_fire_once_at_each_threshold() {
    let server = server(&[]);
    let base = &server.base;
    let (_, key) = create_key(base, json!({ "name": "carol", "budget": 10.0 })).await;
    let spend = connect(base, "/hubs/spend", &key).await;
    let mut updates = forward::<Value>(&spend, "SpendUpdate");
    let mut alerts = forward::<Value>(&spend, "BudgetAlert");

    // 40 %, 55 %, 56 %, 81 %, 91 %, 101 %.
    let mut total = 0.0;
    for amount in [4.0, 1.5, 0.1, 2.5, 1.0, 1.0] {
        let reply = post_ok(
            &format!("{base}/api/spend"),
            &key,
            json!({ "amount": amount, "model": "gpt-4o", "provider": "openai" }),
            200,
        )
        .await;
        total += amount;
        assert!(
            (reply["totalSpend"].as_f64().unwrap() - total).abs() < 1e-9,
            "{reply}"
        );
        let update = next(&mut updates, "SpendUpdate").await;
        assert!(
            (update["newSpend"].as_f64().unwrap() - amount).abs() < 1e-9,
            "{update}"
        );
    }
    let mut thresholds = Vec::new();
    loop {
        let alert = next(&mut alerts, "BudgetAlert").await;
        let threshold = alert["threshold"].as_u64().unwrap();
        thresholds.push(threshold);
        if threshold == 100 {
            assert_eq!(alert["alertType"], "budget_exceeded");
            assert_eq!(alert["severity"], "critical");
            break;
        }
        assert_eq!(alert["alertType"], format!("budget_{threshold}_percent"));
    }
    assert_eq!(thresholds, [50, 75, 80, 90, 100]);

    // The key is exhausted now: refused at negotiate and on the API.
    let (status, _) = http(
        "POST",
        &format!("{base}/hubs/spend/negotiate?negotiateVersion=1"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = http(
        "POST",
        &format!("{base}/api/spend"),
        Some(&key),
        Some(json!({ "amount": 1.0 })),
    )
    .await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string(), "{body}");
    spend.stop().await;
}

/// A webhook receiver on a loopback port that answers 500 to the first `failures` POSTs and
/// 200 after; returns its URL and the bodies it got.
async fn receiver(failures: u32) -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let count = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            let count = count.clone();
            async move {
                let _ = tx.send(serde_json::from_str::<Value>(&body).unwrap_or(Value::Null));
                if count.fetch_add(1, Ordering::SeqCst) < failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

#[tokio::test]
async fn webhook_retries_show_up_as_events() {
    let server = server(&[]);
    let base = &server.base;
    let (_, key) = key(base, "dave").await;
    let (url, mut bodies) = receiver(2).await;
    let reply = post_ok(
        &format!("{base}/api/webhooks"),
        &key,
        json!({ "url": url }),
        201,
    )
    .await;
    assert!(
        reply["webhookId"].as_str().unwrap().starts_with("wh_"),
        "{reply}"
    );

    let hooks = connect(base, "/hubs/webhooks", &key).await;
    let (tx, mut events) = mpsc::unbounded_channel::<(String, Value)>();
    for name in [
        "DeliveryAttempted",
        "DeliverySucceeded",
        "DeliveryFailed",
        "RetryScheduled",
    ] {
        let tx = tx.clone();
        hooks.on(name, move |payload: Value| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((name.into(), payload));
            }
        });
    }
    let _: () = hooks
        .invoke("SubscribeToWebhooks", (vec![url.clone()],))
        .await
        .unwrap();
    let reply = post_ok(
        &format!("{base}/api/tasks"),
        &key,
        json!({ "taskType": "batch_embedding", "items": 2 }),
        202,
    )
    .await;
    let task_id = reply["taskId"].as_str().unwrap().to_owned();

    let mut seen = Vec::new();
    loop {
        let (name, payload) = next(&mut events, "webhook events").await;
        assert_eq!(payload["url"], url);
        assert_eq!(payload["taskId"], task_id);
        let attempt = payload["attemptNumber"]
            .as_u64()
            .or(payload["nextAttemptNumber"].as_u64())
            .or(payload["attemptCount"].as_u64())
            .unwrap();
        seen.push(format!("{name}:{attempt}"));
        if name == "DeliverySucceeded" {
            assert_eq!(payload["attemptCount"], 3);
            assert_eq!(payload["statusCode"], 200);
            break;
        }
        if name == "DeliveryFailed" {
            assert_eq!(payload["statusCode"], 500);
            assert_eq!(payload["isFinal"], false);
        }
    }
    assert_eq!(
        seen,
        [
            "DeliveryAttempted:1",
            "DeliveryFailed:1",
            "RetryScheduled:2",
            "DeliveryAttempted:2",
            "DeliveryFailed:2",
            "RetryScheduled:3",
            "DeliveryAttempted:3",
            "DeliverySucceeded:3",
        ]
    );
    for _ in 0..3 {
        let body = next(&mut bodies, "webhook POST").await;
        assert_eq!(body["eventType"], "task.completed");
        assert_eq!(body["taskId"], task_id);
    }
    hooks.stop().await;
}

#[tokio::test]
async fn provider_health_is_pushed_once_per_change_and_preferences_are_honoured() {
    let server = server(&[]);
    let base = &server.base;
    let (_, key) = key(base, "erin").await;
    let all = connect(base, "/hubs/notifications", &key).await;
    let mut health = forward::<Value>(&all, "OnProviderHealthChanged");
    let mut degraded = forward::<Value>(&all, "ServiceDegraded");
    let mut restored = forward::<Value>(&all, "ServiceRestored");

    // Same status twice: one event; then back to Healthy: one more.
    let url = format!("{base}/api/providers/2/health");
    for status in ["Degraded", "Degraded", "Healthy"] {
        let (code, body) = http(
            "PUT",
            &url,
            Some(MASTER),
            Some(json!({ "status": status, "responseTimeMs": 900 })),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    let first = next(&mut health, "OnProviderHealthChanged").await;
    assert_eq!(
        (first["providerId"].as_u64(), first["status"].as_str()),
        (Some(2), Some("Degraded"))
    );
    assert_eq!(first["type"], "provider_health");
    let second = next(&mut health, "OnProviderHealthChanged").await;
    assert_eq!(
        second["status"], "Healthy",
        "a duplicate Degraded was pushed: {second}"
    );
    assert_eq!(
        next(&mut degraded, "ServiceDegraded").await["service"],
        "anthropic"
    );
    assert_eq!(
        next(&mut restored, "ServiceRestored").await["service"],
        "anthropic"
    );

    // A connection that takes only high-priority announcements.
    let picky = connect(base, "/hubs/navigation-state", &key).await;
    let mut confirmed = forward::<Value>(&picky, "PreferencesUpdated");
    let mut announcements = forward::<Value>(&picky, "SystemAnnouncement");
    let mut picky_health = forward::<Value>(&picky, "OnProviderHealthChanged");
    let prefs = json!({ "enabledTypes": ["system_announcement"], "minimumPriority": 2 });
    let _: () = picky.invoke("UpdatePreferences", (prefs,)).await.unwrap();
    assert_eq!(
        next(&mut confirmed, "PreferencesUpdated").await["minimumPriority"],
        2
    );
    let mut everyone = forward::<Value>(&all, "SystemAnnouncement");
    let (code, _) = http(
        "PUT",
        &format!("{base}/api/providers/3/health"),
        Some(MASTER),
        Some(json!({ "status": "Unhealthy" })),
    )
    .await;
    assert_eq!(code, 200);
    for (message, priority) in [("low", 1), ("high", 3)] {
        post_ok(
            &format!("{base}/api/announcements"),
            MASTER,
            json!({ "message": message, "priority": priority }),
            200,
        )
        .await;
    }
    // The default connection gets both announcements and the health change ...
    assert_eq!(
        next(&mut everyone, "announcement 1").await["message"],
        "low"
    );
    assert_eq!(
        next(&mut everyone, "announcement 2").await["message"],
        "high"
    );
    assert_eq!(next(&mut health, "health change").await["providerId"], 3);
    // ... the picky one only the high-priority announcement (the health change and the low
    // one were sent before it, so they would have arrived first).
    let got = next(&mut announcements, "high-priority announcement").await;
    assert_eq!(got["message"], "high");
    assert_eq!(got["priority"], 3);
    assert!(
        drain(&mut picky_health).is_empty(),
        "provider health reached a connection that opted out"
    );
    let bad = invoke_err(
        &picky,
        "UpdatePreferences",
        (json!({ "enabledTypes": ["nope"] }),),
    )
    .await;
    assert!(bad.contains("Unknown notification type"), "{bad}");
    all.stop().await;
    picky.stop().await;
}

#[tokio::test]
async fn admin_metrics_stream_and_http_endpoints() {
    let server = server(&[]);
    let base = &server.base;
    let (_, key) = key(base, "frank").await;
    let (_, admin_key) = create_key(base, json!({ "name": "ops", "isAdmin": true })).await;
    let tasks = connect(base, "/hubs/tasks", &key).await;

    for token in [MASTER, admin_key.as_str()] {
        let metrics = connect(base, "/hubs/metrics", token).await;
        let mut stream = within(
            "StreamMetrics",
            metrics.stream::<Value, _>("StreamMetrics", (1,)),
        )
        .await
        .unwrap();
        let first = within("first snapshot", stream.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            first["activeConnections"]["/hubs/tasks"].as_i64().unwrap() >= 1,
            "{first}"
        );
        assert!(first["messagesSentPerMinute"].is_number(), "{first}");
        drop(stream);
        let snapshot: Value = within(
            "GetMetricsSnapshot",
            metrics.invoke("GetMetricsSnapshot", ()),
        )
        .await
        .unwrap();
        assert!(snapshot["tasksRunning"].is_number(), "{snapshot}");
        let mut refused = within(
            "StreamMetrics(0)",
            metrics.stream::<Value, _>("StreamMetrics", (0,)),
        )
        .await
        .unwrap();
        match within("StreamMetrics(0) error", refused.next()).await {
            Some(Err(err)) => assert!(err.to_string().contains("between 1 and 60"), "{err}"),
            other => panic!("StreamMetrics(0) should fail: {other:?}"),
        }
        metrics.stop().await;
    }
    // A non-admin key may not negotiate the admin hub.
    let (status, _) = http(
        "POST",
        &format!("{base}/hubs/metrics/negotiate?negotiateVersion=1"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 401);

    let text = within("GET /metrics", async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await;
    for name in [
        "conduit_signalr_connections_active{hub=\"/hubs/tasks\"} 1",
        "conduit_signalr_messages_sent_per_minute",
        "conduit_signalr_messages_received_per_minute",
        "conduit_signalr_reconnections_total",
        "conduit_signalr_authentication_failures_total",
        "conduit_signalr_message_latency_ms_avg",
        // signalr-server's own, through the `metrics` facade.
        "signalr_connections_active{",
        "signalr_messages_received_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    let (status, health) = http("GET", &format!("{base}/health/signalr"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "Healthy");
    assert_eq!(health["backplane"]["type"], "in-memory");
    assert!(health["hubs"]["/hubs/tasks"].is_object(), "{health}");
    let (status, _) = http("GET", &format!("{base}/"), None, None).await;
    assert_eq!(status, 200);
    tasks.stop().await;
}

/// Positional `Task*` events of one task, as (name, arguments).
fn task_events(
    connection: &signalr_client::HubConnection,
) -> mpsc::UnboundedReceiver<(String, Value)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let t = tx.clone();
    connection.on(
        "TaskFailed",
        move |id: String, error: String, retryable: bool| {
            let t = t.clone();
            async move {
                let _ = t.send(("TaskFailed".into(), json!([id, error, retryable])));
            }
        },
    );
    let t = tx.clone();
    connection.on(
        "TaskCancelled",
        move |id: String, reason: Option<String>| {
            let t = t.clone();
            async move {
                let _ = t.send(("TaskCancelled".into(), json!([id, reason])));
            }
        },
    );
    let t = tx.clone();
    connection.on("TaskTimedOut", move |id: String, seconds: u32| {
        let t = t.clone();
        async move {
            let _ = t.send(("TaskTimedOut".into(), json!([id, seconds])));
        }
    });
    connection.on("TaskCompleted", move |id: String, result: Value| {
        let t = tx.clone();
        async move {
            let _ = t.send(("TaskCompleted".into(), json!([id, result])));
        }
    });
    rx
}

#[tokio::test]
async fn failed_cancelled_and_timed_out_tasks() {
    let server = server(&[]);
    let base = &server.base;
    let (_, key) = key(base, "judy").await;
    let tasks = connect(base, "/hubs/tasks", &key).await;
    let mut events = task_events(&tasks);
    let start = |body: Value| {
        let key = key.clone();
        async move {
            let reply = post_ok(&format!("{base}/api/tasks"), &key, body, 202).await;
            reply["taskId"].as_str().unwrap().to_owned()
        }
    };

    let failing = start(json!({ "taskType": "embedding", "items": 100, "fail": true })).await;
    let _: () = tasks
        .invoke("SubscribeToTask", (failing.clone(),))
        .await
        .unwrap();
    let (name, args) = next(&mut events, "TaskFailed").await;
    assert_eq!(name, "TaskFailed", "{args}");
    assert_eq!(
        (args[0].as_str(), args[2].as_bool()),
        (Some(failing.as_str()), Some(true))
    );

    let long = start(json!({ "taskType": "embedding", "items": 1000 })).await;
    let _: () = tasks
        .invoke("SubscribeToTask", (long.clone(),))
        .await
        .unwrap();
    post_ok(
        &format!("{base}/api/tasks/{long}/cancel"),
        &key,
        json!({}),
        202,
    )
    .await;
    let (name, args) = next(&mut events, "TaskCancelled").await;
    assert_eq!(
        (name.as_str(), args[0].as_str()),
        ("TaskCancelled", Some(long.as_str()))
    );
    let (status, view) = http("GET", &format!("{base}/api/tasks/{long}"), Some(&key), None).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("cancelled")));

    let slow = start(json!({ "taskType": "embedding", "items": 1000, "timeoutSeconds": 20 })).await;
    let _: () = tasks
        .invoke("SubscribeToTask", (slow.clone(),))
        .await
        .unwrap();
    let (name, args) = next(&mut events, "TaskTimedOut").await;
    assert_eq!(name, "TaskTimedOut", "{args}");
    assert_eq!(args, json!([slow, 20]));
    tasks.stop().await;
}

#[tokio::test]
async fn unusual_spending_and_spend_summaries() {
    let server = server(&[]);
    let base = &server.base;
    let (_, key) = key(base, "kim").await;
    let spend = connect(base, "/hubs/spend", &key).await;
    let mut unusual = forward::<Value>(&spend, "UnusualSpendingDetected");
    let mut summaries = forward::<Value>(&spend, "SpendSummary");
    for amount in [0.1, 0.1, 0.1, 0.1, 0.1, 3.0] {
        post_ok(
            &format!("{base}/api/spend"),
            &key,
            json!({ "amount": amount, "model": "gpt-4o", "provider": "openai" }),
            200,
        )
        .await;
    }
    let alert = next(&mut unusual, "UnusualSpendingDetected").await;
    assert_eq!(alert["activityType"], "spend_spike");
    let reply = post_ok(
        &format!("{base}/api/spend/summary"),
        &key,
        json!({ "period": "daily" }),
        200,
    )
    .await;
    let pushed = next(&mut summaries, "SpendSummary").await;
    assert_eq!(pushed["requestCount"], 6);
    assert!(
        (pushed["totalSpend"].as_f64().unwrap() - 3.5).abs() < 1e-9,
        "{pushed}"
    );
    assert_eq!(pushed["topModels"][0]["model"], "gpt-4o");
    assert_eq!(reply["periodType"], "daily");
    spend.stop().await;
}

#[tokio::test]
async fn messagepack_and_long_polling_clients_get_the_same_events() {
    let server = server(&["--time-scale", "0.2"]);
    let base = &server.base;
    let (_, key) = key(base, "leo").await;
    let build = |path: &str, messagepack: bool, transport: signalr_client::TransportType| {
        let key = key.clone();
        let builder = signalr_client::HubConnectionBuilder::new(format!("{base}{path}"))
            .transports([transport])
            .access_token_provider(move || {
                let key = key.clone();
                async move { Ok(key) }
            });
        if messagepack {
            builder.messagepack()
        } else {
            builder
        }
        .build()
        .unwrap()
    };
    let images = build(
        "/hubs/image-generation",
        true,
        signalr_client::TransportType::WebSockets,
    );
    let tasks = build(
        "/hubs/tasks",
        false,
        signalr_client::TransportType::LongPolling,
    );
    let mut image_done = forward::<Value>(&images, "ImageGenerationCompleted");
    let mut task_done = task_events(&tasks);
    within("msgpack start", images.start()).await.unwrap();
    within("long polling start", tasks.start()).await.unwrap();
    let reply = post_ok(
        &format!("{base}/api/images/generations"),
        &key,
        json!({ "prompt": "owl", "n": 3 }),
        202,
    )
    .await;
    let id = reply["taskId"].as_str().unwrap().to_owned();
    let _: () = images
        .invoke("SubscribeToTask", (id.clone(),))
        .await
        .unwrap();
    let _: () = tasks
        .invoke("SubscribeToTask", (id.clone(),))
        .await
        .unwrap();
    let done = next(&mut image_done, "ImageGenerationCompleted over MessagePack").await;
    assert_eq!(done["taskId"], id);
    assert_eq!(done["imageUrls"].as_array().map(Vec::len), Some(3));
    let (name, args) = next(&mut task_done, "TaskCompleted over long polling").await;
    assert_eq!(
        (name.as_str(), args[0].as_str()),
        ("TaskCompleted", Some(id.as_str()))
    );
    images.stop().await;
    tasks.stop().await;
}

#[tokio::test]
async fn the_task_hub_is_behind_a_feature_flag() {
    let server = server(&["--no-task-hub"]);
    let base = &server.base;
    let (_, key) = key(base, "mia").await;
    let (status, _) = http(
        "POST",
        &format!("{base}/hubs/tasks/negotiate?negotiateVersion=1"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // The media hubs still work.
    let (status, _) = http(
        "POST",
        &format!("{base}/hubs/image-generation/negotiate?negotiateVersion=1"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200);
}
