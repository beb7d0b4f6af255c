//! Deletes finished jobs once they are older than the retention period
//! (`--job-retention-seconds`; off by default): first every object under
//! the job's folder in storage, then the job with its tasks and outputs
//! in the store, so a pass cut short leaves the job to the next pass
//! rather than objects nobody knows of. A job that is queued again
//! (retried) meanwhile is kept: the store deletes only a job still
//! finished and old.

use std::time::Duration;

use anyhow::Context;
use fresco_core::{JobId, keys};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Coordinator, tick};

/// Jobs deleted per pass at most; the next pass takes the rest.
const BATCH: u32 = 100;

/// One pass with retention `age`: deletes up to [`BATCH`] expired jobs;
/// returns how many. A job that cannot be deleted now (storage away) is
/// logged and left for the next pass.
pub async fn prune_once(app: &Coordinator, age: Duration) -> anyhow::Result<usize> {
    let mut pruned = 0;
    for job in app.store.expired_jobs(age, BATCH).await? {
        match prune_job(app, job, age).await {
            Ok(true) => pruned += 1,
            Ok(false) => {}
            Err(err) => {
                warn!(job_id = %job, error = %format!("{err:#}"), "could not delete the expired job; the next pass tries again");
            }
        }
    }
    Ok(pruned)
}

/// Deletes the job's objects, then the job; whether the store deleted it.
async fn prune_job(app: &Coordinator, job: JobId, age: Duration) -> anyhow::Result<bool> {
    let dir = keys::job_dir(app.storage.prefix(), job);
    let objects = app
        .storage
        .list(&dir)
        .await
        .with_context(|| format!("listing {dir}"))?;
    for key in &objects {
        app.storage
            .delete(key)
            .await
            .with_context(|| format!("deleting {key}"))?;
    }
    let deleted = app.store.delete_job(job, age).await?;
    if deleted {
        info!(job_id = %job, objects = objects.len(), retention_seconds = age.as_secs(), "expired job deleted with its objects");
    }
    Ok(deleted)
}

/// Prunes every `sweep_interval` until `shutdown`, when a retention is
/// set (and the interval is not zero).
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let Some(age) = app.settings.job_retention else {
        return;
    };
    let interval = app.settings.sweep_interval;
    if interval.is_zero() {
        warn!(
            "--job-retention-seconds is set but --sweep-interval-seconds is 0: nothing is pruned"
        );
        return;
    }
    info!(
        retention_seconds = age.as_secs(),
        "finished jobs older than the retention are deleted"
    );
    let pass = async move |app: &Coordinator| prune_once(app, age).await;
    tick::every("retention", interval, &shutdown, &app, pass).await;
}
