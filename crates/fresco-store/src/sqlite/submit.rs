//! Storing a submission in SQLite: the job row and all its tasks in one
//! write transaction, as multi-row INSERTs in chunks that stay under
//! SQLite's limit of 32,766 bound parameters per statement, after the
//! tenant's limits are checked in the same transaction; a submission whose
//! request id is stored already is replayed instead.

use fresco_core::sweep::Sweep;
use fresco_core::{JobId, JobSpec, TaskId, TaskSpec};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::columns::{id_text, now_ms, plus};
use super::reads::get_job;
use crate::error::{Result, StoreError, replay};
use crate::records::{JobSummary, QueuedTask, Submitted};
use crate::rows::{Columns, queued_task, undecodable};

/// Parameters of one task row.
const PER_ROW: usize = 18;
/// Rows per INSERT: 1,800 × 18 = 32,400 parameters.
const INSERT_CHUNK: usize = 1_800;
const _: () = assert!(INSERT_CHUNK * PER_ROW <= 32_766);

pub(super) async fn submit(store: &SqliteStore, spec: &JobSpec) -> Result<Submitted> {
    if let Some(stored) = job_by_request(store, spec).await? {
        return replay(spec, stored);
    }
    let job = JobId::new();
    let tasks = match insert_submission(store, job, spec, now_ms()).await {
        Ok(tasks) => tasks,
        // The same request, stored by a concurrent call meanwhile.
        Err(StoreError::Internal(sqlx::Error::Database(db))) if db.is_unique_violation() => {
            let stored = job_by_request(store, spec).await?.ok_or_else(|| {
                StoreError::Conflict("a submission with this request_id vanished".into())
            })?;
            return replay(spec, stored);
        }
        Err(err) => return Err(err),
    };
    let job = get_job(store, job).await?;
    Ok(Submitted {
        job,
        tasks,
        replayed: false,
    })
}

/// `INSERT INTO tasks ... VALUES (...), (...) RETURNING ...` for `rows`
/// rows: the one statement written per call, since its length follows the
/// chunk's. The parameters are anonymous `?`s: SQLite and sqlx look
/// numbered ones up by a linear scan each, which is quadratic at this size.
fn insert_tasks_sql(rows: usize) -> String {
    let row = format!("({})", ["?"; PER_ROW].join(", "));
    let mut sql = String::with_capacity(200 + rows * (row.len() + 2));
    sql.push_str(
        "INSERT INTO tasks (id, job_id, idx, model, priority, max_attempts, created_at, prompt,
             negative_prompt, seed, steps, width, height, guidance, n, sampler, schedule,
             coordinates) VALUES ",
    );
    for n in 0..rows {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql.push_str(
        " RETURNING id, model, priority, seq,\n    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant",
    );
    sql
}

/// Inserts the job and its tasks; returns the tasks in dispatch order.
async fn insert_submission(
    store: &SqliteStore,
    job: JobId,
    spec: &JobSpec,
    now: i64,
) -> Result<Vec<QueuedTask>> {
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    super::tenants::check_submit(&mut tx, &spec.tenant, spec.tasks.len() as u64).await?;
    sqlx::query(include_str!("sql/insert_job.sql"))
        .bind(id_text(job.0))
        .bind(&spec.name)
        .bind(&spec.owner)
        .bind(&spec.model)
        .bind(spec.priority)
        .bind(i64::from(spec.max_attempts))
        .bind(spec.tasks.len() as i64)
        .bind(now)
        .bind(spec.request_id.as_deref())
        .bind(spec.deadline.map(|d| plus(now, d)))
        .bind(&spec.tenant)
        .bind(&spec.traceparent)
        .bind(spec.sweep.as_ref().map(Sweep::to_json))
        .bind(serde_json::to_string(&spec.labels).map_err(undecodable)?)
        .execute(&mut *tx)
        .await?;

    let mut queued = Vec::with_capacity(spec.tasks.len());
    for (chunk_no, chunk) in spec.tasks.chunks(INSERT_CHUNK).enumerate() {
        let rows = insert_tasks(&mut tx, job, spec, now, chunk_no * INSERT_CHUNK, chunk).await?;
        for row in &rows {
            queued.push(queued_task(row)?);
        }
    }
    tx.commit().await?;
    queued.sort_by_key(|t| t.seq);
    Ok(queued)
}

/// Inserts one chunk of the job's tasks, the first at index `first`.
async fn insert_tasks(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    job: JobId,
    spec: &JobSpec,
    now: i64,
    first: usize,
    chunk: &[TaskSpec],
) -> Result<Vec<SqliteRow>> {
    // Full chunks share one cached statement; the last one is a one-off.
    let mut query = sqlx::query(AssertSqlSafe(insert_tasks_sql(chunk.len())))
        .persistent(chunk.len() == INSERT_CHUNK);
    for (offset, task) in chunk.iter().enumerate() {
        let index = first + offset;
        let coordinates = spec.sweep.as_ref().map(|s| s.coordinates(index as u64));
        query = query
            .bind(id_text(TaskId::new().0))
            .bind(id_text(job.0))
            .bind(index as i64)
            .bind(&spec.model)
            .bind(spec.priority)
            .bind(i64::from(spec.max_attempts))
            .bind(now)
            .bind(&task.prompt)
            .bind(&task.negative_prompt)
            .bind(task.seed as i64)
            .bind(i64::from(task.steps))
            .bind(i64::from(task.width))
            .bind(i64::from(task.height))
            .bind(task.guidance)
            .bind(i64::from(task.n))
            .bind(&task.sampler)
            .bind(task.schedule.to_json())
            .bind(coordinates.map(|c| c.to_json()));
    }
    Ok(query.fetch_all(&mut **tx).await?)
}

/// The job stored under the spec's request id, if any.
async fn job_by_request(store: &SqliteStore, spec: &JobSpec) -> Result<Option<JobSummary>> {
    let Some(request_id) = &spec.request_id else {
        return Ok(None);
    };
    let row = sqlx::query(include_str!("sql/job_by_request.sql"))
        .bind(&spec.tenant)
        .bind(request_id)
        .fetch_optional(&store.writer)
        .await?;
    match row {
        Some(row) => Ok(Some(get_job(store, JobId(row.uuid("id")?)).await?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_binds_one_parameter_per_column() {
        let sql = insert_tasks_sql(3);
        let open = sql.find('(').expect("a column list");
        let close = sql.find(')').expect("a column list");
        assert_eq!(sql[open..close].split(',').count(), PER_ROW);
        let values = &sql[sql.find("VALUES").expect("VALUES")..];
        assert_eq!(values.matches('?').count(), 3 * PER_ROW);
    }
}
