//! Row assembly, once for both stores: fetched columns into the records of
//! [`crate::records`]. Each store says how it reads one column of each kind
//! (its [`Columns`] impl: Postgres's native types, SQLite's TEXT, INTEGER
//! milliseconds and JSON); everything built from those columns is here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fresco_core::params::Schedule;
use fresco_core::sweep::{Coordinates, Sweep};
use fresco_core::{JobId, ModelCapabilities, TaskId, TaskSpec, TaskState, WorkerId};
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::records::{
    ApiKey, AttemptError, Completion, DeadlineMiss, JobSummary, KeyScope, LeaseToken, ManifestDue,
    ModelTaskCounts, ModelWorkers, OutputRecord, QueuedTask, Requeue, StateCounts, StoredKey,
    SweepCandidate, TaskRecord, TenantLimits, TenantSettings, TenantUsage, WorkerError,
    WorkerHealth, WorkerInfo, WorkerStatus,
};

/// One fetched row, read column by column as the records need it.
pub(crate) trait Columns {
    fn uuid(&self, column: &str) -> Result<Uuid>;
    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>>;
    fn text(&self, column: &str) -> Result<String>;
    /// An INT column the records hold as a `u32`.
    fn small(&self, column: &str) -> Result<u32>;
    fn int32(&self, column: &str) -> Result<i32>;
    fn int64(&self, column: &str) -> Result<i64>;
    /// A BIGINT column that may be NULL.
    fn optional_int64(&self, column: &str) -> Result<Option<i64>>;
    fn real(&self, column: &str) -> Result<f32>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn time(&self, column: &str) -> Result<DateTime<Utc>>;
    fn optional_time(&self, column: &str) -> Result<Option<DateTime<Utc>>>;
    /// A worker's list of model names.
    fn names(&self, column: &str) -> Result<Vec<String>>;
    /// A worker's running tasks.
    fn uuids(&self, column: &str) -> Result<Vec<Uuid>>;
    /// A task's failed attempts, stored as a JSON array.
    fn attempt_errors(&self, column: &str) -> Result<Vec<AttemptError>>;
    /// A worker's recent failed attempts, stored as a JSON array.
    fn worker_errors(&self, column: &str) -> Result<Vec<WorkerError>>;
    /// A task's sampler schedule, stored as a JSON object.
    fn schedule(&self, column: &str) -> Result<Schedule>;
    /// A JSON column (a worker's capabilities).
    fn json(&self, column: &str) -> Result<serde_json::Value>;
    /// A TEXT column that may be NULL.
    fn optional_text(&self, column: &str) -> Result<Option<String>>;
    /// A BYTEA (BLOB) column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;

    /// A BIGINT column the records hold as a `u64`.
    fn big(&self, column: &str) -> Result<u64> {
        Ok(self.int64(column)? as u64)
    }

    fn state(&self, column: &str) -> Result<TaskState> {
        self.text(column)?.parse::<TaskState>().map_err(undecodable)
    }
}

/// Per job: its task counts by state, the (done, needed) steps of its
/// running tasks, and how its queued tasks stand against their backoff.
pub(crate) type JobCounts = HashMap<Uuid, JobTally>;

/// What the counts query tells of one job.
#[derive(Debug, Default)]
pub(crate) struct JobTally {
    counts: StateCounts,
    running_steps: (u64, u64),
    queued_ready: u64,
    retry_at: Option<DateTime<Utc>>,
}

/// Rows of `task_counts.sql` (one per model and state) into one count per
/// model, by model.
pub(crate) fn model_task_counts<R: Columns>(rows: &[R]) -> Result<Vec<ModelTaskCounts>> {
    let mut by_model: std::collections::BTreeMap<String, ModelTaskCounts> = Default::default();
    for row in rows {
        let model = row.text("model")?;
        let tasks = row.big("tasks")?;
        let counts = by_model
            .entry(model.clone())
            .or_insert_with(|| ModelTaskCounts {
                model,
                ..ModelTaskCounts::default()
            });
        match row.state("state")? {
            TaskState::Queued => {
                counts.queued += tasks;
                counts.due += row.big("due")?;
            }
            TaskState::Running => counts.running += tasks,
            TaskState::Failed => counts.failed += tasks,
            TaskState::Succeeded | TaskState::Cancelled => {}
        }
    }
    Ok(by_model.into_values().collect())
}

