//! Between SQLite's column types and the store's records: UUIDs as
//! hyphenated TEXT, timestamps as INTEGER milliseconds since the Unix epoch,
//! errors as a JSON array in TEXT; and the rows of `tasks` as
//! [`TaskRecord`]s and [`QueuedTask`]s.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use fresco_core::params::Schedule;
use fresco_core::{JobId, TaskId, TaskSpec, TaskState, WorkerId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::error::{Result, StoreError};
use crate::records::{AttemptError, QueuedTask, TaskRecord};

/// The columns [`task_from_row`] reads, as a literal for `concat!`.
macro_rules! task_columns {
    () => {
        "id, job_id, idx, model, prompt, negative_prompt, seed, steps, width, height, \
         guidance, n, sampler, schedule, state, attempt, worker_id, progress_step, \
         lease_expires_at, errors"
    };
}
pub(super) use task_columns;

/// A value the database holds that the store cannot read back.
pub(super) fn undecodable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(sqlx::Error::Decode(what.to_string().into()))
}

/// How every UUID is bound: hyphenated lowercase TEXT (a bare [`Uuid`]
/// would be bound as a BLOB and match nothing).
pub(super) fn text(id: Uuid) -> Hyphenated {
    id.hyphenated()
}

pub(super) fn uuid_at(row: &SqliteRow, column: &str) -> Result<Uuid> {
    Ok(row.try_get::<Hyphenated, _>(column)?.into_uuid())
}

/// Now, in the milliseconds the timestamp columns hold.
pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `now` plus a lease, in milliseconds (saturating: a lease of centuries is
/// a lease that never ends).
pub(super) fn plus(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn time_from_ms(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| undecodable(format!("timestamp {ms} ms is out of range")))
}

/// The `at` of an [`AttemptError`] as the JSON in `errors` holds it:
/// RFC 3339 in UTC, which serde reads back as a `DateTime<Utc>`.
pub(super) fn json_time(ms: i64) -> Result<String> {
    Ok(time_from_ms(ms)?.to_rfc3339_opts(SecondsFormat::Millis, true))
}

pub(super) fn state_at(row: &SqliteRow, column: &str) -> Result<TaskState> {
    let state: String = row.try_get(column)?;
    state.parse::<TaskState>().map_err(undecodable)
}

fn u32_at(row: &SqliteRow, column: &str) -> Result<u32> {
    Ok(row.try_get::<i64, _>(column)? as u32)
}

pub(super) fn task_from_row(row: &SqliteRow) -> Result<TaskRecord> {
    let errors: String = row.try_get("errors")?;
    let errors: Vec<AttemptError> = serde_json::from_str(&errors).map_err(undecodable)?;
    let worker: Option<Hyphenated> = row.try_get("worker_id")?;
    let lease: Option<i64> = row.try_get("lease_expires_at")?;
    Ok(TaskRecord {
        id: TaskId(uuid_at(row, "id")?),
        job_id: JobId(uuid_at(row, "job_id")?),
        index: u32_at(row, "idx")?,
        model: row.try_get("model")?,
        spec: TaskSpec {
            prompt: row.try_get("prompt")?,
            negative_prompt: row.try_get("negative_prompt")?,
            seed: row.try_get::<i64, _>("seed")? as u64,
            steps: u32_at(row, "steps")?,
            width: u32_at(row, "width")?,
            height: u32_at(row, "height")?,
            guidance: row.try_get("guidance")?,
            n: u32_at(row, "n")?,
            sampler: row.try_get("sampler")?,
            schedule: Schedule::from_json(row.try_get("schedule")?).map_err(undecodable)?,
        },
        state: state_at(row, "state")?,
        attempt: u32_at(row, "attempt")?,
        worker: worker.map(|w| WorkerId(w.into_uuid())),
        progress_step: u32_at(row, "progress_step")?,
        lease_expires_at: lease.map(time_from_ms).transpose()?,
        outputs: Vec::new(),
        errors,
    })
}

/// Reads `id, model, priority, seq`.
pub(super) fn queued_from_row(row: &SqliteRow) -> Result<QueuedTask> {
    Ok(QueuedTask {
        id: TaskId(uuid_at(row, "id")?),
        model: row.try_get("model")?,
        priority: row.try_get("priority")?,
        seq: row.try_get("seq")?,
    })
}

/// Whether worker `?2` already failed the task while another live worker
/// (seen since `?4 − 2·(?3 − ?4)`, i.e. within two leases of now `?4` when
/// `?3` is now plus a lease; not quarantined; serving the task's model) has
/// not: then the task is not handed to `?2` again. Shared by the claim and
/// by the explanation of a refused claim.
macro_rules! failed_here_while_others_can {
    () => {
        "(EXISTS (SELECT 1 FROM json_each(tasks.errors) e
                  WHERE json_extract(e.value, '$.worker') = ?2)
          AND EXISTS (
              SELECT 1 FROM workers w
              WHERE w.id <> ?2 AND w.quarantined_at IS NULL
                AND w.last_seen_at > ?4 - 2 * (?3 - ?4)
                AND EXISTS (SELECT 1 FROM json_each(w.models) m WHERE m.value = tasks.model)
                AND NOT EXISTS (SELECT 1 FROM json_each(tasks.errors) e
                                WHERE json_extract(e.value, '$.worker') = w.id)))"
    };
}
pub(super) use failed_here_while_others_can;
