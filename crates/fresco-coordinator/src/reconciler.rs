//! Keeps the dispatch queues honest: when a model's queue holds fewer ids
//! than Postgres has queued tasks (Redis flushed or restarted, a worker died
//! between pop and claim), every queued task of that model is pushed again.
//! Pushes are idempotent (`ZADD NX`), and a worker that pops a task that is
//! no longer queued simply drops it. Each pass also publishes the tenants'
//! weights (see [`crate::weights`]), which a flushed Redis lost too.

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{Coordinator, metrics, tick, weights};

/// Tasks read from Postgres per page.
const PAGE: u32 = 5_000;

/// One pass; returns how many task ids were pushed again.
pub async fn reconcile_once(app: &Coordinator) -> anyhow::Result<u64> {
    weights::publish_or_warn(app).await;
    let mut pushed = 0;
    for (model, queued) in app.store.queued_counts().await? {
        let in_queue = app.dispatch.len(&model).await?;
        if in_queue >= queued {
            continue;
        }
        let mut after = i64::MIN;
        loop {
            let page = app.store.queued_tasks(&model, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            app.dispatch.push(&page).await?;
            pushed += page.len() as u64;
            metrics::reconciler_pushed(&model, page.len() as u64);
        }
        info!(model = %model, queued, in_queue, pushed, "dispatch queue restored from Postgres");
    }
    Ok(pushed)
}

/// Reconciles every `reconcile_interval` until `shutdown`.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.reconcile_interval;
    tick::every("reconciler", interval, &shutdown, &app, reconcile_once).await;
}
