//! The worker's main loop: register, then pop → claim → run, preferring
//! models already loaded, until shutdown. On shutdown it stops popping,
//! lets the running task finish within the grace period, and gives it back
//! after that.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fresco_core::status::{ErrorCode, classify};
use fresco_diffusion::ModelCache;
use fresco_dispatch::{Dispatch, RedisDispatch};
use fresco_proto::v1 as pb;
use fresco_storage::Storage;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Settings;
use crate::coordinator::{CoordinatorClient, task_not_ours, with_retries};
use crate::settings::DispatchSource;
use crate::task::{self, TaskContext};

/// The order to pop queues in: loaded models first (most recent first), then
/// the other models this worker serves.
pub fn pop_order(served: &[String], loaded: &[String]) -> Vec<String> {
    let mut order: Vec<String> = loaded
        .iter()
        .filter(|m| served.contains(m))
        .cloned()
        .collect();
    let rest: Vec<String> = served
        .iter()
        .filter(|m| !order.contains(m))
        .cloned()
        .collect();
    order.extend(rest);
    order
}

pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = CoordinatorClient::new(&settings.coordinator)?;
    let storage = Storage::from_url(&settings.storage).context("opening output storage")?;
    let registry = settings.registry.clone();
    let cache = Arc::new(ModelCache::with_loader(
        settings.cache_budget_bytes,
        settings.device.clone(),
        Box::new(move |model, device| registry.load(model, device)),
    ));
    let register = pb::RegisterWorkerRequest {
        name: settings.name.clone(),
        device: crate::device::device_label(&settings.device),
        models: settings.models.clone(),
        loaded_models: Vec::new(),
        worker_id: String::new(),
    };
    let registered = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = with_retries("register", Duration::from_secs(120), || client.register(register.clone())) => {
            r.context("registering with the coordinator")?
        }
    };
    let worker_id = registered.worker_id.clone();
    info!(worker_id = %worker_id, name = %settings.name, models = ?settings.models, "worker registered");
    let dispatch: Arc<dyn Dispatch> = match &settings.dispatch {
        DispatchSource::Redis { url } => Arc::new(
            RedisDispatch::connect(url, &registered.queue_prefix)
                .await
                .context("connecting to Redis")?,
        ),
        DispatchSource::InProcess(dispatch) => dispatch.clone(),
    };
    let give_back = CancellationToken::new();
    let ctx = TaskContext {
        client: client.clone(),
        storage,
        cache: cache.clone(),
        worker_id: worker_id.clone(),
        heartbeat: Duration::from_secs(u64::from(registered.heartbeat_seconds.max(1))),
        report_patience: settings.report_patience,
        give_back: give_back.clone(),
    };
    // Past the grace period after a shutdown signal, the running task is given back.
    let grace = settings.shutdown_grace;
    let grace_timer = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
            give_back.cancel();
        })
    };
    while !shutdown.is_cancelled() {
        let order = pop_order(&settings.models, &cache.loaded_models());
        let popped = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = dispatch.pop(&order, settings.pop_timeout) => p,
        };
        let popped = match popped {
            Ok(Some(popped)) => popped,
            Ok(None) => continue,
            Err(err) => {
                warn!(error = %err, "dispatch pop failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let claim = pb::ClaimTaskRequest {
            worker_id: worker_id.clone(),
            task_id: popped.task.to_string(),
            loaded_models: cache.loaded_models(),
        };
        let claimed = match client.claim(claim).await {
            Ok(claimed) => claimed,
            Err(status) if task_not_ours(&status) => {
                // Cancelled, already taken, or a duplicate entry: nothing to do.
                continue;
            }
            Err(status) if classify(&status).code == ErrorCode::Refused => {
                // Quarantined, or this worker already failed the task: the
                // reconciler queues it again for another worker; wait so
                // that one pops it first.
                warn!(task_id = %popped.task, reason = %status.message(), "claim refused to this worker");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(settings.pop_timeout) => {}
                }
                continue;
            }
            Err(status) => {
                warn!(task_id = %popped.task, code = ?status.code(), error = %status.message(), "claim failed; the reconciler will queue the task again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(task) = claimed.task else {
            warn!(task_id = %popped.task, "claim reply held no task");
            continue;
        };
        info!(task_id = %task.id, job_id = %task.job_id, attempt = claimed.attempt, model = %task.model, "running task");
        let ended = task::run(&ctx, task, claimed.attempt).await;
        tracing::debug!(?ended, "task ended");
    }
    grace_timer.abort();
    let stats = cache.stats();
    info!(
        hits = stats.hits,
        misses = stats.misses,
        evictions = stats.evictions,
        load_seconds = stats.load_seconds,
        "worker stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_models_come_first() {
        let served = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(pop_order(&served, &["c".into()]), ["c", "a", "b"]);
        assert_eq!(pop_order(&served, &[]), ["a", "b", "c"]);
        assert_eq!(
            pop_order(&served, &["z".into(), "b".into()]),
            ["b", "a", "c"]
        );
    }
}
