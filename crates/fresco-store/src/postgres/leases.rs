//! Postgres leases: a claim, its heartbeats, and the report that ends it
//! (complete or fail); leases whose heartbeats stopped, and leases handed
//! back at start. Every write after a claim is fenced in its `WHERE`
//! clause by task, worker and attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fresco_core::{TaskId, TaskState, WorkerId};

use super::PgStore;
use super::columns::secs;
use super::reads::explain_miss;
use crate::error::{RefusalFacts, Result, StoreError, refusal_of};
use crate::records::*;
use crate::rows::{Columns, expired_lease, queued_task, task_record};

pub(super) async fn claim(
    store: &PgStore,
    task: TaskId,
    worker: WorkerId,
    lease: Duration,
) -> Result<Claim> {
    let mut tx = store.pool.begin().await?;
    super::tenants::check_claim(&mut tx, task).await?;
    let row = sqlx::query(include_str!("sql/claim.sql"))
        .bind(task.0)
        .bind(worker.0)
        .bind(secs(lease))
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    let Some(row) = row else {
        if let Some(refused) = refusal(store, task, worker, lease).await? {
            return Err(refused);
        }
        return Err(explain_miss(
            store,
            task,
            "only a queued task of an unpaused job, past its backoff, can be claimed",
        )
        .await);
    };
    let record = task_record(&row)?;
    let lease_expires_at: DateTime<Utc> = record
        .lease_expires_at
        .ok_or_else(|| StoreError::Conflict(format!("task {task} has no lease")))?;
    Ok(Claim {
        attempt: record.attempt,
        lease_expires_at,
        due_at: row.time("due_at")?,
        claimed_at: row.time("claimed_at")?,
        task: record,
    })
}

/// Why a claim of a queued task was refused to this worker, if it was.
async fn refusal(
    store: &PgStore,
    task: TaskId,
    worker: WorkerId,
    lease: Duration,
) -> Result<Option<StoreError>> {
    let row = sqlx::query(include_str!("sql/claim_refusal.sql"))
        .bind(task.0)
        .bind(worker.0)
        .bind(secs(lease))
        .fetch_optional(&store.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(refusal_of(
        task,
        worker,
        RefusalFacts {
            state: &row.text("state")?,
            draining: row.flag("draining")?,
            quarantined: row.flag("quarantined")?,
            probing: row.flag("probing")?,
            failed_here: row.flag("failed_here")?,
        },
    ))
}

pub(super) async fn heartbeat(store: &PgStore, beat: &Heartbeat, lease: Duration) -> Result<Lease> {
    let row = sqlx::query(include_str!("sql/heartbeat.sql"))
        .bind(beat.lease.task.0)
        .bind(beat.lease.worker.0)
        .bind(beat.lease.attempt as i32)
        .bind(secs(lease))
        .bind(beat.step as i32)
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => Ok(Lease::Extended(row.time("lease_expires_at")?)),
        None => Ok(Lease::Lost),
    }
}

pub(super) async fn complete(
    store: &PgStore,
    lease: &LeaseToken,
    report: &CompletionReport<'_>,
) -> Result<()> {
    let outputs = report.outputs;
    let mut tx = store.pool.begin().await?;
    let done = sqlx::query(include_str!("sql/complete.sql"))
        .bind(lease.task.0)
        .bind(lease.worker.0)
        .bind(lease.attempt as i32)
        .bind(report.weights_sha256)
        .bind(report.device_ms as i64)
        .fetch_optional(&mut *tx)
        .await?;
    if done.is_none() {
        drop(tx);
        // A report sent again after its answer was lost: already recorded.
        let recorded: Vec<String> = sqlx::query_scalar(include_str!("sql/recorded_outputs.sql"))
            .bind(lease.task.0)
            .bind(lease.worker.0)
            .bind(lease.attempt as i32)
            .fetch_all(&store.pool)
            .await?;
        if is_same_report(&recorded, outputs) {
            return Ok(());
        }
        return Err(explain_miss(store, lease.task, "the lease is not held by this attempt").await);
    }
    sqlx::query(include_str!("sql/insert_outputs.sql"))
        .bind(lease.task.0)
        .bind(lease.attempt as i32)
        .bind(outputs.iter().map(|o| o.index as i32).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.key.clone()).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.width as i32).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.height as i32).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.seed as i64).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.bytes as i64).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.sha256.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    super::tenants::record_usage(&mut tx, lease.task, report.device_ms).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn fail(
    store: &PgStore,
    lease: &LeaseToken,
    report: &FailReport<'_>,
    backoff: Backoff,
) -> Result<FailOutcome> {
    let mut tx = store.pool.begin().await?;
    let row = sqlx::query(include_str!("sql/fail.sql"))
        .bind(lease.task.0)
        .bind(lease.worker.0)
        .bind(lease.attempt as i32)
        .bind(report.message)
        .bind(report.give_back)
        .bind(secs(backoff.base))
        .bind(secs(backoff.max))
        .bind(report.kind.as_str())
        .bind(report.kind.is_retryable())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        drop(tx);
        return Err(explain_miss(store, lease.task, "the lease is not held by this attempt").await);
    };
    super::tenants::record_usage(&mut tx, lease.task, report.device_ms).await?;
    tx.commit().await?;
    if row.state("state")? == TaskState::Queued {
        Ok(FailOutcome::Requeued(
            queued_task(&row)?,
            row.optional_time("not_before")?,
        ))
    } else {
        Ok(FailOutcome::Failed)
    }
}

pub(super) async fn expire_leases(store: &PgStore, backoff: Backoff) -> Result<Vec<Requeue>> {
    let rows = sqlx::query(include_str!("sql/expire_leases.sql"))
        .bind(secs(backoff.base))
        .bind(secs(backoff.max))
        .bind(LEASE_EXPIRED)
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(expired_lease).collect()
}

pub(super) async fn release_running(store: &PgStore) -> Result<Vec<QueuedTask>> {
    let rows = sqlx::query(include_str!("sql/release_running.sql"))
        .fetch_all(&store.pool)
        .await?;
    in_seq_order(rows.iter().map(queued_task))
}
