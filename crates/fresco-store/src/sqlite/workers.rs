//! SQLite workers: registration, liveness, runs of failed attempts and
//! quarantine, the listing `fresco workers` shows, the models served and
//! what they accept.

use fresco_core::{ModelCapabilities, WorkerId};

use super::SqliteStore;
use super::columns::{id_text, json_list, now_ms};
use crate::error::{Result, StoreError};
use crate::records::{WorkerInfo, WorkerStatus};
use crate::rows::{
    Columns, capabilities_json, model_capabilities as capabilities_row, worker_status,
};

pub(super) async fn register_worker(store: &SqliteStore, worker: &WorkerInfo) -> Result<()> {
    sqlx::query(include_str!("sql/register_worker.sql"))
        .bind(id_text(worker.id.0))
        .bind(&worker.name)
        .bind(&worker.device)
        .bind(json_list(&worker.models)?)
        .bind(json_list(&worker.loaded_models)?)
        .bind(now_ms())
        .bind(capabilities_json(&worker.capabilities)?.to_string())
        .execute(&store.writer)
        .await?;
    Ok(())
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
    succeeded: bool,
    quarantine_after: u32,
) -> Result<bool> {
    let row = sqlx::query(include_str!("sql/record_attempt.sql"))
        .bind(id_text(worker.0))
        .bind(succeeded)
        .bind(i64::from(quarantine_after))
        .bind(now_ms())
        .fetch_optional(&store.writer)
        .await?;
    match row {
        Some(row) => row.flag("quarantined"),
        None => Err(StoreError::NotFound(format!("worker {worker}"))),
    }
}

pub(super) async fn list_workers(store: &SqliteStore, limit: u32) -> Result<Vec<WorkerStatus>> {
    let rows = sqlx::query(include_str!("sql/list_workers.sql"))
        .bind(i64::from(limit))
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
