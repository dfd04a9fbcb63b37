//! What crosses instances besides SignalR messages: task ownership (`conduit:task:{id}`)
//! and ephemeral keys (`conduit:ek:{sha256}`), in Redis with a one-hour TTL.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

/// How long one Redis command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A lazily (re)connected Redis client for the ownership records.
#[derive(Debug)]
pub(crate) struct RedisStore {
    client: redis::Client,
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl RedisStore {
    pub(crate) fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Option<MultiplexedConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Some(connection.clone());
        }
        match tokio::time::timeout(
            COMMAND_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        {
            Ok(Ok(connection)) => {
                *slot = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "redis: connect failed");
                None
            }
            Err(_) => {
                tracing::warn!("redis: connect timed out");
                None
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Option<T> {
        let mut connection = self.connection().await?;
        match tokio::time::timeout(COMMAND_TIMEOUT, command.query_async::<T>(&mut connection)).await
        {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "redis command failed");
                *self.connection.lock().await = None;
                None
            }
            Err(_) => {
                tracing::warn!("redis command timed out");
                *self.connection.lock().await = None;
                None
            }
        }
    }

    /// Records that task `id` belongs to key `owner`.
    pub(crate) async fn put_task_owner(&self, id: &str, owner: u64) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("conduit:task:{id}"))
            .arg(owner)
            .arg("EX")
            .arg(3600);
        let _: Option<()> = self.run(&cmd).await;
    }

    /// The owner of task `id`, if recorded.
    pub(crate) async fn task_owner(&self, id: &str) -> Option<u64> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("conduit:task:{id}"));
        let value: Option<Option<String>> = self.run(&cmd).await;
        value.flatten()?.parse().ok()
    }

    /// Records an ephemeral key by its hash.
    pub(crate) async fn put_ephemeral(&self, hash: &str, task_id: &str, owner: u64) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("conduit:ek:{hash}"))
            .arg(format!("{owner}\n{task_id}"))
            .arg("EX")
            .arg(3600);
        let _: Option<()> = self.run(&cmd).await;
    }

    /// An ephemeral key's (task, owner), if recorded and not expired.
    pub(crate) async fn ephemeral(&self, hash: &str) -> Option<(String, u64)> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("conduit:ek:{hash}"));
        let value: Option<Option<String>> = self.run(&cmd).await;
        let value = value.flatten()?;
        let (owner, task) = value.split_once('\n')?;
        Some((task.to_owned(), owner.parse().ok()?))
    }

    /// PING round trip, or the error.
    pub(crate) async fn ping(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let pong: Option<String> = self.run(&redis::cmd("PING")).await;
        match pong {
            Some(_) => Ok(started.elapsed()),
            None => Err("redis did not answer PING".into()),
        }
    }
}
