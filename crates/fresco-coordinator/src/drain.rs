//! Draining a worker (`DrainWorker`, `fresco workers drain`): the store
//! marks it draining, and from then on its claims are refused. The worker
//! learns it from its next heartbeat (`HeartbeatResponse.drain`), ping
//! (`PingResponse.drain`, while it is idle) or claim
//! (`ClaimTaskResponse.drain`, no task: the task it popped stays queued for
//! another worker), finishes and reports the task it runs, and exits.

use fresco_core::{TaskId, WorkerId};
use fresco_proto::v1 as pb;
use tracing::{info, warn};

use crate::error::ApiResult;
use crate::{Coordinator, convert};

/// `DrainWorker`: marks the worker draining; returns it.
pub async fn drain_worker(app: &Coordinator, worker_id: &str) -> ApiResult<pb::Worker> {
    let id = WorkerId::parse_field("worker_id", worker_id)?;
    let worker = app.store.drain_worker(id).await?;
    info!(worker_id = %id, running = worker.running.len(), "worker drained by an operator: it finishes its task, claims nothing more and exits");
    Ok(convert::worker(&worker))
}

/// Whether a heartbeat's worker should be told to drain; a failed read
/// must not fail the heartbeat it rides on (the next one asks again).
pub async fn told_to_drain(app: &Coordinator, worker: WorkerId) -> bool {
    match app.store.worker_draining(worker).await {
        Ok(draining) => draining,
        Err(err) => {
            warn!(worker_id = %worker, error = %err, "could not read whether the worker is draining");
            false
        }
    }
}

/// The answer to a claim by a draining worker: no task, `drain` set. The
/// task it popped stays queued in the store, and the reconciler's next
/// pass puts it back in the dispatch queues for another worker (as for a
/// claim refused to a quarantined worker).
pub fn refuse_claim(worker: WorkerId, task: TaskId) -> pb::ClaimTaskResponse {
    info!(worker_id = %worker, task_id = %task, "claim by a draining worker refused; telling it to stop");
    pb::ClaimTaskResponse {
        drain: true,
        ..Default::default()
    }
}
