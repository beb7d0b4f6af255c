//! SQLite workers: registration, liveness, runs of failed attempts,
//! quarantine and its release onto probation, draining, the listing `fresco
//! workers` shows, the models served, how many live workers serve each and
//! what they accept.

use std::time::Duration;

use fresco_core::{ModelCapabilities, WorkerId};

use super::SqliteStore;
use super::columns::{id_text, json_list, json_time, millis, now_ms};
use crate::error::{Result, StoreError, not_quarantined, registered};
use crate::records::{
    AttemptOutcome, ModelWorkers, RECENT_ERRORS, WorkerHealth, WorkerInfo, WorkerStatus,
};
use crate::rows::{
    Columns, capabilities_json, model_capabilities as capabilities_row,
    model_workers as model_workers_row, worker_health, worker_status,
};

pub(super) async fn register_worker(
    store: &SqliteStore,
    worker: &WorkerInfo,
    token: Option<&str>,
) -> Result<()> {
    let done = sqlx::query(include_str!("sql/register_worker.sql"))
        .bind(id_text(worker.id.0))
        .bind(&worker.name)
        .bind(&worker.device)
        .bind(json_list(&worker.models)?)
        .bind(json_list(&worker.loaded_models)?)
        .bind(now_ms())
        .bind(capabilities_json(&worker.capabilities)?.to_string())
        .bind(token)
        .execute(&store.writer)
        .await?;
    registered(worker, done.rows_affected())
}

pub(super) async fn worker_seen(
    store: &SqliteStore,
    id: WorkerId,
    loaded_models: Option<&[String]>,
) -> Result<()> {
    sqlx::query(include_str!("sql/worker_seen.sql"))
        .bind(id_text(id.0))
        .bind(now_ms())
        .bind(loaded_models.map(json_list).transpose()?)
        .execute(&store.writer)
        .await?;
    Ok(())
}

pub(super) async fn record_attempt(
    store: &SqliteStore,
    worker: WorkerId,
    outcome: AttemptOutcome<'_>,
    quarantine_after: u32,
) -> Result<WorkerHealth> {
    let now = now_ms();
    let failure = match outcome {
        AttemptOutcome::Succeeded => None,
        AttemptOutcome::Failed {
            task,
            attempt,
            message,
            kind,
        } => Some((id_text(task.0).to_string(), attempt, message, kind.as_str())),
    };
    let row = sqlx::query(include_str!("sql/record_attempt.sql"))
        .bind(id_text(worker.0))
        .bind(failure.is_none())
        .bind(i64::from(quarantine_after))
        .bind(now)
        .bind(failure.as_ref().map(|f| f.0.clone()))
        .bind(failure.as_ref().map(|f| i64::from(f.1)))
        .bind(failure.as_ref().map(|f| f.2))
        .bind(failure.as_ref().map(|f| f.3))
        .bind(RECENT_ERRORS as i64)
        .bind(json_time(now)?)
        .fetch_optional(&store.writer)
        .await?;
    match row {
        Some(row) => worker_health(&row),
        None => Err(StoreError::NotFound(format!("worker {worker}"))),
    }
}

pub(super) async fn release_quarantined(
    store: &SqliteStore,
    cooldown: Duration,
) -> Result<Vec<WorkerId>> {
    let rows = sqlx::query(include_str!("sql/release_quarantined.sql"))
        .bind(now_ms().saturating_sub(millis(cooldown)))
        .fetch_all(&store.writer)
        .await?;
    rows.iter()
        .map(|row| Ok(WorkerId(row.uuid("id")?)))
        .collect()
}

pub(super) async fn release_worker(store: &SqliteStore, id: WorkerId) -> Result<WorkerStatus> {
    let released = sqlx::query(include_str!("sql/release_worker.sql"))
        .bind(id_text(id.0))
        .fetch_optional(&store.writer)
        .await?;
    let worker = get_worker(store, id).await?;
    match (released, worker) {
        (Some(_), Some(worker)) => Ok(worker),
        (None, Some(_)) => Err(not_quarantined(id)),
        (_, None) => Err(StoreError::NotFound(format!("worker {id}"))),
    }
}

pub(super) async fn drain_worker(store: &SqliteStore, id: WorkerId) -> Result<WorkerStatus> {
    sqlx::query(include_str!("sql/drain_worker.sql"))
        .bind(id_text(id.0))
        .bind(now_ms())
        .fetch_optional(&store.writer)
        .await?;
    get_worker(store, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("worker {id}")))
}

pub(super) async fn worker_draining(store: &SqliteStore, id: WorkerId) -> Result<bool> {
    let row = sqlx::query(include_str!("sql/worker_draining.sql"))
        .bind(id_text(id.0))
        .fetch_optional(&store.reader)
        .await?;
    match row {
        Some(row) => row.flag("draining"),
        None => Err(StoreError::NotFound(format!("worker {id}"))),
    }
}

/// One worker as `list_workers` shows it, read on the writer so that it
/// sees the write just made.
async fn get_worker(store: &SqliteStore, id: WorkerId) -> Result<Option<WorkerStatus>> {
    let row = sqlx::query(include_str!("sql/get_worker.sql"))
        .bind(id_text(id.0))
        .bind(crate::progress::window_start(chrono::Utc::now()).timestamp_millis())
        .fetch_optional(&store.writer)
        .await?;
    row.as_ref().map(worker_status).transpose()
}

pub(super) async fn list_workers(store: &SqliteStore, limit: u32) -> Result<Vec<WorkerStatus>> {
    let rows = sqlx::query(include_str!("sql/list_workers.sql"))
        .bind(i64::from(limit))
        .bind(crate::progress::window_start(chrono::Utc::now()).timestamp_millis())
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(worker_status).collect()
}

pub(super) async fn served_models(store: &SqliteStore) -> Result<Vec<String>> {
    let rows = sqlx::query(include_str!("sql/served_models.sql"))
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(|row| row.text("model")).collect()
}

pub(super) async fn model_workers(
    store: &SqliteStore,
    models: &[String],
    lease: Duration,
) -> Result<Vec<ModelWorkers>> {
    let live_since = now_ms().saturating_sub(millis(lease).saturating_mul(2));
    let rows = sqlx::query(include_str!("sql/model_workers.sql"))
        .bind(json_list(models)?)
        .bind(live_since)
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(model_workers_row).collect()
}

pub(super) async fn model_capabilities(
    store: &SqliteStore,
    model: &str,
) -> Result<Vec<ModelCapabilities>> {
    let rows = sqlx::query(include_str!("sql/model_capabilities.sql"))
        .bind(model)
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(capabilities_row).collect()
}
