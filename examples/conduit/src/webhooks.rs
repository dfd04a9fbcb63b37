//! Webhook delivery: a real HTTP POST of the event JSON to each of the key's webhooks, with
//! exponential retry (1 s doubling, scaled, at most five attempts), each step pushed to the
//! webhook hub's group for that key and URL.

use std::time::Instant;

use serde_json::{Value, json};

use crate::app::{App, Webhook, now, uuid};

/// Attempts per delivery.
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// Delivers `body` to every webhook of key `owner`, in the background.
pub(crate) fn deliver(app: &App, owner: u64, task_id: &str, event_type: &'static str, body: Value) {
    for webhook in app.webhooks_of(owner) {
        tokio::spawn(deliver_one(
            app.clone(),
            owner,
            webhook,
            task_id.to_owned(),
            event_type,
            body.clone(),
        ));
    }
}

async fn deliver_one(
    app: App,
    owner: u64,
    webhook: Webhook,
    task_id: String,
    event_type: &'static str,
    body: Value,
) {
    let notifier = app.notifier();
    let delivery_id = format!("dlv_{}", uuid());
    let text = body.to_string();
    let url = webhook.url.as_str();
    let base = |extra: Value| {
        let mut payload = json!({
            "webhookId": webhook.webhook_id, "deliveryId": delivery_id, "url": url,
            "eventType": event_type, "taskId": task_id, "timestamp": now(),
        });
        if let (Some(map), Value::Object(extra)) = (payload.as_object_mut(), extra) {
            map.extend(extra);
        }
        payload
    };
    for attempt in 1..=MAX_ATTEMPTS {
        notifier
            .webhook(
                "DeliveryAttempted",
                owner,
                url,
                base(json!({ "attemptNumber": attempt })),
            )
            .await;
        let started = Instant::now();
        let result = app
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-conduit-event", event_type)
            .header("x-conduit-delivery", &delivery_id)
            .body(text.clone())
            .send()
            .await;
        let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, error) = match result {
            Ok(response) if response.status().is_success() => {
                tracing::info!(url, attempt, "webhook delivered");
                notifier
                    .webhook(
                        "DeliverySucceeded",
                        owner,
                        url,
                        base(json!({
                            "statusCode": response.status().as_u16(), "responseTimeMs": took,
                            "attemptCount": attempt, "totalAttempts": attempt,
                        })),
                    )
                    .await;
                return;
            }
            Ok(response) => (
                Some(response.status().as_u16()),
                format!("HTTP {}", response.status()),
            ),
            Err(err) if err.is_timeout() => (None, "timed out".to_owned()),
            Err(err) if err.is_connect() => (None, "connection failed".to_owned()),
            Err(_) => (None, "request failed".to_owned()),
        };
        let last = attempt == MAX_ATTEMPTS;
        tracing::warn!(url, attempt, error = %error, last, "webhook delivery failed");
        notifier
            .webhook(
                "DeliveryFailed",
                owner,
                url,
                base(json!({
                    "error": error, "errorMessage": error, "statusCode": status,
                    "attemptCount": attempt, "attemptNumber": attempt, "isFinal": last,
                    "isPermanentFailure": last,
                })),
            )
            .await;
        if last {
            return;
        }
        let delay = app.scaled(f64::from(1u32 << (attempt - 1)));
        notifier
            .webhook("RetryScheduled", owner, url, base(json!({
                "nextAttemptNumber": attempt + 1, "delaySeconds": delay.as_secs_f64(),
                "scheduledAt": now(), "reason": format!("Retry {attempt} of {}", MAX_ATTEMPTS - 1),
            })))
            .await;
        tokio::time::sleep(delay).await;
    }
}
