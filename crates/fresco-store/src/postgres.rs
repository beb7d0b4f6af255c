//! The Postgres [`JobStore`]: sqlx, migrations from `migrations/` applied
//! at connect, bulk inserts with `UNNEST`, claims and reports guarded by
//! state and fencing token in one statement each.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fresco_core::{JobId, JobSpec, TaskId, TaskSpec, TaskState, WorkerId};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, postgres::PgConnectOptions};
use uuid::Uuid;

use crate::JobStore;
use crate::error::{Result, StoreError, refusal_of, replay};
use crate::records::*;

/// Rows per `UNNEST` statement when storing a submission.
const INSERT_CHUNK: usize = 5_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The production store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Internal)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// When a task failed now may run again, as SQL over the old `failures`
/// count: `base · 2^failures` seconds, at most `max`, times a random factor
/// in [0.5, 1). The arguments name the base and max parameters (seconds).
macro_rules! backoff_sql {
    ($base:literal, $max:literal) => {
        concat!(
            "now() + make_interval(secs => least(",
            $max,
            "::FLOAT8, ",
            $base,
            "::FLOAT8 * power(2.0::FLOAT8, least(failures, 40))) * (0.5 + random() / 2))"
        )
    };
}

/// Whether worker `$2` already failed the task while another live worker
/// (seen within two leases of `$3` seconds, not quarantined, serving the
/// task's model) has not: then the task is not handed to `$2` again. Shared
/// by the claim and by the explanation of a refused claim.
macro_rules! failed_here_while_others_can {
    () => {
        "(errors @> jsonb_build_array(jsonb_build_object('worker', $2::TEXT))
          AND EXISTS (
              SELECT 1 FROM workers w
              WHERE w.id <> $2 AND w.quarantined_at IS NULL
                AND w.last_seen_at > now() - make_interval(secs => 2 * $3)
                AND tasks.model = ANY (w.models)
                AND NOT tasks.errors @> jsonb_build_array(
                    jsonb_build_object('worker', w.id::TEXT))))"
    };
}

/// The only way a queued task is dispatchable: its backoff has passed.
macro_rules! due {
    ($alias:literal) => {
        concat!(
            "(",
            $alias,
            "not_before IS NULL OR ",
            $alias,
            "not_before <= now())"
        )
    };
}

/// The columns [`task_from_row`] reads, as a literal for `concat!`.
macro_rules! task_columns {
    () => {
        "id, job_id, idx, model, prompt, negative_prompt, seed, steps, width, height, \
         guidance, n, sampler, schedule, state, attempt, worker_id, progress_step, \
         lease_expires_at, errors"
    };
}

fn task_from_row(row: &PgRow) -> Result<TaskRecord> {
    let state: String = row.try_get("state")?;
    let state = state
        .parse::<TaskState>()
        .map_err(|e| StoreError::Internal(sqlx::Error::Decode(Box::new(e))))?;
    let errors: serde_json::Value = row.try_get("errors")?;
    let errors: Vec<AttemptError> = serde_json::from_value(errors)
        .map_err(|e| StoreError::Internal(sqlx::Error::Decode(Box::new(e))))?;
    let worker: Option<Uuid> = row.try_get("worker_id")?;
    Ok(TaskRecord {
        id: TaskId(row.try_get("id")?),
        job_id: JobId(row.try_get("job_id")?),
        index: row.try_get::<i32, _>("idx")? as u32,
        model: row.try_get("model")?,
        spec: TaskSpec {
            prompt: row.try_get("prompt")?,
            negative_prompt: row.try_get("negative_prompt")?,
            seed: row.try_get::<i64, _>("seed")? as u64,
            steps: row.try_get::<i32, _>("steps")? as u32,
            width: row.try_get::<i32, _>("width")? as u32,
            height: row.try_get::<i32, _>("height")? as u32,
            guidance: row.try_get("guidance")?,
            n: row.try_get::<i32, _>("n")? as u32,
            sampler: row.try_get("sampler")?,
            schedule: serde_json::from_value(row.try_get("schedule")?)
                .map_err(|e| StoreError::Internal(sqlx::Error::Decode(Box::new(e))))?,
        },
        state,
        attempt: row.try_get::<i32, _>("attempt")? as u32,
        worker: worker.map(WorkerId),
        progress_step: row.try_get::<i32, _>("progress_step")? as u32,
        lease_expires_at: row.try_get("lease_expires_at")?,
        outputs: Vec::new(),
        errors,
    })
}

