//! Worker health and the quarantine cycle: every finished attempt that is
//! the worker's business counts for it (a success ends its run of failures
//! and its probation; a `worker` failure or an expired lease extends the
//! run, and quarantines it after `quarantine_after` in a row, or at once on
//! probation). A `request` failure is never counted. Quarantine is
//! recoverable: the release pass puts workers quarantined longer than the
//! cool-down on probation, and `ReleaseWorker` does so at once; a worker on
//! probation claims one probe task at a time until one ends.

use fresco_core::WorkerId;
use fresco_proto::v1 as pb;
use fresco_store::AttemptOutcome;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::ApiResult;
use crate::{Coordinator, convert, metrics, tick};

/// Counts a finished attempt for its worker; a failure here must not fail
/// the report (or the reaper pass) it rides on.
pub async fn count_attempt(app: &Coordinator, worker: WorkerId, outcome: AttemptOutcome<'_>) {
    let after = app.settings.quarantine_after;
    let health = match app.store.record_attempt(worker, outcome, after).await {
        Ok(health) => health,
        Err(err) => {
            warn!(worker_id = %worker, error = %err, "could not count the attempt");
            return;
        }
    };
    if health.newly_quarantined {
        metrics::quarantined();
        let cooldown_seconds = app.settings.quarantine_cooldown.as_secs();
        let probe_failed = health.consecutive_failures < after;
        warn!(
            worker_id = %worker,
            failures_in_a_row = health.consecutive_failures,
            probe_failed,
            cooldown_seconds,
            "worker quarantined: it claims nothing more until its cool-down ends and it goes on probation, or an operator releases it (fresco workers release {worker})"
        );
    }
}

/// One release pass: every worker quarantined longer than the cool-down
/// goes on probation. Returns how many did.
pub async fn release_once(app: &Coordinator) -> anyhow::Result<usize> {
    let released = app
        .store
        .release_quarantined(app.settings.quarantine_cooldown)
        .await?;
    for worker in &released {
        info!(worker_id = %worker, "quarantine cool-down over: the worker is on probation and may claim one probe task");
    }
    Ok(released.len())
}

/// Runs the release pass every `reap_interval` until `shutdown`.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.reap_interval;
    tick::every(
        "quarantine release",
        interval,
        &shutdown,
        &app,
        release_once,
    )
    .await;
}

/// `ReleaseWorker`: puts a quarantined worker on probation now.
pub async fn release_worker(app: &Coordinator, worker_id: &str) -> ApiResult<pb::Worker> {
    let id = WorkerId::parse_field("worker_id", worker_id)?;
    let worker = app.store.release_worker(id).await?;
    info!(worker_id = %id, "worker released by an operator: on probation, it may claim one probe task");
    Ok(convert::worker(&worker))
}
