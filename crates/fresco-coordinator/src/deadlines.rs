//! Fails the tasks still queued once their job's deadline has passed (the
//! job's own `deadline_seconds`, else the coordinator's queue timeout), and
//! takes them out of the dispatch queues. Running tasks finish.

use fresco_store::QueuedTask;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Coordinator, metrics, tick};

/// One pass; returns how many tasks failed at their deadline.
pub async fn expire_once(app: &Coordinator) -> anyhow::Result<usize> {
    let missed = app.store.expire_deadlines().await?;
    if missed.is_empty() {
        return Ok(0);
    }
    for m in &missed {
        info!(task_id = %m.task.id, job_id = %m.job_id, "task failed: its job's deadline passed while it was still queued");
        metrics::tasks_failed(&m.task.model, 1);
    }
    let tasks: Vec<QueuedTask> = missed.into_iter().map(|m| m.task).collect();
    if let Err(err) = app.dispatch.remove(&tasks).await {
        // Workers that pop these ids find them failed and drop them.
        warn!(tasks = tasks.len(), error = %err, "could not remove tasks past their deadline from dispatch");
    }
    Ok(tasks.len())
}

/// Looks for passed deadlines every `reap_interval` until `shutdown`.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.reap_interval;
    tick::every("deadline", interval, &shutdown, &app, expire_once).await;
}
