//! The events Conduit's hubs send, as serde structs.
//!
//! The unified TaskHub sends its `Task*` events with positional arguments
//! (`TaskProgress(taskId, progress, message)`); every other hub sends one camelCase object
//! per event. The structs below accept both: a struct deserializes from a JSON array in
//! field order as well as from an object. Fields the server may leave out are `Option`s or
//! default to empty, and unknown fields are kept in `extra` where a payload is open-ended,
//! so a newer server does not break an older client.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::hub::Hub;

/// `TaskStarted(taskId, taskType, metadata)` on `/hubs/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStarted {
    /// The task.
    pub task_id: String,
    /// Its type, such as `batch_embedding`.
    pub task_type: String,
    /// Whatever the server attached.
    #[serde(default)]
    pub metadata: Value,
}

/// `TaskProgress(taskId, progress, message)` on `/hubs/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskProgress {
    /// The task.
    pub task_id: String,
    /// Percent done, 0 to 100.
    pub progress: f64,
    /// What is happening.
    #[serde(default)]
    pub message: Option<String>,
}

/// `TaskCompleted(taskId, result)` on `/hubs/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCompleted {
    /// The task.
    pub task_id: String,
    /// The task's result.
    #[serde(default)]
    pub result: Value,
}

/// `TaskFailed(taskId, error, isRetryable)` on `/hubs/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailed {
    /// The task.
    pub task_id: String,
    /// Why it failed.
    #[serde(default)]
    pub error: String,
    /// Whether trying again may help.
    #[serde(default)]
    pub is_retryable: bool,
}

/// `TaskCancelled(taskId, reason)` on `/hubs/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCancelled {
    /// The task.
    pub task_id: String,
    /// Why, when the server says.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `TaskTimedOut(taskId, timeoutSeconds)` on `/hubs/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskTimedOut {
    /// The task.
    pub task_id: String,
    /// The timeout that ran out.
    #[serde(default)]
    pub timeout_seconds: f64,
}

/// `BatchOperationStarted`, `BatchOperationProgress` or `BatchOperationCompleted` on
/// `/hubs/tasks`: one object; the operation id is the task id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchOperation {
    /// The operation (task) id.
    pub operation_id: String,
    /// Percent done, in progress events.
    #[serde(default)]
    pub progress_percentage: Option<f64>,
    /// Every other field (`operationType`, `totalItems`, `processedCount`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BatchOperation {
    /// The `status` field (`completed`, `failed`, `cancelled`), when present.
    pub fn status(&self) -> Option<&str> {
        self.extra.get("status").and_then(Value::as_str)
    }
}

/// `ImageGenerationStarted` on `/hubs/image-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageGenerationStarted {
    /// The task.
    pub task_id: String,
    /// The prompt.
    #[serde(default)]
    pub prompt: Option<String>,
    /// How many images were asked for.
    #[serde(default)]
    pub number_of_images: Option<u32>,
    /// The image size, such as `1024x1024`.
    #[serde(default)]
    pub size: Option<String>,
    /// When generation started (ISO 8601).
    #[serde(default)]
    pub started_at: Option<String>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ImageGenerationProgress` on `/hubs/image-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageGenerationProgress {
    /// The task.
    pub task_id: String,
    /// Percent done, 0 to 100.
    #[serde(alias = "progress")]
    pub progress_percentage: f64,
    /// The status text.
    #[serde(default)]
    pub status: Option<String>,
    /// Images finished so far.
    #[serde(default)]
    pub images_completed: Option<u32>,
    /// Images asked for.
    #[serde(default)]
    pub total_images: Option<u32>,
    /// What is happening.
    #[serde(default)]
    pub message: Option<String>,
    /// When (ISO 8601).
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `ImageGenerationCompleted` on `/hubs/image-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageGenerationCompleted {
    /// The task.
    pub task_id: String,
    /// The generated images.
    #[serde(default)]
    pub image_urls: Vec<String>,
    /// How long generation took.
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    /// What it cost.
    #[serde(default)]
    pub cost: Option<f64>,
    /// When it completed (ISO 8601).
    #[serde(default)]
    pub completed_at: Option<String>,
}

/// `ImageGenerationFailed` on `/hubs/image-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageGenerationFailed {
    /// The task.
    pub task_id: String,
    /// Why it failed.
    #[serde(default)]
    pub error: String,
    /// Whether trying again may help.
    #[serde(default)]
    pub is_retryable: bool,
    /// When it failed (ISO 8601).
    #[serde(default)]
    pub failed_at: Option<String>,
}

/// `ImageGenerationCancelled` or `VideoGenerationCancelled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationCancelled {
    /// The task.
    pub task_id: String,
    /// Why, when the server says.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was cancelled (ISO 8601).
    #[serde(default)]
    pub cancelled_at: Option<String>,
}

