//! Ends leases whose heartbeats stopped: each becomes a failed attempt, and
//! the task goes back to its queue after its backoff (or fails for good once
//! out of attempts).

use fresco_core::TaskState;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Coordinator, requeue};

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

pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(app.settings.reap_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = reap_once(&app).await {
            warn!(error = %err, "lease reaper pass failed");
        }
    }
}
