//! The worker's main loop: register, then pop → claim → run, preferring
//! models already loaded, until shutdown. On shutdown it stops popping,
//! lets the running task finish within the grace period, and gives it back
//! after that. Once the coordinator drains it (a heartbeat's or a claim's
//! answer), it finishes and reports the running task, claims nothing more
//! and returns, so the process exits 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fresco_core::status::{ErrorCode, classify};
use fresco_dispatch::{Dispatch, Popped, RedisDispatch};
use fresco_pipeline::ModelCache;
use fresco_proto::v1 as pb;
use fresco_storage::Storage;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::Settings;
use crate::coordinator::{CoordinatorClient, task_not_ours, with_retries};
use crate::idle::IdlePing;
use crate::metrics::{self, CacheMetrics};
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

/// Runs the worker until `shutdown`, in phases: check the settings, open the
/// model cache and storage, register, connect to the dispatch queues, then
/// pop → claim → run tasks; once `shutdown` fires, a task still running past
/// the grace period is given back.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    settings.validate().context("invalid worker settings")?;
    let client = CoordinatorClient::new(
        &settings.coordinator,
        settings.token.as_deref(),
        &settings.tls,
    )?;
    let storage = Storage::from_url(&settings.storage).context("opening output storage")?;
    let cache = Arc::new(model_cache(&settings));
    // Before registering: once the coordinator knows the worker, its
    // metrics already show the cache.
    let mut cache_metrics = CacheMetrics::new(&cache);
    let Some(registered) = register(&client, &settings, &shutdown).await? else {
        return Ok(());
    };
    let worker_id = registered.worker_id.clone();
    info!(worker_id = %worker_id, name = %settings.name, models = ?settings.models, "worker registered");
    let dispatch = connect_dispatch(&settings.dispatch, &registered.queue_prefix).await?;
    let give_back = CancellationToken::new();
    let ctx = TaskContext {
        client: client.clone(),
        storage,
        cache: cache.clone(),
        worker_id,
        heartbeat: Duration::from_secs(u64::from(registered.heartbeat_seconds.max(1))),
        report_patience: settings.report_patience,
        give_back: give_back.clone(),
        drain: CancellationToken::new(),
    };
    let grace_timer = spawn_grace_timer(&shutdown, settings.shutdown_grace, give_back);
    while let Some(claimed) = next_task(&settings, &ctx, dispatch.as_ref(), &shutdown).await? {
        let Claimed {
            task,
            attempt,
            traceparent,
        } = claimed;
        info!(task_id = %task.id, job_id = %task.job_id, attempt, model = %task.model, "running task");
        let span = tracing::info_span!("task", otel.name = "run task", task_id = %task.id, job_id = %task.job_id, attempt, model = %task.model);
        fresco_telemetry::traces::set_parent(&span, &traceparent);
        let model = task.model.clone();
        let ended = task::run(&ctx, task, attempt).instrument(span).await;
        metrics::task_ended(&model, &ended);
        cache_metrics.update(&cache);
        tracing::debug!(?ended, "task ended");
    }
    grace_timer.abort();
    if ctx.drain.is_cancelled() && !shutdown.is_cancelled() {
        info!(worker_id = %ctx.worker_id, "worker drained: its task is finished and reported; exiting");
    }
    log_stopped(&cache);
    Ok(())
}

/// The cache of loaded pipelines, loading (and hashing the weights of)
/// models through the settings' registry.
fn model_cache(settings: &Settings) -> ModelCache {
    let registry = settings.registry.clone();
    let hashing = settings.registry.clone();
    ModelCache::with_loader(
        settings.cache_budget_bytes,
        settings.device.clone(),
        Box::new(move |model, device| registry.load(model, device)),
    )
    .with_weights_hasher(Box::new(move |model| hashing.weights_sha256(model)))
}

