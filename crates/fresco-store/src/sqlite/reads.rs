//! The SQLite store's reads that several operations share: a job's task
//! counts, job summaries, the outputs of tasks, and why a guarded update
//! touched no row. They run on the reader pool; sets of ids travel as one
//! JSON array bound to `json_each`.

use std::collections::HashMap;

use fresco_core::{JobId, TaskId, WorkerId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{
    failed_here_while_others_can, now_ms, plus, state_at, text, time_from_ms, undecodable, uuid_at,
};
use crate::JobStore;
use crate::error::{Result, StoreError, refusal_of};
use crate::records::{JobSummary, OutputRecord, StateCounts, TaskRecord};

/// The columns [`SqliteStore::summaries`] reads, as a literal for
/// `concat!`.
macro_rules! job_columns {
    () => {
        "id, name, owner, model, priority, max_attempts, task_count, created_at, paused"
    };
}
pub(super) use job_columns;

/// A set of ids as the JSON array `json_each` reads.
fn id_array(ids: impl Iterator<Item = Uuid>) -> Result<String> {
    let ids: Vec<String> = ids.map(|id| text(id).to_string()).collect();
    serde_json::to_string(&ids).map_err(undecodable)
}

impl SqliteStore {
    /// The job stored under the spec's request id, if any.
    pub(super) async fn job_by_request(
        &self,
        spec: &fresco_core::JobSpec,
    ) -> Result<Option<JobSummary>> {
        let Some(request_id) = &spec.request_id else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT id FROM jobs WHERE request_id = ?1")
            .bind(request_id)
            .fetch_optional(&self.writer)
            .await?;
        match row {
            Some(row) => Ok(Some(self.get_job(JobId(uuid_at(&row, "id")?)).await?)),
            None => Ok(None),
        }
    }

    /// `NotFound` unless the job exists.
    pub(super) async fn job_exists(&self, id: JobId) -> Result<()> {
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE id = ?1")
            .bind(text(id.0))
            .fetch_optional(&self.reader)
            .await?;
        match exists {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("job {id}"))),
        }
    }

    async fn counts(&self, jobs: &[Uuid]) -> Result<HashMap<Uuid, (StateCounts, (u64, u64))>> {
        let rows = sqlx::query(
            "SELECT job_id, state, count(*) AS tasks,
                    coalesce(sum(CASE WHEN state = 'running' THEN progress_step END), 0) AS done,
                    coalesce(sum(CASE WHEN state = 'running' THEN steps END), 0) AS total
             FROM tasks WHERE job_id IN (SELECT value FROM json_each(?1))
             GROUP BY job_id, state",
        )
        .bind(id_array(jobs.iter().copied())?)
        .fetch_all(&self.reader)
        .await?;
        let mut out: HashMap<Uuid, (StateCounts, (u64, u64))> = HashMap::new();
        for row in rows {
            let Ok(state) = state_at(&row, "state") else {
                continue;
            };
            let entry = out.entry(uuid_at(&row, "job_id")?).or_default();
            entry
                .0
                .0
                .insert(state, row.try_get::<i64, _>("tasks")? as u64);
            entry.1.0 += row.try_get::<i64, _>("done")? as u64;
            entry.1.1 += row.try_get::<i64, _>("total")? as u64;
        }
        Ok(out)
    }

    /// Job rows (of [`job_columns`]) with their counts.
    pub(super) async fn summaries(&self, rows: Vec<SqliteRow>) -> Result<Vec<JobSummary>> {
        let ids = rows
            .iter()
            .map(|r| uuid_at(r, "id"))
            .collect::<Result<Vec<_>>>()?;
        let mut counts = self.counts(&ids).await?;
        rows.iter()
            .map(|row| {
                let id = uuid_at(row, "id")?;
                let (counts, running_steps) = counts.remove(&id).unwrap_or_default();
                Ok(JobSummary {
                    id: JobId(id),
                    name: row.try_get("name")?,
                    owner: row.try_get("owner")?,
                    model: row.try_get("model")?,
                    priority: row.try_get("priority")?,
                    max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
                    task_count: row.try_get::<i64, _>("task_count")? as u64,
                    created_at: time_from_ms(row.try_get("created_at")?)?,
                    paused: row.try_get("paused")?,
                    counts,
                    running_steps,
                })
            })
            .collect()
    }

    pub(super) async fn outputs_of(&self, tasks: &mut [TaskRecord]) -> Result<()> {
        let rows = sqlx::query(
            "SELECT task_id, idx, key, width, height, seed, bytes FROM outputs
             WHERE task_id IN (SELECT value FROM json_each(?1)) ORDER BY task_id, idx",
        )
        .bind(id_array(tasks.iter().map(|t| t.id.0))?)
        .fetch_all(&self.reader)
        .await?;
        let mut by_task: HashMap<Uuid, Vec<OutputRecord>> = HashMap::new();
        for row in rows {
            by_task
                .entry(uuid_at(&row, "task_id")?)
                .or_default()
                .push(OutputRecord {
                    index: row.try_get::<i64, _>("idx")? as u32,
                    key: row.try_get("key")?,
                    width: row.try_get::<i64, _>("width")? as u32,
                    height: row.try_get::<i64, _>("height")? as u32,
                    seed: row.try_get::<i64, _>("seed")? as u64,
                    bytes: row.try_get::<i64, _>("bytes")? as u64,
                });
        }
        for task in tasks {
            task.outputs = by_task.remove(&task.id.0).unwrap_or_default();
        }
        Ok(())
    }

    /// Why a guarded update touched no row: the task is missing, or in
    /// another state / held under another token.
    /// Why a claim of a queued task was refused to this worker, if it was.
    pub(super) async fn refusal(
        &self,
        task: TaskId,
        worker: WorkerId,
        lease: std::time::Duration,
    ) -> Result<Option<StoreError>> {
        let now = now_ms();
        let row = sqlx::query(concat!(
            "SELECT state,
                    coalesce((SELECT quarantined_at IS NOT NULL FROM workers WHERE id = ?2), 0)
                        AS quarantined, ",
            failed_here_while_others_can!(),
            " AS failed_here
             FROM tasks WHERE id = ?1"
        ))
        .bind(text(task.0))
        .bind(text(worker.0))
        .bind(plus(now, lease))
        .bind(now)
        .fetch_optional(&self.reader)
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

    pub(super) async fn explain_miss(&self, task: TaskId, wanted: &str) -> StoreError {
        let row = sqlx::query("SELECT state, attempt FROM tasks WHERE id = ?1")
            .bind(text(task.0))
            .fetch_optional(&self.reader)
            .await;
        match row {
            Ok(None) => StoreError::NotFound(format!("task {task}")),
            Ok(Some(row)) => {
                let state: String = row.try_get("state").unwrap_or_default();
                let attempt: i64 = row.try_get("attempt").unwrap_or_default();
                StoreError::Conflict(format!(
                    "task {task} is {state} at attempt {attempt}: {wanted}"
                ))
            }
            Err(e) => e.into(),
        }
    }
}
