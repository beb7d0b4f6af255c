//! The embedded SQLite [`JobStore`], for `fresco dev`: one file, the same
//! semantics as the Postgres store, migrations from `migrations-sqlite/`
//! applied at open.
//!
//! Types (see the migration): UUIDs are hyphenated TEXT, timestamps INTEGER
//! milliseconds since the Unix epoch taken from the clock here and bound as
//! parameters, `errors` and a worker's model lists JSON TEXT, and a task's
//! `seq` its AUTOINCREMENT rowid.
//!
//! Concurrency: SQLite has one writer at a time, so every write goes
//! through a pool of exactly one connection. Writers queue in that pool
//! instead of meeting `SQLITE_BUSY` or the deadlock of two deferred
//! transactions both upgrading to write; multi-statement writes still
//! begin with `BEGIN IMMEDIATE`, and a 5 s busy timeout covers other
//! processes that open the file. Reads go through a small pool of
//! read-only connections and, with the WAL journal, never wait for the
//! writer. A write that commits is seen by every read that starts after.
//! `synchronous = NORMAL`: a power cut may lose the last commits, never
//! the file.
//!
//! - `rows`: column types to records.
//! - `reads`: counts, summaries, outputs, why an update missed.
//! - `submit`: the bulk insert of a submission.

mod reads;
mod rows;
mod submit;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{JobId, JobSpec, TaskId, TaskState, WorkerId};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use self::reads::job_columns;
use self::rows::{
    failed_here_while_others_can, json_time, now_ms, plus, queued_from_row, state_at, task_columns,
    task_from_row, text, time_from_ms, undecodable, uuid_at,
};
use crate::JobStore;
use crate::error::{Result, StoreError, replay};
use crate::records::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a statement waits for a lock another process holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write waits for its turn on the one writer connection.
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// Read-only connections.
const READERS: u32 = 4;

/// The embedded store: a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write.
    writer: SqlitePool,
    /// Read-only connections: every read.
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when missing) and applies
    /// pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // The writer stays open for the store's life, so the WAL and its
        // shared memory outlive any reader.
        let writer = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(
                options
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}

/// When a task failed now may run again, as SQL over the old `failures`
/// count: `base · 2^failures` ms after `now`, at most `max`, times a random
/// factor in [0.5, 1). The arguments name the now, base and max parameters
/// (milliseconds).
macro_rules! backoff_sql {
    ($now:literal, $base:literal, $max:literal) => {
        concat!(
            $now,
            " + CAST(min(",
            $max,
            ", ",
            $base,
            " * (1 << min(failures, 40))) * (0.5 + (abs(random()) % 1000000) / 2000000.0) AS INTEGER)"
        )
    };
}

/// The only way a queued task is dispatchable: its backoff has passed
/// (`?now` names the parameter holding now).
macro_rules! due {
    ($alias:literal, $now:literal) => {
        concat!(
            "(",
            $alias,
            "not_before IS NULL OR ",
            $alias,
            "not_before <= ",
            $now,
            ")"
        )
    };
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn not_before_at(row: &SqliteRow) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    row.try_get::<Option<i64>, _>("not_before")?
        .map(time_from_ms)
        .transpose()
}

/// A `failed`/`queued` row that left `running`, as a [`Requeue`].
fn requeue_from_row(row: &SqliteRow) -> Result<Requeue> {
    Ok(Requeue {
        task: queued_from_row(row)?,
        state: state_at(row, "state")?,
        not_before: not_before_at(row)?,
    })
}

fn worker_from_row(row: &SqliteRow) -> Result<WorkerStatus> {
    let list = |column: &str| -> Result<Vec<String>> {
        serde_json::from_str(&row.try_get::<String, _>(column)?).map_err(undecodable)
    };
    let running = list("running")?
        .iter()
        .map(|id| id.parse().map(TaskId).map_err(undecodable))
        .collect::<Result<Vec<_>>>()?;
    Ok(WorkerStatus {
        info: WorkerInfo {
            id: WorkerId(uuid_at(row, "id")?),
            name: row.try_get("name")?,
            device: row.try_get("device")?,
            models: list("models")?,
            loaded_models: list("loaded_models")?,
        },
        registered_at: time_from_ms(row.try_get("registered_at")?)?,
        last_seen_at: time_from_ms(row.try_get("last_seen_at")?)?,
        running,
        consecutive_failures: row.try_get::<i64, _>("consecutive_failures")? as u32,
        quarantined_at: row
            .try_get::<Option<i64>, _>("quarantined_at")?
            .map(time_from_ms)
            .transpose()?,
    })
}

