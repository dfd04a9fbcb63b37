//! Conduit's real-time layer: the SignalR hubs of an LLM API gateway, with a simulated
//! gateway behind them, served by `signalr-server`.
//!
//! Run it with `cargo run --release -p conduit -- --bind 127.0.0.1:8080`; see the crate's
//! README for a walkthrough and CONTRACT.md for every flag, endpoint, hub and event.
//!
//! The one module meant for copying is [`secure`]: virtual-key authentication, per-key
//! groups, connection and rate limits and ownership checks for any `signalr-server` hub.
//! The rest of the crate is the application: the hubs (only subscription methods are hub
//! methods; every event is sent by the server), the HTTP API, and a simulation of tasks,
//! providers, spend and webhooks.

pub mod secure;

mod api;
mod app;
mod events;
mod hubs;
mod recorder;
mod sim;
mod store;
mod telemetry;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The master key used when none is configured (a warning is logged).
pub const DEV_MASTER_KEY: &str = "conduit-dev-master-key";

/// The server's configuration, from the command line and environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Default: `127.0.0.1:8080`.
    pub bind: String,
    /// The Redis URL for the backplane and ownership records. Default: none.
    pub redis: Option<String>,
    /// The master key. Default: `CONDUIT_MASTER_KEY`, else [`DEV_MASTER_KEY`].
    pub master_key: String,
    /// Simulated durations are multiplied by this. Default: 1.0.
    pub time_scale: f64,
    /// The dashboard's folder. Default: the crate's `static/`.
    pub static_dir: PathBuf,
    /// Serve the unified TaskHub (`/hubs/tasks`). Default: true, unless `--no-task-hub` or
    /// `CONDUIT_TASK_HUB=false`.
    pub task_hub: bool,
    /// Create a demo key at startup and print it. Default: false.
    pub seed_demo: bool,
    /// Budget alert thresholds in percent, ascending. Default: 50, 75, 80, 90, 100.
    pub budget_thresholds: Vec<u32>,
    /// Notifications per type (and key, for key-scoped types) per minute; 0: unlimited.
    /// Default: 60.
    pub notification_rate_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            redis: None,
            master_key: DEV_MASTER_KEY.into(),
            time_scale: 1.0,
            static_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static")),
            task_hub: true,
            seed_demo: false,
            budget_thresholds: vec![50, 75, 80, 90, 100],
            notification_rate_per_minute: 60,
        }
    }
}

const USAGE: &str = "usage: conduit [--bind ADDR] [--redis URL] [--master-key KEY] [--time-scale F] \
[--static-dir DIR] [--no-task-hub] [--seed-demo] [--budget-thresholds 50,75,80,90,100] \
[--notification-rate N]";

impl Config {
    /// Parses the command-line arguments (without the program name) and the environment.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut config = Self::default();
        let mut master = std::env::var("CONDUIT_MASTER_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        if std::env::var("CONDUIT_TASK_HUB")
            .is_ok_and(|v| v.eq_ignore_ascii_case("false") || v == "0")
        {
            config.task_hub = false;
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--bind" => config.bind = value("--bind")?,
                "--redis" => config.redis = Some(value("--redis")?),
                "--master-key" => master = Some(value("--master-key")?),
                "--time-scale" => {
                    config.time_scale = value("--time-scale")?
                        .parse()
                        .ok()
                        .filter(|f: &f64| f.is_finite() && *f > 0.0 && *f <= 1000.0)
                        .ok_or("--time-scale needs a number in (0, 1000]")?;
                }
                "--static-dir" => config.static_dir = PathBuf::from(value("--static-dir")?),
                "--no-task-hub" => config.task_hub = false,
                "--seed-demo" => config.seed_demo = true,
                "--budget-thresholds" => {
                    let mut list = value("--budget-thresholds")?
                        .split(',')
                        .map(|t| {
                            t.trim()
                                .parse::<u32>()
                                .ok()
                                .filter(|t| (1..=1000).contains(t))
                        })
                        .collect::<Option<Vec<u32>>>()
                        .ok_or("--budget-thresholds needs percentages such as 50,75,80,90,100")?;
                    list.sort_unstable();
                    list.dedup();
                    config.budget_thresholds = list;
                }
                "--notification-rate" => {
                    config.notification_rate_per_minute = value("--notification-rate")?
                        .parse()
                        .map_err(|_| "--notification-rate needs a whole number")?;
                }
                "--help" | "-h" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        if let Some(master) = master {
            config.master_key = master;
        }
        Ok(config)
    }
}

/// A running server: its address and, with `--seed-demo`, the demo key.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The demo key, with `--seed-demo`.
    pub demo_key: Option<String>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    stopping: signalr_server::CancellationToken,
}

