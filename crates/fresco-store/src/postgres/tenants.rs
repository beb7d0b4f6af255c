//! Postgres tenants: their weights and limits, their use, the checks a
//! submission and a claim make against them, each reading only the use
//! its limits need (inside the caller's transaction, with the tenant's row
//! locked), and the device time each reported attempt adds.

use fresco_core::TaskId;
use sqlx::{PgConnection, Postgres, Transaction};

use super::PgStore;
use crate::error::Result;
use crate::quota::{self, ClaimFacts, SubmitFacts};
use crate::records::{TenantSettings, TenantUsage};
use crate::rows::{Columns, queued_task, tenant_limits, tenant_settings, tenant_usage};

/// Refuses a submission of `adding` tasks for `tenant` past its limits.
/// Runs inside the submission's transaction: the tenant's row stays
/// locked until it commits, so concurrent submissions are counted in turn.
pub(super) async fn check_submit(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    adding: u64,
) -> Result<()> {
    let Some(row) = sqlx::query(include_str!("sql/lock_tenant.sql"))
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(());
    };
    let limits = tenant_limits(&row)?;
    let used = sqlx::query(include_str!("sql/submit_use.sql"))
        .bind(tenant)
        .fetch_one(&mut **tx)
        .await?;
    let facts = SubmitFacts {
        queued: used.big("queued")?,
        adding,
        device_ms_today: used.big("device_ms_today")?,
    };
    quota::check_submit(tenant, &limits, facts)
}

/// Refuses the claim of queued task `task` while its tenant is at its
/// running limit or has spent today's device time. Runs inside the claim's
/// transaction, the tenant's row locked until it commits.
pub(super) async fn check_claim(tx: &mut Transaction<'_, Postgres>, task: TaskId) -> Result<()> {
    let Some(row) = sqlx::query(include_str!("sql/lock_claim_tenant.sql"))
        .bind(task.0)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(());
    };
    let task = queued_task(&row)?;
    let limits = tenant_limits(&row)?;
    let used = sqlx::query(include_str!("sql/claim_use.sql"))
        .bind(&task.tenant)
        .fetch_one(&mut **tx)
        .await?;
    let facts = ClaimFacts {
        running: used.big("running")?,
        device_ms_today: used.big("device_ms_today")?,
    };
    quota::check_claim(&task.tenant, &limits, facts).map_err(|err| quota::held(err, task))
}

/// Adds a reported attempt of `task` and its device time to its tenant's
/// usage today.
pub(super) async fn record_usage(
    conn: &mut PgConnection,
    task: TaskId,
    device_ms: u64,
) -> Result<()> {
    sqlx::query(include_str!("sql/record_usage.sql"))
        .bind(task.0)
        .bind(i64::try_from(device_ms).unwrap_or(i64::MAX))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn set_tenant(store: &PgStore, tenant: &TenantSettings) -> Result<()> {
    let limits = &tenant.limits;
    sqlx::query(include_str!("sql/upsert_tenant.sql"))
        .bind(&tenant.name)
        .bind(limits.weight as i32)
        .bind(quota::column(limits.max_queued_tasks))
        .bind(quota::column(limits.max_running_tasks))
        .bind(quota::column(limits.max_device_seconds_per_day))
        .execute(&store.pool)
        .await?;
    Ok(())
}

pub(super) async fn list_tenants(store: &PgStore) -> Result<Vec<TenantSettings>> {
    let rows = sqlx::query(include_str!("sql/list_tenants.sql"))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(tenant_settings).collect()
}

pub(super) async fn usage(store: &PgStore, tenant: &str) -> Result<TenantUsage> {
    let mut conn = store.pool.acquire().await?;
    let limits = match sqlx::query(include_str!("sql/get_tenant.sql"))
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(row) => tenant_limits(&row)?,
        None => Default::default(),
    };
    tenant_use(&mut conn, tenant, limits).await
}

async fn tenant_use(
    conn: &mut PgConnection,
    tenant: &str,
    limits: crate::records::TenantLimits,
) -> Result<TenantUsage> {
    let row = sqlx::query(include_str!("sql/tenant_use.sql"))
        .bind(tenant)
        .fetch_one(conn)
        .await?;
    tenant_usage(tenant, limits, &row)
}