fn queued_from_row(row: &PgRow) -> Result<QueuedTask> {
    Ok(QueuedTask {
        id: TaskId(row.try_get("id")?),
        model: row.try_get("model")?,
        priority: row.try_get("priority")?,
        seq: row.try_get("seq")?,
    })
}

impl PgStore {
    /// The job stored under the spec's request id, if any.
    async fn job_by_request(&self, spec: &JobSpec) -> Result<Option<JobSummary>> {
        let Some(request_id) = &spec.request_id else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT id FROM jobs WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.get_job(JobId(row.try_get("id")?)).await?)),
            None => Ok(None),
        }
    }

    /// `NotFound` unless the job exists.
    async fn job_exists(&self, id: JobId) -> Result<()> {
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        match exists {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("job {id}"))),
        }
    }

    async fn counts(&self, jobs: &[Uuid]) -> Result<HashMap<Uuid, (StateCounts, (u64, u64))>> {
        let rows = sqlx::query(
            "SELECT job_id, state, count(*) AS tasks,
                    coalesce(sum(progress_step) FILTER (WHERE state = 'running'), 0)::BIGINT AS done,
                    coalesce(sum(steps) FILTER (WHERE state = 'running'), 0)::BIGINT AS total
             FROM tasks WHERE job_id = ANY($1) GROUP BY job_id, state",
        )
        .bind(jobs)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<Uuid, (StateCounts, (u64, u64))> = HashMap::new();
        for row in rows {
            let job: Uuid = row.try_get("job_id")?;
            let state: String = row.try_get("state")?;
            let Ok(state) = state.parse::<TaskState>() else {
                continue;
            };
            let entry = out.entry(job).or_default();
            entry
                .0
                .0
                .insert(state, row.try_get::<i64, _>("tasks")? as u64);
            entry.1.0 += row.try_get::<i64, _>("done")? as u64;
            entry.1.1 += row.try_get::<i64, _>("total")? as u64;
        }
        Ok(out)
    }

    async fn summaries(&self, rows: Vec<PgRow>) -> Result<Vec<JobSummary>> {
        let ids = rows
            .iter()
            .map(|r| r.try_get::<Uuid, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut counts = self.counts(&ids).await?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.try_get("id")?;
                let (counts, running_steps) = counts.remove(&id).unwrap_or_default();
                Ok(JobSummary {
                    id: JobId(id),
                    name: row.try_get("name")?,
                    owner: row.try_get("owner")?,
                    model: row.try_get("model")?,
                    priority: row.try_get("priority")?,
                    max_attempts: row.try_get::<i32, _>("max_attempts")? as u32,
                    task_count: row.try_get::<i64, _>("task_count")? as u64,
                    created_at: row.try_get("created_at")?,
                    paused: row.try_get("paused")?,
                    counts,
                    running_steps,
                })
            })
            .collect()
    }

    async fn outputs_of(&self, tasks: &mut [TaskRecord]) -> Result<()> {
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id.0).collect();
        let rows = sqlx::query(
            "SELECT task_id, idx, key, width, height, seed, bytes FROM outputs
             WHERE task_id = ANY($1) ORDER BY task_id, idx",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_task: HashMap<Uuid, Vec<OutputRecord>> = HashMap::new();
        for row in rows {
            by_task
                .entry(row.try_get("task_id")?)
                .or_default()
                .push(OutputRecord {
                    index: row.try_get::<i32, _>("idx")? as u32,
                    key: row.try_get("key")?,
                    width: row.try_get::<i32, _>("width")? as u32,
                    height: row.try_get::<i32, _>("height")? as u32,
                    seed: row.try_get::<i64, _>("seed")? as u64,
                    bytes: row.try_get::<i64, _>("bytes")? as u64,
                });
        }
        for task in tasks {
            task.outputs = by_task.remove(&task.id.0).unwrap_or_default();
        }
        Ok(())
    }

    /// Why a claim of a queued task was refused to this worker, if it was.
    async fn refusal(
        &self,
        task: TaskId,
        worker: WorkerId,
        lease: Duration,
    ) -> Result<Option<StoreError>> {
        let row = sqlx::query(concat!(
            "SELECT state,
                    coalesce((SELECT quarantined_at IS NOT NULL FROM workers WHERE id = $2),
                             false) AS quarantined, ",
            failed_here_while_others_can!(),
            " AS failed_here
             FROM tasks WHERE id = $1"
        ))
        .bind(task.0)
        .bind(worker.0)
        .bind(secs(lease))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(refusal_of(
            task,
            worker,
            &row.try_get::<String, _>("state")?,
            row.try_get("quarantined")?,
            row.try_get("failed_here")?,
        ))
    }

    /// Why a guarded update touched no row: the task is missing, or in
    /// another state / held under another token.
    async fn explain_miss(&self, task: TaskId, wanted: &str) -> StoreError {
        let row = sqlx::query("SELECT state, attempt FROM tasks WHERE id = $1")
            .bind(task.0)
            .fetch_optional(&self.pool)
            .await;
        match row {
            Ok(None) => StoreError::NotFound(format!("task {task}")),
            Ok(Some(row)) => {
                let state: String = row.try_get("state").unwrap_or_default();
                let attempt: i32 = row.try_get("attempt").unwrap_or_default();
                StoreError::Conflict(format!(
                    "task {task} is {state} at attempt {attempt}: {wanted}"
                ))
            }
            Err(e) => e.into(),
        }
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn submit(&self, spec: &JobSpec) -> Result<Submitted> {
        if let Some(stored) = self.job_by_request(spec).await? {
            return replay(spec, stored);
        }
        let job = JobId::new();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO jobs (id, name, owner, model, priority, max_attempts, task_count,
                 request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (request_id) DO NOTHING
             RETURNING id, name, owner, model, priority, max_attempts, task_count, created_at, paused",
        )
        .bind(job.0)
        .bind(&spec.name)
        .bind(&spec.owner)
        .bind(&spec.model)
        .bind(spec.priority)
        .bind(spec.max_attempts as i32)
        .bind(spec.tasks.len() as i64)
        .bind(spec.request_id.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // The same request, committed by a concurrent call meanwhile.
            tx.rollback().await?;
            let stored = self.job_by_request(spec).await?.ok_or_else(|| {
                StoreError::Conflict("a submission with this request_id vanished".into())
            })?;
            return replay(spec, stored);
        };
        let mut queued = Vec::with_capacity(spec.tasks.len());
        for (chunk_no, chunk) in spec.tasks.chunks(INSERT_CHUNK).enumerate() {
            let first = chunk_no * INSERT_CHUNK;
            let ids: Vec<Uuid> = chunk.iter().map(|_| TaskId::new().0).collect();
            let idx: Vec<i32> = (first..first + chunk.len()).map(|i| i as i32).collect();
            let col = |f: fn(&TaskSpec) -> String| chunk.iter().map(f).collect::<Vec<_>>();
            let int =
                |f: fn(&TaskSpec) -> u32| chunk.iter().map(|t| f(t) as i32).collect::<Vec<_>>();
            let rows = sqlx::query(
                "INSERT INTO tasks (id, job_id, idx, model, priority, max_attempts, prompt,
                     negative_prompt, seed, steps, width, height, guidance, n, sampler,
                     schedule)
                 SELECT t.id, $2, t.idx, $3, $4, $5, t.prompt, t.negative_prompt, t.seed,
                     t.steps, t.width, t.height, t.guidance, t.n, t.sampler, t.schedule::JSONB
                 FROM UNNEST($1::UUID[], $6::INT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[],
                     $10::INT[], $11::INT[], $12::INT[], $13::REAL[], $14::INT[], $15::TEXT[],
                     $16::TEXT[])
                     AS t(id, idx, prompt, negative_prompt, seed, steps, width, height,
                          guidance, n, sampler, schedule)
                 ORDER BY t.idx
                 RETURNING id, model, priority, seq",
            )
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
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                queued.push(queued_from_row(row)?);
            }
        }
        tx.commit().await?;
        queued.sort_by_key(|t| t.seq);
        let mut jobs = self.summaries(vec![row]).await?;
        let job = jobs
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("job {job}")))?;
        Ok(Submitted {
            job,
            tasks: queued,
            replayed: false,
        })
    }

    async fn get_job(&self, id: JobId) -> Result<JobSummary> {
        let rows = sqlx::query(
            "SELECT id, name, owner, model, priority, max_attempts, task_count, created_at, paused
             FROM jobs WHERE id = $1",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        self.summaries(rows)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
    }

    async fn list_jobs(&self, limit: u32, owner: Option<&str>) -> Result<Vec<JobSummary>> {
        let rows = sqlx::query(
            "SELECT id, name, owner, model, priority, max_attempts, task_count, created_at, paused
             FROM jobs WHERE ($2::TEXT IS NULL OR owner = $2)
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        self.summaries(rows).await
    }

    async fn cancel_job(&self, id: JobId) -> Result<Vec<QueuedTask>> {
        self.job_exists(id).await?;
        let rows = sqlx::query(
            "UPDATE tasks SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL
             WHERE job_id = $1 AND state IN ('queued', 'running')
             RETURNING id, model, priority, seq",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(queued_from_row).collect()
    }

    async fn cancel_task(&self, id: TaskId) -> Result<QueuedTask> {
        let row = sqlx::query(
            "UPDATE tasks SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL
             WHERE id = $1 AND state IN ('queued', 'running')
             RETURNING id, model, priority, seq",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => queued_from_row(&row),
            None => Err(self
                .explain_miss(id, "only a queued or running task can be cancelled")
                .await),
        }
    }

    async fn retry_job(&self, id: JobId) -> Result<Vec<QueuedTask>> {
        self.job_exists(id).await?;
        let rows = sqlx::query(
            "UPDATE tasks SET state = 'queued', failures = 0, finished_at = NULL, not_before = NULL
             WHERE job_id = $1 AND state = 'failed'
             RETURNING id, model, priority, seq",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        in_seq_order(rows.iter().map(queued_from_row))
    }

    async fn set_paused(&self, id: JobId, paused: bool) -> Result<Vec<QueuedTask>> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE jobs SET paused = $2 WHERE id = $1 RETURNING id")
            .bind(id.0)
            .bind(paused)
            .fetch_optional(&mut *tx)
            .await?;
        if updated.is_none() {
            return Err(StoreError::NotFound(format!("job {id}")));
        }
        let rows = sqlx::query(
            "SELECT id, model, priority, seq FROM tasks WHERE job_id = $1 AND state = 'queued'",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        in_seq_order(rows.iter().map(queued_from_row))
    }

    async fn get_task(&self, id: TaskId) -> Result<TaskRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
        let mut tasks = vec![task_from_row(&row)?];
        self.outputs_of(&mut tasks).await?;
        tasks
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("task {id}")))
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks
             WHERE ($1::UUID IS NULL OR job_id = $1) AND ($2::TEXT IS NULL OR state = $2)
               AND idx >= $3
             ORDER BY job_id, idx LIMIT $4"
        ))
        .bind(query.job.map(|j| j.0))
        .bind(query.state.map(TaskState::as_str))
        .bind(query.from_index as i32)
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
        self.outputs_of(&mut tasks).await?;
        Ok(tasks)
    }

    async fn has_output(&self, key: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM outputs WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, name, device, models, loaded_models)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = $2, device = $3, models = $4,
                 loaded_models = $5, last_seen_at = now()",
        )
        .bind(worker.id.0)
        .bind(&worker.name)
        .bind(&worker.device)
        .bind(&worker.models)
        .bind(&worker.loaded_models)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn worker_seen(&self, id: WorkerId, loaded_models: Option<&[String]>) -> Result<()> {
        sqlx::query(
            "UPDATE workers SET last_seen_at = now(),
                 loaded_models = coalesce($2, loaded_models)
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(loaded_models)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_attempt(
        &self,
        worker: WorkerId,
        succeeded: bool,
        quarantine_after: u32,
    ) -> Result<bool> {
        let row = sqlx::query(
            "UPDATE workers SET
                 consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures + 1 END,
                 quarantined_at = CASE
                     WHEN NOT $2 AND quarantined_at IS NULL
                          AND consecutive_failures + 1 >= $3 THEN now()
                     ELSE quarantined_at END
             WHERE id = $1
             RETURNING quarantined_at IS NOT NULL AS quarantined",
        )
        .bind(worker.0)
        .bind(succeeded)
        .bind(i32::try_from(quarantine_after).unwrap_or(i32::MAX))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(row.try_get("quarantined")?),
            None => Err(StoreError::NotFound(format!("worker {worker}"))),
        }
    }

    async fn list_workers(&self, limit: u32) -> Result<Vec<WorkerStatus>> {
        let rows = sqlx::query(
            "SELECT w.id, w.name, w.device, w.models, w.loaded_models, w.registered_at,
                    w.last_seen_at, w.consecutive_failures, w.quarantined_at,
                    coalesce(array_agg(t.id ORDER BY t.started_at, t.id)
                             FILTER (WHERE t.id IS NOT NULL), '{}') AS running
             FROM workers w LEFT JOIN tasks t ON t.worker_id = w.id AND t.state = 'running'
             GROUP BY w.id
             ORDER BY w.last_seen_at DESC, w.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let running: Vec<Uuid> = row.try_get("running")?;
                Ok(WorkerStatus {
                    info: WorkerInfo {
                        id: WorkerId(row.try_get("id")?),
                        name: row.try_get("name")?,
                        device: row.try_get("device")?,
                        models: row.try_get("models")?,
                        loaded_models: row.try_get("loaded_models")?,
                    },
                    registered_at: row.try_get("registered_at")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    running: running.into_iter().map(TaskId).collect(),
                    consecutive_failures: row.try_get::<i32, _>("consecutive_failures")? as u32,
                    quarantined_at: row.try_get("quarantined_at")?,
                })
            })
            .collect()
    }

    async fn served_models(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT unnest(models) AS model FROM workers ORDER BY 1")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("model").map_err(StoreError::from))
            .collect()
    }

    async fn claim(&self, task: TaskId, worker: WorkerId, lease: Duration) -> Result<Claim> {
        let row = sqlx::query(concat!(
            "UPDATE tasks SET state = 'running', attempt = attempt + 1, worker_id = $2,
                 lease_expires_at = now() + make_interval(secs => $3), started_at = now(),
                 progress_step = 0
             WHERE id = $1 AND state = 'queued'
               AND NOT (SELECT paused FROM jobs WHERE jobs.id = tasks.job_id) AND ",
            due!(""),
            "
               AND NOT EXISTS (SELECT 1 FROM workers q
                               WHERE q.id = $2 AND q.quarantined_at IS NOT NULL)
               AND NOT ",
            failed_here_while_others_can!(),
            "
             RETURNING ",
            task_columns!()
        ))
        .bind(task.0)
        .bind(worker.0)
        .bind(secs(lease))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            if let Some(refused) = self.refusal(task, worker, lease).await? {
                return Err(refused);
            }
            return Err(self
                .explain_miss(
                    task,
                    "only a queued task of an unpaused job, past its backoff, can be claimed",
                )
                .await);
        };
        let record = task_from_row(&row)?;
        let lease_expires_at: DateTime<Utc> = record
            .lease_expires_at
            .ok_or_else(|| StoreError::Conflict(format!("task {task} has no lease")))?;
        Ok(Claim {
            attempt: record.attempt,
            lease_expires_at,
            task: record,
        })
    }

    async fn heartbeat(&self, beat: &Heartbeat, lease: Duration) -> Result<Lease> {
        let row = sqlx::query(
            "UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $4),
                 progress_step = LEAST($5, steps)
             WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND state = 'running'
             RETURNING lease_expires_at",
        )
        .bind(beat.lease.task.0)
        .bind(beat.lease.worker.0)
        .bind(beat.lease.attempt as i32)
        .bind(secs(lease))
        .bind(beat.step as i32)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Lease::Extended(row.try_get("lease_expires_at")?)),
            None => Ok(Lease::Lost),
        }
    }

    async fn complete(&self, lease: &LeaseToken, outputs: &[OutputRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tasks SET state = 'succeeded', finished_at = now(), lease_expires_at = NULL,
                 progress_step = steps
             WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND state = 'running'
             RETURNING id",
        )
        .bind(lease.task.0)
        .bind(lease.worker.0)
        .bind(lease.attempt as i32)
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_none() {
            drop(tx);
            // A report sent again after its answer was lost: already recorded.
            let recorded: Vec<String> = sqlx::query_scalar(
                "SELECT o.key FROM outputs o JOIN tasks t ON t.id = o.task_id
                 WHERE t.id = $1 AND t.worker_id = $2 AND t.attempt = $3
                   AND t.state = 'succeeded' AND o.attempt = $3
                 ORDER BY o.idx",
            )
            .bind(lease.task.0)
            .bind(lease.worker.0)
            .bind(lease.attempt as i32)
            .fetch_all(&self.pool)
            .await?;
            if is_same_report(&recorded, outputs) {
                return Ok(());
            }
            return Err(self
                .explain_miss(lease.task, "the lease is not held by this attempt")
                .await);
        }
        sqlx::query(
            "INSERT INTO outputs (task_id, attempt, idx, key, width, height, seed, bytes)
             SELECT $1, $2, o.idx, o.key, o.width, o.height, o.seed, o.bytes
             FROM UNNEST($3::INT[], $4::TEXT[], $5::INT[], $6::INT[], $7::BIGINT[], $8::BIGINT[])
                 AS o(idx, key, width, height, seed, bytes)",
        )
        .bind(lease.task.0)
        .bind(lease.attempt as i32)
        .bind(outputs.iter().map(|o| o.index as i32).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.key.clone()).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.width as i32).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.height as i32).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.seed as i64).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.bytes as i64).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fail(
        &self,
        lease: &LeaseToken,
        message: &str,
        give_back: bool,
        backoff: Backoff,
    ) -> Result<FailOutcome> {
        let row = sqlx::query(concat!(
            "UPDATE tasks SET
                 failures = failures + CASE WHEN $5 THEN 0 ELSE 1 END,
                 errors = CASE WHEN $5 THEN errors ELSE errors || jsonb_build_array(
                     jsonb_build_object('attempt', attempt, 'worker', $2::TEXT,
                                        'message', $4::TEXT, 'at', now())) END,
                 state = CASE WHEN NOT $5 AND failures + 1 >= max_attempts
                              THEN 'failed' ELSE 'queued' END,
                 finished_at = CASE WHEN NOT $5 AND failures + 1 >= max_attempts
                                    THEN now() END,
                 not_before = CASE WHEN $5 THEN NULL ELSE ",
            backoff_sql!("$6", "$7"),
            " END,
                 lease_expires_at = NULL
             WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND state = 'running'
             RETURNING id, model, priority, seq, state, not_before"
        ))
        .bind(lease.task.0)
        .bind(lease.worker.0)
        .bind(lease.attempt as i32)
        .bind(message)
        .bind(give_back)
        .bind(secs(backoff.base))
        .bind(secs(backoff.max))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Err(self
                .explain_miss(lease.task, "the lease is not held by this attempt")
                .await);
        };
        let state: String = row.try_get("state")?;
        if state == TaskState::Queued.as_str() {
            Ok(FailOutcome::Requeued(
                queued_from_row(&row)?,
                row.try_get("not_before")?,
            ))
        } else {
            Ok(FailOutcome::Failed)
        }
    }

    async fn expire_leases(&self, backoff: Backoff) -> Result<Vec<Requeue>> {
        let rows = sqlx::query(concat!(
            "UPDATE tasks SET
                 failures = failures + 1,
                 errors = errors || jsonb_build_array(jsonb_build_object(
                     'attempt', attempt, 'worker', coalesce(worker_id::TEXT, ''),
                     'message', 'lease expired: the worker stopped sending heartbeats',
                     'at', now())),
                 state = CASE WHEN failures + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
                 finished_at = CASE WHEN failures + 1 >= max_attempts THEN now() END,
                 not_before = ",
            backoff_sql!("$1", "$2"),
            ",
                 lease_expires_at = NULL
             WHERE id IN (SELECT id FROM tasks
                          WHERE state = 'running' AND lease_expires_at < now()
                          ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
             RETURNING id, model, priority, seq, state, not_before"
        ))
        .bind(secs(backoff.base))
        .bind(secs(backoff.max))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(Requeue {
                    task: queued_from_row(row)?,
                    state: if state == "queued" {
                        TaskState::Queued
                    } else {
                        TaskState::Failed
                    },
                    not_before: row.try_get("not_before")?,
                })
            })
            .collect()
    }

    async fn release_running(&self) -> Result<Vec<QueuedTask>> {
        let rows = sqlx::query(
            "UPDATE tasks SET state = 'queued', lease_expires_at = NULL
             WHERE state = 'running'
             RETURNING id, model, priority, seq",
        )
        .fetch_all(&self.pool)
        .await?;
        in_seq_order(rows.iter().map(queued_from_row))
    }

    async fn queued_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(concat!(
            "SELECT t.model, count(*) AS tasks FROM tasks t JOIN jobs j ON j.id = t.job_id
             WHERE t.state = 'queued' AND NOT j.paused AND ",
            due!("t."),
            " GROUP BY t.model"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("model")?, r.try_get::<i64, _>("tasks")? as u64)))
            .collect()
    }

    async fn queued_tasks(
        &self,
        model: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<QueuedTask>> {
        let rows = sqlx::query(concat!(
            "SELECT t.id, t.model, t.priority, t.seq FROM tasks t JOIN jobs j ON j.id = t.job_id
             WHERE t.state = 'queued' AND t.model = $1 AND t.seq > $2 AND NOT j.paused AND ",
            due!("t."),
            " ORDER BY t.seq LIMIT $3"
        ))
        .bind(model)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(queued_from_row).collect()
    }
}
