//! Store errors, and the [`ErrorCode`] each one stands for (the gRPC map
//! itself lives in `fresco_core::status`).
//!
//! Database internals stay inside: a client sees "internal error", the log
//! sees the detail.

use fresco_core::status::{ErrorCode, ServiceError};

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
    /// A claim by a draining worker: it claims nothing more, finishes the
    /// task it runs and exits.
    #[error("{0}")]
    Draining(String),
    /// The tenant is at one of its limits: a submission that would pass
    /// its queued-task limit, a claim at its running-task limit, or either
    /// once today's device time is spent.
    #[error("{0}")]
    OverQuota(String),
    /// A claim refused because the task's tenant is at its running limit
    /// or has spent today's device time: the task stays queued, and
    /// `task` is it, to go back to the dispatch queues.
    #[error("{message}")]
    TenantAtLimit {
        message: String,
        task: Box<fresco_core::QueuedTask>,
    },
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Why a claim was refused to its worker, as `claim_refusal.sql` reads it.
pub(crate) struct RefusalFacts<'a> {
    /// The task's state.
    pub state: &'a str,
    /// An operator drained the worker.
    pub draining: bool,
    pub quarantined: bool,
    /// On probation and running a task already (its probe).
    pub probing: bool,
    /// The worker already failed the task while another live worker has not.
    pub failed_here: bool,
}

/// The refusal a missed claim of `task` by `worker` stands for, if any:
/// the worker is draining, or quarantined, or on probation and running its probe task,
/// or the task is queued and this worker already failed it (so another
/// worker takes it).
pub(crate) fn refusal_of(
    task: fresco_core::TaskId,
    worker: fresco_core::WorkerId,
    facts: RefusalFacts<'_>,
) -> Option<StoreError> {
    let RefusalFacts {
        state,
        draining,
        quarantined,
        probing,
        failed_here,
    } = facts;
    if draining {
        Some(StoreError::Draining(format!(
            "worker {worker} is draining: it claims nothing more"
        )))
    } else if quarantined {
        Some(StoreError::Refused(format!(
            "worker {worker} is quarantined after failing too many attempts in a row"
        )))
    } else if probing {
        Some(StoreError::Refused(format!(
            "worker {worker} is on probation and runs its probe task: it claims one task at a time until the probe ends"
        )))
    } else if failed_here && state == "queued" {
        Some(StoreError::Refused(format!(
            "worker {worker} already failed task {task}; another worker takes it"
        )))
    } else {
        None
    }
}

/// A release of a worker that is not quarantined.
pub(crate) fn not_quarantined(worker: fresco_core::WorkerId) -> StoreError {
    StoreError::Conflict(format!(
        "worker {worker} is not quarantined: only a quarantined worker can be released"
    ))
}

/// A registration that wrote no row: the worker is registered with another
/// worker token, and a worker's id is not another token's to take.
pub(crate) fn registered(worker: &crate::WorkerInfo, rows: u64) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::Refused(format!(
            "worker {} is registered with another worker token",
            worker.id
        )));
    }
    Ok(())
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

impl ServiceError for StoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::Refused(_) | StoreError::Draining(_) => ErrorCode::Refused,
            StoreError::OverQuota(_) | StoreError::TenantAtLimit { .. } => {
                ErrorCode::ResourceExhausted
            }
            StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::Internal(_) | StoreError::Migrate(_) => ErrorCode::Internal,
        }
    }

    fn client_message(&self) -> String {
        match self {
            StoreError::Unavailable(_) => "database unavailable, try again".to_owned(),
            StoreError::Internal(_) | StoreError::Migrate(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