fn json_list(values: &[String]) -> Result<String> {
    serde_json::to_string(values).map_err(undecodable)
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn submit(&self, spec: &JobSpec) -> Result<Submitted> {
        if let Some(stored) = self.job_by_request(spec).await? {
            return replay(spec, stored);
        }
        let job = JobId::new();
        let tasks = match self.insert_submission(job, spec, now_ms()).await {
            Ok(tasks) => tasks,
            // The same request, stored by a concurrent call meanwhile.
            Err(StoreError::Internal(sqlx::Error::Database(db))) if db.is_unique_violation() => {
                let stored = self.job_by_request(spec).await?.ok_or_else(|| {
                    StoreError::Conflict("a submission with this request_id vanished".into())
                })?;
                return replay(spec, stored);
            }
            Err(err) => return Err(err),
        };
        let job = self.get_job(job).await?;
        Ok(Submitted {
            job,
            tasks,
            replayed: false,
        })
    }

    async fn get_job(&self, id: JobId) -> Result<JobSummary> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = ?1"
        ))
        .bind(text(id.0))
        .fetch_all(&self.reader)
        .await?;
        self.summaries(rows)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
    }

    async fn list_jobs(&self, limit: u32, owner: Option<&str>) -> Result<Vec<JobSummary>> {
        // Milliseconds can tie: the rowid is the order of insertion.
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE (?2 IS NULL OR owner = ?2)
             ORDER BY created_at DESC, rowid DESC LIMIT ?1"
        ))
        .bind(i64::from(limit))
        .bind(owner)
        .fetch_all(&self.reader)
        .await?;
        self.summaries(rows).await
    }

    async fn cancel_job(&self, id: JobId) -> Result<Vec<QueuedTask>> {
        self.job_exists(id).await?;
        let rows = sqlx::query(
            "UPDATE tasks SET state = 'cancelled', finished_at = ?2, lease_expires_at = NULL
             WHERE job_id = ?1 AND state IN ('queued', 'running')
             RETURNING id, model, priority, seq",
        )
        .bind(text(id.0))
        .bind(now_ms())
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(queued_from_row).collect()
    }

    async fn cancel_task(&self, id: TaskId) -> Result<QueuedTask> {
        let row = sqlx::query(
            "UPDATE tasks SET state = 'cancelled', finished_at = ?2, lease_expires_at = NULL
             WHERE id = ?1 AND state IN ('queued', 'running')
             RETURNING id, model, priority, seq",
        )
        .bind(text(id.0))
        .bind(now_ms())
        .fetch_optional(&self.writer)
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
             WHERE job_id = ?1 AND state = 'failed'
             RETURNING id, model, priority, seq",
        )
        .bind(text(id.0))
        .fetch_all(&self.writer)
        .await?;
        in_seq_order(rows.iter().map(queued_from_row))
    }

    async fn set_paused(&self, id: JobId, paused: bool) -> Result<Vec<QueuedTask>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query("UPDATE jobs SET paused = ?2 WHERE id = ?1 RETURNING id")
            .bind(text(id.0))
            .bind(paused)
            .fetch_optional(&mut *tx)
            .await?;
        if updated.is_none() {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("job {id}")));
        }
        let rows = sqlx::query(
            "SELECT id, model, priority, seq FROM tasks WHERE job_id = ?1 AND state = 'queued'",
        )
        .bind(text(id.0))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        in_seq_order(rows.iter().map(queued_from_row))
    }

    async fn get_task(&self, id: TaskId) -> Result<TaskRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id = ?1"
        ))
        .bind(text(id.0))
        .fetch_optional(&self.reader)
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
             WHERE (?1 IS NULL OR job_id = ?1) AND (?2 IS NULL OR state = ?2) AND idx >= ?3
             ORDER BY job_id, idx LIMIT ?4"
        ))
        .bind(query.job.map(|j| text(j.0)))
        .bind(query.state.map(TaskState::as_str))
        .bind(i64::from(query.from_index))
        .bind(i64::from(query.limit))
        .fetch_all(&self.reader)
        .await?;
        let mut tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
        self.outputs_of(&mut tasks).await?;
        Ok(tasks)
    }

    async fn has_output(&self, key: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM outputs WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, name, device, models, loaded_models, registered_at,
                 last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, device = excluded.device,
                 models = excluded.models, loaded_models = excluded.loaded_models,
                 last_seen_at = excluded.last_seen_at",
        )
        .bind(text(worker.id.0))
        .bind(&worker.name)
        .bind(&worker.device)
        .bind(json_list(&worker.models)?)
        .bind(json_list(&worker.loaded_models)?)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn worker_seen(&self, id: WorkerId, loaded_models: Option<&[String]>) -> Result<()> {
        sqlx::query(
            "UPDATE workers SET last_seen_at = ?2, loaded_models = coalesce(?3, loaded_models)
             WHERE id = ?1",
        )
        .bind(text(id.0))
        .bind(now_ms())
        .bind(loaded_models.map(json_list).transpose()?)
        .execute(&self.writer)
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
                 consecutive_failures = CASE WHEN ?2 THEN 0 ELSE consecutive_failures + 1 END,
                 quarantined_at = CASE
                     WHEN NOT ?2 AND quarantined_at IS NULL
                          AND consecutive_failures + 1 >= ?3 THEN ?4
                     ELSE quarantined_at END
             WHERE id = ?1
             RETURNING quarantined_at IS NOT NULL AS quarantined",
        )
        .bind(text(worker.0))
        .bind(succeeded)
        .bind(i64::from(quarantine_after))
        .bind(now_ms())
        .fetch_optional(&self.writer)
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
                    (SELECT json_group_array(t.id) FROM
                         (SELECT id FROM tasks WHERE worker_id = w.id AND state = 'running'
                          ORDER BY started_at, id) AS t) AS running
             FROM workers w
             ORDER BY w.last_seen_at DESC, w.rowid DESC LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(worker_from_row).collect()
    }

    async fn served_models(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT m.value AS model FROM workers, json_each(workers.models) AS m
             ORDER BY 1",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| r.try_get("model").map_err(StoreError::from))
            .collect()
    }

    async fn claim(&self, task: TaskId, worker: WorkerId, lease: Duration) -> Result<Claim> {
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE tasks SET state = 'running', attempt = attempt + 1, worker_id = ?2,
                 lease_expires_at = ?3, started_at = ?4, progress_step = 0
             WHERE id = ?1 AND state = 'queued'
               AND NOT (SELECT paused FROM jobs WHERE jobs.id = tasks.job_id) AND ",
            due!("", "?4"),
            "
               AND NOT EXISTS (SELECT 1 FROM workers q
                               WHERE q.id = ?2 AND q.quarantined_at IS NOT NULL)
               AND NOT ",
            failed_here_while_others_can!(),
            "
             RETURNING ",
            task_columns!()
        ))
        .bind(text(task.0))
        .bind(text(worker.0))
        .bind(plus(now, lease))
        .bind(now)
        .fetch_optional(&self.writer)
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
        let lease_expires_at = record
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
            "UPDATE tasks SET lease_expires_at = ?4, progress_step = min(?5, steps)
             WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND state = 'running'
             RETURNING lease_expires_at",
        )
        .bind(text(beat.lease.task.0))
        .bind(text(beat.lease.worker.0))
        .bind(i64::from(beat.lease.attempt))
        .bind(plus(now_ms(), lease))
        .bind(i64::from(beat.step))
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => Ok(Lease::Extended(time_from_ms(
                row.try_get("lease_expires_at")?,
            )?)),
            None => Ok(Lease::Lost),
        }
    }

    async fn complete(&self, lease: &LeaseToken, outputs: &[OutputRecord]) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "UPDATE tasks SET state = 'succeeded', finished_at = ?4, lease_expires_at = NULL,
                 progress_step = steps
             WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND state = 'running'
             RETURNING id",
        )
        .bind(text(lease.task.0))
        .bind(text(lease.worker.0))
        .bind(i64::from(lease.attempt))
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_none() {
            tx.rollback().await?;
            // A report sent again after its answer was lost: already recorded.
            let recorded: Vec<String> = sqlx::query_scalar(
                "SELECT o.key FROM outputs o JOIN tasks t ON t.id = o.task_id
                 WHERE t.id = ?1 AND t.worker_id = ?2 AND t.attempt = ?3
                   AND t.state = 'succeeded' AND o.attempt = ?3
                 ORDER BY o.idx",
            )
            .bind(text(lease.task.0))
            .bind(text(lease.worker.0))
            .bind(i64::from(lease.attempt))
            .fetch_all(&self.writer)
            .await?;
            if is_same_report(&recorded, outputs) {
                return Ok(());
            }
            return Err(self
                .explain_miss(lease.task, "the lease is not held by this attempt")
                .await);
        }
        for output in outputs {
            sqlx::query(
                "INSERT INTO outputs (task_id, attempt, idx, key, width, height, seed, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(text(lease.task.0))
            .bind(i64::from(lease.attempt))
            .bind(i64::from(output.index))
            .bind(&output.key)
            .bind(i64::from(output.width))
            .bind(i64::from(output.height))
            .bind(output.seed as i64)
            .bind(output.bytes as i64)
            .execute(&mut *tx)
            .await?;
        }
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
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE tasks SET
                 failures = failures + CASE WHEN ?5 THEN 0 ELSE 1 END,
                 errors = CASE WHEN ?5 THEN errors ELSE json_insert(errors, '$[#]',
                     json_object('attempt', attempt, 'worker', ?2, 'message', ?4,
                                 'at', ?7)) END,
                 state = CASE WHEN NOT ?5 AND failures + 1 >= max_attempts
                              THEN 'failed' ELSE 'queued' END,
                 finished_at = CASE WHEN NOT ?5 AND failures + 1 >= max_attempts
                                    THEN ?6 END,
                 not_before = CASE WHEN ?5 THEN NULL ELSE ",
            backoff_sql!("?6", "?8", "?9"),
            " END,
                 lease_expires_at = NULL
             WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND state = 'running'
             RETURNING id, model, priority, seq, state, not_before"
        ))
        .bind(text(lease.task.0))
        .bind(text(lease.worker.0))
        .bind(i64::from(lease.attempt))
        .bind(message)
        .bind(give_back)
        .bind(now)
        .bind(json_time(now)?)
        .bind(millis(backoff.base))
        .bind(millis(backoff.max))
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else {
            return Err(self
                .explain_miss(lease.task, "the lease is not held by this attempt")
                .await);
        };
        if state_at(&row, "state")? == TaskState::Queued {
            Ok(FailOutcome::Requeued(
                queued_from_row(&row)?,
                not_before_at(&row)?,
            ))
        } else {
            Ok(FailOutcome::Failed)
        }
    }

    async fn expire_leases(&self, backoff: Backoff) -> Result<Vec<Requeue>> {
        let now = now_ms();
        let rows = sqlx::query(concat!(
            "UPDATE tasks SET
                 failures = failures + 1,
                 errors = json_insert(errors, '$[#]', json_object(
                     'attempt', attempt, 'worker', coalesce(worker_id, ''),
                     'message', 'lease expired: the worker stopped sending heartbeats',
                     'at', ?2)),
                 state = CASE WHEN failures + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
                 finished_at = CASE WHEN failures + 1 >= max_attempts THEN ?1 END,
                 not_before = ",
            backoff_sql!("?1", "?3", "?4"),
            ",
                 lease_expires_at = NULL
             WHERE seq IN (SELECT seq FROM tasks
                           WHERE state = 'running' AND lease_expires_at < ?1
                           ORDER BY lease_expires_at LIMIT 1000)
             RETURNING id, model, priority, seq, state, not_before"
        ))
        .bind(now)
        .bind(json_time(now)?)
        .bind(millis(backoff.base))
        .bind(millis(backoff.max))
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(requeue_from_row).collect()
    }

    async fn release_running(&self) -> Result<Vec<QueuedTask>> {
        let rows = sqlx::query(
            "UPDATE tasks SET state = 'queued', lease_expires_at = NULL
             WHERE state = 'running'
             RETURNING id, model, priority, seq",
        )
        .fetch_all(&self.writer)
        .await?;
        in_seq_order(rows.iter().map(queued_from_row))
    }

    async fn queued_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(concat!(
            "SELECT t.model, count(*) AS tasks FROM tasks t JOIN jobs j ON j.id = t.job_id
             WHERE t.state = 'queued' AND NOT j.paused AND ",
            due!("t.", "?1"),
            " GROUP BY t.model"
        ))
        .bind(now_ms())
        .fetch_all(&self.reader)
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
             WHERE t.state = 'queued' AND t.model = ?1 AND t.seq > ?2 AND NOT j.paused AND ",
            due!("t.", "?4"),
            " ORDER BY t.seq LIMIT ?3"
        ))
        .bind(model)
        .bind(after_seq)
        .bind(i64::from(limit))
        .bind(now_ms())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(queued_from_row).collect()
    }
}