/// `VideoGenerationStarted` on `/hubs/video-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGenerationStarted {
    /// The task.
    pub task_id: String,
    /// The provider doing the work.
    #[serde(default)]
    pub provider: Option<String>,
    /// When generation started (ISO 8601).
    #[serde(default)]
    pub started_at: Option<String>,
    /// The provider's estimate.
    #[serde(default)]
    pub estimated_seconds: Option<f64>,
}

/// `VideoGenerationProgress` on `/hubs/video-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGenerationProgress {
    /// The task.
    pub task_id: String,
    /// Percent done, 0 to 100.
    #[serde(alias = "progressPercentage")]
    pub progress: f64,
    /// The status text.
    #[serde(default)]
    pub status: Option<String>,
    /// What is happening.
    #[serde(default)]
    pub message: Option<String>,
    /// Frames rendered so far.
    #[serde(default)]
    pub frames_completed: Option<u64>,
    /// Frames in all.
    #[serde(default)]
    pub total_frames: Option<u64>,
    /// When (ISO 8601).
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `VideoGenerationCompleted` on `/hubs/video-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGenerationCompleted {
    /// The task.
    pub task_id: String,
    /// The video.
    #[serde(default)]
    pub video_url: Option<String>,
    /// A preview image.
    #[serde(default)]
    pub preview_url: Option<String>,
    /// The video's length in seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// The resolution, such as `1280x720`.
    #[serde(default)]
    pub resolution: Option<String>,
    /// What it cost.
    #[serde(default)]
    pub cost: Option<f64>,
    /// Any other field (`fileSize`, `provider`, `model`, `completedAt`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `VideoGenerationFailed` on `/hubs/video-generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGenerationFailed {
    /// The task.
    pub task_id: String,
    /// Why it failed.
    #[serde(default)]
    pub error: String,
    /// A machine-readable code.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Whether trying again may help.
    #[serde(default)]
    pub is_retryable: bool,
    /// Any other field (`retryCount`, `maxRetries`, `failedAt`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `SpendUpdate` on `/hubs/spend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpendUpdate {
    /// The key's total spend.
    pub total_spend: f64,
    /// The spend this update adds.
    #[serde(default)]
    pub new_spend: Option<f64>,
    /// The key's budget, when it has one.
    #[serde(default)]
    pub budget: Option<f64>,
    /// What is left of the budget.
    #[serde(default)]
    pub budget_remaining: Option<f64>,
    /// Percent of the budget used.
    #[serde(default)]
    pub budget_percentage: Option<f64>,
    /// The provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// When (ISO 8601).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Any other field (`budgetUtilization`, `metadata`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `BudgetAlert` on `/hubs/spend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetAlert {
    /// `budget_50_percent`, `budget_75_percent`, `budget_90_percent` or `budget_exceeded`.
    pub alert_type: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// `info`, `warning` or `critical`.
    #[serde(default)]
    pub severity: String,
    /// The key's spend.
    #[serde(default)]
    pub current_spend: Option<f64>,
    /// The key's budget.
    #[serde(default)]
    pub budget_limit: Option<f64>,
    /// Percent of the budget used.
    #[serde(default)]
    pub percentage_used: Option<f64>,
    /// What to do about it.
    #[serde(default)]
    pub recommendations: Vec<String>,
    /// When (ISO 8601).
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// A notification from `/hubs/notifications` (`OnProviderHealthChanged`,
/// `SystemAnnouncement`, ...): the common fields, and the subtype's in `fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemNotification {
    /// The notification's id.
    #[serde(default)]
    pub id: Option<String>,
    /// `provider_health`, `system_announcement`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Low 0, Medium 1, High 2, Critical 3.
    #[serde(default)]
    pub priority: i64,
    /// When (ISO 8601).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The subtype's fields (`providerId`, `status`, `message`, ...).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// A webhook delivery event from `/hubs/webhooks` (`DeliveryAttempted`,
/// `DeliverySucceeded`, `DeliveryFailed`, `RetryScheduled`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// The webhook's URL.
    #[serde(default)]
    pub url: String,
    /// The task whose event is delivered.
    #[serde(default)]
    pub task_id: Option<String>,
    /// The HTTP status the webhook answered, when it did.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// Attempts made so far.
    #[serde(default, alias = "attemptNumber")]
    pub attempt_count: Option<u32>,
    /// Why the delivery failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Every other field (`webhookId`, `deliveryId`, `eventType`, `isFinal`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Any event a Conduit hub sends, decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConduitEvent {
    /// `TaskStarted`.
    TaskStarted(TaskStarted),
    /// `TaskProgress`.
    TaskProgress(TaskProgress),
    /// `TaskCompleted`.
    TaskCompleted(TaskCompleted),
    /// `TaskFailed`.
    TaskFailed(TaskFailed),
    /// `TaskCancelled`.
    TaskCancelled(TaskCancelled),
    /// `TaskTimedOut`.
    TaskTimedOut(TaskTimedOut),
    /// `BatchOperationStarted`.
    BatchOperationStarted(BatchOperation),
    /// `BatchOperationProgress`.
    BatchOperationProgress(BatchOperation),
    /// `BatchOperationCompleted`.
    BatchOperationCompleted(BatchOperation),
    /// `ImageGenerationStarted`.
    ImageGenerationStarted(ImageGenerationStarted),
    /// `ImageGenerationProgress`.
    ImageGenerationProgress(ImageGenerationProgress),
    /// `ImageGenerationCompleted`.
    ImageGenerationCompleted(ImageGenerationCompleted),
    /// `ImageGenerationFailed`.
    ImageGenerationFailed(ImageGenerationFailed),
    /// `ImageGenerationCancelled`.
    ImageGenerationCancelled(GenerationCancelled),
    /// `VideoGenerationStarted`.
    VideoGenerationStarted(VideoGenerationStarted),
    /// `VideoGenerationProgress`.
    VideoGenerationProgress(VideoGenerationProgress),
    /// `VideoGenerationCompleted`.
    VideoGenerationCompleted(VideoGenerationCompleted),
    /// `VideoGenerationFailed`.
    VideoGenerationFailed(VideoGenerationFailed),
    /// `VideoGenerationCancelled`.
    VideoGenerationCancelled(GenerationCancelled),
    /// `SpendUpdate`.
    SpendUpdate(SpendUpdate),
    /// `BudgetAlert`.
    BudgetAlert(BudgetAlert),
    /// `UnusualSpendingDetected` or `SpendSummary`: the payload as it came.
    SpendReport(String, Value),
    /// Any notifications-hub event, with its name.
    Notification(String, SystemNotification),
    /// `PreferencesUpdated` on the notifications hub.
    PreferencesUpdated(Value),
    /// Any webhooks-hub event, with its name.
    WebhookDelivery(String, WebhookDelivery),
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskOutcome {
    /// It completed.
    Completed,
    /// It failed.
    Failed,
    /// It was cancelled.
    Cancelled,
    /// It timed out.
    TimedOut,
}

impl TaskOutcome {
    /// `completed`, `failed`, `cancelled` or `timed_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }
}

/// The events each hub sends, with their argument counts.
pub(crate) fn hub_events(hub: Hub) -> &'static [(&'static str, usize)] {
    match hub {
        Hub::Tasks => &[
            ("TaskStarted", 3),
            ("TaskProgress", 3),
            ("TaskCompleted", 2),
            ("TaskFailed", 3),
            ("TaskCancelled", 2),
            ("TaskTimedOut", 2),
            ("BatchOperationStarted", 1),
            ("BatchOperationProgress", 1),
            ("BatchOperationCompleted", 1),
        ],
        Hub::ImageGeneration => &[
            ("ImageGenerationStarted", 1),
            ("ImageGenerationProgress", 1),
            ("ImageGenerationCompleted", 1),
            ("ImageGenerationFailed", 1),
            ("ImageGenerationCancelled", 1),
        ],
        Hub::VideoGeneration => &[
            ("VideoGenerationStarted", 1),
            ("VideoGenerationProgress", 1),
            ("VideoGenerationCompleted", 1),
            ("VideoGenerationFailed", 1),
            ("VideoGenerationCancelled", 1),
        ],
        Hub::Notifications => &[
            ("OnProviderHealthChanged", 1),
            ("OnModelMappingChanged", 1),
            ("OnModelAvailabilityChanged", 1),
            ("OnModelsDiscovered", 1),
            ("RateLimitWarning", 1),
            ("SystemAnnouncement", 1),
            ("ServiceDegraded", 1),
            ("ServiceRestored", 1),
            ("PreferencesUpdated", 1),
        ],
        Hub::Spend => &[
            ("SpendUpdate", 1),
            ("BudgetAlert", 1),
            ("UnusualSpendingDetected", 1),
            ("SpendSummary", 1),
        ],
        Hub::Webhooks => &[
            ("DeliveryAttempted", 1),
            ("DeliverySucceeded", 1),
            ("DeliveryFailed", 1),
            ("RetryScheduled", 1),
        ],
    }
}

