//! Store errors, and the gRPC status each one becomes.
//!
//! Database internals stay inside: a client sees "internal error", the log
//! sees the detail.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// The row exists but is not in a state that allows the operation
    /// (a stale fencing token, a task that is no longer queued, ...).
    #[error("{0}")]
    Conflict(String),
    /// This worker may not take the task: it is quarantined, or it already
    /// failed the task while another worker can take it.
    #[error("{0}")]
    Refused(String),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The refusal a missed claim of `task` by `worker` stands for, if any:
/// the worker is quarantined, or the task is queued and this worker already
/// failed it (so another worker takes it).
pub(crate) fn refusal_of(
    task: fresco_core::TaskId,
    worker: fresco_core::WorkerId,
    state: &str,
    quarantined: bool,
    failed_here: bool,
) -> Option<StoreError> {
    if quarantined {
        Some(StoreError::Refused(format!(
            "worker {worker} is quarantined after failing too many attempts in a row"
        )))
    } else if failed_here && state == "queued" {
        Some(StoreError::Refused(format!(
            "worker {worker} already failed task {task}; another worker takes it"
        )))
    } else {
        None
    }
}

/// The job stored earlier under `spec.request_id`, as a replayed
/// submission; `Conflict` when it is not the same submission.
pub(crate) fn replay(
    spec: &fresco_core::JobSpec,
    job: crate::JobSummary,
) -> Result<crate::Submitted> {
    if job.model != spec.model || job.task_count != spec.tasks.len() as u64 {
        return Err(StoreError::Conflict(format!(
            "request_id {:?} was used for another submission (job {})",
            spec.request_id.as_deref().unwrap_or_default(),
            job.id
        )));
    }
    Ok(crate::Submitted {
        job,
        tasks: Vec::new(),
        replayed: true,
    })
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            other => StoreError::Internal(other),
        }
    }
}

impl From<StoreError> for tonic::Status {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => tonic::Status::not_found(format!("{what} not found")),
            StoreError::Conflict(why) => tonic::Status::failed_precondition(why),
            StoreError::Refused(why) => tonic::Status::permission_denied(why),
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                tonic::Status::unavailable("database unavailable, try again")
            }
            StoreError::Internal(source) => {
                tracing::error!(error = %source, "database error");
                tonic::Status::internal("internal error")
            }
            StoreError::Migrate(source) => {
                tracing::error!(error = %source, "migration error");
                tonic::Status::internal("internal error")
            }
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
