//! SQLite leases: a claim, its heartbeats, and the report that ends it
//! (complete or fail); leases whose heartbeats stopped, and leases handed
//! back at start. Every write after a claim is fenced in its `WHERE`
//! clause by task, worker and attempt.

use std::time::Duration;

use fresco_core::{TaskId, TaskState, WorkerId};

use super::SqliteStore;
use super::columns::{id_text, json_time, millis, now_ms, plus};
use super::reads::explain_miss;
use crate::error::{RefusalFacts, Result, StoreError, refusal_of};
use crate::records::*;
use crate::rows::{Columns, expired_lease, queued_task, task_record};

pub(super) async fn claim(
    store: &SqliteStore,
    task: TaskId,
    worker: WorkerId,
    lease: Duration,
) -> Result<Claim> {
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    super::tenants::check_claim(&mut tx, task).await?;
    let now = now_ms();
    let row = sqlx::query(include_str!("sql/claim.sql"))
        .bind(id_text(task.0))
        .bind(id_text(worker.0))
        .bind(plus(now, lease))
        .bind(now)
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
    let lease_expires_at = record
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
    store: &SqliteStore,
    task: TaskId,
    worker: WorkerId,
    lease: Duration,
) -> Result<Option<StoreError>> {
    let now = now_ms();
    let row = sqlx::query(include_str!("sql/claim_refusal.sql"))
        .bind(id_text(task.0))
        .bind(id_text(worker.0))
        .bind(plus(now, lease))
        .bind(now)
        .fetch_optional(&store.reader)
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

pub(super) async fn heartbeat(
    store: &SqliteStore,
    beat: &Heartbeat,
    lease: Duration,
) -> Result<Lease> {
    let row = sqlx::query(include_str!("sql/heartbeat.sql"))
        .bind(id_text(beat.lease.task.0))
        .bind(id_text(beat.lease.worker.0))
        .bind(i64::from(beat.lease.attempt))
        .bind(plus(now_ms(), lease))
        .bind(i64::from(beat.step))
        .fetch_optional(&store.writer)
        .await?;
    match row {
        Some(row) => Ok(Lease::Extended(row.time("lease_expires_at")?)),
        None => Ok(Lease::Lost),
    }
}

pub(super) async fn complete(
    store: &SqliteStore,
    lease: &LeaseToken,
    report: &CompletionReport<'_>,
) -> Result<()> {
    let outputs = report.outputs;
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query(include_str!("sql/complete.sql"))
        .bind(id_text(lease.task.0))
        .bind(id_text(lease.worker.0))
        .bind(i64::from(lease.attempt))
        .bind(now_ms())
        .bind(report.weights_sha256)
        .bind(report.device_ms as i64)
        .fetch_optional(&mut *tx)
        .await?;
    if done.is_none() {
        tx.rollback().await?;
        // A report sent again after its answer was lost: already recorded.
        let recorded: Vec<String> = sqlx::query_scalar(include_str!("sql/recorded_outputs.sql"))
            .bind(id_text(lease.task.0))
            .bind(id_text(lease.worker.0))
            .bind(i64::from(lease.attempt))
            .fetch_all(&store.writer)
            .await?;
        if is_same_report(&recorded, outputs) {
            return Ok(());
        }
        return Err(explain_miss(store, lease.task, "the lease is not held by this attempt").await);
    }
    for output in outputs {
        sqlx::query(include_str!("sql/insert_outputs.sql"))
            .bind(id_text(lease.task.0))
            .bind(i64::from(lease.attempt))
            .bind(i64::from(output.index))
            .bind(&output.key)
            .bind(i64::from(output.width))
            .bind(i64::from(output.height))
            .bind(output.seed as i64)
            .bind(output.bytes as i64)
            .bind(&output.sha256)
            .execute(&mut *tx)
            .await?;
    }
    super::tenants::record_usage(&mut tx, lease.task, report.device_ms).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn fail(
    store: &SqliteStore,
    lease: &LeaseToken,
    report: &FailReport<'_>,
    backoff: Backoff,
) -> Result<FailOutcome> {
    let now = now_ms();
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query(include_str!("sql/fail.sql"))
        .bind(id_text(lease.task.0))
        .bind(id_text(lease.worker.0))
        .bind(i64::from(lease.attempt))
        .bind(report.message)
        .bind(report.give_back)
        .bind(now)
        .bind(json_time(now)?)
        .bind(millis(backoff.base))
        .bind(millis(backoff.max))
        .bind(report.kind.as_str())
        .bind(report.kind.is_retryable())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
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

pub(super) async fn expire_leases(store: &SqliteStore, backoff: Backoff) -> Result<Vec<Requeue>> {
    let now = now_ms();
    let rows = sqlx::query(include_str!("sql/expire_leases.sql"))
        .bind(now)
        .bind(json_time(now)?)
        .bind(millis(backoff.base))
        .bind(millis(backoff.max))
        .bind(LEASE_EXPIRED)
        .fetch_all(&store.writer)
        .await?;
    rows.iter().map(expired_lease).collect()
}

pub(super) async fn release_running(store: &SqliteStore) -> Result<Vec<QueuedTask>> {
    let rows = sqlx::query(include_str!("sql/release_running.sql"))
        .bind(now_ms())
        .fetch_all(&store.writer)
        .await?;
    in_seq_order(rows.iter().map(queued_task))
}