/// Registers with the coordinator, retrying for up to two minutes; `None`
/// when `shutdown` fires first.
async fn register(
    client: &CoordinatorClient,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<pb::RegisterWorkerResponse>> {
    let register = pb::RegisterWorkerRequest {
        name: settings.name.clone(),
        device: crate::device::device_label(&settings.device),
        models: settings.models.clone(),
        loaded_models: Vec::new(),
        worker_id: String::new(),
        capabilities: served_capabilities(settings),
    };
    tokio::select! {
        _ = shutdown.cancelled() => Ok(None),
        r = with_retries("register", Duration::from_secs(120), || client.register(register.clone())) => {
            Ok(Some(r.map_err(refused_registration)?))
        }
    }
}

/// Why registering failed, in words an operator acts on: a token the
/// coordinator does not take says so and names the flag.
fn refused_registration(status: tonic::Status) -> anyhow::Error {
    match classify(&status).code {
        ErrorCode::Unauthenticated => anyhow::anyhow!(
            "the coordinator refused the worker token: {} (give a worker token with --token or FRESCO_WORKER_TOKEN)",
            status.message()
        ),
        ErrorCode::Refused => anyhow::anyhow!(
            "the coordinator refused the registration: {}",
            status.message()
        ),
        _ => anyhow::anyhow!(
            "registering with the coordinator: {:?}: {}",
            status.code(),
            status.message()
        ),
    }
}

/// What each served model accepts, read from the registry without loading
/// weights, for the coordinator to refuse at submit what no worker can run.
/// A model whose capabilities cannot be read is registered without them (its
/// tasks are then checked here only, when they run).
fn served_capabilities(settings: &Settings) -> Vec<pb::ModelCapabilities> {
    settings
        .models
        .iter()
        .filter_map(|model| match settings.registry.capabilities(model) {
            Ok(capabilities) => Some(capabilities.to_proto()),
            Err(err) => {
                warn!(model = %model, error = %err, "could not read the model's capabilities; registering it without them");
                None
            }
        })
        .collect()
}

/// The dispatch queues to pop from: Redis under the coordinator's key
/// prefix, or the queues shared in this process.
async fn connect_dispatch(
    source: &DispatchSource,
    queue_prefix: &str,
) -> anyhow::Result<Arc<dyn Dispatch>> {
    Ok(match source {
        DispatchSource::Redis { url } => Arc::new(
            RedisDispatch::connect(url, queue_prefix)
                .await
                .context("connecting to Redis")?,
        ),
        DispatchSource::InProcess(dispatch) => dispatch.clone(),
    })
}

/// Past the grace period after a shutdown signal, the running task is given
/// back (`give_back` is cancelled).
fn spawn_grace_timer(
    shutdown: &CancellationToken,
    grace: Duration,
    give_back: CancellationToken,
) -> JoinHandle<()> {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
        give_back.cancel();
    })
}

/// A task this worker claimed: run it with `attempt` as the fencing token,
/// its spans in the trace `traceparent` names (empty: none).
struct Claimed {
    task: pb::Task,
    attempt: u32,
    traceparent: String,
}

/// What one pop or claim came to.
enum Attempt<T> {
    /// Got it.
    Got(T),
    /// Nothing this time; pop again.
    Again,
    /// Shutdown: stop popping.
    Stop,
    /// The coordinator will take nothing more from this worker (its token
    /// was revoked): stop, failing.
    Fatal(anyhow::Error),
}

