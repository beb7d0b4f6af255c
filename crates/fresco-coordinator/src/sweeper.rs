//! Deletes the stray output objects of attempts that ended without
//! recording them (a worker that lost its lease, failed, or was cancelled
//! after uploading), once the attempt's end is a lease old: a worker that
//! lost its lease may still be uploading for a moment. Per task, one
//! listing of `{prefix}/{job}/{task}/` covers all its ended attempts;
//! objects recorded as outputs, and those of an attempt still running, are
//! kept. A task that completed at its first attempt is never listed.

use std::collections::HashSet;

use anyhow::Context;
use fresco_core::keys;
use fresco_store::SweepCandidate;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{Coordinator, tick};

/// Tasks swept per pass at most; the next pass takes the rest.
const BATCH: u32 = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Tasks whose ended attempts are now swept.
    pub tasks: usize,
    /// Stray objects deleted.
    pub deleted: usize,
}

/// One pass over tasks whose ended attempts are a lease old and unswept.
/// A task that cannot be swept now (storage away) is logged and left for
/// the next pass.
pub async fn sweep_once(app: &Coordinator) -> anyhow::Result<Swept> {
    let candidates = app
        .store
        .sweep_candidates(app.settings.lease, BATCH)
        .await?;
    let mut swept = Swept::default();
    for candidate in candidates {
        match sweep_task(app, &candidate).await {
            Ok(deleted) => {
                swept.tasks += 1;
                swept.deleted += deleted;
            }
            Err(err) => {
                warn!(task_id = %candidate.task, job_id = %candidate.job_id, error = %format!("{err:#}"), "could not sweep the task's stray objects; the next pass tries again");
            }
        }
    }
    if swept.deleted > 0 {
        info!(
            tasks = swept.tasks,
            deleted = swept.deleted,
            "sweep pass deleted stray objects"
        );
    }
    Ok(swept)
}

/// Deletes every object under the task's folder that belongs to an ended
/// attempt and is not a recorded output; returns how many.
async fn sweep_task(app: &Coordinator, c: &SweepCandidate) -> anyhow::Result<usize> {
    let dir = keys::task_dir(app.storage.prefix(), c.job_id, c.task);
    let listed = app
        .storage
        .list(&dir)
        .await
        .with_context(|| format!("listing {dir}"))?;
    let recorded: HashSet<String> = app
        .store
        .get_task(c.task)
        .await?
        .outputs
        .into_iter()
        .map(|o| o.key)
        .collect();
    let mut deleted = 0;
    for key in listed {
        let Some(attempt) = keys::attempt_of(&dir, &key) else {
            debug!(task_id = %c.task, key = %key, "not an output key; left alone");
            continue;
        };
        if attempt > c.ended_through || recorded.contains(&key) {
            continue;
        }
        app.storage
            .delete(&key)
            .await
            .with_context(|| format!("deleting {key}"))?;
        info!(task_id = %c.task, job_id = %c.job_id, attempt, key = %key, "stray output deleted: its attempt ended without recording it");
        deleted += 1;
    }
    app.store.mark_swept(c.task, c.ended_through).await?;
    Ok(deleted)
}

/// Sweeps every `sweep_interval` until `shutdown`; never when it is zero.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.sweep_interval;
    if interval.is_zero() {
        info!("the stray object sweeper is off (--sweep-interval-seconds 0)");
        return;
    }
    tick::every("sweeper", interval, &shutdown, &app, sweep_once).await;
}