impl Running {
    /// Waits until the server stops: on Ctrl-C or SIGTERM it stops accepting, and gives
    /// open connections (WebSockets and event streams never end by themselves)
    /// [`SHUTDOWN_GRACE`] before returning.
    pub async fn wait(self) -> std::io::Result<()> {
        let grace = async {
            self.stopping.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::info!("shutdown grace over; closing the remaining connections");
        };
        tokio::select! {
            served = self.serve => match served {
                Ok(result) => result,
                Err(err) => Err(std::io::Error::other(err)),
            },
            () = grace => Ok(()),
        }
    }
}

/// How long open connections get after Ctrl-C or SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

impl Running {
    /// Stops the server as a signal would.
    pub fn stop(&self) {
        self.stopping.cancel();
    }
}

/// Builds the hubs and the API, binds `config.bind` and starts serving.
pub async fn start(config: Config) -> std::io::Result<Running> {
    if config.master_key == DEV_MASTER_KEY {
        tracing::warn!(
            "using the development master key {DEV_MASTER_KEY:?}: set --master-key or CONDUIT_MASTER_KEY"
        );
    }
    recorder::install();
    let redis = match &config.redis {
        Some(url) => Some(
            store::RedisStore::new(url)
                .map_err(|e| std::io::Error::other(format!("--redis: {e}")))?,
        ),
        None => None,
    };
    let redis_url = config.redis.clone();
    let seed = config.seed_demo;
    let bind = config.bind.clone();
    let app = app::AppState::new(config, redis);
    let built = hubs::build(&app, redis_url.as_deref()).map_err(std::io::Error::other)?;
    app.set_notifier(events::Notifier::new(
        built.contexts,
        app.telemetry.clone(),
        app.config.notification_rate_per_minute,
    ));
    for backplane in &built.backplanes {
        if !backplane.wait_connected(Duration::from_secs(10)).await {
            tracing::warn!(health = ?backplane.health(), "redis backplane not connected yet");
        }
    }
    app.set_hubs(built.backplanes, built.paths);
    {
        let app = app.clone();
        app.guard.clone().on_rate_limit_warning(move |notice| {
            let app = app.clone();
            tokio::spawn(async move {
                let reset = time::OffsetDateTime::now_utc() + notice.resets_in;
                let reset = reset
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let priority = if notice.remaining < 10 { events::HIGH } else { events::MEDIUM };
                app.notifier()
                    .notify("RateLimitWarning", events::RATE_LIMIT, priority, Some(notice.key_id), serde_json::json!({
                        "remaining": notice.remaining, "limit": notice.limit, "resetTime": reset,
                        "endpoint": "signalr",
                        "percentageUsed": f64::from(notice.limit - notice.remaining) / f64::from(notice.limit.max(1)) * 100.0,
                    }))
                    .await;
            });
        });
    }
    let demo_key = if seed {
        let key = secure::generate_key();
        app.keys
            .insert(&key, "demo".into(), Some(25.0), false, 20, 600);
        Some(key)
    } else {
        None
    };

    tokio::spawn(sim::health_checks(app.clone()));
    tokio::spawn(sim::summaries(app.clone()));
    {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                app.telemetry.sample();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }

    let router = api::router(app.clone())
        .fallback_service(built.signalr)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            api::connection_limit,
        ));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    let stopping = signalr_server::CancellationToken::new();
    {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            shutdown().await;
            tracing::info!("shutting down");
            stopping.cancel();
        });
    }
    let stopped = stopping.clone();
    let serve = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
    });
    Ok(Running {
        addr,
        demo_key,
        serve,
        stopping,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Config, String> {
        Config::from_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags() {
        let config = args(&[
            "--bind",
            "127.0.0.1:0",
            "--time-scale",
            "0.05",
            "--no-task-hub",
            "--budget-thresholds",
            "90,50,50",
            "--master-key",
            "m",
        ])
        .unwrap_or_default();
        assert_eq!(config.bind, "127.0.0.1:0");
        assert!((config.time_scale - 0.05).abs() < 1e-12);
        assert!(!config.task_hub);
        assert_eq!(config.budget_thresholds, [50, 90]);
        assert_eq!(config.master_key, "m");
        assert!(args(&["--time-scale", "0"]).is_err());
        assert!(args(&["--time-scale", "NaN"]).is_err());
        assert!(args(&["--budget-thresholds", "a"]).is_err());
        assert!(args(&["--bind"]).is_err());
        assert!(args(&["--what"]).is_err());
    }
}
