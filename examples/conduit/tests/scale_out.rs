//! Two `conduit --redis URL` instances on a private `redis-server`: a client on instance B
//! follows a task started on instance A (ownership checked through Redis, events through the
//! backplane), gets spend events for A's requests, and opens A's video on the public hub with
//! the ephemeral key A issued. Skipped with a printed reason when no Redis is available
//! (unless `SIGNALR_REQUIRE_ALL=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use signalr_tests::{redis_server, require};
use tokio::sync::mpsc;

#[tokio::test]
async fn a_client_on_instance_b_sees_a_task_started_on_instance_a() {
    let Some(redis) = require(redis_server()) else {
        return;
    };
    let a = server(&["--redis", redis.url(), "--time-scale", "0.1"]);
    let b = server(&["--redis", redis.url(), "--time-scale", "0.1"]);
    // The same key on both instances (keys are per instance).
    let key = format!("condt_{}", "S".repeat(32));
    let (id_a, _) = create_key(&a.base, json!({ "name": "shared", "key": key })).await;
    let (id_b, _) = create_key(&b.base, json!({ "name": "shared", "key": key })).await;
    assert_eq!(id_a, id_b, "key ids must match across instances");
    let (_, other) = key_named(&b.base).await;

    let (status, health) = http("GET", &format!("{}/health/signalr", b.base), None, None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["backplane"]["type"], "redis");
    assert_eq!(health["backplane"]["status"], "Healthy", "{health}");
    assert!(health["backplane"]["pingMs"].is_number(), "{health}");

    let tasks = connect(&b.base, "/hubs/tasks", &key).await;
    let (tx, mut progress) = mpsc::unbounded_channel::<u32>();
    tasks.on(
        "TaskProgress",
        move |_id: String, p: u32, _m: Option<String>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(p);
            }
        },
    );
    let (tx, mut completed) = mpsc::unbounded_channel::<String>();
    tasks.on("TaskCompleted", move |id: String, _r: Value| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(id);
        }
    });
    let spend = connect(&b.base, "/hubs/spend", &key).await;
    let mut updates = forward::<Value>(&spend, "SpendUpdate");

    // Started on A, subscribed on B.
    let reply = post_ok(
        &format!("{}/api/tasks", a.base),
        &key,
        json!({ "taskType": "batch_embedding", "items": 100 }),
        202,
    )
    .await;
    let task_id = reply["taskId"].as_str().unwrap().to_owned();
    let _: () = within(
        "SubscribeToTask on B",
        tasks.invoke("SubscribeToTask", (task_id.clone(),)),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut completed, "TaskCompleted on B").await, task_id);
    assert_eq!(
        drain(&mut progress).last(),
        Some(&100),
        "no progress reached B"
    );

    // Another key on B may not subscribe to it.
    let intruder = connect(&b.base, "/hubs/tasks", &other).await;
    let err = invoke_err(&intruder, "SubscribeToTask", (task_id.clone(),)).await;
    assert!(err.contains("Unauthorized access to task"), "{err}");

    // Spend reported on A reaches the key's connection on B.
    post_ok(
        &format!("{}/api/spend", a.base),
        &key,
        json!({ "amount": 0.75 }),
        200,
    )
    .await;
    assert_eq!(
        next(&mut updates, "SpendUpdate on B").await["newSpend"],
        0.75
    );

    // A video started on A, watched on B's public hub with A's ephemeral key.
    let reply = post_ok(
        &format!("{}/api/videos/generations", a.base),
        &key,
        json!({ "prompt": "tide", "duration": 10 }),
        202,
    )
    .await;
    let video = reply["taskId"].as_str().unwrap().to_owned();
    let public = signalr_client::HubConnectionBuilder::new(format!(
        "{}/hubs/public/video-generation",
        b.base
    ))
    .build()
    .unwrap();
    let mut done = forward::<Value>(&public, "VideoGenerationCompleted");
    within("public connect", public.start()).await.unwrap();
    let _: () = within(
        "public subscribe on B",
        public.invoke(
            "SubscribeToTask",
            (
                video.clone(),
                reply["ephemeralKey"].as_str().unwrap().to_owned(),
            ),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        next(&mut done, "VideoGenerationCompleted on B").await["taskId"],
        video
    );

    for c in [tasks, spend, intruder, public] {
        c.stop().await;
    }
}

async fn key_named(base: &str) -> (u64, String) {
    key(base, "intruder").await
}
