//! Postgres reads: jobs with their counts, tasks with their outputs, output
//! keys; and why a guarded update touched no row. Sets of ids travel as one
//! array bound to `ANY`.

use chrono::Utc;
use fresco_core::{JobId, TaskId, TaskState};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::progress::{self, JobFilter};
use crate::records::{JobSummary, OutputRecord, TaskQuery, TaskRecord};
use crate::rows::{
    Columns, attach_outputs, job_counts, job_summaries, missed, output_record, task_record,
};

pub(super) async fn get_job(store: &PgStore, id: JobId) -> Result<JobSummary> {
    let rows = sqlx::query(include_str!("sql/get_job.sql"))
        .bind(id.0)
        .fetch_all(&store.pool)
        .await?;
    summaries(store, rows)
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
}

pub(super) async fn list_jobs(
    store: &PgStore,
    limit: u32,
    filter: &JobFilter,
) -> Result<Vec<JobSummary>> {
    let rows = sqlx::query(include_str!("sql/list_jobs.sql"))
        .bind(i64::from(limit))
        .bind(filter.owner.as_deref())
        .bind(filter.tenant.as_deref())
        .bind(sqlx::types::Json(&filter.labels))
        .bind(filter.state_str())
        .bind(filter.model.as_deref())
        .bind(filter.search_lower())
        .bind(filter.after.map(|j| j.0))
        .fetch_all(&store.pool)
        .await?;
    summaries(store, rows).await
}

pub(super) async fn get_task(store: &PgStore, id: TaskId) -> Result<TaskRecord> {
    let row = sqlx::query(include_str!("sql/get_task.sql"))
        .bind(id.0)
        .fetch_optional(&store.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
    let mut tasks = vec![task_record(&row)?];
    outputs_of(store, &mut tasks).await?;
    tasks
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))
}

pub(super) async fn list_tasks(store: &PgStore, query: &TaskQuery) -> Result<Vec<TaskRecord>> {
    let rows = sqlx::query(include_str!("sql/list_tasks.sql"))
        .bind(query.job.map(|j| j.0))
        .bind(query.state.map(TaskState::as_str))
        .bind(query.from_index as i32)
        .bind(i64::from(query.limit))
        .fetch_all(&store.pool)
        .await?;
    let mut tasks = rows.iter().map(task_record).collect::<Result<Vec<_>>>()?;
    outputs_of(store, &mut tasks).await?;
    Ok(tasks)
}

pub(super) async fn has_output(store: &PgStore, key: &str) -> Result<bool> {
    let row = sqlx::query(include_str!("sql/has_output.sql"))
        .bind(key)
        .fetch_optional(&store.pool)
        .await?;
    Ok(row.is_some())
}

pub(super) async fn output_job(store: &PgStore, key: &str) -> Result<Option<JobId>> {
    let row = sqlx::query(include_str!("sql/output_job.sql"))
        .bind(key)
        .fetch_optional(&store.pool)
        .await?;
    row.map(|row| Ok(JobId(row.uuid("job_id")?))).transpose()
}

pub(super) async fn job_traceparent(store: &PgStore, id: JobId) -> Result<String> {
    let row = sqlx::query(include_str!("sql/job_traceparent.sql"))
        .bind(id.0)
        .fetch_optional(&store.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
    row.text("traceparent")
}

pub(super) async fn job_outputs(
    store: &PgStore,
    id: JobId,
    keys: &[String],
) -> Result<Vec<OutputRecord>> {
    let rows = sqlx::query(include_str!("sql/job_outputs.sql"))
        .bind(id.0)
        .bind(keys)
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(output_record).collect()
}

/// `NotFound` unless the job exists.
pub(super) async fn job_exists(store: &PgStore, id: JobId) -> Result<()> {
    let exists = sqlx::query(include_str!("sql/job_exists.sql"))
        .bind(id.0)
        .fetch_optional(&store.pool)
        .await?;
    match exists {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("job {id}"))),
    }
}

/// Job rows with their counts and recent throughput.
pub(super) async fn summaries(store: &PgStore, rows: Vec<PgRow>) -> Result<Vec<JobSummary>> {
    let ids = rows
        .iter()
        .map(|row| row.uuid("id"))
        .collect::<Result<Vec<Uuid>>>()?;
    let counts = sqlx::query(include_str!("sql/job_counts.sql"))
        .bind(&ids)
        .fetch_all(&store.pool)
        .await?;
    let mut jobs = job_summaries(&rows, job_counts(&counts)?)?;
    let now = Utc::now();
    let ends = sqlx::query(include_str!("sql/job_rates.sql"))
        .bind(&ids)
        .bind(progress::window_start(now))
        .fetch_all(&store.pool)
        .await?;
    progress::attach_rates(&mut jobs, progress::recent_ends(&ends)?, now);
    Ok(jobs)
}

/// Fills in each task's outputs.
async fn outputs_of(store: &PgStore, tasks: &mut [TaskRecord]) -> Result<()> {
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id.0).collect();
    let rows = sqlx::query(include_str!("sql/task_outputs.sql"))
        .bind(&ids)
        .fetch_all(&store.pool)
        .await?;
    attach_outputs(&rows, tasks)
}

/// Why a guarded update touched no row: the task is missing, or in another
/// state / held under another token.
pub(super) async fn explain_miss(store: &PgStore, task: TaskId, wanted: &str) -> StoreError {
    let row = sqlx::query(include_str!("sql/task_state.sql"))
        .bind(task.0)
        .fetch_optional(&store.pool)
        .await;
    match row {
        Ok(row) => missed(task, wanted, row.as_ref()),
        Err(e) => e.into(),
    }
}
