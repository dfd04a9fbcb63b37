//! Security over loopback: ownership checks on every subscription, no event crossing keys,
//! server-only methods absent from the hubs, 401 for bad keys at negotiate, rate and
//! connection limits, disabling a key, the public hub's ephemeral keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use signalr_client::ConnectionEvent;
use tokio::sync::mpsc;

#[tokio::test]
async fn another_keys_task_is_refused_on_every_hub() {
    let server = server(&[]);
    let base = &server.base;
    let (_, alice) = key(base, "alice").await;
    let (_, mallory) = key(base, "mallory").await;
    let image = post_ok(
        &format!("{base}/api/images/generations"),
        &alice,
        json!({ "prompt": "x", "n": 10 }),
        202,
    )
    .await;
    let image = image["taskId"].as_str().unwrap().to_owned();
    let video = post_ok(
        &format!("{base}/api/videos/generations"),
        &alice,
        json!({ "prompt": "x", "duration": 60 }),
        202,
    )
    .await;
    let video_id = video["taskId"].as_str().unwrap().to_owned();

    let tasks = connect(base, "/hubs/tasks", &mallory).await;
    let err = invoke_err(&tasks, "SubscribeToTask", (image.clone(),)).await;
    assert!(err.contains("Unauthorized access to task"), "{err}");
    let err = invoke_err(&tasks, "SubscribeToTask", ("task_does-not-exist",)).await;
    assert!(err.contains("Task not found"), "{err}");
    let err = invoke_err(&tasks, "SubscribeToTask", ("",)).await;
    assert!(err.contains("Invalid task ID"), "{err}");
    let err = invoke_err(&tasks, "SubscribeToTask", ("../../etc",)).await;
    assert!(err.contains("Invalid task ID"), "{err}");

    let images = connect(base, "/hubs/image-generation", &mallory).await;
    let err = invoke_err(&images, "SubscribeToTask", (image.clone(),)).await;
    assert!(err.contains("Unauthorized access to task"), "{err}");
    let videos = connect(base, "/hubs/video-generation", &mallory).await;
    let err = invoke_err(&videos, "SubscribeToTask", (video_id.clone(),)).await;
    assert!(err.contains("Unauthorized access to task"), "{err}");

    // The HTTP API does not show or cancel it either.
    let (status, _) = http(
        "GET",
        &format!("{base}/api/tasks/{image}"),
        Some(&mallory),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = http(
        "POST",
        &format!("{base}/api/tasks/{image}/cancel"),
        Some(&mallory),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Mallory's own ephemeral key does not open Alice's video on the public hub; a made-up
    // one is refused.
    let own = post_ok(
        &format!("{base}/api/videos/generations"),
        &mallory,
        json!({ "prompt": "y" }),
        202,
    )
    .await;
    let public =
        signalr_client::HubConnectionBuilder::new(format!("{base}/hubs/public/video-generation"))
            .build()
            .unwrap();
    within("public connect", public.start()).await.unwrap();
    let err = invoke_err(
        &public,
        "SubscribeToTask",
        (
            video_id.clone(),
            own["ephemeralKey"].as_str().unwrap().to_owned(),
        ),
    )
    .await;
    assert!(err.contains("Unauthorized access to task"), "{err}");
    let err = invoke_err(&public, "SubscribeToTask", (video_id.clone(), "ek_made-up")).await;
    assert!(err.contains("Invalid or expired ephemeral key"), "{err}");
    let err = invoke_err(&public, "SubscribeToTask", (video_id.clone(), "")).await;
    assert!(err.contains("Ephemeral key is required"), "{err}");

    // Webhook URLs of another key cannot be watched.
    post_ok(
        &format!("{base}/api/webhooks"),
        &alice,
        json!({ "url": "http://127.0.0.1:9/alice" }),
        201,
    )
    .await;
    let hooks = connect(base, "/hubs/webhooks", &mallory).await;
    let err = invoke_err(
        &hooks,
        "SubscribeToWebhooks",
        (vec!["http://127.0.0.1:9/alice".to_owned()],),
    )
    .await;
    assert!(err.contains("Unauthorized access to webhook"), "{err}");
    for c in [tasks, images, videos, public, hooks] {
        c.stop().await;
    }
}

#[tokio::test]
async fn events_never_cross_keys() {
    let server = server(&[]);
    let base = &server.base;
    let (_, alice) = key(base, "alice").await;
    let (_, bob) = key(base, "bob").await;

    // Each key watches its own task type and spend.
    let mut started = Vec::new();
    let mut spend = Vec::new();
    for k in [&alice, &bob] {
        let tasks = connect(base, "/hubs/tasks", k).await;
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        tasks.on(
            "TaskStarted",
            move |id: String, _kind: String, _meta: Value| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(id);
                }
            },
        );
        let _: () = tasks
            .invoke("SubscribeToTaskType", ("batch_embedding",))
            .await
            .unwrap();
        let spend_hub = connect(base, "/hubs/spend", k).await;
        let updates = forward::<Value>(&spend_hub, "SpendUpdate");
        started.push((tasks, rx));
        spend.push((spend_hub, updates));
    }

    // Alice's events first, seen by Alice; then Bob's, seen by Bob. Had Alice's reached Bob,
    // they would have arrived before his own.
    let a = post_ok(
        &format!("{base}/api/tasks"),
        &alice,
        json!({ "taskType": "batch_embedding", "items": 2 }),
        202,
    )
    .await;
    assert_eq!(
        next(&mut started[0].1, "Alice's TaskStarted").await,
        a["taskId"].as_str().unwrap()
    );
    post_ok(
        &format!("{base}/api/spend"),
        &alice,
        json!({ "amount": 1.25 }),
        200,
    )
    .await;
    assert_eq!(
        next(&mut spend[0].1, "Alice's SpendUpdate").await["newSpend"],
        1.25
    );

    let b = post_ok(
        &format!("{base}/api/tasks"),
        &bob,
        json!({ "taskType": "batch_embedding", "items": 2 }),
        202,
    )
    .await;
    assert_eq!(
        next(&mut started[1].1, "Bob's TaskStarted").await,
        b["taskId"].as_str().unwrap()
    );
    post_ok(
        &format!("{base}/api/spend"),
        &bob,
        json!({ "amount": 0.5 }),
        200,
    )
    .await;
    let update = next(&mut spend[1].1, "Bob's SpendUpdate").await;
    assert_eq!(update["newSpend"], 0.5, "Bob got Alice's spend: {update}");
    assert_eq!(update["totalSpend"], 0.5);

    // Nothing of Bob's reached Alice either (his events were sent after hers arrived, so
    // check once Alice's next own event is in).
    post_ok(
        &format!("{base}/api/spend"),
        &alice,
        json!({ "amount": 2.0 }),
        200,
    )
    .await;
    assert_eq!(
        next(&mut spend[0].1, "Alice's second SpendUpdate").await["newSpend"],
        2.0
    );
    assert!(drain(&mut started[0].1).is_empty(), "Alice saw Bob's task");
    let payload = update.to_string();
    assert!(
        !payload.contains("condt_"),
        "an event carries a key: {payload}"
    );
    for (c, _) in started {
        c.stop().await;
    }
    for (c, _) in spend {
        c.stop().await;
    }
}

