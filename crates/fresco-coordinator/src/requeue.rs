//! Puts requeued tasks back in the dispatch queues when their backoff has
//! passed: at once when it already has, else from a timer. A timer lost to
//! a coordinator restart costs nothing: the reconciler pushes every queued
//! task whose backoff has passed and that the queues miss.

use chrono::{DateTime, Utc};
use fresco_store::QueuedTask;
use tracing::warn;

use crate::Coordinator;

/// Pushes `task` now, or once `not_before` has passed.
pub async fn push_when_due(app: &Coordinator, task: QueuedTask, not_before: Option<DateTime<Utc>>) {
    let wait = not_before
        .and_then(|at| (at - Utc::now()).to_std().ok())
        .unwrap_or_default();
    if wait.is_zero() {
        push(app, task).await;
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        push(&app, task).await;
    });
}

async fn push(app: &Coordinator, task: QueuedTask) {
    if let Err(err) = app.dispatch.push(std::slice::from_ref(&task)).await {
        warn!(task_id = %task.id, error = %err, "dispatch push failed; the reconciler will retry");
    }
}
