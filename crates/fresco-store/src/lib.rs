//! Where fresco keeps its truth: jobs, tasks, leases, outputs and workers.
//!
//! - [`JobStore`]: the operations the coordinator needs, each one short
//!   statement (or one transaction) guarded by the task's state and, after a
//!   claim, by its fencing token (the attempt number).
//! - [`records`]: what the store hands back.
//!   Credentials (API keys and worker tokens) are kept as SHA-256 digests
//!   only; see `fresco_core::credentials` for their format.
//! - [`postgres`]: the production store, through sqlx, with its migrations
//!   (`migrations/postgres/`).
//! - [`sqlite`]: the embedded store of `fresco dev`, one SQLite file, with
//!   the same semantics and migrations of its own (`migrations/sqlite/`).
//!   Both stores are laid out alike: the same modules, and each statement
//!   whole in a `.sql` file of the same name in each store's `sql/`.
//! - `rows`: fetched columns into records, once for both stores.
//! - `quota`: a tenant's limits against its use, checked inside the
//!   submission's and the claim's transaction.
//! - [`progress`]: a job's recent throughput and predicted finish, and
//!   the filter `list_jobs` applies.
//! - [`error`]: store errors and the error code each one stands for.

pub mod error;
pub mod postgres;
pub mod progress;
mod quota;
pub mod records;
mod rows;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{JobId, JobSpec, ModelCapabilities, TaskId, TaskState, WorkerId};

pub use error::{Result, StoreError};
pub use postgres::PgStore;
pub use progress::{JobFilter, JobRate, RATE_WINDOW};
pub use records::*;
pub use sqlite::SqliteStore;

