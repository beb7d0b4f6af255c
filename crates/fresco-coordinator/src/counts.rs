//! Keeps each job's task counts cheap to read: folds the count changes the
//! store recorded as tasks moved into the per-job counts, so a job summary
//! sums a few rows however many tasks the job has and however fast they
//! move.

use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::{Coordinator, metrics, tick};

/// One pass; returns how many recorded changes it folded.
pub async fn fold_once(app: &Coordinator) -> anyhow::Result<u64> {
    let folded = app.store.fold_task_counts().await?;
    if folded > 0 {
        debug!(folded, "task counts folded");
        metrics::task_counts_folded(folded);
    }
    Ok(folded)
}

/// Folds every `reap_interval` until `shutdown`.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.reap_interval;
    tick::every("task counts", interval, &shutdown, &app, fold_once).await;
}
