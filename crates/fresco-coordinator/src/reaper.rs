//! Ends leases whose heartbeats stopped: each becomes a failed attempt of
//! kind `lease`, counted against its worker like a `worker` failure, and
//! the task goes back to its queue after its backoff (or fails for good once
//! out of attempts).

use fresco_core::{FailureKind, TaskState};
use fresco_store::{AttemptOutcome, LEASE_EXPIRED};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{Coordinator, metrics, quarantine, requeue, tick};

/// One pass; returns how many leases ended.
pub async fn reap_once(app: &Coordinator) -> anyhow::Result<usize> {
    let expired = app.store.expire_leases(app.settings.retry_backoff).await?;
    for r in &expired {
        info!(task_id = %r.task.id, state = %r.state, not_before = ?r.not_before, "lease expired");
        if r.lease.is_some() {
            metrics::lease_expired(&r.task.model);
        }
        if r.state == TaskState::Queued {
            metrics::retried(&r.task.model);
            requeue::push_when_due(app, r.task.clone(), r.not_before).await;
        } else if r.state == TaskState::Failed {
            metrics::tasks_failed(&r.task.model, 1);
        }
        if let Some(lease) = r.lease {
            let failed = AttemptOutcome::Failed {
                task: lease.task,
                attempt: lease.attempt,
                message: LEASE_EXPIRED,
                kind: FailureKind::Lease,
            };
            quarantine::count_attempt(app, lease.worker, failed).await;
        }
    }
    Ok(expired.len())
}

/// Reaps every `reap_interval` until `shutdown`.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.reap_interval;
    tick::every("lease reaper", interval, &shutdown, &app, reap_once).await;
}