/// The operations on fresco's source of truth.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a job and all its tasks, all or nothing. A spec whose
    /// `request_id` names a stored job returns that job (`replayed`), or
    /// `Conflict` when that job differs in model or task count.
    /// `OverQuota`, storing nothing, when the tenant's queued tasks would
    /// pass its limit or today's device time is spent.
    async fn submit(&self, spec: &JobSpec) -> Result<Submitted>;
    /// Whether the database answers: one trivial query (the coordinator's
    /// health probe).
    async fn ping(&self) -> Result<()>;
    async fn get_job(&self, id: JobId) -> Result<JobSummary>;
    /// Newest first, those `filter` admits.
    async fn list_jobs(&self, limit: u32, filter: &JobFilter) -> Result<Vec<JobSummary>>;
    /// Cancels every queued or running task of the job; returns the ids.
    async fn cancel_job(&self, id: JobId) -> Result<Vec<QueuedTask>>;
    /// Cancels one queued or running task; returns it, to be taken out of
    /// the queues. `Conflict` when it has already ended.
    async fn cancel_task(&self, id: TaskId) -> Result<QueuedTask>;
    /// Puts the job's failed tasks back in the queue with their failure
    /// count reset (their error history stays); returns them. Queuing any
    /// reopens the job: its bucket manifest is due again once it finishes.
    async fn retry_job(&self, id: JobId) -> Result<Vec<QueuedTask>>;
    /// Pauses or resumes a job: a paused job's queued tasks are neither
    /// counted as dispatchable nor claimed; running ones finish. Returns
    /// the job's queued tasks, to be taken out of or put back in the queues.
    async fn set_paused(&self, id: JobId, paused: bool) -> Result<Vec<QueuedTask>>;
    /// Sets the priority of the job and of every task of it not yet
    /// ended. Returns its queued tasks (none while it is paused: they are
    /// out of the queues), with their new priority, to be moved in the
    /// queues.
    async fn set_priority(&self, id: JobId, priority: i32) -> Result<Vec<QueuedTask>>;
    async fn get_task(&self, id: TaskId) -> Result<TaskRecord>;
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>>;

    /// Whether `key` is the key of a recorded output.
    async fn has_output(&self, key: &str) -> Result<bool>;
    /// The job of the recorded output `key` (none: no task recorded it).
    async fn output_job(&self, key: &str) -> Result<Option<JobId>>;
    /// The W3C trace context job `id` was submitted under (empty: none).
    async fn job_traceparent(&self, id: JobId) -> Result<String>;
    /// The recorded outputs of job `id` whose keys are in `keys` (every
    /// recorded output of the job when `keys` is empty), in task then image
    /// order. A key of another job's output, or of none, is left out.
    async fn job_outputs(&self, id: JobId, keys: &[String]) -> Result<Vec<OutputRecord>>;

    /// Registers a worker (or refreshes one that registers again) with the
    /// id of the worker token it called with (none on a farm served without
    /// keys). `Refused` when the worker is registered with another token.
    async fn register_worker(&self, worker: &WorkerInfo, token: Option<&str>) -> Result<()>;
    /// The id of the worker token a worker registered with (none: it
    /// registered without one); `NotFound` for an unknown worker.
    async fn worker_token(&self, id: WorkerId) -> Result<Option<String>>;
    /// Notes that a worker is alive (a claim or heartbeat) and, when it
    /// says, which models it holds loaded.
    async fn worker_seen(&self, id: WorkerId, loaded_models: Option<&[String]>) -> Result<()>;
    /// Counts a finished attempt for its worker: a success ends its run of
    /// failures and its probation; a failure that is the worker's fault
    /// (a `request` failure is never counted) extends the run, joins its
    /// recent errors (the last [`RECENT_ERRORS`]), and quarantines it at
    /// `quarantine_after` in a row, or at once when it was on probation.
    /// A later success does not lift a quarantine. `NotFound` for an
    /// unknown worker.
    async fn record_attempt(
        &self,
        worker: WorkerId,
        outcome: AttemptOutcome<'_>,
        quarantine_after: u32,
    ) -> Result<WorkerHealth>;
    /// Releases every worker quarantined longer than `cooldown` onto
    /// probation (its quarantine cleared); returns their ids.
    async fn release_quarantined(&self, cooldown: Duration) -> Result<Vec<WorkerId>>;
    /// Releases one quarantined worker onto probation now; returns it.
    /// `Conflict` when it is not quarantined, `NotFound` when unknown.
    async fn release_worker(&self, id: WorkerId) -> Result<WorkerStatus>;
    /// Drains a worker: from now on its claims are refused
    /// (`StoreError::Draining`); the task it runs is its to finish. Returns
    /// it. Draining it again keeps the first time; registering again ends
    /// the drain. `NotFound` when unknown.
    async fn drain_worker(&self, id: WorkerId) -> Result<WorkerStatus>;
    /// Whether a worker is draining; `NotFound` when unknown.
    async fn worker_draining(&self, id: WorkerId) -> Result<bool>;
    /// Registered workers, most recently seen first, with their running
    /// tasks.
    async fn list_workers(&self, limit: u32) -> Result<Vec<WorkerStatus>>;
    /// Every model some registered worker serves.
    async fn served_models(&self) -> Result<Vec<String>>;
    /// Every registered worker's capabilities for `model` (live or not;
    /// workers that reported none for it are left out), the most recently
    /// registered worker first.
    async fn model_capabilities(&self, model: &str) -> Result<Vec<ModelCapabilities>>;

    /// Leases a queued task to a worker; `Conflict` when it is not queued,
    /// its job is paused or its backoff has not passed; `Draining` when the
    /// worker is draining; `Refused` when the
    /// worker is quarantined, on probation while it runs its probe task,
    /// or already failed this task while another live worker (seen within
    /// two leases) serving its model has not; `OverQuota` when the task's
    /// tenant runs as many tasks as its limit allows or has spent today's
    /// device time.
    async fn claim(&self, task: TaskId, worker: WorkerId, lease: Duration) -> Result<Claim>;
    /// Extends a lease; `Lease::Lost` when the token is stale or the task
    /// was cancelled.
    async fn heartbeat(&self, beat: &Heartbeat, lease: Duration) -> Result<Lease>;
    /// Records the outputs and marks the task succeeded (with no weights
    /// hash: see [`JobStore::record_completion`]); `Conflict` when the
    /// token is stale. Reporting again what this attempt already recorded
    /// (its answer was lost) is `Ok` and records nothing more. `device_ms`,
    /// the device time the worker measured, counts towards the tenant's
    /// usage once.
    async fn complete(
        &self,
        lease: &LeaseToken,
        outputs: &[OutputRecord],
        device_ms: u64,
    ) -> Result<()> {
        let report = CompletionReport {
            outputs,
            device_ms,
            weights_sha256: "",
        };
        self.record_completion(lease, &report).await
    }
    /// As [`JobStore::complete`], also keeping, for the manifest, the
    /// weights hash the worker reported and its worker's name and device
    /// as they are now.
    async fn record_completion(
        &self,
        lease: &LeaseToken,
        report: &CompletionReport<'_>,
    ) -> Result<()>;
    /// Records a failed attempt of `kind` in the task's history: a
    /// `request` failure fails the task at once, whatever attempts are
    /// left; any other goes back to the queue after `backoff` while
    /// attempts are left, else fails. `give_back` returns the task at once
    /// without counting a failure (`kind` is then ignored). `device_ms`
    /// counts towards the tenant's usage, as for `complete`.
    async fn fail(
        &self,
        lease: &LeaseToken,
        report: &FailReport<'_>,
        backoff: Backoff,
    ) -> Result<FailOutcome>;
    /// Ends leases whose heartbeats stopped, as failed attempts of kind
    /// `lease` (requeued after `backoff`); each [`Requeue`] names the lease
    /// that ended.
    async fn expire_leases(&self, backoff: Backoff) -> Result<Vec<Requeue>>;
    /// Returns every running task to the queue without counting a failure
    /// (the lease ends, the attempt stays as the last fencing token). For a
    /// farm whose workers all live in the process that just started, so no
    /// lease can still be held.
    async fn release_running(&self) -> Result<Vec<QueuedTask>>;
    /// Folds the task-count changes recorded since the last fold into each
    /// job's counts; returns how many it folded. Reads answer the same before
    /// and after: folding only keeps them short. (A store whose counts are
    /// written in place has nothing to fold.)
    async fn fold_task_counts(&self) -> Result<u64>;

    /// How many tasks of unpaused jobs are queued and past their backoff,
    /// per model.
    async fn queued_counts(&self) -> Result<Vec<(String, u64)>>;
    /// Every model's queued (and of those, due), running and failed tasks,
    /// by model; a model with none of these is absent.
    async fn task_counts(&self) -> Result<Vec<ModelTaskCounts>>;
    /// Queued tasks of unpaused jobs of a model, past their backoff, in
    /// dispatch order, after `after_seq`.
    async fn queued_tasks(
        &self,
        model: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<QueuedTask>>;
    /// Each tenant's weight, as its `tenants` row sets it (by name). A
    /// tenant with no row weighs 1; the dispatch queues share a model's
    /// workers between tenants in proportion to these.
    async fn tenant_weights(&self) -> Result<Vec<(String, u32)>>;
    /// Stores a tenant's weight and limits, replacing what it had.
    async fn set_tenant(&self, tenant: &TenantSettings) -> Result<()>;
    /// Every tenant with stored settings, by name.
    async fn list_tenants(&self) -> Result<Vec<TenantSettings>>;
    /// A tenant's use now against its limits (a tenant nobody ever named
    /// uses nothing and has the default limits).
    async fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage>;

    /// Per model of `models` that some registered worker serves, how many
    /// of its workers are live (seen within two leases, the rule claims
    /// use), how many of those are not quarantined, and when one was seen
    /// last. A model no worker ever registered is absent.
    async fn model_workers(&self, models: &[String], lease: Duration) -> Result<Vec<ModelWorkers>>;

    /// Fails up to 1000 tasks still queued after their job's deadline, each
    /// with a history entry (kind `deadline`) naming it; returns them, to be
    /// taken out of the queues. Running tasks are left to finish.
    async fn expire_deadlines(&self) -> Result<Vec<DeadlineMiss>>;
    /// Up to `limit` tasks whose ended attempts have not been swept of
    /// stray objects, the latest ended at least `lease` ago (oldest first).
    /// A task completed at its first attempt (or with every earlier attempt
    /// swept) is never one. `lease` zero: every unswept task, as a check
    /// that sweeping has caught up.
    async fn sweep_candidates(&self, lease: Duration, limit: u32) -> Result<Vec<SweepCandidate>>;
    /// Notes that `task`'s attempts through `through` hold no stray objects.
    async fn mark_swept(&self, task: TaskId, through: u32) -> Result<()>;
    /// Up to `limit` finished jobs (no task queued or running) whose last
    /// task ended (or, when none ever ended, which were created) longer
    /// than `age` ago, the oldest first.
    async fn expired_jobs(&self, age: Duration, limit: u32) -> Result<Vec<JobId>>;
    /// Deletes job `id` with its tasks and outputs while it is still
    /// finished and older than `age` (as [`JobStore::expired_jobs`] reads
    /// it); whether it did.
    async fn delete_job(&self, id: JobId, age: Duration) -> Result<bool>;
    /// Up to `limit` finished jobs whose bucket manifest is due: never
    /// written, or written before a retry reopened the job; oldest first.
    async fn manifests_due(&self, limit: u32) -> Result<Vec<ManifestDue>>;
    /// Notes that `due`'s manifest is written (a retry since reopens it
    /// again); whether the job still exists (retention may have deleted
    /// it meanwhile).
    async fn mark_manifest_written(&self, due: ManifestDue) -> Result<bool>;

    /// Stores a credential (its digest, never the key); `Conflict` when its
    /// id is taken.
    async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKey>;
    /// A credential and its digest, read from the store on every call so a
    /// revocation holds from the next call on (none: no such id).
    async fn api_key(&self, id: &str) -> Result<Option<StoredKey>>;
    /// Every credential, oldest first, without digests.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;
    /// Revokes a credential (revoking it again keeps the first time);
    /// `NotFound` for an unknown id.
    async fn revoke_api_key(&self, id: &str) -> Result<ApiKey>;
}

/// Whether a job is finished: none of its tasks is queued or running.
pub fn is_finished(counts: &StateCounts) -> bool {
    counts.get(TaskState::Queued) == 0 && counts.get(TaskState::Running) == 0
}
