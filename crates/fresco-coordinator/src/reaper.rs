//! Ends leases whose heartbeats stopped: each becomes a failed attempt, and
//! the task goes back to its queue after its backoff (or fails for good once
//! out of attempts).

use fresco_core::TaskState;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{Coordinator, requeue, tick};

/// One pass; returns how many leases ended.
pub async fn reap_once(app: &Coordinator) -> anyhow::Result<usize> {
    let expired = app.store.expire_leases(app.settings.retry_backoff).await?;
    for r in &expired {
        info!(task_id = %r.task.id, state = %r.state, not_before = ?r.not_before, "lease expired");
        if r.state == TaskState::Queued {
            requeue::push_when_due(app, r.task.clone(), r.not_before).await;
        }
    }
    Ok(expired.len())
}

/// Reaps every `reap_interval` until `shutdown`.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.reap_interval;
    tick::every("lease reaper", interval, &shutdown, &app, reap_once).await;
}