/// A nullable JSON column, read as the TEXT both stores hand it back as.
fn optional_json<T>(
    row: &impl Columns,
    column: &str,
    read: fn(&str) -> serde_json::Result<T>,
) -> Result<Option<T>> {
    row.optional_text(column)?
        .map(|text| read(&text).map_err(undecodable))
        .transpose()
}

/// A value the database holds that the store cannot read back.
pub(crate) fn undecodable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(sqlx::Error::Decode(what.to_string().into()))
}

/// A `tasks` row of `id, job_id, idx, model, prompt, negative_prompt, seed,
/// steps, width, height, guidance, n, sampler, schedule, state, attempt,
/// worker_id, progress_step, lease_expires_at, errors, coordinates,
/// created_at, started_at, finished_at, weights_sha256, device_ms,
/// worker_name, worker_device` (its outputs are read apart, by
/// [`attach_outputs`]).
pub(crate) fn task_record(row: &impl Columns) -> Result<TaskRecord> {
    Ok(TaskRecord {
        id: TaskId(row.uuid("id")?),
        job_id: JobId(row.uuid("job_id")?),
        index: row.small("idx")?,
        model: row.text("model")?,
        spec: TaskSpec {
            prompt: row.text("prompt")?,
            negative_prompt: row.text("negative_prompt")?,
            seed: row.big("seed")?,
            steps: row.small("steps")?,
            width: row.small("width")?,
            height: row.small("height")?,
            guidance: row.real("guidance")?,
            n: row.small("n")?,
            sampler: row.text("sampler")?,
            schedule: row.schedule("schedule")?,
        },
        state: row.state("state")?,
        attempt: row.small("attempt")?,
        worker: row.optional_uuid("worker_id")?.map(WorkerId),
        progress_step: row.small("progress_step")?,
        lease_expires_at: row.optional_time("lease_expires_at")?,
        outputs: Vec::new(),
        errors: row.attempt_errors("errors")?,
        coordinates: optional_json(row, "coordinates", Coordinates::from_json)?,
        created_at: row.time("created_at")?,
        started_at: row.optional_time("started_at")?,
        finished_at: row.optional_time("finished_at")?,
        completion: completion(row)?,
    })
}

/// The succeeded attempt's record of a [`task_record`] row: none until a
/// completion set its device time.
fn completion(row: &impl Columns) -> Result<Option<Completion>> {
    let Some(device_ms) = row.optional_int64("device_ms")? else {
        return Ok(None);
    };
    Ok(Some(Completion {
        weights_sha256: row.text("weights_sha256")?,
        device_ms: device_ms as u64,
        worker_name: row.optional_text("worker_name")?.unwrap_or_default(),
        worker_device: row.optional_text("worker_device")?.unwrap_or_default(),
    }))
}

/// A `tasks` row of `id, model, priority, seq` with its job's `tenant`.
pub(crate) fn queued_task(row: &impl Columns) -> Result<QueuedTask> {
    Ok(QueuedTask {
        id: TaskId(row.uuid("id")?),
        model: row.text("model")?,
        tenant: row.text("tenant")?,
        priority: row.int32("priority")?,
        seq: row.int64("seq")?,
    })
}

/// A `tasks` row that left `running` (`id, model, priority, seq, tenant,
/// state, not_before`): back to `queued`, or `failed` for good.
pub(crate) fn requeue(row: &impl Columns) -> Result<Requeue> {
    Ok(Requeue {
        task: queued_task(row)?,
        state: row.state("state")?,
        not_before: row.optional_time("not_before")?,
        lease: None,
    })
}

