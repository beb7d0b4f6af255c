//! fresco's dispatch channel: a fast, lossy-tolerated hint of which tasks
//! are waiting. The store stays the truth; whatever a queue loses, the
//! coordinator's reconciler pushes again.
//!
//! - [`Dispatch`]: push, remove, rescore, count and pop task ids; publish tenants'
//!   weights; skip a throttled tenant for a while.
//! - [`fair`]: fair sharing of a model's queue between tenants (stride
//!   scheduling by weight; priority orders work within a tenant).
//! - [`redis`]: the production implementation: a sorted set per model and
//!   tenant, shared out by Lua scripts that run the rules of [`fair`]
//!   atomically, popped over the worker's preferred models first.
//! - [`memory`]: the same queues inside one process, for `fresco dev`.

pub mod fair;
pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{QueuedTask, TaskId};

pub use crate::memory::MemoryDispatch;
pub use crate::redis::RedisDispatch;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("queue member {0:?} is not a task id")]
    BadMember(String),
}

pub type Result<T, E = DispatchError> = std::result::Result<T, E>;

/// A task id popped from a model's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popped {
    pub task: TaskId,
    pub model: String,
    /// The tenant whose turn it was.
    pub tenant: String,
}

#[async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// Puts tasks in their models' queues; a task already there stays once.
    async fn push(&self, tasks: &[QueuedTask]) -> Result<()>;
    /// Takes tasks out of their queues (cancelled, for example).
    async fn remove(&self, tasks: &[QueuedTask]) -> Result<()>;
    /// Moves tasks already queued to the place of their priority now (it
    /// changed); a task not queued (popped meanwhile, say) stays out.
    async fn rescore(&self, tasks: &[QueuedTask]) -> Result<()>;
    /// How many ids wait in a model's queue, over all its tenants.
    async fn len(&self, model: &str) -> Result<u64>;
    /// Pops an id from the first model among `models`, in that order, that
    /// has one for a tenant not throttled: within that model, the tenant
    /// whose turn it is by the rules of [`fair`], and that tenant's first
    /// id (higher priority, then submission order). Waits up to `timeout`.
    async fn pop(&self, models: &[String], timeout: Duration) -> Result<Option<Popped>>;
    /// Publishes the tenants' weights (from the `tenants` table), replacing
    /// those published before; a tenant not listed weighs
    /// [`fair::DEFAULT_WEIGHT`].
    async fn set_weights(&self, weights: &[(String, u32)]) -> Result<()>;
    /// Skips `tenant`'s ids of `model` in pops for `duration` (extending a
    /// throttle already set, never shortening it): for a tenant at its
    /// limit of running tasks, whose claims would be refused. Its ids stay
    /// queued and its place in the share is kept, without credit for the
    /// turns it was skipped.
    async fn throttle(&self, model: &str, tenant: &str, duration: Duration) -> Result<()>;
    /// Whether the queues answer: one round trip and nothing else (the
    /// coordinator's health probe).
    async fn ping(&self) -> Result<()>;
}

/// The order within a tenant's queue: higher priority first, then
/// submission order.
pub fn score(task: &QueuedTask) -> f64 {
    // 2^40 submissions per priority level; priorities are bounded by
    // validation well inside f64's exact integer range.
    -(f64::from(task.priority)) * (1u64 << 40) as f64 + task.seq as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(priority: i32, seq: i64) -> QueuedTask {
        QueuedTask {
            id: TaskId::new(),
            model: "m".into(),
            tenant: "t".into(),
            priority,
            seq,
        }
    }

    #[test]
    fn higher_priority_then_older_first() {
        assert!(score(&task(5, 1_000_000)) < score(&task(0, 1)));
        assert!(score(&task(0, 1)) < score(&task(0, 2)));
        assert!(score(&task(-5, 1)) > score(&task(0, 1_000_000_000)));
    }
}
