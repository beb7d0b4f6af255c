//! What a caller may see and do: the [`Caller`] authentication put on a
//! request, the role a call needs, and the one rule for another tenant's
//! job, task or output: it answers `NotFound` with the same message as one
//! that does not exist, so ids leak nothing.

use fresco_core::{Caller, JobId, Role, TaskId};
use fresco_store::{JobSummary, StoreError, TaskRecord};
use tonic::Request;

use crate::Coordinator;
use crate::error::{ApiError, ApiResult};

/// The caller authentication found for `request`. A request that never
/// passed the authentication layer (called in-process) acts as a farm
/// without keys does: an admin of the default tenant.
pub fn caller<T>(request: &Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(Caller::unauthenticated_client)
}

/// The worker token a call to the worker API came with: none on a farm
/// served without keys, or for a request that never passed the
/// authentication layer (called in-process); `Forbidden` for a client key.
pub fn worker_token<T>(request: &Request<T>) -> ApiResult<Option<String>> {
    match request.extensions().get::<Caller>() {
        None => Ok(None),
        Some(Caller::Worker { key_id }) => Ok(key_id.clone()),
        Some(Caller::Client { .. }) => Err(ApiError::Forbidden(
            "the worker API needs a worker token; a client key opens only the client API".into(),
        )),
    }
}

/// A client caller's tenant and role, once it holds at least `needed`;
/// `Forbidden` for a worker token or a lesser role, naming the call.
pub fn client<'a>(caller: &'a Caller, needed: Role, call: &str) -> ApiResult<(&'a str, Role)> {
    match caller {
        Caller::Client { tenant, role, .. } if role.allows(needed) => Ok((tenant, *role)),
        Caller::Client { role, .. } => Err(ApiError::Forbidden(format!(
            "{call} needs the {needed} role; this key is a {role}"
        ))),
        Caller::Worker { .. } => Err(ApiError::Forbidden(format!(
            "{call} needs a client key; a worker token opens only the worker API"
        ))),
    }
}

/// Whether `caller` may see what belongs to `tenant`: its own tenant's, or
/// an admin's anything.
pub fn sees(caller: &Caller, tenant: &str) -> bool {
    match caller {
        Caller::Client {
            role: Role::Admin, ..
        } => true,
        Caller::Client { tenant: own, .. } => own == tenant,
        Caller::Worker { .. } => false,
    }
}

/// The job, when `caller` may see it; `NotFound` as for a missing job.
pub async fn visible_job(app: &Coordinator, caller: &Caller, id: JobId) -> ApiResult<JobSummary> {
    let job = app.store.get_job(id).await?;
    if sees(caller, &job.tenant) {
        Ok(job)
    } else {
        Err(StoreError::NotFound(format!("job {id}")).into())
    }
}

/// The task, when `caller` may see its job; `NotFound` as for a missing
/// task.
pub async fn visible_task(app: &Coordinator, caller: &Caller, id: TaskId) -> ApiResult<TaskRecord> {
    let task = app.store.get_task(id).await?;
    let job = app.store.get_job(task.job_id).await?;
    if sees(caller, &job.tenant) {
        Ok(task)
    } else {
        Err(StoreError::NotFound(format!("task {id}")).into())
    }
}
