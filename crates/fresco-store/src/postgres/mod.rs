//! The Postgres [`JobStore`]: sqlx, migrations from `migrations/postgres/`
//! applied at connect, bulk inserts with `UNNEST`, claims and reports
//! guarded by state and fencing token in one statement each.
//!
//! Every statement is one file in `sql/`, named for what it does; the
//! SQLite store has its twin under the same name. The modules split the
//! operations the same way in both stores:
//!
//! - `columns`: how a fetched column is read (see [`crate::rows`]).
//! - `submit`: storing a submission, replays included.
//! - `reads`: jobs, tasks and outputs as clients read them, and why a
//!   guarded update touched no row.
//! - `control`: cancel, retry, pause and resume.
//! - `workers`: registration, liveness, failures in a row, listing.
//! - `keys`: credentials (digests only), and the token a worker
//!   registered with.
//! - `leases`: claim, heartbeat, complete, fail, expiry and release.
//! - `queue`: what is dispatchable now, for the reconciler.
//! - `upkeep`: deadlines passed, and attempts to sweep stray objects of.
//! - `tenants`: weights and limits, use, the quota checks of submissions
//!   and claims, and the device time reports add.

mod columns;
mod control;
mod keys;
mod leases;
mod queue;
mod reads;
mod submit;
mod tenants;
mod upkeep;
mod workers;

