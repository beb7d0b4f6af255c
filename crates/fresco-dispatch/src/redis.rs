//! Redis dispatch: per model, a sorted set per tenant and the tenants'
//! turns, shared out by the stride rules of [`crate::fair`] in Lua scripts
//! (`src/lua/`), each one atomic. Keys under `{prefix}` (a model id has no
//! `:`, so a tenant queue's key is unambiguous):
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `{prefix}:queue:{model}:{tenant}` | sorted set | the tenant's ids of the model, scored by [`crate::score`] |
//! | `{prefix}:active:{model}` | sorted set | tenants with ids queued, scored by their pass |
//! | `{prefix}:passes:{model}` | hash | tenant → pass when its queue last emptied |
//! | `{prefix}:clock:{model}` | string | the model's clock: the pass last served |
//! | `{prefix}:throttled:{model}` | sorted set | tenant → until when pops skip it (ms, Redis clock) |
//! | `{prefix}:weights` | hash | tenant → weight (absent: 1) |
//!
//! Pushes use `ZADD NX`, so pushing a task twice leaves it queued once, and
//! make the tenant active when it was not. Lua cannot block, so a pop runs
//! the pop script and, while nothing comes, runs it again after a pause
//! growing from [`FIRST_PAUSE`] to [`LONGEST_PAUSE`] until its timeout. The
//! scripts name tenant queue keys they build themselves, so they need a
//! single Redis server (not a cluster).
//!
//! Everything here is a hint: if Redis loses any of it, the coordinator's
//! reconciler pushes again what Postgres holds queued (a push also puts a
//! tenant whose queue lost its place in the active set back), and a lost
//! pass or clock only restarts the share from even.
//!
//! The keys of the layout before tenants (one `{prefix}:queue:{model}` per
//! model) are no longer read: after an upgrade the reconciler pushes their
//! tasks again under these keys, and the old ones may be deleted.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{QueuedTask, TaskId};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::fair::{MAX_WEIGHT, STRIDE_SCALE};
use crate::{Dispatch, DispatchError, Popped, Result, score};

/// Ids per push or remove script call.
const BATCH: usize = 1_000;
/// Weights per `HSET` when publishing them.
const WEIGHTS_BATCH: usize = 1_000;
/// The first pause of a pop that found nothing.
pub const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between two looks of a waiting pop.
pub const LONGEST_PAUSE: Duration = Duration::from_millis(250);

static PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/push.lua")));
static POP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/pop.lua")));
static REMOVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/remove.lua")));
static LEN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/len.lua")));
static THROTTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/throttle.lua")));

/// The dispatch keys under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// A tenant's queue of a model.
    pub fn queue(&self, model: &str, tenant: &str) -> String {
        format!("{}{tenant}", self.queue_base(model))
    }

    /// A model's tenant queue keys, less the tenant.
    pub fn queue_base(&self, model: &str) -> String {
        format!("{}:queue:{model}:", self.prefix)
    }

    /// A model's tenants with ids queued, scored by pass.
    pub fn active(&self, model: &str) -> String {
        format!("{}:active:{model}", self.prefix)
    }

    /// A model's saved passes of tenants with nothing queued.
    pub fn passes(&self, model: &str) -> String {
        format!("{}:passes:{model}", self.prefix)
    }

    /// A model's clock.
    pub fn clock(&self, model: &str) -> String {
        format!("{}:clock:{model}", self.prefix)
    }

    /// A model's throttled tenants, scored by when the throttle ends.
    pub fn throttled(&self, model: &str) -> String {
        format!("{}:throttled:{model}", self.prefix)
    }

    /// The tenants' weights.
    pub fn weights(&self) -> String {
        format!("{}:weights", self.prefix)
    }
}

#[derive(Clone)]
pub struct RedisDispatch {
    keys: Keys,
    conn: ConnectionManager,
}

