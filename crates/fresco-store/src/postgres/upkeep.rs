//! Postgres upkeep for the coordinator's housekeeping passes: queued tasks
//! failed at their job's deadline, and tasks whose ended attempts may have
//! left stray objects in storage, until they are swept; finished jobs past
//! the retention period, deleted with their tasks and outputs; finished
//! jobs whose bucket manifest is due; the task-count deltas folded into
//! each job's counts.

use std::time::Duration;

use fresco_core::{JobId, TaskId};

use super::PgStore;
use super::columns::secs;
use crate::error::Result;
use crate::records::{DeadlineMiss, ManifestDue, SweepCandidate};
use crate::rows::{Columns, deadline_miss, manifest_due, sweep_candidate};

pub(super) async fn expire_deadlines(store: &PgStore) -> Result<Vec<DeadlineMiss>> {
    let rows = sqlx::query(include_str!("sql/expire_deadlines.sql"))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(deadline_miss).collect()
}

pub(super) async fn fold_task_counts(store: &PgStore) -> Result<u64> {
    let row = sqlx::query(include_str!("sql/fold_task_counts.sql"))
        .fetch_one(&store.pool)
        .await?;
    row.big("deltas")
}

pub(super) async fn sweep_candidates(
    store: &PgStore,
    lease: Duration,
    limit: u32,
) -> Result<Vec<SweepCandidate>> {
    let rows = sqlx::query(include_str!("sql/sweep_candidates.sql"))
        .bind(secs(lease))
        .bind(i64::from(limit))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(sweep_candidate).collect()
}

pub(super) async fn mark_swept(store: &PgStore, task: TaskId, through: u32) -> Result<()> {
    sqlx::query(include_str!("sql/mark_swept.sql"))
        .bind(task.0)
        .bind(through as i32)
        .execute(&store.pool)
        .await?;
    Ok(())
}

pub(super) async fn expired_jobs(store: &PgStore, age: Duration, limit: u32) -> Result<Vec<JobId>> {
    let rows = sqlx::query(include_str!("sql/expired_jobs.sql"))
        .bind(secs(age))
        .bind(i64::from(limit))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(|row| Ok(JobId(row.uuid("id")?))).collect()
}

pub(super) async fn delete_job(store: &PgStore, id: JobId, age: Duration) -> Result<bool> {
    let done = sqlx::query(include_str!("sql/delete_job.sql"))
        .bind(id.0)
        .bind(secs(age))
        .execute(&store.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn manifests_due(store: &PgStore, limit: u32) -> Result<Vec<ManifestDue>> {
    let rows = sqlx::query(include_str!("sql/manifests_due.sql"))
        .bind(i64::from(limit))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(manifest_due).collect()
}

pub(super) async fn mark_manifest_written(store: &PgStore, due: ManifestDue) -> Result<bool> {
    let marked = sqlx::query(include_str!("sql/mark_manifest_written.sql"))
        .bind(due.job.0)
        .bind(due.reopened as i32)
        .fetch_optional(&store.pool)
        .await?;
    Ok(marked.is_some())
}
