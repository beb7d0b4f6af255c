//! A claim refused because the task's tenant is at a quota (its running
//! limit, or today's device time spent): the task goes back to the
//! dispatch queues, and the tenant is held out of its model's queue for
//! [`HOLD`], so workers serve other tenants meanwhile instead of popping
//! its tasks again and again.

use std::time::Duration;

use fresco_store::QueuedTask;
use tracing::{info, warn};

use crate::Coordinator;

/// How long a tenant at a quota is skipped by pops of the model whose task
/// was refused; it is checked again by the first claim after.
pub const HOLD: Duration = Duration::from_millis(500);

/// Holds `task`'s tenant back and puts `task` back in the queues.
pub async fn hold_back(app: &Coordinator, task: &QueuedTask, reason: &str) {
    info!(task_id = %task.id, tenant = %task.tenant, model = %task.model, reason, "claim held back: the tenant is at a quota");
    if let Err(err) = app.dispatch.throttle(&task.model, &task.tenant, HOLD).await {
        warn!(tenant = %task.tenant, model = %task.model, error = %err, "could not hold the tenant back in the dispatch queues");
    }
    if let Err(err) = app.dispatch.push(std::slice::from_ref(task)).await {
        warn!(task_id = %task.id, error = %err, "dispatch push failed; the reconciler will retry");
    }
}