#[tokio::test]
async fn server_only_methods_are_not_hub_methods() {
    let server = server(&[]);
    let base = &server.base;
    let (id, key) = key(base, "eve").await;
    let cases: [(&str, &str, Vec<Value>); 6] = [
        (
            "/hubs/tasks",
            "TaskProgress",
            vec![json!("task_x"), json!(50), json!("hi")],
        ),
        (
            "/hubs/tasks",
            "TaskCompleted",
            vec![json!("task_x"), json!({})],
        ),
        ("/hubs/spend", "SendBudgetAlert", vec![json!(id), json!({})]),
        ("/hubs/spend", "SendSpendUpdate", vec![json!(id), json!({})]),
        (
            "/hubs/notifications",
            "SystemAnnouncement",
            vec![json!("owned"), json!(3)],
        ),
        (
            "/hubs/webhooks",
            "BroadcastDeliveryAttempt",
            vec![json!("http://x/"), json!({})],
        ),
    ];
    for (path, method, args) in cases {
        let connection = connect(base, path, &key).await;
        let args: Vec<signalr_client::RawValue> = args
            .iter()
            .map(|v| signalr_client::RawValue::from_json(v.to_string()).unwrap())
            .collect();
        let err = invoke_err(&connection, method, args).await;
        assert!(
            err.contains("Method does not exist"),
            "{path} {method}: {err}"
        );
        connection.stop().await;
    }
}

