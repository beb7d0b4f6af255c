//! The embedded SQLite [`JobStore`], for `fresco dev`: one file, the same
//! semantics as the Postgres store, migrations from `migrations/sqlite/`
//! applied at open.
//!
//! Types (see the migration): UUIDs are hyphenated TEXT, timestamps INTEGER
//! milliseconds since the Unix epoch taken from the clock here and bound as
//! parameters, `errors` and a worker's model lists JSON TEXT, and a task's
//! `seq` its AUTOINCREMENT rowid.
//!
//! Concurrency: SQLite has one writer at a time, so every write goes
//! through a pool of exactly one connection. Writers queue in that pool
//! instead of meeting `SQLITE_BUSY` or the deadlock of two deferred
//! transactions both upgrading to write; multi-statement writes still
//! begin with `BEGIN IMMEDIATE`, and a 5 s busy timeout covers other
//! processes that open the file. Reads go through a small pool of
//! read-only connections and, with the WAL journal, never wait for the
//! writer. A write that commits is seen by every read that starts after.
//! `synchronous = NORMAL`: a power cut may lose the last commits, never
//! the file.
//!
//! Every statement is one file in `sql/`, named for what it does; the
//! Postgres store has its twin under the same name. The modules split the
//! operations the same way in both stores:
//!
//! - `columns`: how a fetched column is read (see [`crate::rows`]), and how
//!   ids and times are bound.
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

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{JobId, JobSpec, ModelCapabilities, TaskId, WorkerId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::JobStore;
use crate::error::{Result, StoreError};
use crate::progress::JobFilter;
use crate::records::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a statement waits for a lock another process holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write waits for its turn on the one writer connection.
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// Read-only connections.
const READERS: u32 = 4;

/// The embedded store: a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write.
    writer: SqlitePool,
    /// Read-only connections: every read.
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when missing) and applies
    /// pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // The writer stays open for the store's life, so the WAL and its
        // shared memory outlive any reader.
        let writer = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(
                options
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}
#[async_trait]
impl JobStore for SqliteStore {
    async fn submit(&self, spec: &JobSpec) -> Result<Submitted> {
        submit::submit(self, spec).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query(include_str!("sql/ping.sql"))
            .execute(&self.reader)
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

    /// The triggers of the `job_task_counts` migration write each job's
    /// counts in place (one writer, so a counter row holds no one up):
    /// nothing to fold.
    async fn fold_task_counts(&self) -> Result<u64> {
        Ok(0)
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