fn positional<T: serde::de::DeserializeOwned>(args: &[Value]) -> Result<T, serde_json::Error> {
    serde_json::from_value(Value::Array(args.to_vec()))
}

fn object<T: serde::de::DeserializeOwned>(args: &[Value]) -> Result<T, serde_json::Error> {
    serde_json::from_value(args.first().cloned().unwrap_or(Value::Null))
}

impl ConduitEvent {
    /// Decodes the event `name` with `args` as the hub `hub` sends it. `Ok(None)` for an
    /// event this crate does not know; `Err` when a known event's payload does not fit.
    pub fn decode(hub: Hub, name: &str, args: &[Value]) -> Result<Option<Self>, serde_json::Error> {
        use ConduitEvent as E;
        let event = match (hub, name) {
            (Hub::Tasks, "TaskStarted") => E::TaskStarted(positional(args)?),
            (Hub::Tasks, "TaskProgress") => E::TaskProgress(positional(args)?),
            (Hub::Tasks, "TaskCompleted") => E::TaskCompleted(positional(args)?),
            (Hub::Tasks, "TaskFailed") => E::TaskFailed(positional(args)?),
            (Hub::Tasks, "TaskCancelled") => E::TaskCancelled(positional(args)?),
            (Hub::Tasks, "TaskTimedOut") => E::TaskTimedOut(positional(args)?),
            (Hub::Tasks, "BatchOperationStarted") => E::BatchOperationStarted(object(args)?),
            (Hub::Tasks, "BatchOperationProgress") => E::BatchOperationProgress(object(args)?),
            (Hub::Tasks, "BatchOperationCompleted") => E::BatchOperationCompleted(object(args)?),
            (Hub::ImageGeneration, "ImageGenerationStarted") => {
                E::ImageGenerationStarted(object(args)?)
            }
            (Hub::ImageGeneration, "ImageGenerationProgress") => {
                E::ImageGenerationProgress(object(args)?)
            }
            (Hub::ImageGeneration, "ImageGenerationCompleted") => {
                E::ImageGenerationCompleted(object(args)?)
            }
            (Hub::ImageGeneration, "ImageGenerationFailed") => {
                E::ImageGenerationFailed(object(args)?)
            }
            (Hub::ImageGeneration, "ImageGenerationCancelled") => {
                E::ImageGenerationCancelled(object(args)?)
            }
            (Hub::VideoGeneration, "VideoGenerationStarted") => {
                E::VideoGenerationStarted(object(args)?)
            }
            (Hub::VideoGeneration, "VideoGenerationProgress") => {
                E::VideoGenerationProgress(object(args)?)
            }
            (Hub::VideoGeneration, "VideoGenerationCompleted") => {
                E::VideoGenerationCompleted(object(args)?)
            }
            (Hub::VideoGeneration, "VideoGenerationFailed") => {
                E::VideoGenerationFailed(object(args)?)
            }
            (Hub::VideoGeneration, "VideoGenerationCancelled") => {
                E::VideoGenerationCancelled(object(args)?)
            }
            (Hub::Spend, "SpendUpdate") => E::SpendUpdate(object(args)?),
            (Hub::Spend, "BudgetAlert") => E::BudgetAlert(object(args)?),
            (Hub::Spend, "UnusualSpendingDetected" | "SpendSummary") => {
                E::SpendReport(name.to_owned(), object(args)?)
            }
            (Hub::Notifications, "PreferencesUpdated") => E::PreferencesUpdated(object(args)?),
            (Hub::Notifications, _) => E::Notification(name.to_owned(), object(args)?),
            (Hub::Webhooks, _) => E::WebhookDelivery(name.to_owned(), object(args)?),
            _ => return Ok(None),
        };
        Ok(Some(event))
    }