use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{JobId, JobSpec, ModelCapabilities, TaskId, WorkerId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::JobStore;
use crate::error::{Result, StoreError};
use crate::progress::JobFilter;
use crate::records::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The production store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Internal)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The newest migration this build applies: its version and
    /// description.
    pub fn latest_migration() -> Option<(i64, String)> {
        MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .max_by_key(|(version, _)| *version)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn submit(&self, spec: &JobSpec) -> Result<Submitted> {
        submit::submit(self, spec).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query(include_str!("sql/ping.sql"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_job(&self, id: JobId) -> Result<JobSummary> {
        reads::get_job(self, id).await
    }

    async fn list_jobs(&self, limit: u32, filter: &JobFilter) -> Result<Vec<JobSummary>> {
        reads::list_jobs(self, limit, filter).await
    }

    async fn cancel_job(&self, id: JobId) -> Result<Vec<QueuedTask>> {
        control::cancel_job(self, id).await
    }

    async fn cancel_task(&self, id: TaskId) -> Result<QueuedTask> {
        control::cancel_task(self, id).await
    }

    async fn retry_job(&self, id: JobId) -> Result<Vec<QueuedTask>> {
        control::retry_job(self, id).await
    }

    async fn set_paused(&self, id: JobId, paused: bool) -> Result<Vec<QueuedTask>> {
        control::set_paused(self, id, paused).await
    }

    async fn set_priority(&self, id: JobId, priority: i32) -> Result<Vec<QueuedTask>> {
        control::set_priority(self, id, priority).await
    }

    async fn get_task(&self, id: TaskId) -> Result<TaskRecord> {
        reads::get_task(self, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>> {
        reads::list_tasks(self, query).await
    }

    async fn has_output(&self, key: &str) -> Result<bool> {
        reads::has_output(self, key).await
    }

    async fn job_traceparent(&self, id: JobId) -> Result<String> {
        reads::job_traceparent(self, id).await
    }

    async fn job_outputs(&self, id: JobId, keys: &[String]) -> Result<Vec<OutputRecord>> {
        reads::job_outputs(self, id, keys).await
    }

    async fn output_job(&self, key: &str) -> Result<Option<JobId>> {
        reads::output_job(self, key).await
    }

    async fn register_worker(&self, worker: &WorkerInfo, token: Option<&str>) -> Result<()> {
        workers::register_worker(self, worker, token).await
    }

    async fn worker_token(&self, id: WorkerId) -> Result<Option<String>> {
        keys::worker_token(self, id).await
    }

    async fn worker_seen(&self, id: WorkerId, loaded_models: Option<&[String]>) -> Result<()> {
        workers::worker_seen(self, id, loaded_models).await
    }

    async fn record_attempt(
        &self,
        worker: WorkerId,
        outcome: AttemptOutcome<'_>,
        quarantine_after: u32,
    ) -> Result<WorkerHealth> {
        workers::record_attempt(self, worker, outcome, quarantine_after).await
    }

    async fn release_quarantined(&self, cooldown: Duration) -> Result<Vec<WorkerId>> {
        workers::release_quarantined(self, cooldown).await
    }

    async fn release_worker(&self, id: WorkerId) -> Result<WorkerStatus> {
        workers::release_worker(self, id).await
    }

    async fn drain_worker(&self, id: WorkerId) -> Result<WorkerStatus> {
        workers::drain_worker(self, id).await
    }

    async fn worker_draining(&self, id: WorkerId) -> Result<bool> {
        workers::worker_draining(self, id).await
    }

    async fn list_workers(&self, limit: u32) -> Result<Vec<WorkerStatus>> {
        workers::list_workers(self, limit).await
    }

    async fn served_models(&self) -> Result<Vec<String>> {
        workers::served_models(self).await
    }

    async fn model_capabilities(&self, model: &str) -> Result<Vec<ModelCapabilities>> {
        workers::model_capabilities(self, model).await
    }

    async fn claim(&self, task: TaskId, worker: WorkerId, lease: Duration) -> Result<Claim> {
        leases::claim(self, task, worker, lease).await
    }

    async fn heartbeat(&self, beat: &Heartbeat, lease: Duration) -> Result<Lease> {
        leases::heartbeat(self, beat, lease).await
    }

    async fn record_completion(
        &self,
        lease: &LeaseToken,
        report: &CompletionReport<'_>,
    ) -> Result<()> {
        leases::complete(self, lease, report).await
    }

    async fn fail(
        &self,
        lease: &LeaseToken,
        report: &FailReport<'_>,
        backoff: Backoff,
    ) -> Result<FailOutcome> {
        leases::fail(self, lease, report, backoff).await
    }

    async fn expire_leases(&self, backoff: Backoff) -> Result<Vec<Requeue>> {
        leases::expire_leases(self, backoff).await
    }

    async fn release_running(&self) -> Result<Vec<QueuedTask>> {
        leases::release_running(self).await
    }

    async fn queued_counts(&self) -> Result<Vec<(String, u64)>> {
        queue::queued_counts(self).await
    }

    async fn task_counts(&self) -> Result<Vec<ModelTaskCounts>> {
        queue::task_counts(self).await
    }

    async fn queued_tasks(
        &self,
        model: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<QueuedTask>> {
        queue::queued_tasks(self, model, after_seq, limit).await
    }

    async fn tenant_weights(&self) -> Result<Vec<(String, u32)>> {
        queue::tenant_weights(self).await
    }

    async fn set_tenant(&self, tenant: &TenantSettings) -> Result<()> {
        tenants::set_tenant(self, tenant).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantSettings>> {
        tenants::list_tenants(self).await
    }

    async fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage> {
        tenants::usage(self, tenant).await
    }

    async fn model_workers(&self, models: &[String], lease: Duration) -> Result<Vec<ModelWorkers>> {
        workers::model_workers(self, models, lease).await
    }

    async fn expire_deadlines(&self) -> Result<Vec<DeadlineMiss>> {
        upkeep::expire_deadlines(self).await
    }

    async fn fold_task_counts(&self) -> Result<u64> {
        upkeep::fold_task_counts(self).await
    }

    async fn sweep_candidates(&self, lease: Duration, limit: u32) -> Result<Vec<SweepCandidate>> {
        upkeep::sweep_candidates(self, lease, limit).await
    }

    async fn mark_swept(&self, task: TaskId, through: u32) -> Result<()> {
        upkeep::mark_swept(self, task, through).await
    }

    async fn expired_jobs(&self, age: Duration, limit: u32) -> Result<Vec<JobId>> {
        upkeep::expired_jobs(self, age, limit).await
    }

    async fn delete_job(&self, id: JobId, age: Duration) -> Result<bool> {
        upkeep::delete_job(self, id, age).await
    }

    async fn manifests_due(&self, limit: u32) -> Result<Vec<ManifestDue>> {
        upkeep::manifests_due(self, limit).await
    }

    async fn mark_manifest_written(&self, due: ManifestDue) -> Result<bool> {
        upkeep::mark_manifest_written(self, due).await
    }

    async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKey> {
        keys::create_api_key(self, key).await
    }

    async fn api_key(&self, id: &str) -> Result<Option<StoredKey>> {
        keys::api_key_by_id(self, id).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        keys::list_api_keys(self).await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<ApiKey> {
        keys::revoke_api_key(self, id).await
    }
}
