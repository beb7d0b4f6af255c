//! In-process dispatch for a farm that lives in one process (`fresco dev`):
//! per model, a queue per tenant shared out by the stride rules of
//! [`crate::fair`], in the same order as Redis, with waiters woken on every
//! push. Nothing survives the process; the coordinator's reconciler refills
//! the queues from the store at start, as it does after Redis loses its
//! data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fresco_core::{QueuedTask, TaskId};
use tokio::sync::Notify;

use crate::fair::{DEFAULT_WEIGHT, ModelQueue, Place, place};
use crate::{Dispatch, Popped, Result};

/// The longest a waiting pop sleeps before it looks again, so the end of a
/// throttle is noticed without a push.
const RECHECK: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Queues {
    by_model: HashMap<String, ModelQueue>,
    /// Where each queued id sits, so a second push keeps it once.
    members: HashMap<TaskId, (String, String, Place)>,
    weights: HashMap<String, u32>,
    /// Until when a (model, tenant) is skipped.
    throttled: HashMap<(String, String), Instant>,
}

impl Queues {
    fn push(&mut self, task: &QueuedTask) {
        if self.members.contains_key(&task.id) {
            return;
        }
        let at = place(task);
        self.by_model
            .entry(task.model.clone())
            .or_default()
            .push(&task.tenant, at);
        self.members
            .insert(task.id, (task.model.clone(), task.tenant.clone(), at));
    }

    fn remove(&mut self, task: TaskId) {
        if let Some((model, tenant, at)) = self.members.remove(&task)
            && let Some(queue) = self.by_model.get_mut(&model)
        {
            queue.remove(&tenant, &at);
        }
    }

    /// Moves a queued id to the place of `task`'s priority now.
    fn rescore(&mut self, task: &QueuedTask) {
        let Some((model, tenant, at)) = self.members.get_mut(&task.id) else {
            return;
        };
        let new = place(task);
        if let Some(queue) = self.by_model.get_mut(model.as_str()) {
            queue.remove(tenant, at);
            queue.push(tenant, new);
        }
        *at = new;
    }

    fn pop_first(&mut self, models: &[String]) -> Option<Popped> {
        let now = Instant::now();
        self.throttled.retain(|_, until| *until > now);
        let Self {
            by_model,
            members,
            weights,
            throttled,
        } = self;
        for model in models {
            let Some(queue) = by_model.get_mut(model) else {
                continue;
            };
            let weight = |tenant: &str| weights.get(tenant).copied().unwrap_or(DEFAULT_WEIGHT);
            let skipped =
                |tenant: &str| throttled.contains_key(&(model.clone(), tenant.to_owned()));
            if let Some((task, tenant)) = queue.pop(weight, skipped) {
                members.remove(&task);
                return Some(Popped {
                    task,
                    model: model.clone(),
                    tenant,
                });
            }
        }
        None
    }
}

/// The in-process [`Dispatch`].
#[derive(Default)]
pub struct MemoryDispatch {
    queues: Mutex<Queues>,
    pushed: Notify,
}

impl MemoryDispatch {
    pub fn new() -> Self {
        Self::default()
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        // A panic while holding the lock cannot leave the queues half
        // changed in a way that loses ids (the store stays the truth, and
        // the reconciler pushes again what is missing), so a poisoned lock
        // is safe to keep using.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Dispatch for MemoryDispatch {
    async fn push(&self, tasks: &[QueuedTask]) -> Result<()> {
        {
            let mut queues = self.queues();
            for task in tasks {
                queues.push(task);
            }
        }
        self.pushed.notify_waiters();
        Ok(())
    }

    async fn remove(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut queues = self.queues();
        for task in tasks {
            queues.remove(task.id);
        }
        Ok(())
    }

    async fn rescore(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut queues = self.queues();
        for task in tasks {
            queues.rescore(task);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn len(&self, model: &str) -> Result<u64> {
        Ok(self
            .queues()
            .by_model
            .get(model)
            .map_or(0, |queue| queue.len() as u64))
    }

    async fn pop(&self, models: &[String], timeout: Duration) -> Result<Option<Popped>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a push between the look and the
            // wait still wakes this pop.
            let pushed = self.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            if let Some(popped) = self.queues().pop_first(models) {
                return Ok(Some(popped));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wake = deadline.min(now + RECHECK);
            let _ = tokio::time::timeout_at(wake, pushed).await;
        }
    }

    async fn set_weights(&self, weights: &[(String, u32)]) -> Result<()> {
        self.queues().weights = weights.iter().cloned().collect();
        Ok(())
    }

    async fn throttle(&self, model: &str, tenant: &str, duration: Duration) -> Result<()> {
        let until = Instant::now() + duration;
        let mut queues = self.queues();
        let entry = queues
            .throttled
            .entry((model.to_owned(), tenant.to_owned()))
            .or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(model: &str, priority: i32, seq: i64) -> QueuedTask {
        QueuedTask {
            id: TaskId::new(),
            model: model.into(),
            tenant: "t".into(),
            priority,
            seq,
        }
    }

    #[tokio::test]
    async fn a_waiting_pop_wakes_on_push() {
        let dispatch = std::sync::Arc::new(MemoryDispatch::new());
        let waiter = {
            let dispatch = dispatch.clone();
            tokio::spawn(async move {
                dispatch
                    .pop(&["m".to_owned()], Duration::from_secs(10))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pushed = task("m", 0, 1);
        dispatch
            .push(std::slice::from_ref(&pushed))
            .await
            .expect("push");
        let popped = waiter.await.expect("join").expect("pop");
        assert_eq!(popped.map(|p| p.task), Some(pushed.id));
    }
}
