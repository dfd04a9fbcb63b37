//! `conduit-client`: follows a virtual key's tasks, spend, notifications and webhooks on
//! every Conduit hub, printing one line per event, until Ctrl-C.
//!
//! ```text
//! conduit-client --url http://127.0.0.1:8080 --key condt_... [--task ID]... [--task-type T]...
//!                [--webhook URL]... [--notify TYPES] [--hubs tasks,spend,...] [--messagepack]
//!                [--exit-after-completed N]
//! ```
//!
//! Lines (see the `conduit_client` crate for the format): `connected hub=...` for each hub,
//! `ready hubs=...` once every hub is connected and every subscription made, then `event
//! hub=... name=... args=[...]` per event, reconnects and re-subscriptions as they happen,
//! and `done task=ID outcome=completed|failed|cancelled|timed_out` once per task.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use conduit_client::{ConduitClient, Hub, NotificationPreferences, TaskCallbacks, TaskOutcome};
use tokio::sync::mpsc;

const USAGE: &str = "\
usage: conduit-client --key KEY [options]

Connects to Conduit's hubs with a virtual key and prints what they send, one line per event,
until Ctrl-C. Reconnects with backoff (1 s doubling to 30 s) and subscribes again.

options:
  --url URL                  the server (default http://127.0.0.1:8080)
  --key KEY                  the virtual key, condt_... (or env CONDUIT_KEY)
  --task ID                  follow a task (img_... on image-generation, vid_... on
                             video-generation, others on tasks); repeatable
  --task-type T              follow the key's new tasks of type T; repeatable
  --webhook URL              watch deliveries to one of the key's webhooks; repeatable
  --notify TYPES             notification types to receive, comma-separated
                             (provider_health,system_announcement,...; default: the
                             server's defaults)
  --hubs LIST                comma-separated hubs (default: tasks,image-generation,
                             video-generation,notifications,spend,webhooks)
  --messagepack              use MessagePack (default JSON)
  --exit-after-completed N   exit 0 once N followed tasks have completed
  -h, --help                 this help";

/// What the command line asked for.
#[derive(Debug, PartialEq)]
struct Options {
    url: String,
    key: String,
    tasks: Vec<String>,
    task_types: Vec<String>,
    webhooks: Vec<String>,
    notify: Option<Vec<String>>,
    hubs: Vec<Hub>,
    messagepack: bool,
    exit_after_completed: Option<usize>,
}

/// Parses the arguments after the program name; `Ok(None)` asks for the help.
fn parse(
    argv: impl IntoIterator<Item = String>,
    env_key: Option<String>,
) -> Result<Option<Options>, String> {
    let mut argv = argv.into_iter();
    let mut options = Options {
        url: "http://127.0.0.1:8080".into(),
        key: String::new(),
        tasks: Vec::new(),
        task_types: Vec::new(),
        webhooks: Vec::new(),
        notify: None,
        hubs: Hub::ALL.to_vec(),
        messagepack: false,
        exit_after_completed: None,
    };
    let mut key = env_key;
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--url" => options.url = value("--url")?,
            "--key" => key = Some(value("--key")?),
            "--task" => options.tasks.push(value("--task")?),
            "--task-type" => options.task_types.push(value("--task-type")?),
            "--webhook" => options.webhooks.push(value("--webhook")?),
            "--messagepack" => options.messagepack = true,
            "--notify" => {
                options.notify = Some(
                    value("--notify")?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "--hubs" => {
                options.hubs = value("--hubs")?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--exit-after-completed" => {
                let text = value("--exit-after-completed")?;
                options.exit_after_completed = Some(
                    text.parse()
                        .map_err(|_| format!("--exit-after-completed: '{text}' is not a count"))?,
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    options.key = key.filter(|k| !k.is_empty()).ok_or("--key is required")?;
    if options.hubs.is_empty() {
        return Err("--hubs lists no hub".into());
    }
    Ok(Some(options))
}

/// The one place that writes to stdout: a line, flushed (tests read it through a pipe).
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Errors go to stderr.
#[allow(clippy::print_stderr)]
fn complain(line: &str) {
    eprintln!("conduit-client: {line}");
}

/// Callbacks for a followed task: a `done` line once, and a completion count.
fn callbacks(
    completed: mpsc::UnboundedSender<String>,
    seen: Arc<Mutex<HashSet<String>>>,
) -> TaskCallbacks {
    let failed_seen = seen.clone();
    TaskCallbacks::new()
        .on_completed(move |task, _| {
            let new = seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(task.to_owned());
            if new {
                say(&format!(
                    "done task={task} outcome={}",
                    TaskOutcome::Completed.as_str()
                ));
                let _ = completed.send(task.to_owned());
            }
        })
        .on_failed(move |task, outcome, error| {
            let new = failed_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(task.to_owned());
            if new {
                let error = serde_json::to_string(error).unwrap_or_default();
                say(&format!(
                    "done task={task} outcome={} error={error}",
                    outcome.as_str()
                ));
            }
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let options = match parse(std::env::args().skip(1), std::env::var("CONDUIT_KEY").ok()) {
        Ok(Some(options)) => options,
        Ok(None) => {
            say(USAGE);
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            complain(&format!("{err}\n\n{USAGE}"));
            return ExitCode::from(2);
        }
    };
    run(options).await
}

async fn run(options: Options) -> ExitCode {
    let (completed_tx, mut completed_rx) = mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let follow = {
        let (tx, seen) = (completed_tx.clone(), seen.clone());
        move |_: &str| callbacks(tx.clone(), seen.clone())
    };
    let client = match ConduitClient::builder(&options.url, &options.key)
        .hubs(options.hubs.iter().copied())
        .messagepack(options.messagepack)
        .on_event(|event| say(&event.to_string()))
        .follow_task_types(follow)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            complain(&err.to_string());
            return ExitCode::from(2);
        }
    };

    // The first connect retries with the same backoff as reconnects.
    let mut delay = Duration::from_secs(1);
    loop {
        match client.start().await {
            Ok(()) => break,
            Err(err) if err.is_unauthorized() => {
                complain(&format!("{err} (is the key valid?)"));
                return ExitCode::FAILURE;
            }
            Err(err) => {
                say(&format!(
                    "connect-failed retry_in_ms={} error={}",
                    delay.as_millis(),
                    serde_json::to_string(&err.to_string()).unwrap_or_default()
                ));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }

    for task in &options.tasks {
        if let Err(err) = client
            .subscribe_task(task, callbacks(completed_tx.clone(), seen.clone()))
            .await
        {
            complain(&err.to_string());
        }
    }
    for task_type in &options.task_types {
        if let Err(err) = client.subscribe_task_type(task_type).await {
            complain(&err.to_string());
        }
    }
    if !options.webhooks.is_empty() {
        if let Err(err) = client.subscribe_webhooks(options.webhooks.clone()).await {
            complain(&err.to_string());
        }
    }
    if let Some(types) = &options.notify {
        let preferences = NotificationPreferences {
            enabled_types: types.clone(),
            minimum_priority: 0,
        };
        if let Err(err) = client.update_notification_preferences(preferences).await {
            complain(&err.to_string());
        }
    }
    let hubs: Vec<&str> = options.hubs.iter().map(|h| h.name()).collect();
    say(&format!("ready hubs={}", hubs.join(",")));

    let mut completed = 0;
    let code = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break ExitCode::SUCCESS,
            task = completed_rx.recv() => {
                if task.is_none() {
                    break ExitCode::SUCCESS;
                }
                completed += 1;
                if options.exit_after_completed.is_some_and(|n| completed >= n) {
                    break ExitCode::SUCCESS;
                }
            }
        }
    };
    client.stop().await;
    say("stopped");
    code
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_flags() {
        let options = parse(
            args(&[
                "--url",
                "http://h:1",
                "--key",
                "condt_x",
                "--task",
                "a",
                "--task",
                "img_b",
                "--task-type",
                "t",
                "--hubs",
                "tasks,spend",
                "--exit-after-completed",
                "2",
                "--messagepack",
                "--notify",
                "provider_health, rate_limit",
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.url, "http://h:1");
        assert_eq!(options.key, "condt_x");
        assert_eq!(options.tasks, ["a", "img_b"]);
        assert_eq!(options.task_types, ["t"]);
        assert_eq!(options.hubs, [Hub::Tasks, Hub::Spend]);
        assert_eq!(options.exit_after_completed, Some(2));
        assert!(options.messagepack);
        assert_eq!(
            options.notify,
            Some(vec!["provider_health".to_owned(), "rate_limit".to_owned()])
        );
    }

    #[test]
    fn key_from_env_and_errors() {
        let options = parse(args(&[]), Some("condt_env".into())).unwrap().unwrap();
        assert_eq!(options.key, "condt_env");
        assert_eq!(options.hubs, Hub::ALL);
        assert!(parse(args(&[]), None).is_err());
        assert!(parse(args(&["--key"]), None).is_err());
        assert!(parse(args(&["--key", "k", "--hubs", "nope"]), None).is_err());
        assert!(parse(args(&["--key", "k", "--bogus"]), None).is_err());
        assert!(parse(args(&["--key", "k", "--exit-after-completed", "x"]), None).is_err());
        assert_eq!(parse(args(&["-h"]), None).unwrap(), None);
    }
}
