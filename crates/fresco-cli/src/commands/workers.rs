//! `fresco workers`: the farm's workers, most recently seen first: when each
//! was last seen, whether it is quarantined (with its last errors: why) or
//! on probation, its models (loaded ones marked `*`) and its running tasks.
//! `fresco workers release ID` puts a quarantined worker on probation now;
//! `fresco workers drain ID` drains a worker: it finishes its task, claims
//! nothing more and exits (a draining worker shows `DRAINING`).

use fresco_proto::v1 as pb;
use serde_json::json;

use crate::args::{ReleaseArgs, WorkersAction, WorkersArgs};
use crate::client::Target;
use crate::{Failure, client};

fn seconds_ago(at: Option<prost_types::Timestamp>) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    at.map_or(0, |t| (now - t.seconds).max(0))
}

fn error_json(e: &pb::TaskError) -> serde_json::Value {
    json!({
        "task_id": e.task_id,
        "attempt": e.attempt,
        "kind": e.kind,
        "message": e.message,
        "at": e.at.map(|t| t.seconds),
    })
}

fn worker_json(w: &pb::Worker) -> serde_json::Value {
    json!({
        "worker_id": w.id,
        "name": w.name,
        "device": w.device,
        "models": w.models,
        "loaded_models": w.loaded_models,
        "registered_at": w.registered_at.map(|t| t.seconds),
        "last_seen_at": w.last_seen_at.map(|t| t.seconds),
        "running_tasks": w.running_tasks,
        "consecutive_failures": w.consecutive_failures,
        "quarantined_at": w.quarantined_at.map(|t| t.seconds),
        "probation": w.probation,
        "draining_at": w.draining_at.map(|t| t.seconds),
        "recent_errors": w.recent_errors.iter().map(error_json).collect::<Vec<_>>(),
        "tasks_per_minute": w.tasks_per_minute,
        "rate_window_seconds": w.rate_window_seconds,
    })
}

/// `model-a*, model-b`: every model, the loaded ones marked.
fn models_line(w: &pb::Worker) -> String {
    w.models
        .iter()
        .map(|m| {
            if w.loaded_models.contains(m) {
                format!("{m}*")
            } else {
                m.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Its health in a few words: draining, quarantined, on probation, or
/// nothing.
fn health(w: &pb::Worker) -> String {
    let draining = match w.draining_at {
        Some(_) => format!("  DRAINING since {}s ago", seconds_ago(w.draining_at)),
        None => String::new(),
    };
    draining + &quarantine(w)
}

/// Quarantined, on probation, or nothing.
fn quarantine(w: &pb::Worker) -> String {
    if w.quarantined_at.is_some() {
        format!(
            "  QUARANTINED after {} failures {}s ago",
            w.consecutive_failures,
            seconds_ago(w.quarantined_at)
        )
    } else if w.probation {
        "  PROBATION (one probe task)".to_owned()
    } else {
        String::new()
    }
}

/// The worker's line, then, when it is quarantined or on probation, its
/// last errors (oldest first): why.
fn print_worker(w: &pb::Worker) {
    println!(
        "{}  {:<20} {:<5} seen {:>5}s ago{}  {:.1} tasks/min  running {}  models {}",
        w.id,
        w.name,
        w.device,
        seconds_ago(w.last_seen_at),
        health(w),
        w.tasks_per_minute,
        if w.running_tasks.is_empty() {
            "-".to_owned()
        } else {
            w.running_tasks.join(",")
        },
        models_line(w)
    );
    if w.quarantined_at.is_some() || w.probation {
        for e in &w.recent_errors {
            println!(
                "    {:>5}s ago  task {} attempt {} ({}): {}",
                seconds_ago(e.at),
                e.task_id,
                e.attempt,
                e.kind,
                e.message
            );
        }
    }
}

pub async fn run(target: &Target, args: WorkersArgs) -> Result<(), Failure> {
    match args.action {
        Some(WorkersAction::Release(release_args)) => release(target, release_args).await,
        Some(WorkersAction::Drain(drain_args)) => drain(target, drain_args).await,
        None => list(target, &args).await,
    }
}

async fn list(target: &Target, args: &WorkersArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let workers = client
        .list_workers(pb::ListWorkersRequest { limit: args.limit })
        .await?
        .into_inner()
        .workers;
    if args.json {
        let all: Vec<_> = workers.iter().map(worker_json).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    for w in &workers {
        print_worker(w);
    }
    Ok(())
}

async fn release(target: &Target, args: ReleaseArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let worker = client
        .release_worker(pb::ReleaseWorkerRequest {
            worker_id: args.worker_id,
        })
        .await?
        .into_inner();
    show_changed(
        &worker,
        args.json,
        "released: on probation, it may claim one probe task",
    );
    Ok(())
}

async fn drain(target: &Target, args: ReleaseArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let worker = client
        .drain_worker(pb::DrainWorkerRequest {
            worker_id: args.worker_id,
        })
        .await?
        .into_inner();
    show_changed(
        &worker,
        args.json,
        "draining: it finishes the task it runs, claims nothing more and exits",
    );
    Ok(())
}

/// A worker an operator just changed: as JSON, or listed with what now
/// happens to it.
fn show_changed(worker: &pb::Worker, json: bool, what_now: &str) {
    if json {
        println!("{}", worker_json(worker));
    } else {
        print_worker(worker);
        println!("{what_now}");
    }
}
