//! The gauges pass: every `metrics_interval`, each model's queued, due,
//! running and failed tasks from the store into [`crate::metrics`]. A
//! model whose tasks all left those states is set to zero once, then
//! dropped from the pass.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use crate::{Coordinator, metrics, tick};

/// The pass's state: the app, and the models the last pass set.
pub struct Gauges {
    app: Coordinator,
    shown: Mutex<BTreeSet<String>>,
}

impl Gauges {
    pub fn new(app: Coordinator) -> Self {
        Self {
            app,
            shown: Mutex::default(),
        }
    }
}

/// One pass; returns how many models have tasks in those states.
pub async fn refresh_once(gauges: &Gauges) -> anyhow::Result<usize> {
    let counts = gauges.app.store.task_counts().await?;
    let now: BTreeSet<String> = counts.iter().map(|c| c.model.clone()).collect();
    for c in &counts {
        metrics::set_task_gauges(&c.model, c.queued, c.due, c.running, c.failed);
    }
    let mut shown = gauges
        .shown
        .lock()
        .map_err(|_| anyhow::anyhow!("the gauges' model list is poisoned"))?;
    for gone in shown.difference(&now) {
        metrics::set_task_gauges(gone, 0, 0, 0, 0);
    }
    *shown = now;
    Ok(counts.len())
}

/// Refreshes every `metrics_interval` until `shutdown`; returns at once
/// when there is none (no metrics are served).
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let Some(interval) = app.settings.metrics_interval else {
        return;
    };
    let gauges = Gauges::new(app);
    tick::every("gauges", interval, &shutdown, &gauges, refresh_once).await;
}
