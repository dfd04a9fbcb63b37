//! `ConduitClient` as a library against the `conduit` server: typed task callbacks (once
//! per outcome), typed spend events, a refused subscription, unsubscribing, and the
//! remembered subscriptions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{create_key, http, start_conduit, start_task};
use conduit_client::{
    ClientEvent, ConduitClient, ConduitEvent, Hub, Subscription, TaskCallbacks, TaskOutcome,
};
use serde_json::json;
use signalr_tests::free_addr;
use tokio::sync::mpsc;

/// What the callbacks saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Progress(String, f64),
    Completed(String),
    Failed(String, TaskOutcome, String),
}

fn callbacks(tx: &mpsc::UnboundedSender<Seen>) -> TaskCallbacks {
    let (a, b, c) = (tx.clone(), tx.clone(), tx.clone());
    TaskCallbacks::new()
        .on_progress(move |id, percent, _| {
            let _ = a.send(Seen::Progress(id.to_owned(), percent));
        })
        .on_completed(move |id, event| {
            // `TaskCompleted`, or `BatchOperationCompleted` for `batch_*` types.
            assert_eq!(event.task_id(), Some(id));
            assert_eq!(event.outcome(), Some(TaskOutcome::Completed));
            let _ = b.send(Seen::Completed(id.to_owned()));
        })
        .on_failed(move |id, outcome, error| {
            let _ = c.send(Seen::Failed(id.to_owned(), outcome, error.to_owned()));
        })
}

/// Receives until `done` matches; returns everything received.
async fn until(rx: &mut mpsc::UnboundedReceiver<Seen>, done: impl Fn(&Seen) -> bool) -> Vec<Seen> {
    let mut seen = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; saw {seen:?}"))
            .expect("channel open");
        let stop = done(&item);
        seen.push(item);
        if stop {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_callbacks_spend_and_subscriptions() {
    let addr = free_addr();
    let _server = start_conduit(addr);
    let key = create_key(addr, None);
    let other = create_key(addr, None);

    let (spend_tx, mut spend_rx) = mpsc::unbounded_channel();
    let client = ConduitClient::builder(format!("http://{addr}"), key.clone())
        .hubs([Hub::Tasks, Hub::Spend])
        .on_event(move |event| {
            if let ClientEvent::Message {
                event: Some(ConduitEvent::SpendUpdate(update)),
                ..
            } = event
            {
                let _ = spend_tx.send(update.clone());
            }
        })
        .build()
        .unwrap();
    client.start().await.unwrap();

    // A task to completion: progress in order, then one completion.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = start_task(
        addr,
        &key,
        "/api/tasks",
        json!({"taskType": "batch_embedding", "items": 40}),
    );
    client.subscribe_task(&task, callbacks(&tx)).await.unwrap();
    assert_eq!(
        client.subscriptions().get(&Hub::Tasks),
        Some(&vec![Subscription::Task(task.clone())])
    );
    let seen = until(&mut rx, |s| matches!(s, Seen::Completed(_))).await;
    assert_eq!(seen.last(), Some(&Seen::Completed(task.clone())));
    let percents: Vec<f64> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Progress(id, p) if *id == task => Some(*p),
            _ => None,
        })
        .collect();
    assert!(!percents.is_empty(), "{seen:?}");
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    // Finished: no longer renewed after a reconnect.
    assert_eq!(client.subscriptions().get(&Hub::Tasks), Some(&vec![]));

    // A failing task.
    let failing = start_task(
        addr,
        &key,
        "/api/tasks",
        json!({"taskType": "batch_embedding", "items": 40, "fail": true}),
    );
    client
        .subscribe_task(&failing, callbacks(&tx))
        .await
        .unwrap();
    let seen = until(&mut rx, |s| matches!(s, Seen::Failed(..))).await;
    let Some(Seen::Failed(id, outcome, error)) = seen.last() else {
        unreachable!()
    };
    assert_eq!((id, *outcome), (&failing, TaskOutcome::Failed));
    assert!(!error.is_empty());

    // Another key's task is refused, with the server's text, and not remembered.
    let foreign = start_task(
        addr,
        &other,
        "/api/tasks",
        json!({"taskType": "batch_embedding"}),
    );
    let err = client
        .subscribe_task(&foreign, TaskCallbacks::new())
        .await
        .unwrap_err();
    // ASP.NET Core's wording: "An unexpected error occurred invoking 'SubscribeToTask' on
    // the server. HubException: Unauthorized access to task".
    assert!(
        err.hub_message()
            .is_some_and(|m| m.ends_with("Unauthorized access to task")),
        "{err}"
    );
    assert!(
        !client
            .subscriptions()
            .values()
            .flatten()
            .any(|s| *s == Subscription::Task(foreign.clone()))
    );

    // Task types are remembered until unsubscribed.
    client.subscribe_task_type("batch_embedding").await.unwrap();
    assert!(
        client.subscriptions()[&Hub::Tasks]
            .contains(&Subscription::TaskType("batch_embedding".into()))
    );
    client
        .unsubscribe_task_type("batch_embedding")
        .await
        .unwrap();
    assert!(client.subscriptions()[&Hub::Tasks].is_empty());

    // Typed spend.
    let (status, _) = http(
        addr,
        "POST",
        "/api/spend",
        &key,
        &json!({"amount": 0.25, "model": "gpt-4o", "provider": "openai"}),
    );
    assert_eq!(status, 200);
    let update = tokio::time::timeout(Duration::from_secs(10), spend_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!((update.total_spend - 0.25).abs() < 1e-9, "{update:?}");
    assert_eq!(update.model.as_deref(), Some("gpt-4o"));

    // Hubs not enabled are an error.
    assert!(matches!(
        client
            .subscribe_webhooks(vec!["http://127.0.0.1:9/x".into()])
            .await,
        Err(conduit_client::Error::HubNotEnabled(Hub::Webhooks))
    ));
    client.stop().await;
}
