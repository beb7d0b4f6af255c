//! Postgres workers: registration, liveness, runs of failed attempts,
//! quarantine and its release onto probation, draining, the listing `fresco
//! workers` shows, the models served, how many live workers serve each and
//! what they accept.

use std::time::Duration;

use fresco_core::{ModelCapabilities, WorkerId};

use super::PgStore;
use super::columns::secs;
use crate::error::{Result, StoreError, not_quarantined, registered};
use crate::records::{
    AttemptOutcome, ModelWorkers, RECENT_ERRORS, WorkerHealth, WorkerInfo, WorkerStatus,
};
use crate::rows::{
    Columns, capabilities_json, model_capabilities as capabilities_row,
    model_workers as model_workers_row, worker_health, worker_status,
};

pub(super) async fn register_worker(
    store: &PgStore,
    worker: &WorkerInfo,
    token: Option<&str>,
) -> Result<()> {
    let done = sqlx::query(include_str!("sql/register_worker.sql"))
        .bind(worker.id.0)
        .bind(&worker.name)
        .bind(&worker.device)
        .bind(&worker.models)
        .bind(&worker.loaded_models)
        .bind(capabilities_json(&worker.capabilities)?)
        .bind(token)
        .execute(&store.pool)
        .await?;
    registered(worker, done.rows_affected())
}

pub(super) async fn worker_seen(
    store: &PgStore,
    id: WorkerId,
    loaded_models: Option<&[String]>,
) -> Result<()> {
    sqlx::query(include_str!("sql/worker_seen.sql"))
        .bind(id.0)
        .bind(loaded_models)
        .execute(&store.pool)
        .await?;
    Ok(())
}

pub(super) async fn record_attempt(
    store: &PgStore,
    worker: WorkerId,
    outcome: AttemptOutcome<'_>,
    quarantine_after: u32,
) -> Result<WorkerHealth> {
    let failure = match outcome {
        AttemptOutcome::Succeeded => None,
        AttemptOutcome::Failed {
            task,
            attempt,
            message,
            kind,
        } => Some((task.0.to_string(), attempt, message, kind.as_str())),
    };
    let row = sqlx::query(include_str!("sql/record_attempt.sql"))
        .bind(worker.0)
        .bind(failure.is_none())
        .bind(i32::try_from(quarantine_after).unwrap_or(i32::MAX))
        .bind(failure.as_ref().map(|f| f.0.clone()))
        .bind(
            failure
                .as_ref()
                .map(|f| i32::try_from(f.1).unwrap_or(i32::MAX)),
        )
        .bind(failure.as_ref().map(|f| f.2))
        .bind(failure.as_ref().map(|f| f.3))
        .bind(RECENT_ERRORS as i32)
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => worker_health(&row),
        None => Err(StoreError::NotFound(format!("worker {worker}"))),
    }
}

pub(super) async fn release_quarantined(
    store: &PgStore,
    cooldown: Duration,
) -> Result<Vec<WorkerId>> {
    let rows = sqlx::query(include_str!("sql/release_quarantined.sql"))
        .bind(secs(cooldown))
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|row| Ok(WorkerId(row.uuid("id")?)))
        .collect()
}

pub(super) async fn release_worker(store: &PgStore, id: WorkerId) -> Result<WorkerStatus> {
    let released = sqlx::query(include_str!("sql/release_worker.sql"))
        .bind(id.0)
        .fetch_optional(&store.pool)
        .await?;
    let worker = get_worker(store, id).await?;
    match (released, worker) {
        (Some(_), Some(worker)) => Ok(worker),
        (None, Some(_)) => Err(not_quarantined(id)),
        (_, None) => Err(StoreError::NotFound(format!("worker {id}"))),
    }
}

pub(super) async fn drain_worker(store: &PgStore, id: WorkerId) -> Result<WorkerStatus> {
    sqlx::query(include_str!("sql/drain_worker.sql"))
        .bind(id.0)
        .fetch_optional(&store.pool)
        .await?;
    get_worker(store, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("worker {id}")))
}

pub(super) async fn worker_draining(store: &PgStore, id: WorkerId) -> Result<bool> {
    let row = sqlx::query(include_str!("sql/worker_draining.sql"))
        .bind(id.0)
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => row.flag("draining"),
        None => Err(StoreError::NotFound(format!("worker {id}"))),
    }
}

/// One worker as `list_workers` shows it.
async fn get_worker(store: &PgStore, id: WorkerId) -> Result<Option<WorkerStatus>> {
    let row = sqlx::query(include_str!("sql/get_worker.sql"))
        .bind(id.0)
        .bind(crate::progress::window_start(chrono::Utc::now()))
        .fetch_optional(&store.pool)
        .await?;
    row.as_ref().map(worker_status).transpose()
}

pub(super) async fn list_workers(store: &PgStore, limit: u32) -> Result<Vec<WorkerStatus>> {
    let rows = sqlx::query(include_str!("sql/list_workers.sql"))
        .bind(i64::from(limit))
        .bind(crate::progress::window_start(chrono::Utc::now()))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(worker_status).collect()
}

pub(super) async fn served_models(store: &PgStore) -> Result<Vec<String>> {
    let rows = sqlx::query(include_str!("sql/served_models.sql"))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(|row| row.text("model")).collect()
}

pub(super) async fn model_workers(
    store: &PgStore,
    models: &[String],
    lease: Duration,
) -> Result<Vec<ModelWorkers>> {
    let rows = sqlx::query(include_str!("sql/model_workers.sql"))
        .bind(models)
        .bind(secs(lease))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(model_workers_row).collect()
}

pub(super) async fn model_capabilities(
    store: &PgStore,
    model: &str,
) -> Result<Vec<ModelCapabilities>> {
    let rows = sqlx::query(include_str!("sql/model_capabilities.sql"))
        .bind(model)
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(capabilities_row).collect()
}
