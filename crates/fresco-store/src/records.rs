//! What the store hands back: jobs with their counts, tasks with their
//! outputs and errors, leases, API keys.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
pub use fresco_core::QueuedTask;
use fresco_core::sweep::{Coordinates, Sweep};
use fresco_core::{
    CredentialKind, FailureKind, JobId, ModelCapabilities, Role, TaskId, TaskSpec, TaskState,
    WorkerId,
};
use serde::{Deserialize, Serialize};

/// Task counts by state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts(pub HashMap<TaskState, u64>);

impl StateCounts {
    pub fn get(&self, state: TaskState) -> u64 {
        self.0.get(&state).copied().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub id: JobId,
    pub name: String,
    pub owner: String,
    /// The tenant of the key that submitted it.
    pub tenant: String,
    pub model: String,
    pub priority: i32,
    pub max_attempts: u32,
    pub task_count: u64,
    pub created_at: DateTime<Utc>,
    /// Its queued tasks wait for a resume.
    pub paused: bool,
    pub counts: StateCounts,
    /// Steps done and steps needed, over the tasks running now.
    pub running_steps: (u64, u64),
    /// Tasks still queued at this time fail.
    pub deadline: Option<DateTime<Utc>>,
    /// Queued tasks past their backoff (they may run now).
    pub queued_ready: u64,
    /// When the first queued task still waiting out its backoff may run.
    pub retry_at: Option<DateTime<Utc>>,
    /// The axes it was submitted with, when it is a sweep.
    pub sweep: Option<Sweep>,
    /// As submitted.
    pub labels: fresco_core::Labels,
    /// Its recent throughput and predicted finish.
    pub rate: crate::progress::JobRate,
}

/// What a submission stored.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: JobSummary,
    /// The tasks stored now (none when replayed).
    pub tasks: Vec<QueuedTask>,
    /// The job was stored earlier under the same request id.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub index: u32,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the object's bytes, as its worker
    /// uploaded them (empty: not reported).
    #[serde(default)]
    pub sha256: String,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: u32,
    pub worker: String,
    pub message: String,
    pub at: DateTime<Utc>,
    /// Whose fault it was; an entry stored before kinds were recorded
    /// reads as `worker` (every failure counted against its worker then).
    #[serde(default)]
    pub kind: FailureKind,
}

/// One failed attempt that counted against its worker, as the worker's
/// `recent_errors` keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerError {
    pub task: TaskId,
    pub attempt: u32,
    pub message: String,
    pub kind: FailureKind,
    pub at: DateTime<Utc>,
}

/// How many failed attempts a worker's `recent_errors` keep.
pub const RECENT_ERRORS: usize = 5;

/// A finished attempt, as it counts for its worker's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome<'a> {
    /// Ends the worker's run of failures and its probation.
    Succeeded,
    /// The worker's fault (a `worker` failure or an expired lease): extends
    /// its run, and quarantines it at the threshold or on probation.
    Failed {
        task: TaskId,
        attempt: u32,
        message: &'a str,
        kind: FailureKind,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: TaskId,
    pub job_id: JobId,
    pub index: u32,
    pub model: String,
    pub spec: TaskSpec,
    pub state: TaskState,
    pub attempt: u32,
    pub worker: Option<WorkerId>,
    pub progress_step: u32,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub outputs: Vec<OutputRecord>,
    pub errors: Vec<AttemptError>,
    /// Its place in its job's sweep (`None`: the job is not a sweep).
    pub coordinates: Option<Coordinates>,
    /// When it was queued (submitted), when its current or last attempt
    /// started, and when it ended (none while it has not).
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The attempt that succeeded, as its completion recorded it (its
    /// worker and number are `worker` and `attempt`); none until one has.
    pub completion: Option<Completion>,
}

/// What the completion of a task's succeeding attempt recorded besides its
/// outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Lower-case hex SHA-256 of the model weights the attempt sampled
    /// with (empty: not reported).
    pub weights_sha256: String,
    /// Device time the worker measured on the attempt.
    pub device_ms: u64,
    /// Its worker's name and device when it completed.
    pub worker_name: String,
    pub worker_device: String,
}

/// A worker's report that an attempt succeeded.
#[derive(Debug, Clone, Copy)]
pub struct CompletionReport<'a> {
    pub outputs: &'a [OutputRecord],
    /// Device time the worker measured on the attempt.
    pub device_ms: u64,
    /// Lower-case hex SHA-256 of the model weights it sampled with (empty:
    /// not reported).
    pub weights_sha256: &'a str,
}

/// A finished job whose bucket manifest is still to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestDue {
    pub job: JobId,
    /// How many times a retry had reopened it when it was found: what the
    /// manifest, once written, is marked written for.
    pub reopened: u32,
}