/// A `tasks` row whose lease expired: [`requeue`]'s columns, and the lease
/// that ended (`worker_id, attempt`).
pub(crate) fn expired_lease(row: &impl Columns) -> Result<Requeue> {
    let mut requeued = requeue(row)?;
    requeued.lease = row
        .optional_uuid("worker_id")?
        .map(|worker| -> Result<LeaseToken> {
            Ok(LeaseToken {
                task: requeued.task.id,
                worker: WorkerId(worker),
                attempt: row.small("attempt")?,
            })
        })
        .transpose()?;
    Ok(requeued)
}

/// Per job, its task counts by state, the (done, needed) steps of its
/// running tasks, its queued tasks past their backoff and when the first of
/// the others may run, from rows of `job_id, state, tasks, done, total,
/// ready, retry_at`.
pub(crate) fn job_counts<R: Columns>(rows: &[R]) -> Result<JobCounts> {
    let mut out = JobCounts::new();
    for row in rows {
        let Ok(state) = row.state("state") else {
            continue;
        };
        let entry = out.entry(row.uuid("job_id")?).or_default();
        entry.counts.0.insert(state, row.big("tasks")?);
        entry.running_steps.0 += row.big("done")?;
        entry.running_steps.1 += row.big("total")?;
        entry.queued_ready += row.big("ready")?;
        if let Some(at) = row.optional_time("retry_at")? {
            entry.retry_at = Some(entry.retry_at.map_or(at, |first| first.min(at)));
        }
    }
    Ok(out)
}

/// `jobs` rows of `id, name, owner, model, priority, max_attempts,
/// task_count, created_at, paused, deadline, tenant, labels, sweep`, with
/// their counts (from [`job_counts`]); their rates are filled in after.
pub(crate) fn job_summaries<R: Columns>(
    rows: &[R],
    mut counts: JobCounts,
) -> Result<Vec<JobSummary>> {
    rows.iter()
        .map(|row| {
            let id = row.uuid("id")?;
            let tally = counts.remove(&id).unwrap_or_default();
            Ok(JobSummary {
                id: JobId(id),
                name: row.text("name")?,
                owner: row.text("owner")?,
                tenant: row.text("tenant")?,
                model: row.text("model")?,
                priority: row.int32("priority")?,
                max_attempts: row.small("max_attempts")?,
                task_count: row.big("task_count")?,
                created_at: row.time("created_at")?,
                paused: row.flag("paused")?,
                counts: tally.counts,
                running_steps: tally.running_steps,
                deadline: row.optional_time("deadline")?,
                queued_ready: tally.queued_ready,
                retry_at: tally.retry_at,
                sweep: optional_json(row, "sweep", Sweep::from_json)?,
                labels: serde_json::from_value(row.json("labels")?).map_err(undecodable)?,
                rate: Default::default(),
            })
        })
        .collect()
}

/// A row of `model, live, available, last_seen_at`.
pub(crate) fn model_workers(row: &impl Columns) -> Result<ModelWorkers> {
    Ok(ModelWorkers {
        model: row.text("model")?,
        live: row.big("live")? as u32,
        available: row.big("available")? as u32,
        last_seen_at: row.time("last_seen_at")?,
    })
}

/// A `tasks` row of `id, model, priority, seq, tenant, job_id` failed at its job's
/// deadline.
pub(crate) fn deadline_miss(row: &impl Columns) -> Result<DeadlineMiss> {
    Ok(DeadlineMiss {
        task: queued_task(row)?,
        job_id: JobId(row.uuid("job_id")?),
    })
}

/// A row of `id, job_id, ended_through`.
pub(crate) fn sweep_candidate(row: &impl Columns) -> Result<SweepCandidate> {
    Ok(SweepCandidate {
        task: TaskId(row.uuid("id")?),
        job_id: JobId(row.uuid("job_id")?),
        ended_through: row.small("ended_through")?,
    })
}