/// Pops and claims until a task is this worker's (with its attempt number),
/// or `None` once `shutdown` fires or the worker is draining; an error once
/// the coordinator refuses the worker's token.
async fn next_task(
    settings: &Settings,
    ctx: &TaskContext,
    dispatch: &dyn Dispatch,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Claimed>> {
    let mut idle = IdlePing::new(ctx.heartbeat);
    while !shutdown.is_cancelled() && !ctx.drain.is_cancelled() {
        let popped = match pop(settings, &ctx.cache, dispatch, shutdown).await {
            Attempt::Got(popped) => popped,
            Attempt::Again => {
                idle.ping_if_due(ctx).await;
                continue;
            }
            Attempt::Stop => return Ok(None),
            Attempt::Fatal(err) => return Err(err),
        };
        idle.heard();
        match claim(settings, ctx, &popped, shutdown).await {
            Attempt::Got(claimed) => return Ok(Some(claimed)),
            Attempt::Again => continue,
            Attempt::Stop => return Ok(None),
            Attempt::Fatal(err) => return Err(err),
        }
    }
    Ok(None)
}

/// One pop of the queues this worker serves, models already loaded first.
async fn pop(
    settings: &Settings,
    cache: &ModelCache,
    dispatch: &dyn Dispatch,
    shutdown: &CancellationToken,
) -> Attempt<Popped> {
    let order = pop_order(&settings.models, &cache.loaded_models());
    let popped = tokio::select! {
        _ = shutdown.cancelled() => return Attempt::Stop,
        p = dispatch.pop(&order, settings.pop_timeout) => p,
    };
    match popped {
        Ok(Some(popped)) => Attempt::Got(popped),
        Ok(None) => Attempt::Again,
        Err(err) => {
            warn!(error = %err, "dispatch pop failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Attempt::Again
        }
    }
}

/// Claims the popped task through the coordinator: the task and its attempt
/// number, or `Again` when it is not this worker's to run.
async fn claim(
    settings: &Settings,
    ctx: &TaskContext,
    popped: &Popped,
    shutdown: &CancellationToken,
) -> Attempt<Claimed> {
    let claim = pb::ClaimTaskRequest {
        worker_id: ctx.worker_id.clone(),
        task_id: popped.task.to_string(),
        loaded_models: ctx.cache.loaded_models(),
    };
    let claimed = match ctx.client.claim(claim).await {
        Ok(claimed) => claimed,
        Err(status) if task_not_ours(&status) => {
            // Cancelled, already taken, or a duplicate entry: nothing to do.
            return Attempt::Again;
        }
        Err(status) if classify(&status).code == ErrorCode::Unauthenticated => {
            // Revoked while the worker ran: the popped task stays queued
            // (the reconciler queues it again for another worker).
            return Attempt::Fatal(anyhow::anyhow!(
                "the coordinator refused the worker token: {} (it was revoked, or is not a worker token); the worker stops",
                status.message()
            ));
        }
        Err(status) if classify(&status).code == ErrorCode::ResourceExhausted => {
            // The task's tenant is at its running limit or has spent
            // today's device time: the task stays queued and the
            // coordinator holds that tenant back for a moment, so the next
            // pop serves another.
            debug!(task_id = %popped.task, tenant = %popped.tenant, reason = %status.message(), "claim held back: the tenant is at a quota");
            return Attempt::Again;
        }
        Err(status) if classify(&status).code == ErrorCode::Refused => {
            // Quarantined, on probation with its probe task running, or
            // this worker already failed the task: the reconciler queues
            // it again for another worker; wait so that one pops it first.
            // The worker keeps popping and claiming, so once its
            // quarantine cool-down ends (or an operator releases it) its
            // next claim succeeds without a restart.
            warn!(task_id = %popped.task, tenant = %popped.tenant, reason = %status.message(), "claim refused to this worker");
            tokio::select! {
                _ = shutdown.cancelled() => return Attempt::Stop,
                _ = tokio::time::sleep(settings.pop_timeout) => {}
            }
            return Attempt::Again;
        }
        Err(status) => {
            warn!(task_id = %popped.task, code = ?status.code(), error = %status.message(), "claim failed; the reconciler will queue the task again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Attempt::Again;
        }
    };
    if claimed.drain {
        info!(task_id = %popped.task, "claim refused: the coordinator drains this worker; claiming nothing more");
        ctx.drain.cancel();
        return Attempt::Stop;
    }
    let Some(task) = claimed.task else {
        warn!(task_id = %popped.task, "claim reply held no task");
        return Attempt::Again;
    };
    Attempt::Got(Claimed {
        task,
        attempt: claimed.attempt,
        traceparent: claimed.traceparent,
    })
}

/// Logs the model cache's counters as the worker stops.
fn log_stopped(cache: &ModelCache) {
    let stats = cache.stats();
    info!(
        hits = stats.hits,
        misses = stats.misses,
        evictions = stats.evictions,
        load_seconds = stats.load_seconds,
        "worker stopped"
    );
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

    #[test]
    fn every_served_model_is_registered_with_its_capabilities_when_they_can_be_read() {
        let models = tempfile::tempdir().expect("tempdir");
        // A folder the DiT kind recognises, whose config cannot be read.
        let broken = models.path().join("broken");
        std::fs::create_dir(&broken).expect("mkdir");
        std::fs::write(broken.join("config.json"), "{").expect("config");
        std::fs::write(broken.join("model.safetensors"), "").expect("weights");
        let registry = crate::models::model_registry(
            Some(models.path().to_path_buf()),
            None,
            candle_core::DType::F32,
        )
        .expect("registry");
        let settings = Settings::new(
            "http://127.0.0.1:1",
            DispatchSource::Redis {
                url: "redis://127.0.0.1:1".into(),
            },
            "file:///tmp",
            registry,
            vec!["fresco-shapes".into(), "broken".into()],
            candle_core::Device::Cpu,
        );
        let sent = served_capabilities(&settings);
        assert_eq!(sent.len(), 1, "the unreadable model is left out: {sent:?}");
        assert_eq!(sent[0].model, "fresco-shapes");
        assert_eq!((sent[0].side_multiple, sent[0].max_side), (4, 64));
        assert_eq!(sent[0].samplers, ["euler", "heun"]);
    }
}