#[tokio::test]
async fn bad_keys_get_401_at_negotiate() {
    let server = server(&[]);
    let base = &server.base;
    let (id, good) = key(base, "grace").await;
    let negotiate = |path: &str| format!("{base}{path}/negotiate?negotiateVersion=1");
    for token in [
        None,
        Some("condt_unknownunknownunknownunknown12"),
        Some("condt_short"),
        Some("not-a-key"),
        Some(MASTER),
    ] {
        let (status, _) = http("POST", &negotiate("/hubs/tasks"), token, None).await;
        assert_eq!(status, 401, "{token:?}");
    }
    // Every other way to present a key works.
    let (status, _) = http(
        "POST",
        &format!("{}&access_token={good}", negotiate("/hubs/tasks")),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = http(
        "POST",
        &format!("{}&api_key={good}", negotiate("/hubs/spend")),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let response = within("X-API-Key negotiate", async {
        reqwest::Client::new()
            .post(negotiate("/hubs/webhooks"))
            .header("x-api-key", &good)
            .send()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 200);
    // The Rust client gets the 401 as a negotiate error.
    let refused = hub(base, "/hubs/tasks", "condt_unknownunknownunknownunknown12");
    let err = within("start", refused.start()).await.unwrap_err();
    assert!(
        err.is_negotiate() && err.to_string().contains("401"),
        "{err}"
    );
    // The API answers JSON errors.
    let (status, body) = http(
        "POST",
        &format!("{base}/api/tasks"),
        Some("condt_unknownunknownunknownunknown12"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string());
    let (status, _) = http(
        "POST",
        &format!("{base}/api/keys"),
        Some(&good),
        Some(json!({ "name": "x" })),
    )
    .await;
    assert_eq!(status, 401, "a virtual key may not create keys");

    // Disabling a key closes its connections and refuses new ones.
    let connection = connect(base, "/hubs/tasks", &good).await;
    let mut events = connection.events();
    let (status, body) = http(
        "PATCH",
        &format!("{base}/api/keys/{id}"),
        Some(MASTER),
        Some(json!({ "enabled": false })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], false);
    loop {
        match within("close after disabling", events.recv()).await {
            Ok(ConnectionEvent::Closed { .. }) => break,
            Ok(_) => {}
            Err(err) => panic!("events: {err}"),
        }
    }
    let (status, _) = http("POST", &negotiate("/hubs/tasks"), Some(&good), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn rate_and_connection_limits_trigger() {
    let server = server(&[]);
    let base = &server.base;
    let (_, key) = create_key(
        base,
        json!({ "name": "heidi", "rateLimitPerMinute": 5, "maxConnections": 2 }),
    )
    .await;
    let notifications = connect(base, "/hubs/notifications", &key).await;
    let mut warnings = forward::<Value>(&notifications, "RateLimitWarning");
    let tasks = connect(base, "/hubs/tasks", &key).await;
    for i in 0..5 {
        let _: () = within(
            "SubscribeToTaskType",
            tasks.invoke("SubscribeToTaskType", (format!("type{i}"),)),
        )
        .await
        .unwrap_or_else(|e| panic!("invocation {i}: {e}"));
    }
    let err = invoke_err(&tasks, "SubscribeToTaskType", ("type5",)).await;
    assert!(err.contains("Rate limit exceeded"), "{err}");
    let warning = next(&mut warnings, "RateLimitWarning").await;
    assert_eq!(warning["type"], "rate_limit");
    assert_eq!(warning["limit"], 5);

    // Two connections are open: a third negotiate gets 429, the client a negotiate error.
    let (status, _) = http(
        "POST",
        &format!("{base}/hubs/spend/negotiate?negotiateVersion=1"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 429);
    let third = hub(base, "/hubs/spend", &key);
    let err = within("third start", third.start()).await.unwrap_err();
    assert!(err.to_string().contains("429"), "{err}");
    // Another key is not affected.
    let (_, other) = key_named(base).await;
    let fine = connect(base, "/hubs/spend", &other).await;
    fine.stop().await;
    // Closing one frees a slot.
    tasks.stop().await;
    let mut reopened = None;
    for _ in 0..50 {
        let candidate = hub(base, "/hubs/spend", &key);
        if candidate.start().await.is_ok() {
            reopened = Some(candidate);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    reopened
        .expect("a slot was freed by closing a connection")
        .stop()
        .await;
    notifications.stop().await;
}

async fn key_named(base: &str) -> (u64, String) {
    key(base, "ivan").await
}

#[tokio::test]
async fn the_public_hub_limits_guessing() {
    let server = server(&[]);
    let base = &server.base;
    let public =
        signalr_client::HubConnectionBuilder::new(format!("{base}/hubs/public/video-generation"))
            .build()
            .unwrap();
    within("public connect", public.start()).await.unwrap();
    let mut last = String::new();
    for i in 0..61 {
        last = invoke_err(
            &public,
            "SubscribeToTask",
            ("vid_x", format!("ek_guess{i}")),
        )
        .await;
        if i < 60 {
            assert!(
                last.contains("Invalid or expired ephemeral key"),
                "{i}: {last}"
            );
        }
    }
    assert!(last.contains("Rate limit exceeded"), "{last}");
    // Other connections are not affected.
    let other =
        signalr_client::HubConnectionBuilder::new(format!("{base}/hubs/public/video-generation"))
            .build()
            .unwrap();
    within("second connect", other.start()).await.unwrap();
    let err = invoke_err(&other, "SubscribeToTask", ("vid_x", "ek_guess")).await;
    assert!(err.contains("Invalid or expired ephemeral key"), "{err}");
    public.stop().await;
    other.stop().await;
}
