//! Redis dispatch: one sorted set per model (`{prefix}:queue:{model}`),
//! scored by [`crate::score`]. Pushes use `ZADD NX`, so pushing a task twice
//! leaves it queued once; pops use `BZPOPMIN`, which takes from the first
//! non-empty key in the order given.

use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{QueuedTask, TaskId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{Dispatch, DispatchError, Popped, Result, score};

/// Ids per `ZADD`/`ZREM` command.
const BATCH: usize = 1_000;

#[derive(Clone)]
pub struct RedisDispatch {
    prefix: String,
    commands: ConnectionManager,
    /// Blocking pops get a connection of their own, so they never hold up
    /// other commands.
    pops: ConnectionManager,
}

impl RedisDispatch {
    /// Connects to `url`; every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let base = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2);
        let commands = client
            .get_connection_manager_with_config(
                base.clone()
                    .set_response_timeout(Some(Duration::from_secs(5))),
            )
            .await?;
        let pops = client
            .get_connection_manager_with_config(
                base.set_response_timeout(Some(Duration::from_secs(15))),
            )
            .await?;
        Ok(Self {
            prefix: prefix.to_owned(),
            commands,
            pops,
        })
    }

    /// The key of a model's queue.
    pub fn queue_key(&self, model: &str) -> String {
        queue_key(&self.prefix, model)
    }
}

/// The key of a model's queue under `prefix`.
pub fn queue_key(prefix: &str, model: &str) -> String {
    format!("{prefix}:queue:{model}")
}

fn by_model(tasks: &[QueuedTask]) -> std::collections::BTreeMap<&str, Vec<&QueuedTask>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&QueuedTask>> = Default::default();
    for task in tasks {
        groups.entry(task.model.as_str()).or_default().push(task);
    }
    groups
}

#[async_trait]
impl Dispatch for RedisDispatch {
    async fn push(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut conn = self.commands.clone();
        for (model, tasks) in by_model(tasks) {
            let key = self.queue_key(model);
            for batch in tasks.chunks(BATCH) {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(&key).arg("NX");
                for task in batch {
                    cmd.arg(score(task)).arg(task.id.to_string());
                }
                let _: usize = cmd.query_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    async fn remove(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut conn = self.commands.clone();
        for (model, tasks) in by_model(tasks) {
            let key = self.queue_key(model);
            for batch in tasks.chunks(BATCH) {
                let mut cmd = redis::cmd("ZREM");
                cmd.arg(&key);
                for task in batch {
                    cmd.arg(task.id.to_string());
                }
                let _: usize = cmd.query_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    async fn len(&self, model: &str) -> Result<u64> {
        let mut conn = self.commands.clone();
        let len: u64 = redis::cmd("ZCARD")
            .arg(self.queue_key(model))
            .query_async(&mut conn)
            .await?;
        Ok(len)
    }

    async fn pop(&self, models: &[String], timeout: Duration) -> Result<Option<Popped>> {
        if models.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(None);
        }
        let mut conn = self.pops.clone();
        let mut cmd = redis::cmd("BZPOPMIN");
        for model in models {
            cmd.arg(self.queue_key(model));
        }
        cmd.arg(timeout.as_secs_f64().max(0.01));
        let popped: Option<(String, String, f64)> = cmd.query_async(&mut conn).await?;
        let Some((key, member, _score)) = popped else {
            return Ok(None);
        };
        let task: TaskId = member
            .parse()
            .map_err(|_| DispatchError::BadMember(member.clone()))?;
        let model = key
            .strip_prefix(&format!("{}:queue:", self.prefix))
            .unwrap_or(&key)
            .to_owned();
        Ok(Some(Popped { task, model }))
    }
}
