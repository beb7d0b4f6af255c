//! SQLite upkeep for the coordinator's housekeeping passes: queued tasks
//! failed at their job's deadline, and tasks whose ended attempts may have
//! left stray objects in storage, until they are swept; finished jobs past
//! the retention period, deleted with their tasks and outputs; finished
//! jobs whose bucket manifest is due.

use std::time::Duration;

use fresco_core::{JobId, TaskId};

use super::SqliteStore;
use super::columns::{id_text, json_time, millis, now_ms};
use crate::error::Result;
use crate::records::{DeadlineMiss, ManifestDue, SweepCandidate};
use crate::rows::{Columns, deadline_miss, manifest_due, sweep_candidate};

pub(super) async fn expire_deadlines(store: &SqliteStore) -> Result<Vec<DeadlineMiss>> {
    let now = now_ms();
    let rows = sqlx::query(include_str!("sql/expire_deadlines.sql"))
        .bind(now)
        .bind(json_time(now)?)
        .fetch_all(&store.writer)
        .await?;
    rows.iter().map(deadline_miss).collect()
}

pub(super) async fn sweep_candidates(
    store: &SqliteStore,
    lease: Duration,
    limit: u32,
) -> Result<Vec<SweepCandidate>> {
    let rows = sqlx::query(include_str!("sql/sweep_candidates.sql"))
        .bind(now_ms().saturating_sub(millis(lease)))
        .bind(i64::from(limit))
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(sweep_candidate).collect()
}

pub(super) async fn mark_swept(store: &SqliteStore, task: TaskId, through: u32) -> Result<()> {
    sqlx::query(include_str!("sql/mark_swept.sql"))
        .bind(id_text(task.0))
        .bind(i64::from(through))
        .execute(&store.writer)
        .await?;
    Ok(())
}

pub(super) async fn expired_jobs(
    store: &SqliteStore,
    age: Duration,
    limit: u32,
) -> Result<Vec<JobId>> {
    let rows = sqlx::query(include_str!("sql/expired_jobs.sql"))
        .bind(now_ms().saturating_sub(millis(age)))
        .bind(i64::from(limit))
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(|row| Ok(JobId(row.uuid("id")?))).collect()
}

pub(super) async fn delete_job(store: &SqliteStore, id: JobId, age: Duration) -> Result<bool> {
    let done = sqlx::query(include_str!("sql/delete_job.sql"))
        .bind(id_text(id.0))
        .bind(now_ms().saturating_sub(millis(age)))
        .execute(&store.writer)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn manifests_due(store: &SqliteStore, limit: u32) -> Result<Vec<ManifestDue>> {
    let rows = sqlx::query(include_str!("sql/manifests_due.sql"))
        .bind(i64::from(limit))
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(manifest_due).collect()
}

pub(super) async fn mark_manifest_written(store: &SqliteStore, due: ManifestDue) -> Result<bool> {
    let marked = sqlx::query(include_str!("sql/mark_manifest_written.sql"))
        .bind(id_text(due.job.0))
        .bind(i64::from(due.reopened))
        .fetch_optional(&store.writer)
        .await?;
    Ok(marked.is_some())
}
