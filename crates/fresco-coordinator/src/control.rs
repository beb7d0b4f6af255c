//! Job control after submission: cancel one task, retry a job's failed
//! tasks, pause and resume a job, change its priority. Each changes the store first, then brings
//! the dispatch queues in line; a queue change that fails is only logged,
//! because the store stays the truth (workers drop ids they cannot claim,
//! and the reconciler pushes again what the queues miss). A job or task of
//! another tenant than the caller's answers as a missing one.

use fresco_core::{Caller, FieldError, JobId, TaskId};
use fresco_proto::v1 as pb;
use tracing::{info, warn};

use crate::error::ApiResult;
use crate::{Coordinator, convert, tenancy, waiting};

pub async fn cancel_task(app: &Coordinator, caller: &Caller, task_id: &str) -> ApiResult<pb::Task> {
    let id = TaskId::parse_field("task_id", task_id)?;
    tenancy::visible_task(app, caller, id).await?;
    let cancelled = app.store.cancel_task(id).await?;
    info!(task_id = %id, "task cancelled");
    if let Err(err) = app.dispatch.remove(std::slice::from_ref(&cancelled)).await {
        warn!(task_id = %id, error = %err, "could not remove a cancelled task from dispatch");
    }
    Ok(convert::task(&app.store.get_task(id).await?))
}

pub async fn retry_job(app: &Coordinator, caller: &Caller, job_id: &str) -> ApiResult<pb::Job> {
    let id = JobId::parse_field("job_id", job_id)?;
    tenancy::visible_job(app, caller, id).await?;
    let requeued = app.store.retry_job(id).await?;
    info!(job_id = %id, tasks = requeued.len(), "failed tasks queued again");
    if let Err(err) = app.dispatch.push(&requeued).await {
        warn!(job_id = %id, error = %err, "could not push retried tasks; the reconciler will");
    }
    waiting::job_message(app, &app.store.get_job(id).await?).await
}

pub async fn set_paused(
    app: &Coordinator,
    caller: &Caller,
    job_id: &str,
    paused: bool,
) -> ApiResult<pb::Job> {
    let id = JobId::parse_field("job_id", job_id)?;
    tenancy::visible_job(app, caller, id).await?;
    let queued = app.store.set_paused(id, paused).await?;
    let moved = if paused {
        app.dispatch.remove(&queued).await
    } else {
        app.dispatch.push(&queued).await
    };
    if let Err(err) = moved {
        // Paused: workers that pop these ids cannot claim them. Resumed:
        // the reconciler pushes them.
        warn!(job_id = %id, paused, error = %err, "could not update the dispatch queues");
    }
    info!(job_id = %id, paused, queued = queued.len(), "job {}", if paused { "paused" } else { "resumed" });
    waiting::job_message(app, &app.store.get_job(id).await?).await
}

/// Sets a job's priority, within the bounds a submission accepts, and
/// moves its queued tasks to their new place in the queues.
pub async fn set_priority(
    app: &Coordinator,
    caller: &Caller,
    request: &pb::SetJobPriorityRequest,
) -> ApiResult<pb::Job> {
    let id = JobId::parse_field("job_id", &request.job_id)?;
    let max = app.settings.limits.max_priority;
    if request.priority.abs() > max {
        return Err(FieldError::new(
            "priority",
            format!(
                "must be between -{max} and {max} (got {})",
                request.priority
            ),
        )
        .into());
    }
    tenancy::visible_job(app, caller, id).await?;
    let queued = app.store.set_priority(id, request.priority).await?;
    if let Err(err) = app.dispatch.rescore(&queued).await {
        // The ids stay queued at their old place until the reconciler
        // pushes them again.
        warn!(job_id = %id, error = %err, "could not move reprioritized tasks in dispatch");
    }
    info!(job_id = %id, priority = request.priority, queued = queued.len(), "job priority changed");
    waiting::job_message(app, &app.store.get_job(id).await?).await
}