#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub job: Option<JobId>,
    pub state: Option<TaskState>,
    pub from_index: u32,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub id: WorkerId,
    pub name: String,
    pub device: String,
    pub models: Vec<String>,
    pub loaded_models: Vec<String>,
    /// What its models accept, as it reported (none for a model it could
    /// not read them for), in the order of `models`.
    pub capabilities: Vec<ModelCapabilities>,
}

/// A registered worker as `fresco workers` shows it.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    pub info: WorkerInfo,
    pub registered_at: DateTime<Utc>,
    /// Its last registration, claim or heartbeat.
    pub last_seen_at: DateTime<Utc>,
    /// The tasks it holds leases on now, oldest claim first.
    pub running: Vec<TaskId>,
    /// Failed attempts since its last success.
    pub consecutive_failures: u32,
    /// Since when it claims nothing more, after too many failures in a row.
    pub quarantined_at: Option<DateTime<Utc>>,
    /// Released from quarantine: it claims one probe task at a time.
    pub probation: bool,
    /// Its last failed attempts that counted against it, oldest first (at
    /// most [`RECENT_ERRORS`]).
    pub recent_errors: Vec<WorkerError>,
    /// Since when it is draining: it finishes its task, claims nothing
    /// more and exits (none: not draining).
    pub draining_at: Option<DateTime<Utc>>,
    /// Tasks it finished successfully within the last
    /// [`crate::RATE_WINDOW`].
    pub recent_succeeded: u64,
}

impl WorkerStatus {
    /// Tasks per minute it finished successfully at `now`, over the last
    /// [`crate::RATE_WINDOW`] or since it registered when that is later;
    /// and that span.
    pub fn rate(&self, now: DateTime<Utc>) -> (f64, std::time::Duration) {
        let from = self.registered_at.max(crate::progress::window_start(now));
        let span = (now - from)
            .to_std()
            .unwrap_or_default()
            .max(std::time::Duration::from_secs(1));
        let per_minute = self.recent_succeeded as f64 * 60.0 / span.as_secs_f64();
        (per_minute, span)
    }
}

/// A worker's health after an attempt was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerHealth {
    /// Its failed attempts since its last success.
    pub consecutive_failures: u32,
    pub quarantined: bool,
    /// This attempt quarantined it.
    pub newly_quarantined: bool,
    pub probation: bool,
}

/// The registered workers that serve one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelWorkers {
    pub model: String,
    /// Seen within two leases (the rule claims use).
    pub live: u32,
    /// Live and not quarantined.
    pub available: u32,
    /// When one of them was seen last.
    pub last_seen_at: DateTime<Utc>,
}

/// A queued task failed because its job's deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineMiss {
    pub task: QueuedTask,
    pub job_id: JobId,
}

/// A task whose ended attempts may have left stray objects in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCandidate {
    pub task: TaskId,
    pub job_id: JobId,
    /// Its attempts up to this one have ended, a lease ago or more.
    pub ended_through: u32,
}

/// A claimed task: run it, then report with `attempt` as the fencing token.
#[derive(Debug, Clone)]
pub struct Claim {
    pub task: TaskRecord,
    pub attempt: u32,
    pub lease_expires_at: DateTime<Utc>,
    /// When the task became claimable: its submission, or the end of its
    /// last backoff (a pause is not subtracted).
    pub due_at: DateTime<Utc>,
    /// When this claim took it, by the store's clock.
    pub claimed_at: DateTime<Utc>,
}

impl Claim {
    /// How long the task waited between becoming due and this claim
    /// (zero when the clocks disagree).
    pub fn waited(&self) -> Duration {
        (self.claimed_at - self.due_at).to_std().unwrap_or_default()
    }
}

/// A model's tasks by state, now: what the coordinator's gauges show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelTaskCounts {
    pub model: String,
    /// Queued, whether claimable or not.
    pub queued: u64,
    /// Queued and claimable now: of an unpaused job, past its backoff.
    pub due: u64,
    pub running: u64,
    /// Failed for good.
    pub failed: u64,
}

/// Who holds a lease: every write after a claim carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseToken {
    pub task: TaskId,
    pub worker: WorkerId,
    pub attempt: u32,
}

/// A worker's report that an attempt failed.
#[derive(Debug, Clone, Copy)]
pub struct FailReport<'a> {
    pub message: &'a str,
    pub kind: FailureKind,
    /// Hand the task back without counting a failure (shutdown).
    pub give_back: bool,
    /// Device time the worker measured on the attempt.
    pub device_ms: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub lease: LeaseToken,
    pub step: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    Extended(DateTime<Utc>),
    /// Stale token, expired lease or cancelled task: stop and record nothing.
    Lost,
}