/// A `jobs` row of `id, reopened` whose manifest is due.
pub(crate) fn manifest_due(row: &impl Columns) -> Result<ManifestDue> {
    Ok(ManifestDue {
        job: JobId(row.uuid("id")?),
        reopened: row.small("reopened")?,
    })
}

/// One row of `outputs`: `idx, key, width, height, seed, bytes, sha256`.
pub(crate) fn output_record<R: Columns>(row: &R) -> Result<OutputRecord> {
    Ok(OutputRecord {
        index: row.small("idx")?,
        key: row.text("key")?,
        width: row.small("width")?,
        height: row.small("height")?,
        seed: row.big("seed")?,
        bytes: row.big("bytes")?,
        sha256: row.text("sha256")?,
    })
}

/// Hands each task its outputs, from `outputs` rows of `task_id` and
/// [`output_record`]'s columns, in index order.
pub(crate) fn attach_outputs<R: Columns>(rows: &[R], tasks: &mut [TaskRecord]) -> Result<()> {
    let mut by_task: HashMap<Uuid, Vec<OutputRecord>> = HashMap::new();
    for row in rows {
        by_task
            .entry(row.uuid("task_id")?)
            .or_default()
            .push(output_record(row)?);
    }
    for task in tasks {
        task.outputs = by_task.remove(&task.id.0).unwrap_or_default();
    }
    Ok(())
}

/// A worker's capabilities as its `capabilities` column holds them: a JSON
/// object keyed by model id.
pub(crate) fn capabilities_json(capabilities: &[ModelCapabilities]) -> Result<serde_json::Value> {
    let mut by_model = serde_json::Map::new();
    for caps in capabilities {
        let value = serde_json::to_value(caps).map_err(undecodable)?;
        by_model.insert(caps.model.clone(), value);
    }
    Ok(serde_json::Value::Object(by_model))
}

/// One model's capabilities, from a value of a `capabilities` column.
pub(crate) fn model_capabilities(row: &impl Columns) -> Result<ModelCapabilities> {
    serde_json::from_value(row.json("capabilities")?).map_err(undecodable)
}

/// A worker's `capabilities` column, in the order of its `models`.
fn worker_capabilities(row: &impl Columns, models: &[String]) -> Result<Vec<ModelCapabilities>> {
    let by_model: HashMap<String, ModelCapabilities> =
        serde_json::from_value(row.json("capabilities")?).map_err(undecodable)?;
    let mut all: Vec<ModelCapabilities> = by_model.into_values().collect();
    all.sort_by_key(|c| {
        let position = models.iter().position(|m| *m == c.model);
        (position.unwrap_or(usize::MAX), c.model.clone())
    });
    Ok(all)
}

/// A `workers` row of `id, name, device, models, loaded_models,
/// registered_at, last_seen_at, consecutive_failures, quarantined_at,
/// probation, recent_errors, capabilities`, with `running`: the ids of the
/// tasks it holds leases on, oldest claim first; and `recent_succeeded`:
/// the tasks it finished successfully within the rate window.
pub(crate) fn worker_status(row: &impl Columns) -> Result<WorkerStatus> {
    let models = row.names("models")?;
    Ok(WorkerStatus {
        info: WorkerInfo {
            id: WorkerId(row.uuid("id")?),
            name: row.text("name")?,
            device: row.text("device")?,
            capabilities: worker_capabilities(row, &models)?,
            models,
            loaded_models: row.names("loaded_models")?,
        },
        registered_at: row.time("registered_at")?,
        last_seen_at: row.time("last_seen_at")?,
        running: row.uuids("running")?.into_iter().map(TaskId).collect(),
        consecutive_failures: row.small("consecutive_failures")?,
        quarantined_at: row.optional_time("quarantined_at")?,
        probation: row.flag("probation")?,
        recent_errors: row.worker_errors("recent_errors")?,
        draining_at: row.optional_time("draining_at")?,
        recent_succeeded: row.big("recent_succeeded")?,
    })
}

