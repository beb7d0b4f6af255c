//! How jobs and tasks are printed: one-line text summaries and JSON objects.

use fresco_core::params::Schedule;
use fresco_proto::v1 as pb;
use serde::Serialize;
use serde_json::{Value, json};

pub fn counts(job: &pb::Job) -> pb::StateCounts {
    job.counts.unwrap_or_default()
}

/// `queued 3, running 1, succeeded 16, failed 0, cancelled 0`, with
/// `(paused)` after a paused job's counts.
pub fn counts_line(job: &pb::Job) -> String {
    let c = counts(job);
    format!(
        "queued {}, running {}, succeeded {}, failed {}, cancelled {}{}",
        c.queued,
        c.running,
        c.succeeded,
        c.failed,
        c.cancelled,
        if job.paused { " (paused)" } else { "" }
    )
}

pub fn state_name(state: i32) -> &'static str {
    match pb::TaskState::try_from(state) {
        Ok(pb::TaskState::Queued) => "queued",
        Ok(pb::TaskState::Running) => "running",
        Ok(pb::TaskState::Succeeded) => "succeeded",
        Ok(pb::TaskState::Failed) => "failed",
        Ok(pb::TaskState::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

#[derive(Serialize)]
struct JobJson<'a> {
    job_id: &'a str,
    name: &'a str,
    owner: &'a str,
    tenant: &'a str,
    model: &'a str,
    priority: i32,
    task_count: u64,
    finished: bool,
    paused: bool,
    counts: Value,
    created_at: Option<i64>,
    /// Why its queued tasks cannot run now ("" when nothing holds them).
    waiting_reason: &'a str,
    /// RFC 3339: tasks still queued then fail (absent: no deadline).
    deadline: Option<String>,
    labels: std::collections::BTreeMap<&'a str, &'a str>,
    /// Tasks succeeded and images made per minute, recently.
    tasks_per_minute: f64,
    images_per_minute: f64,
    /// RFC 3339: when the remaining tasks should have ended at that rate
    /// (absent: no task ended recently, or the job has finished).
    eta: Option<String>,
    eta_seconds: Option<u64>,
}

/// A timestamp as RFC 3339 in UTC, to the second.
pub fn rfc3339(at: prost_types::Timestamp) -> Option<String> {
    let secs = u64::try_from(at.seconds).ok()?;
    let time = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))?;
    Some(humantime::format_rfc3339_seconds(time).to_string())
}

/// `2.5 tasks/min, 10.0 images/min over 5m, eta 2026-12-07T16:30:00Z (in
/// 4m 10s)` once a task succeeded recently, else nothing.
pub fn rate_line(job: &pb::Job) -> Option<String> {
    if job.tasks_per_minute <= 0.0 {
        return None;
    }
    let window = humantime::format_duration(std::time::Duration::from_secs(u64::from(
        job.rate_window_seconds,
    )));
    let mut line = format!(
        "{:.1} tasks/min, {:.1} images/min over {window}",
        job.tasks_per_minute, job.images_per_minute
    );
    if let (Some(at), Some(left)) = (job.eta.and_then(rfc3339), job.eta_seconds) {
        let left = humantime::format_duration(std::time::Duration::from_secs(left));
        line.push_str(&format!(", eta {at} (in {left})"));
    }
    Some(line)
}

/// `project=catalog-2027, team=x`, in key order; nothing without labels.
pub fn labels_line(job: &pb::Job) -> Option<String> {
    let labels: std::collections::BTreeMap<_, _> = job.labels.iter().collect();
    (!labels.is_empty()).then(|| {
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// `waiting: <reason>` when the job's queued tasks cannot run, else nothing.
pub fn waiting_line(job: &pb::Job) -> Option<String> {
    (!job.waiting_reason.is_empty()).then(|| format!("waiting: {}", job.waiting_reason))
}

pub fn job_json(job: &pb::Job) -> Value {
    let c = counts(job);
    serde_json::to_value(JobJson {
        job_id: &job.id,
        name: &job.name,
        owner: &job.owner,
        tenant: &job.tenant,
        model: &job.model,
        priority: job.priority,
        task_count: job.task_count,
        finished: job.finished,
        paused: job.paused,
        counts: json!({
            "queued": c.queued, "running": c.running, "succeeded": c.succeeded,
            "failed": c.failed, "cancelled": c.cancelled,
        }),
        created_at: job.created_at.map(|t| t.seconds),
        waiting_reason: &job.waiting_reason,
        deadline: job.deadline.and_then(rfc3339),
        labels: job
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        tasks_per_minute: job.tasks_per_minute,
        images_per_minute: job.images_per_minute,
        eta: job.eta.and_then(rfc3339),
        eta_seconds: job.eta_seconds,
    })
    .unwrap_or(Value::Null)
}

pub fn task_json(task: &pb::Task) -> Value {
    json!({
        "task_id": task.id,
        "index": task.index,
        "state": state_name(task.state),
        "prompt": task.prompt,
        "negative_prompt": task.negative_prompt,
        "seed": task.seed,
        "steps": task.steps,
        "width": task.width,
        "height": task.height,
        "guidance": task.guidance,
        "n": task.n,
        "sampler": task.sampler,
        "schedule": Schedule::from_proto(task.schedule.as_ref()),
        "attempt": task.attempt,
        "worker": task.worker,
        "progress_step": task.progress_step,
        "outputs": task.outputs.iter().map(|o| json!({
            "index": o.index, "key": o.key, "width": o.width, "height": o.height,
            "seed": o.seed, "bytes": o.bytes,
        })).collect::<Vec<_>>(),
        "errors": task.errors.iter().map(|e| json!({
            "attempt": e.attempt, "worker": e.worker, "message": e.message,
            "kind": e.kind,
        })).collect::<Vec<_>>(),
    })
}
