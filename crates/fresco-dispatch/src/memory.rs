//! In-process dispatch for a farm that lives in one process (`fresco dev`):
//! one ordered set per model, in the same order as Redis (higher priority,
//! then submission order), with waiters woken on every push. Nothing
//! survives the process; the coordinator's reconciler refills the queues
//! from the store at start, as it does after Redis loses its data.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{QueuedTask, TaskId};
use tokio::sync::Notify;

use crate::{Dispatch, Popped, Result};

/// A task's place in its queue: smaller pops first.
type Place = (i64, i64, TaskId);

fn place(task: &QueuedTask) -> Place {
    (-i64::from(task.priority), task.seq, task.id)
}

#[derive(Default)]
struct Queues {
    by_model: HashMap<String, BTreeSet<Place>>,
    /// Where each queued id sits, so a second push keeps it once.
    members: HashMap<TaskId, (String, Place)>,
}

impl Queues {
    fn pop_first(&mut self, models: &[String]) -> Option<Popped> {
        for model in models {
            let Some(queue) = self.by_model.get_mut(model) else {
                continue;
            };
            if let Some((_, _, task)) = queue.pop_first() {
                self.members.remove(&task);
                return Some(Popped {
                    task,
                    model: model.clone(),
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
        // A panic while holding the lock cannot leave the sets half-changed
        // (every change is one insert or remove), so a poisoned lock is safe
        // to keep using.
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
                if queues.members.contains_key(&task.id) {
                    continue;
                }
                let at = place(task);
                queues
                    .by_model
                    .entry(task.model.clone())
                    .or_default()
                    .insert(at);
                queues.members.insert(task.id, (task.model.clone(), at));
            }
        }
        self.pushed.notify_waiters();
        Ok(())
    }

    async fn remove(&self, tasks: &[QueuedTask]) -> Result<()> {
        let mut queues = self.queues();
        for task in tasks {
            if let Some((model, at)) = queues.members.remove(&task.id)
                && let Some(queue) = queues.by_model.get_mut(&model)
            {
                queue.remove(&at);
            }
        }
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
            if tokio::time::timeout_at(deadline, pushed).await.is_err() {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(model: &str, priority: i32, seq: i64) -> QueuedTask {
        QueuedTask {
            id: TaskId::new(),
            model: model.into(),
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
