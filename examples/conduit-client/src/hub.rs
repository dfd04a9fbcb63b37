//! Conduit's hubs for a virtual key.

use std::fmt;
use std::str::FromStr;

/// One of the hubs a virtual key can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hub {
    /// `/hubs/tasks`: the unified TaskHub (`Task*` and `BatchOperation*` events).
    Tasks,
    /// `/hubs/image-generation`: `ImageGeneration*` events.
    ImageGeneration,
    /// `/hubs/video-generation`: `VideoGeneration*` events.
    VideoGeneration,
    /// `/hubs/notifications`: provider health, model changes, announcements.
    Notifications,
    /// `/hubs/spend`: `SpendUpdate`, `BudgetAlert`, ...
    Spend,
    /// `/hubs/webhooks`: webhook delivery events.
    Webhooks,
}

impl Hub {
    /// Every hub, in a fixed order.
    pub const ALL: [Hub; 6] = [
        Hub::Tasks,
        Hub::ImageGeneration,
        Hub::VideoGeneration,
        Hub::Notifications,
        Hub::Spend,
        Hub::Webhooks,
    ];

    /// The short name: `tasks`, `image-generation`, `video-generation`, `notifications`,
    /// `spend`, `webhooks`.
    pub fn name(self) -> &'static str {
        match self {
            Hub::Tasks => "tasks",
            Hub::ImageGeneration => "image-generation",
            Hub::VideoGeneration => "video-generation",
            Hub::Notifications => "notifications",
            Hub::Spend => "spend",
            Hub::Webhooks => "webhooks",
        }
    }

    /// The hub's path on the server, such as `/hubs/tasks`.
    pub fn path(self) -> String {
        format!("/hubs/{}", self.name())
    }

    /// The hub that reports on a task, from the task id's prefix: `img_` the
    /// image-generation hub, `vid_` the video-generation hub, anything else the TaskHub.
    pub fn for_task(task_id: &str) -> Hub {
        if task_id.starts_with("img_") {
            Hub::ImageGeneration
        } else if task_id.starts_with("vid_") {
            Hub::VideoGeneration
        } else {
            Hub::Tasks
        }
    }
}

impl fmt::Display for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Hub {
    type Err = String;

    /// Parses a short name (see [`Hub::name`]); `images` and `videos` are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tasks" | "task" => Ok(Hub::Tasks),
            "image-generation" | "images" | "image" => Ok(Hub::ImageGeneration),
            "video-generation" | "videos" | "video" => Ok(Hub::VideoGeneration),
            "notifications" | "notification" => Ok(Hub::Notifications),
            "spend" => Ok(Hub::Spend),
            "webhooks" | "webhook" => Ok(Hub::Webhooks),
            other => Err(format!(
                "unknown hub '{other}' (tasks, image-generation, video-generation, notifications, spend, webhooks)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tasks_route_by_prefix() {
        for hub in Hub::ALL {
            assert_eq!(hub.name().parse::<Hub>(), Ok(hub));
            assert_eq!(hub.path(), format!("/hubs/{hub}"));
        }
        assert!("nope".parse::<Hub>().is_err());
        assert_eq!(Hub::for_task("img_1"), Hub::ImageGeneration);
        assert_eq!(Hub::for_task("vid_1"), Hub::VideoGeneration);
        assert_eq!(Hub::for_task("task_1"), Hub::Tasks);
    }
}
