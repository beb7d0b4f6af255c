//! Store records as API messages.

use chrono::{DateTime, Utc};
use fresco_core::sweep::{Coordinates, Sweep};
use fresco_core::{ModelCapabilities, TaskState};
use fresco_proto::v1 as pb;
use fresco_store::{Completion, JobSummary, OutputRecord, TaskRecord, WorkerStatus, is_finished};

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A job as the API shows it; `waiting_reason` from [`crate::waiting`].
pub fn job(job: &JobSummary, waiting_reason: String) -> pb::Job {
    let c = &job.counts;
    pb::Job {
        id: job.id.to_string(),
        name: job.name.clone(),
        owner: job.owner.clone(),
        tenant: job.tenant.clone(),
        model: job.model.clone(),
        priority: job.priority,
        max_attempts: job.max_attempts,
        task_count: job.task_count,
        counts: Some(pb::StateCounts {
            queued: c.get(TaskState::Queued),
            running: c.get(TaskState::Running),
            succeeded: c.get(TaskState::Succeeded),
            failed: c.get(TaskState::Failed),
            cancelled: c.get(TaskState::Cancelled),
        }),
        finished: is_finished(c),
        created_at: Some(timestamp(job.created_at)),
        running_steps_done: job.running_steps.0,
        running_steps_total: job.running_steps.1,
        paused: job.paused,
        waiting_reason,
        deadline: job.deadline.map(timestamp),
        sweep: job.sweep.as_ref().map(Sweep::to_proto),
        labels: job.labels.clone().into_iter().collect(),
        tasks_per_minute: job.rate.tasks_per_minute,
        images_per_minute: job.rate.images_per_minute,
        rate_window_seconds: job.rate.window.as_secs() as u32,
        eta: job.rate.eta.map(timestamp),
        eta_seconds: job
            .rate
            .eta
            .map(|at| (at - Utc::now()).num_seconds().max(0) as u64),
    }
}

pub fn output(o: &OutputRecord) -> pb::Output {
    pb::Output {
        index: o.index,
        key: o.key.clone(),
        width: o.width,
        height: o.height,
        seed: o.seed,
        bytes: o.bytes,
        sha256: o.sha256.clone(),
    }
}

pub fn task(t: &TaskRecord) -> pb::Task {
    pb::Task {
        id: t.id.to_string(),
        job_id: t.job_id.to_string(),
        index: t.index,
        state: t.state.to_proto() as i32,
        model: t.model.clone(),
        prompt: t.spec.prompt.clone(),
        negative_prompt: t.spec.negative_prompt.clone(),
        seed: t.spec.seed,
        steps: t.spec.steps,
        width: t.spec.width,
        height: t.spec.height,
        guidance: t.spec.guidance,
        n: t.spec.n,
        sampler: t.spec.sampler.clone(),
        schedule: t.spec.schedule.to_proto(),
        created_at: Some(timestamp(t.created_at)),
        started_at: t.started_at.map(timestamp),
        finished_at: t.finished_at.map(timestamp),
        weights_sha256: completed(t, |c| c.weights_sha256.clone()),
        sampling_seconds: t.completion.as_ref().map(|c| c.device_ms as f64 / 1000.0),
        worker_name: completed(t, |c| c.worker_name.clone()),
        worker_device: completed(t, |c| c.worker_device.clone()),
        coordinates: t.coordinates.as_ref().map(Coordinates::to_proto),
        attempt: t.attempt,
        worker: t.worker.map(|w| w.to_string()).unwrap_or_default(),
        progress_step: t.progress_step,
        outputs: t.outputs.iter().map(output).collect(),
        errors: t
            .errors
            .iter()
            .map(|e| pb::TaskError {
                attempt: e.attempt,
                worker: e.worker.clone(),
                message: e.message.clone(),
                at: Some(timestamp(e.at)),
                kind: e.kind.as_str().to_owned(),
                task_id: String::new(),
            })
            .collect(),
    }
}

/// A field of the task's succeeded attempt; empty until one has.
fn completed(t: &TaskRecord, field: impl Fn(&Completion) -> String) -> String {
    t.completion.as_ref().map(field).unwrap_or_default()
}

pub fn worker(w: &WorkerStatus) -> pb::Worker {
    let (tasks_per_minute, window) = w.rate(chrono::Utc::now());
    pb::Worker {
        tasks_per_minute,
        rate_window_seconds: u32::try_from(window.as_secs()).unwrap_or(u32::MAX),
        id: w.info.id.to_string(),
        name: w.info.name.clone(),
        device: w.info.device.clone(),
        models: w.info.models.clone(),
        loaded_models: w.info.loaded_models.clone(),
        registered_at: Some(timestamp(w.registered_at)),
        last_seen_at: Some(timestamp(w.last_seen_at)),
        running_tasks: w.running.iter().map(ToString::to_string).collect(),
        consecutive_failures: w.consecutive_failures,
        quarantined_at: w.quarantined_at.map(timestamp),
        probation: w.probation,
        draining_at: w.draining_at.map(timestamp),
        recent_errors: w
            .recent_errors
            .iter()
            .map(|e| pb::TaskError {
                attempt: e.attempt,
                worker: w.info.id.to_string(),
                message: e.message.clone(),
                at: Some(timestamp(e.at)),
                kind: e.kind.as_str().to_owned(),
                task_id: e.task.to_string(),
            })
            .collect(),
        capabilities: w
            .info
            .capabilities
            .iter()
            .map(ModelCapabilities::to_proto)
            .collect(),
    }
}
