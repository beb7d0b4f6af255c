//! How jobs and tasks are printed: one-line text summaries and JSON objects.

use fresco_core::params::Schedule;
use fresco_core::sweep::{AXES, Coordinates, Sweep};
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
    /// The axes of a sweep (absent: not a sweep).
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep: Option<Sweep>,
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
        sweep: job.sweep.as_ref().map(Sweep::from_proto),
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
        "coordinates": task.coordinates.as_ref().map(Coordinates::from_proto),
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

/// Values of an axis shown before the rest is counted.
const AXIS_VALUES_SHOWN: usize = 10;

/// A sweep's product, then each varied axis with its size and values:
/// `sweep: 3 prompts × 4 seeds = 12 tasks`, `  seeds (4): 1, 2, 3, 4`.
pub fn sweep_lines(sweep: &pb::Sweep) -> Vec<String> {
    let axes = Sweep::from_proto(sweep);
    let total = axes
        .task_count()
        .map_or_else(|| "over 2^64".to_owned(), |n| n.to_string());
    let mut lines = vec![format!("sweep: {} = {total} tasks", axes.describe())];
    let values: [Vec<String>; 6] = [
        axes.prompts
            .iter()
            .map(|p| format!("{:?}", p.prompt))
            .collect(),
        axes.seeds.iter().map(ToString::to_string).collect(),
        axes.guidance.iter().map(ToString::to_string).collect(),
        axes.steps.iter().map(ToString::to_string).collect(),
        axes.samplers.clone(),
        axes.sizes
            .iter()
            .map(|s| format!("{}x{}", s.width, s.height))
            .collect(),
    ];
    for (axis, values) in AXES.iter().zip(values) {
        if values.is_empty() {
            continue;
        }
        let mut shown = values[..values.len().min(AXIS_VALUES_SHOWN)].join(", ");
        if values.len() > AXIS_VALUES_SHOWN {
            shown.push_str(", ...");
        }
        lines.push(format!("  {} ({}): {shown}", axis.field, values.len()));
    }
    lines
}

/// A task's place in its sweep: `prompt 2, seed 0, guidance 1`.
pub fn coordinates_text(at: &pb::SweepCoordinates) -> String {
    let indices = [
        at.prompt,
        at.seed,
        at.guidance,
        at.steps,
        at.sampler,
        at.size,
    ];
    let parts: Vec<String> = AXES
        .iter()
        .zip(indices)
        .filter_map(|(axis, index)| index.map(|i| format!("{} {i}", axis.coordinate)))
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_shows_its_axes_their_sizes_and_values() {
        let sweep = pb::Sweep {
            prompts: vec![pb::SweepPrompt {
                prompt: "a red circle".into(),
                negative_prompt: None,
            }],
            seeds: (1..=12).collect(),
            guidance: vec![3.0, 7.5],
            ..Default::default()
        };
        assert_eq!(
            sweep_lines(&sweep),
            [
                "sweep: 1 prompt × 12 seeds × 2 guidance values = 24 tasks",
                "  prompts (1): \"a red circle\"",
                "  seeds (12): 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ...",
                "  guidance (2): 3, 7.5",
            ]
        );
        let at = pb::SweepCoordinates {
            prompt: Some(0),
            seed: Some(11),
            guidance: Some(1),
            ..Default::default()
        };
        assert_eq!(coordinates_text(&at), "prompt 0, seed 11, guidance 1");
    }
}
