//! `fresco workers`: the farm's workers, most recently seen first: when each
//! was last seen, whether it is quarantined, its models (loaded ones marked
//! `*`) and its running tasks.

use fresco_proto::v1 as pb;
use serde_json::json;

use crate::args::WorkersArgs;
use crate::{Failure, client};

fn seconds_ago(at: Option<prost_types::Timestamp>) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    at.map_or(0, |t| (now - t.seconds).max(0))
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

pub async fn run(endpoint: &str, args: WorkersArgs) -> Result<(), Failure> {
    let mut client = client::connect(endpoint).await?;
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
        println!(
            "{}  {:<20} {:<5} seen {:>5}s ago{}  running {}  models {}",
            w.id,
            w.name,
            w.device,
            seconds_ago(w.last_seen_at),
            if w.quarantined_at.is_some() {
                format!("  QUARANTINED after {} failures", w.consecutive_failures)
            } else {
                String::new()
            },
            if w.running_tasks.is_empty() {
                "-".to_owned()
            } else {
                w.running_tasks.join(",")
            },
            models_line(w)
        );
    }
    Ok(())
}