/// A task that left `running`: back to `queued`, or `failed` for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeue {
    pub task: QueuedTask,
    pub state: TaskState,
    /// When a requeued task may run again (its backoff).
    pub not_before: Option<DateTime<Utc>>,
    /// The lease that ended, when one did (an expired lease): whose
    /// failure it counts as.
    pub lease: Option<LeaseToken>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back in the queue; it may run again from the time given (none: now).
    Requeued(QueuedTask, Option<DateTime<Utc>>),
    Failed,
}

/// The message an expired lease's failure records, in its task's history
/// and its worker's recent errors.
pub const LEASE_EXPIRED: &str = "lease expired: the worker stopped sending heartbeats";

/// How long a failed task waits before it may run again: `base · 2^(n−1)`
/// after its n-th failure, at most `max`, times a random factor in
/// [0.5, 1), so tasks that failed together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// No wait: a failed task may run again at once.
    pub const NONE: Self = Self {
        base: Duration::ZERO,
        max: Duration::ZERO,
    };
}

/// Tasks sorted into dispatch order.
pub(crate) fn in_seq_order(
    tasks: impl Iterator<Item = crate::Result<QueuedTask>>,
) -> crate::Result<Vec<QueuedTask>> {
    let mut tasks = tasks.collect::<crate::Result<Vec<_>>>()?;
    tasks.sort_by_key(|t| t.seq);
    Ok(tasks)
}

/// Whether `outputs` are the ones this attempt already recorded (their keys,
/// in index order): a report sent again after its answer was lost.
pub(crate) fn is_same_report(recorded_keys: &[String], outputs: &[OutputRecord]) -> bool {
    !recorded_keys.is_empty()
        && recorded_keys.len() == outputs.len()
        && recorded_keys
            .iter()
            .zip(outputs)
            .all(|(key, o)| *key == o.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_stored_before_kinds_were_recorded_reads_as_the_workers() {
        let old: AttemptError = serde_json::from_str(
            r#"{"attempt": 2, "worker": "w", "message": "cuda error", "at": "2026-11-29T10:00:00Z"}"#,
        )
        .expect("an entry without a kind");
        assert_eq!(old.kind, FailureKind::Worker);
        let new: AttemptError = serde_json::from_str(
            r#"{"attempt": 1, "worker": "w", "message": "bad", "at": "2026-12-07T10:00:00.123+00:00", "kind": "request"}"#,
        )
        .expect("an entry with a kind");
        assert_eq!(new.kind, FailureKind::Request);
    }
}

/// What a credential opens: a client key's tenant and role, or the worker
/// API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    Client { tenant: String, role: Role },
    Worker,
}

impl KeyScope {
    pub fn kind(&self) -> CredentialKind {
        match self {
            KeyScope::Client { .. } => CredentialKind::Client,
            KeyScope::Worker => CredentialKind::Worker,
        }
    }
}

/// A credential to store: the SHA-256 of the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub id: String,
    pub scope: KeyScope,
    /// A name for listings (who holds it, what for).
    pub name: String,
    pub secret_sha256: [u8; 32],
}

/// A stored credential as listings show it: never its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub scope: KeyScope,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Since when it opens nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A stored credential with the digest a presented key is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key: ApiKey,
    pub secret_sha256: Vec<u8>,
}

/// A tenant's share of the farm and its limits; `None` is no limit. A
/// tenant without a stored row has [`TenantLimits::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLimits {
    /// Its share of each model's workers against other tenants with queued
    /// work, 1 to 10,000.
    pub weight: u32,
    /// Tasks it may have queued at once; a submission that would pass it
    /// is refused whole.
    pub max_queued_tasks: Option<u64>,
    /// Tasks it may have running at once; claims past it wait.
    pub max_running_tasks: Option<u64>,
    /// Device-seconds its tasks may take per UTC day; once spent, its
    /// submissions are refused and its queued tasks wait for the next day.
    pub max_device_seconds_per_day: Option<u64>,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            weight: 1,
            max_queued_tasks: None,
            max_running_tasks: None,
            max_device_seconds_per_day: None,
        }
    }
}

/// A tenant's stored settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    pub name: String,
    pub limits: TenantLimits,
}

/// What a tenant uses now, against its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantUsage {
    pub tenant: String,
    pub limits: TenantLimits,
    pub queued_tasks: u64,
    pub running_tasks: u64,
    /// Device time the workers measured on its attempts, today (UTC) and
    /// in all.
    pub device_ms_today: u64,
    pub device_ms_total: u64,
    /// Attempts that reported device time, today and in all.
    pub attempts_today: u64,
    pub attempts_total: u64,
}
