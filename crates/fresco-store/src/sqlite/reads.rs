//! SQLite reads: jobs with their counts, tasks with their outputs, output
//! keys; and why a guarded update touched no row. They run on the reader
//! pool; sets of ids travel as one JSON array bound to `json_each`.

use chrono::Utc;
use fresco_core::{JobId, TaskId, TaskState};
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::columns::{id_array, id_text, now_ms};
use crate::error::{Result, StoreError};
use crate::progress::{self, JobFilter};
use crate::records::{JobSummary, OutputRecord, TaskQuery, TaskRecord};
use crate::rows::{
    Columns, attach_outputs, job_counts, job_summaries, missed, output_record, task_record,
    undecodable,
};

pub(super) async fn get_job(store: &SqliteStore, id: JobId) -> Result<JobSummary> {
    let rows = sqlx::query(include_str!("sql/get_job.sql"))
        .bind(id_text(id.0))
        .fetch_all(&store.reader)
        .await?;
    summaries(store, rows)
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
}

pub(super) async fn list_jobs(
    store: &SqliteStore,
    limit: u32,
    filter: &JobFilter,
) -> Result<Vec<JobSummary>> {
    let rows = sqlx::query(include_str!("sql/list_jobs.sql"))
        .bind(i64::from(limit))
        .bind(filter.owner.as_deref())
        .bind(filter.tenant.as_deref())
        .bind(filter.labels_json())
        .bind(filter.state_str())
        .bind(filter.model.as_deref())
        .bind(filter.search_lower())
        .bind(filter.after.map(|j| id_text(j.0)))
        .fetch_all(&store.reader)
        .await?;
    summaries(store, rows).await
}

pub(super) async fn get_task(store: &SqliteStore, id: TaskId) -> Result<TaskRecord> {
    let row = sqlx::query(include_str!("sql/get_task.sql"))
        .bind(id_text(id.0))
        .fetch_optional(&store.reader)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
    let mut tasks = vec![task_record(&row)?];
    outputs_of(store, &mut tasks).await?;
    tasks
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))
}

pub(super) async fn list_tasks(store: &SqliteStore, query: &TaskQuery) -> Result<Vec<TaskRecord>> {
    let rows = sqlx::query(include_str!("sql/list_tasks.sql"))
        .bind(query.job.map(|j| id_text(j.0)))
        .bind(query.state.map(TaskState::as_str))
        .bind(i64::from(query.from_index))
        .bind(i64::from(query.limit))
        .fetch_all(&store.reader)
        .await?;
    let mut tasks = rows.iter().map(task_record).collect::<Result<Vec<_>>>()?;
    outputs_of(store, &mut tasks).await?;
    Ok(tasks)
}

pub(super) async fn has_output(store: &SqliteStore, key: &str) -> Result<bool> {
    let row = sqlx::query(include_str!("sql/has_output.sql"))
        .bind(key)
        .fetch_optional(&store.reader)
        .await?;
    Ok(row.is_some())
}

pub(super) async fn output_job(store: &SqliteStore, key: &str) -> Result<Option<JobId>> {
    let row = sqlx::query(include_str!("sql/output_job.sql"))
        .bind(key)
        .fetch_optional(&store.reader)
        .await?;
    row.map(|row| Ok(JobId(row.uuid("job_id")?))).transpose()
}

pub(super) async fn job_traceparent(store: &SqliteStore, id: JobId) -> Result<String> {
    let row = sqlx::query(include_str!("sql/job_traceparent.sql"))
        .bind(id_text(id.0))
        .fetch_optional(&store.reader)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
    row.text("traceparent")
}

pub(super) async fn job_outputs(
    store: &SqliteStore,
    id: JobId,
    keys: &[String],
) -> Result<Vec<OutputRecord>> {
    let keys = serde_json::to_string(keys).map_err(undecodable)?;
    let rows = sqlx::query(include_str!("sql/job_outputs.sql"))
        .bind(id_text(id.0))
        .bind(keys)
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(output_record).collect()
}

/// `NotFound` unless the job exists.
pub(super) async fn job_exists(store: &SqliteStore, id: JobId) -> Result<()> {
    let exists = sqlx::query(include_str!("sql/job_exists.sql"))
        .bind(id_text(id.0))
        .fetch_optional(&store.reader)
        .await?;
    match exists {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("job {id}"))),
    }
}

/// Job rows with their counts.
async fn summaries(store: &SqliteStore, rows: Vec<SqliteRow>) -> Result<Vec<JobSummary>> {
    let ids = rows
        .iter()
        .map(|row| row.uuid("id"))
        .collect::<Result<Vec<_>>>()?;
    let ids = id_array(ids.into_iter())?;
    let counts = sqlx::query(include_str!("sql/job_counts.sql"))
        .bind(&ids)
        .bind(now_ms())
        .fetch_all(&store.reader)
        .await?;
    let mut jobs = job_summaries(&rows, job_counts(&counts)?)?;
    let now = Utc::now();
    let ends = sqlx::query(include_str!("sql/job_rates.sql"))
        .bind(&ids)
        .bind(progress::window_start(now).timestamp_millis())
        .fetch_all(&store.reader)
        .await?;
    progress::attach_rates(&mut jobs, progress::recent_ends(&ends)?, now);
    Ok(jobs)
}

/// Fills in each task's outputs.
async fn outputs_of(store: &SqliteStore, tasks: &mut [TaskRecord]) -> Result<()> {
    let rows = sqlx::query(include_str!("sql/task_outputs.sql"))
        .bind(id_array(tasks.iter().map(|t| t.id.0))?)
        .fetch_all(&store.reader)
        .await?;
    attach_outputs(&rows, tasks)
}

/// Why a guarded update touched no row: the task is missing, or in another
/// state / held under another token.
pub(super) async fn explain_miss(store: &SqliteStore, task: TaskId, wanted: &str) -> StoreError {
    let row = sqlx::query(include_str!("sql/task_state.sql"))
        .bind(id_text(task.0))
        .fetch_optional(&store.reader)
        .await;
    match row {
        Ok(row) => missed(task, wanted, row.as_ref()),
        Err(e) => e.into(),
    }
}
