//! Postgres workers: registration, liveness, runs of failed attempts and
//! quarantine, the listing `fresco workers` shows, the models served and
//! what they accept.

use fresco_core::{ModelCapabilities, WorkerId};

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::records::{WorkerInfo, WorkerStatus};
use crate::rows::{
    Columns, capabilities_json, model_capabilities as capabilities_row, worker_status,
};

pub(super) async fn register_worker(store: &PgStore, worker: &WorkerInfo) -> Result<()> {
    sqlx::query(include_str!("sql/register_worker.sql"))
        .bind(worker.id.0)
        .bind(&worker.name)
        .bind(&worker.device)
        .bind(&worker.models)
        .bind(&worker.loaded_models)
        .bind(capabilities_json(&worker.capabilities)?)
        .execute(&store.pool)
        .await?;
    Ok(())
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
    succeeded: bool,
    quarantine_after: u32,
) -> Result<bool> {
    let row = sqlx::query(include_str!("sql/record_attempt.sql"))
        .bind(worker.0)
        .bind(succeeded)
        .bind(i32::try_from(quarantine_after).unwrap_or(i32::MAX))
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => row.flag("quarantined"),
        None => Err(StoreError::NotFound(format!("worker {worker}"))),
    }
}

pub(super) async fn list_workers(store: &PgStore, limit: u32) -> Result<Vec<WorkerStatus>> {
    let rows = sqlx::query(include_str!("sql/list_workers.sql"))
        .bind(i64::from(limit))
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
