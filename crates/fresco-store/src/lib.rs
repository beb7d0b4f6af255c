//! Where fresco keeps its truth: jobs, tasks, leases, outputs and workers.
//!
//! - [`JobStore`]: the operations the coordinator needs, each one short
//!   statement (or one transaction) guarded by the task's state and, after a
//!   claim, by its fencing token (the attempt number).
//! - [`records`]: what the store hands back.
//! - [`postgres`]: the production store, through sqlx, with its migrations
//!   (`migrations/postgres/`).
//! - [`sqlite`]: the embedded store of `fresco dev`, one SQLite file, with
//!   the same semantics and migrations of its own (`migrations/sqlite/`).
//!   Both stores are laid out alike: the same modules, and each statement
//!   whole in a `.sql` file of the same name in each store's `sql/`.
//! - `rows`: fetched columns into records, once for both stores.
//! - [`error`]: store errors and the error code each one stands for.

pub mod error;
pub mod postgres;
pub mod records;
mod rows;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use fresco_core::{JobId, JobSpec, ModelCapabilities, TaskId, TaskState, WorkerId};

pub use error::{Result, StoreError};
pub use postgres::PgStore;
pub use records::*;
pub use sqlite::SqliteStore;

/// The operations on fresco's source of truth.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a job and all its tasks, all or nothing. A spec whose
    /// `request_id` names a stored job returns that job (`replayed`), or
    /// `Conflict` when that job differs in model or task count.
    async fn submit(&self, spec: &JobSpec) -> Result<Submitted>;
    async fn get_job(&self, id: JobId) -> Result<JobSummary>;
    /// Newest first.
    async fn list_jobs(&self, limit: u32, owner: Option<&str>) -> Result<Vec<JobSummary>>;
    /// Cancels every queued or running task of the job; returns the ids.
    async fn cancel_job(&self, id: JobId) -> Result<Vec<QueuedTask>>;
    /// Cancels one queued or running task; returns it, to be taken out of
    /// the queues. `Conflict` when it has already ended.
    async fn cancel_task(&self, id: TaskId) -> Result<QueuedTask>;
    /// Puts the job's failed tasks back in the queue with their failure
    /// count reset (their error history stays); returns them.
    async fn retry_job(&self, id: JobId) -> Result<Vec<QueuedTask>>;
    /// Pauses or resumes a job: a paused job's queued tasks are neither
    /// counted as dispatchable nor claimed; running ones finish. Returns
    /// the job's queued tasks, to be taken out of or put back in the queues.
    async fn set_paused(&self, id: JobId, paused: bool) -> Result<Vec<QueuedTask>>;
    async fn get_task(&self, id: TaskId) -> Result<TaskRecord>;
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>>;

    /// Whether `key` is the key of a recorded output.
    async fn has_output(&self, key: &str) -> Result<bool>;

    /// Registers a worker (or refreshes one that registers again).
    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()>;
    /// Notes that a worker is alive (a claim or heartbeat) and, when it
    /// says, which models it holds loaded.
    async fn worker_seen(&self, id: WorkerId, loaded_models: Option<&[String]>) -> Result<()>;
    /// Counts a finished attempt against its worker: a success ends its run
    /// of failures; a failure extends it, and at `quarantine_after` in a row
    /// the worker is quarantined. Returns whether it is quarantined.
    async fn record_attempt(
        &self,
        worker: WorkerId,
        succeeded: bool,
        quarantine_after: u32,
    ) -> Result<bool>;
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
    /// its job is paused or its backoff has not passed; `Refused` when the
    /// worker is quarantined, or already failed this task while another
    /// live worker (seen within two leases) serving its model has not.
    async fn claim(&self, task: TaskId, worker: WorkerId, lease: Duration) -> Result<Claim>;
    /// Extends a lease; `Lease::Lost` when the token is stale or the task
    /// was cancelled.
    async fn heartbeat(&self, beat: &Heartbeat, lease: Duration) -> Result<Lease>;
    /// Records the outputs and marks the task succeeded; `Conflict` when the
    /// token is stale. Reporting again what this attempt already recorded
    /// (its answer was lost) is `Ok` and records nothing more.
    async fn complete(&self, lease: &LeaseToken, outputs: &[OutputRecord]) -> Result<()>;
    /// Records a failed attempt: back to the queue after `backoff` while
    /// attempts are left, else failed. `give_back` returns the task at once
    /// without counting a failure.
    async fn fail(
        &self,
        lease: &LeaseToken,
        message: &str,
        give_back: bool,
        backoff: Backoff,
    ) -> Result<FailOutcome>;
    /// Ends leases whose heartbeats stopped, as failed attempts (requeued
    /// after `backoff`).
    async fn expire_leases(&self, backoff: Backoff) -> Result<Vec<Requeue>>;
    /// Returns every running task to the queue without counting a failure
    /// (the lease ends, the attempt stays as the last fencing token). For a
    /// farm whose workers all live in the process that just started, so no
    /// lease can still be held.
    async fn release_running(&self) -> Result<Vec<QueuedTask>>;

    /// How many tasks of unpaused jobs are queued and past their backoff,
    /// per model.
    async fn queued_counts(&self) -> Result<Vec<(String, u64)>>;
    /// Queued tasks of unpaused jobs of a model, past their backoff, in
    /// dispatch order, after `after_seq`.
    async fn queued_tasks(
        &self,
        model: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<QueuedTask>>;
}

/// Whether a job is finished: none of its tasks is queued or running.
pub fn is_finished(counts: &StateCounts) -> bool {
    counts.get(TaskState::Queued) == 0 && counts.get(TaskState::Running) == 0
}