impl RedisDispatch {
    /// Connects to `url`; every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2)
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            keys: Keys::new(prefix),
            conn,
        })
    }

    /// The keys this dispatcher uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// One run of the pop script over `models`.
    async fn pop_once(&self, models: &[String]) -> Result<Option<Popped>> {
        let mut invocation = POP.key(self.keys.weights());
        for model in models {
            invocation
                .key(self.keys.active(model))
                .key(self.keys.passes(model))
                .key(self.keys.clock(model))
                .key(self.keys.throttled(model));
        }
        invocation.arg(STRIDE_SCALE).arg(MAX_WEIGHT);
        for model in models {
            invocation.arg(self.keys.queue_base(model));
        }
        let mut conn = self.conn.clone();
        let popped: Option<(String, usize, String)> = invocation.invoke_async(&mut conn).await?;
        let Some((member, index, tenant)) = popped else {
            return Ok(None);
        };
        let task: TaskId = member
            .parse()
            .map_err(|_| DispatchError::BadMember(member.clone()))?;
        let model = index
            .checked_sub(1)
            .and_then(|i| models.get(i))
            .ok_or_else(|| DispatchError::BadMember(format!("model #{index} of {member}")))?
            .clone();
        Ok(Some(Popped {
            task,
            model,
            tenant,
        }))
    }
}

/// Tasks grouped by (model, tenant): one queue each.
fn by_queue(tasks: &[QueuedTask]) -> std::collections::BTreeMap<(&str, &str), Vec<&QueuedTask>> {
    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<&QueuedTask>> = Default::default();
    for task in tasks {
        groups
            .entry((task.model.as_str(), task.tenant.as_str()))
            .or_default()
            .push(task);
    }
    groups
}

#[async_trait]
impl Dispatch for RedisDispatch {
    async fn push(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut conn = self.conn.clone();
        for ((model, tenant), tasks) in by_queue(tasks) {
            for batch in tasks.chunks(BATCH) {
                let mut invocation = PUSH.key(self.keys.queue(model, tenant));
                invocation
                    .key(self.keys.active(model))
                    .key(self.keys.passes(model))
                    .key(self.keys.clock(model))
                    .arg(tenant);
                for task in batch {
                    invocation.arg(score(task)).arg(task.id.to_string());
                }
                let _: i64 = invocation.invoke_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    async fn remove(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut conn = self.conn.clone();
        for ((model, tenant), tasks) in by_queue(tasks) {
            for batch in tasks.chunks(BATCH) {
                let mut invocation = REMOVE.key(self.keys.queue(model, tenant));
                invocation
                    .key(self.keys.active(model))
                    .key(self.keys.passes(model))
                    .arg(tenant);
                for task in batch {
                    invocation.arg(task.id.to_string());
                }
                let _: i64 = invocation.invoke_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    async fn rescore(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut conn = self.conn.clone();
        for ((model, tenant), tasks) in by_queue(tasks) {
            for batch in tasks.chunks(BATCH) {
                // XX: only ids still queued; a popped one is not put back.
                let mut command = redis::cmd("ZADD");
                command.arg(self.keys.queue(model, tenant)).arg("XX");
                for task in batch {
                    command.arg(score(task)).arg(task.id.to_string());
                }
                let _: i64 = command.query_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    async fn len(&self, model: &str) -> Result<u64> {
        let mut conn = self.conn.clone();
        let len: u64 = LEN
            .key(self.keys.active(model))
            .arg(self.keys.queue_base(model))
            .invoke_async(&mut conn)
            .await?;
        Ok(len)
    }

    async fn pop(&self, models: &[String], timeout: Duration) -> Result<Option<Popped>> {
        if models.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = FIRST_PAUSE;
        loop {
            if let Some(popped) = self.pop_once(models).await? {
                return Ok(Some(popped));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep_until(deadline.min(now + pause)).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    async fn set_weights(&self, weights: &[(String, u32)]) -> Result<()> {
        let key = self.keys.weights();
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        for batch in weights.chunks(WEIGHTS_BATCH) {
            pipe.hset_multiple(&key, batch).ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn throttle(&self, model: &str, tenant: &str, duration: Duration) -> Result<()> {
        let mut conn = self.conn.clone();
        let ms = duration.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        let _: i64 = THROTTLE
            .key(self.keys.throttled(model))
            .arg(tenant)
            .arg(ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}
