//! fresco's dispatch channel: a fast, lossy-tolerated hint of which tasks
//! are waiting. The store stays the truth; whatever a queue loses, the
//! coordinator's reconciler pushes again.
//!
//! - [`Dispatch`]: push, remove, count and pop task ids.
//! - [`redis`]: the production implementation: one sorted set per model,
//!   scored by priority then submission order, popped with `BZPOPMIN` over
//!   the worker's preferred models first.
//! - [`memory`]: the same queues inside one process, for `fresco dev`.

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
}

#[async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// Puts tasks in their models' queues; a task already there stays once.
    async fn push(&self, tasks: &[QueuedTask]) -> Result<()>;
    /// Takes tasks out of their queues (cancelled, for example).
    async fn remove(&self, tasks: &[QueuedTask]) -> Result<()>;
    /// How many ids wait in a model's queue.
    async fn len(&self, model: &str) -> Result<u64>;
    /// Pops the first id from the first non-empty queue among `models`,
    /// in that order, waiting up to `timeout`.
    async fn pop(&self, models: &[String], timeout: Duration) -> Result<Option<Popped>>;
}

/// The queue order: higher priority first, then submission order.
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