    /// The task the event is about, if it is about one.
    pub fn task_id(&self) -> Option<&str> {
        use ConduitEvent as E;
        Some(match self {
            E::TaskStarted(e) => &e.task_id,
            E::TaskProgress(e) => &e.task_id,
            E::TaskCompleted(e) => &e.task_id,
            E::TaskFailed(e) => &e.task_id,
            E::TaskCancelled(e) => &e.task_id,
            E::TaskTimedOut(e) => &e.task_id,
            E::BatchOperationStarted(e)
            | E::BatchOperationProgress(e)
            | E::BatchOperationCompleted(e) => &e.operation_id,
            E::ImageGenerationStarted(e) => &e.task_id,
            E::ImageGenerationProgress(e) => &e.task_id,
            E::ImageGenerationCompleted(e) => &e.task_id,
            E::ImageGenerationFailed(e) => &e.task_id,
            E::ImageGenerationCancelled(e) | E::VideoGenerationCancelled(e) => &e.task_id,
            E::VideoGenerationStarted(e) => &e.task_id,
            E::VideoGenerationProgress(e) => &e.task_id,
            E::VideoGenerationCompleted(e) => &e.task_id,
            E::VideoGenerationFailed(e) => &e.task_id,
            E::WebhookDelivery(_, e) => return e.task_id.as_deref(),
            E::SpendUpdate(_)
            | E::BudgetAlert(_)
            | E::SpendReport(..)
            | E::Notification(..)
            | E::PreferencesUpdated(_) => return None,
        })
    }

