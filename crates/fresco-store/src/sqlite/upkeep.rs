//! SQLite upkeep for the coordinator's housekeeping passes: queued tasks
//! failed at their job's deadline, and tasks whose ended attempts may have
//! left stray objects in storage, until they are swept.

use std::time::Duration;

use fresco_core::TaskId;

use super::SqliteStore;
use super::columns::{id_text, json_time, millis, now_ms};
use crate::error::Result;
use crate::records::{DeadlineMiss, SweepCandidate};
use crate::rows::{deadline_miss, sweep_candidate};

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
