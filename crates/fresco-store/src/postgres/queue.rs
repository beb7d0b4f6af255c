//! What is dispatchable in Postgres now, for the reconciler: queued tasks
//! of unpaused jobs past their backoff, counted per model and paged in
//! dispatch order; the tenants' weights, which share each model's queue
//! out; and every model's tasks by state, for the coordinator's gauges.

use super::PgStore;
use crate::error::Result;
use crate::records::{ModelTaskCounts, QueuedTask};
use crate::rows::{Columns, model_task_counts, queued_task};

pub(super) async fn queued_counts(store: &PgStore) -> Result<Vec<(String, u64)>> {
    let rows = sqlx::query(include_str!("sql/queued_counts.sql"))
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|row| Ok((row.text("model")?, row.big("tasks")?)))
        .collect()
}

pub(super) async fn task_counts(store: &PgStore) -> Result<Vec<ModelTaskCounts>> {
    let rows = sqlx::query(include_str!("sql/task_counts.sql"))
        .fetch_all(&store.pool)
        .await?;
    model_task_counts(&rows)
}

pub(super) async fn queued_tasks(
    store: &PgStore,
    model: &str,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<QueuedTask>> {
    let rows = sqlx::query(include_str!("sql/queued_tasks.sql"))
        .bind(model)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(queued_task).collect()
}

/// Every tenant row's weight, by name; a tenant without a row weighs 1.
pub(super) async fn tenant_weights(store: &PgStore) -> Result<Vec<(String, u32)>> {
    let rows = sqlx::query(include_str!("sql/tenant_weights.sql"))
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|row| Ok((row.text("name")?, row.small("weight")?)))
        .collect()
}