    /// Percent done and the message, for a progress event of any task hub.
    pub fn progress(&self) -> Option<(f64, Option<&str>)> {
        use ConduitEvent as E;
        match self {
            E::TaskProgress(e) => Some((e.progress, e.message.as_deref())),
            E::ImageGenerationProgress(e) => Some((e.progress_percentage, e.message.as_deref())),
            E::VideoGenerationProgress(e) => Some((e.progress, e.message.as_deref())),
            E::BatchOperationProgress(e) => e.progress_percentage.map(|p| (p, None)),
            _ => None,
        }
    }

    /// How the task ended, for an event that ends one.
    pub fn outcome(&self) -> Option<TaskOutcome> {
        use ConduitEvent as E;
        match self {
            // A batch operation ends with `BatchOperationCompleted` whatever happened; its
            // `status` tells.
            E::BatchOperationCompleted(e) => Some(match e.status() {
                Some("failed") => TaskOutcome::Failed,
                Some("cancelled") => TaskOutcome::Cancelled,
                _ => TaskOutcome::Completed,
            }),
            E::TaskCompleted(_)
            | E::ImageGenerationCompleted(_)
            | E::VideoGenerationCompleted(_) => Some(TaskOutcome::Completed),
            E::TaskFailed(_) | E::ImageGenerationFailed(_) | E::VideoGenerationFailed(_) => {
                Some(TaskOutcome::Failed)
            }
            E::TaskCancelled(_)
            | E::ImageGenerationCancelled(_)
            | E::VideoGenerationCancelled(_) => Some(TaskOutcome::Cancelled),
            E::TaskTimedOut(_) => Some(TaskOutcome::TimedOut),
            _ => None,
        }
    }

