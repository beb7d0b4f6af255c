//! SQLite controls on jobs and tasks: cancel, retry, pause and resume,
//! reprioritize.
//! Each returns the tasks whose place in the queues changed.

use fresco_core::{JobId, TaskId};

use super::SqliteStore;
use super::columns::{id_text, now_ms};
use super::reads::{explain_miss, job_exists};
use crate::error::{Result, StoreError};
use crate::records::{QueuedTask, in_seq_order};
use crate::rows::{Columns, queued_task};

pub(super) async fn cancel_job(store: &SqliteStore, id: JobId) -> Result<Vec<QueuedTask>> {
    job_exists(store, id).await?;
    let rows = sqlx::query(include_str!("sql/cancel_job.sql"))
        .bind(id_text(id.0))
        .bind(now_ms())
        .fetch_all(&store.writer)
        .await?;
    rows.iter().map(queued_task).collect()
}

pub(super) async fn cancel_task(store: &SqliteStore, id: TaskId) -> Result<QueuedTask> {
    let row = sqlx::query(include_str!("sql/cancel_task.sql"))
        .bind(id_text(id.0))
        .bind(now_ms())
        .fetch_optional(&store.writer)
        .await?;
    match row {
        Some(row) => queued_task(&row),
        None => {
            Err(explain_miss(store, id, "only a queued or running task can be cancelled").await)
        }
    }
}

pub(super) async fn retry_job(store: &SqliteStore, id: JobId) -> Result<Vec<QueuedTask>> {
    job_exists(store, id).await?;
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    let rows = sqlx::query(include_str!("sql/retry_job.sql"))
        .bind(id_text(id.0))
        .fetch_all(&mut *tx)
        .await?;
    if !rows.is_empty() {
        sqlx::query(include_str!("sql/reopen_job.sql"))
            .bind(id_text(id.0))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    in_seq_order(rows.iter().map(queued_task))
}

pub(super) async fn set_paused(
    store: &SqliteStore,
    id: JobId,
    paused: bool,
) -> Result<Vec<QueuedTask>> {
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    let updated = sqlx::query(include_str!("sql/pause_job.sql"))
        .bind(id_text(id.0))
        .bind(paused)
        .fetch_optional(&mut *tx)
        .await?;
    if updated.is_none() {
        tx.rollback().await?;
        return Err(StoreError::NotFound(format!("job {id}")));
    }
    let rows = sqlx::query(include_str!("sql/queued_of_job.sql"))
        .bind(id_text(id.0))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    in_seq_order(rows.iter().map(queued_task))
}

pub(super) async fn set_priority(
    store: &SqliteStore,
    id: JobId,
    priority: i32,
) -> Result<Vec<QueuedTask>> {
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    let Some(job) = sqlx::query(include_str!("sql/prioritize_job.sql"))
        .bind(id_text(id.0))
        .bind(priority)
        .fetch_optional(&mut *tx)
        .await?
    else {
        tx.rollback().await?;
        return Err(StoreError::NotFound(format!("job {id}")));
    };
    sqlx::query(include_str!("sql/prioritize_tasks.sql"))
        .bind(id_text(id.0))
        .bind(priority)
        .execute(&mut *tx)
        .await?;
    let rows = if job.flag("paused")? {
        Vec::new()
    } else {
        sqlx::query(include_str!("sql/queued_of_job.sql"))
            .bind(id_text(id.0))
            .fetch_all(&mut *tx)
            .await?
    };
    tx.commit().await?;
    in_seq_order(rows.iter().map(queued_task))
}
