//! Storing a submission in Postgres: the job row and all its tasks in one
//! transaction, the tasks as `UNNEST` inserts of [`INSERT_CHUNK`] rows,
//! after the tenant's limits are checked in the same transaction; a
//! submission whose request id is stored already is replayed instead.

use fresco_core::sweep::Sweep;
use fresco_core::{JobId, JobSpec, TaskId, TaskSpec};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::columns::secs;
use super::reads::{get_job, summaries};
use crate::error::{Result, StoreError, replay};
use crate::records::{JobSummary, Submitted};
use crate::rows::{Columns, queued_task};

/// Rows per `UNNEST` statement when storing a submission.
const INSERT_CHUNK: usize = 5_000;

pub(super) async fn submit(store: &PgStore, spec: &JobSpec) -> Result<Submitted> {
    if let Some(stored) = job_by_request(store, spec).await? {
        return replay(spec, stored);
    }
    let job = JobId::new();
    let mut tx = store.pool.begin().await?;
    super::tenants::check_submit(&mut tx, &spec.tenant, spec.tasks.len() as u64).await?;
    let row = sqlx::query(include_str!("sql/insert_job.sql"))
        .bind(job.0)
        .bind(&spec.name)
        .bind(&spec.owner)
        .bind(&spec.model)
        .bind(spec.priority)
        .bind(spec.max_attempts as i32)
        .bind(spec.tasks.len() as i64)
        .bind(spec.request_id.as_deref())
        .bind(spec.deadline.map(secs))
        .bind(&spec.tenant)
        .bind(&spec.traceparent)
        .bind(spec.sweep.as_ref().map(Sweep::to_json))
        .bind(sqlx::types::Json(&spec.labels))
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        // The same request, committed by a concurrent call meanwhile.
        tx.rollback().await?;
        let stored = job_by_request(store, spec).await?.ok_or_else(|| {
            StoreError::Conflict("a submission with this request_id vanished".into())
        })?;
        return replay(spec, stored);
    };
    let mut queued = Vec::with_capacity(spec.tasks.len());
    for (chunk_no, chunk) in spec.tasks.chunks(INSERT_CHUNK).enumerate() {
        let rows = insert_tasks(&mut tx, job, spec, chunk_no * INSERT_CHUNK, chunk).await?;
        for row in &rows {
            queued.push(queued_task(row)?);
        }
    }
    tx.commit().await?;
    queued.sort_by_key(|t| t.seq);
    let mut jobs = summaries(store, vec![row]).await?;
    let job = jobs
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("job {job}")))?;
    Ok(Submitted {
        job,
        tasks: queued,
        replayed: false,
    })
}

/// Inserts one chunk of the job's tasks, the first at index `first`.
async fn insert_tasks(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job: JobId,
    spec: &JobSpec,
    first: usize,
    chunk: &[TaskSpec],
) -> Result<Vec<PgRow>> {
    let ids: Vec<Uuid> = chunk.iter().map(|_| TaskId::new().0).collect();
    let idx: Vec<i32> = (first..first + chunk.len()).map(|i| i as i32).collect();
    let col = |f: fn(&TaskSpec) -> String| chunk.iter().map(f).collect::<Vec<_>>();
    let int = |f: fn(&TaskSpec) -> u32| chunk.iter().map(|t| f(t) as i32).collect::<Vec<_>>();
    Ok(sqlx::query(include_str!("sql/insert_tasks.sql"))
        .bind(&ids)
        .bind(job.0)
        .bind(&spec.model)
        .bind(spec.priority)
        .bind(spec.max_attempts as i32)
        .bind(&idx)
        .bind(col(|t| t.prompt.clone()))
        .bind(col(|t| t.negative_prompt.clone()))
        .bind(chunk.iter().map(|t| t.seed as i64).collect::<Vec<_>>())
        .bind(int(|t| t.steps))
        .bind(int(|t| t.width))
        .bind(int(|t| t.height))
        .bind(chunk.iter().map(|t| t.guidance).collect::<Vec<_>>())
        .bind(int(|t| t.n))
        .bind(col(|t| t.sampler.clone()))
        .bind(col(|t| t.schedule.to_json()))
        .bind(coordinates(spec, first, chunk.len()))
        .fetch_all(&mut **tx)
        .await?)
}

/// The stored coordinates of `len` tasks from index `first`: each its place
/// in the job's sweep, none when the job is not a sweep.
fn coordinates(spec: &JobSpec, first: usize, len: usize) -> Vec<Option<String>> {
    (first..first + len)
        .map(|index| {
            let sweep = spec.sweep.as_ref()?;
            Some(sweep.coordinates(index as u64).to_json())
        })
        .collect()
}

/// The job stored under the spec's request id, if any.
async fn job_by_request(store: &PgStore, spec: &JobSpec) -> Result<Option<JobSummary>> {
    let Some(request_id) = &spec.request_id else {
        return Ok(None);
    };
    let row = sqlx::query(include_str!("sql/job_by_request.sql"))
        .bind(&spec.tenant)
        .bind(request_id)
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => Ok(Some(get_job(store, JobId(row.uuid("id")?)).await?)),
        None => Ok(None),
    }
}