    /// The error text of a failure, cancellation or timeout.
    pub fn error_text(&self) -> Option<String> {
        use ConduitEvent as E;
        match self {
            E::TaskFailed(e) => Some(e.error.clone()),
            E::ImageGenerationFailed(e) => Some(e.error.clone()),
            E::VideoGenerationFailed(e) => Some(e.error.clone()),
            E::TaskCancelled(e) => Some(e.reason.clone().unwrap_or_else(|| "cancelled".into())),
            E::ImageGenerationCancelled(e) | E::VideoGenerationCancelled(e) => {
                Some(e.reason.clone().unwrap_or_else(|| "cancelled".into()))
            }
            E::TaskTimedOut(e) => Some(format!("timed out after {} s", e.timeout_seconds)),
            E::BatchOperationCompleted(e) if e.status() != Some("completed") => Some(
                e.extra
                    .get("errors")
                    .and_then(|errors| errors.get(0))
                    .and_then(Value::as_str)
                    .or_else(|| e.status())
                    .unwrap_or("failed")
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(hub: Hub, name: &str, args: Value) -> ConduitEvent {
        let Value::Array(args) = args else {
            unreachable!()
        };
        ConduitEvent::decode(hub, name, &args).unwrap().unwrap()
    }

    #[test]
    fn positional_task_events() {
        let e = decode(
            Hub::Tasks,
            "TaskProgress",
            json!(["task_1", 40, "Processed 8/20"]),
        );
        assert_eq!(e.task_id(), Some("task_1"));
        assert_eq!(e.progress(), Some((40.0, Some("Processed 8/20"))));
        let e = decode(Hub::Tasks, "TaskProgress", json!(["task_1", 40, null]));
        assert_eq!(e.progress(), Some((40.0, None)));
        let e = decode(
            Hub::Tasks,
            "TaskStarted",
            json!(["task_1", "batch_embedding", {"items": 20}]),
        );
        assert!(matches!(&e, ConduitEvent::TaskStarted(s) if s.task_type == "batch_embedding"));
        let e = decode(Hub::Tasks, "TaskFailed", json!(["task_1", "boom", true]));
        assert_eq!(e.outcome(), Some(TaskOutcome::Failed));
        assert_eq!(e.error_text().as_deref(), Some("boom"));
        let e = decode(Hub::Tasks, "TaskCompleted", json!(["task_1", {"ok": 1}]));
        assert_eq!(e.outcome(), Some(TaskOutcome::Completed));
        let e = decode(
            Hub::Tasks,
            "BatchOperationCompleted",
            json!([{"operationId": "task_1", "status": "failed", "errors": ["boom"]}]),
        );
        assert_eq!(e.outcome(), Some(TaskOutcome::Failed));
        assert_eq!(e.error_text().as_deref(), Some("boom"));
        let e = decode(
            Hub::Tasks,
            "BatchOperationCompleted",
            json!([{"operationId": "task_1", "status": "completed"}]),
        );
        assert_eq!(e.outcome(), Some(TaskOutcome::Completed));
        assert_eq!(e.error_text(), None);
    }

    #[test]
    fn object_events() {
        let e = decode(
            Hub::ImageGeneration,
            "ImageGenerationProgress",
            json!([{"taskId": "img_1", "progressPercentage": 50, "status": "running",
                    "imagesCompleted": 1, "totalImages": 2, "message": "1 of 2",
                    "timestamp": "2026-01-01T00:00:00Z"}]),
        );
        assert_eq!(e.task_id(), Some("img_1"));
        assert_eq!(e.progress(), Some((50.0, Some("1 of 2"))));
        let e = decode(
            Hub::VideoGeneration,
            "VideoGenerationCompleted",
            json!([{"taskId": "vid_1", "status": "completed", "videoUrl": "http://x/v.mp4",
                    "fileSize": 1000}]),
        );
        assert_eq!(e.outcome(), Some(TaskOutcome::Completed));
        let e = decode(
            Hub::Spend,
            "BudgetAlert",
            json!([{"alertType": "budget_75_percent", "message": "75%", "severity": "warning",
                    "currentSpend": 7.6, "budgetLimit": 10.0, "percentageUsed": 76.0,
                    "recommendations": []}]),
        );
        assert!(matches!(e, ConduitEvent::BudgetAlert(a) if a.severity == "warning"));
        let e = decode(
            Hub::Notifications,
            "OnProviderHealthChanged",
            json!([{"id": "n1", "type": "provider_health", "priority": 2,
                    "timestamp": "t", "providerId": 1, "status": 2}]),
        );
        let ConduitEvent::Notification(name, n) = e else {
            unreachable!()
        };
        assert_eq!(name, "OnProviderHealthChanged");
        assert_eq!(n.kind, "provider_health");
        assert_eq!(n.fields["providerId"], json!(1));
    }

    #[test]
    fn bad_payloads_are_errors_and_unknown_events_none() {
        assert!(ConduitEvent::decode(Hub::Tasks, "TaskProgress", &[json!(1)]).is_err());
        assert!(ConduitEvent::decode(Hub::Spend, "SpendUpdate", &[]).is_err());
        assert!(
            ConduitEvent::decode(Hub::Tasks, "Other", &[])
                .unwrap()
                .is_none()
        );
    }
}