/// What `record_attempt.sql` returns: `consecutive_failures, quarantined,
/// newly_quarantined, probation`.
pub(crate) fn worker_health(row: &impl Columns) -> Result<WorkerHealth> {
    Ok(WorkerHealth {
        consecutive_failures: row.small("consecutive_failures")?,
        quarantined: row.flag("quarantined")?,
        newly_quarantined: row.flag("newly_quarantined")?,
        probation: row.flag("probation")?,
    })
}

/// Why a guarded update of `task` touched no row, from its `state, attempt`
/// (`None`: the task does not exist).
pub(crate) fn missed(task: TaskId, wanted: &str, row: Option<&impl Columns>) -> StoreError {
    match row {
        None => StoreError::NotFound(format!("task {task}")),
        Some(row) => {
            let state = row.text("state").unwrap_or_default();
            let attempt = row.small("attempt").unwrap_or_default();
            StoreError::Conflict(format!(
                "task {task} is {state} at attempt {attempt}: {wanted}"
            ))
        }
    }
}

/// An `api_keys` row of `id, kind, tenant, role, name, created_at,
/// revoked_at`.
pub(crate) fn api_key(row: &impl Columns) -> Result<ApiKey> {
    let id = row.text("id")?;
    let scope = match (
        row.text("kind")?.as_str(),
        row.optional_text("tenant")?,
        row.optional_text("role")?,
    ) {
        ("client", Some(tenant), Some(role)) => KeyScope::Client {
            tenant,
            role: role.parse().map_err(undecodable)?,
        },
        ("worker", None, None) => KeyScope::Worker,
        (kind, ..) => {
            return Err(undecodable(format!(
                "key {id} of kind {kind:?} has a tenant and role that do not fit it"
            )));
        }
    };
    Ok(ApiKey {
        id,
        scope,
        name: row.text("name")?,
        created_at: row.time("created_at")?,
        revoked_at: row.optional_time("revoked_at")?,
    })
}

/// An `api_keys` row as [`api_key`] reads it, with `secret_sha256`.
pub(crate) fn stored_key(row: &impl Columns) -> Result<StoredKey> {
    Ok(StoredKey {
        key: api_key(row)?,
        secret_sha256: row.bytes("secret_sha256")?,
    })
}

/// A `tenants` row's weight and limits.
pub(crate) fn tenant_limits(row: &impl Columns) -> Result<TenantLimits> {
    Ok(TenantLimits {
        weight: row.small("weight")?,
        max_queued_tasks: crate::quota::limit(row.optional_int64("max_queued_tasks")?),
        max_running_tasks: crate::quota::limit(row.optional_int64("max_running_tasks")?),
        max_device_seconds_per_day: crate::quota::limit(
            row.optional_int64("max_device_seconds_per_day")?,
        ),
    })
}

/// A whole `tenants` row.
pub(crate) fn tenant_settings(row: &impl Columns) -> Result<TenantSettings> {
    Ok(TenantSettings {
        name: row.text("name")?,
        limits: tenant_limits(row)?,
    })
}

/// A tenant's use (`tenant_use.sql`) against its limits.
pub(crate) fn tenant_usage(
    tenant: &str,
    limits: TenantLimits,
    row: &impl Columns,
) -> Result<TenantUsage> {
    Ok(TenantUsage {
        tenant: tenant.to_owned(),
        limits,
        queued_tasks: row.big("queued")?,
        running_tasks: row.big("running")?,
        device_ms_today: row.big("device_ms_today")?,
        device_ms_total: row.big("device_ms_total")?,
        attempts_today: row.big("attempts_today")?,
        attempts_total: row.big("attempts_total")?,
    })
}
