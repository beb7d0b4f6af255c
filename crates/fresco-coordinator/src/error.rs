//! [`ApiError`]: every way a call to the coordinator fails, each naming its
//! fresco error code; [`respond`] turns a result into the gRPC answer
//! through the one map in `fresco_core::status`.

use fresco_core::FieldError;
use fresco_core::status::{self, ErrorCode, ServiceError};
use fresco_storage::StorageError;
use fresco_store::StoreError;
use tonic::{Response, Status};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field breaks a rule.
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key that no task recorded: only recorded outputs can be read.
    #[error("output {0:?} not found")]
    OutputNotFound(String),
    /// A recorded output the object store cannot hand back now.
    #[error("cannot read output {key:?} from storage: {source}")]
    OutputUnreadable {
        key: String,
        #[source]
        source: StorageError,
    },
    /// The output storage cannot sign URLs (`file://`): `OutputUrls` is
    /// refused and `ReadOutput` streams the outputs instead.
    #[error(
        "this farm's output storage cannot sign URLs (file://); read the outputs through ReadOutput"
    )]
    CannotSignUrls,
    /// The object store could not sign a URL for a recorded output.
    #[error("cannot sign a URL for output {key:?}: {source}")]
    UrlNotSigned {
        key: String,
        #[source]
        source: StorageError,
    },
    /// No credential, or one malformed, unknown or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential that does not open this call: a worker token on the
    /// client API, a client key on the worker API, a lesser role.
    #[error("{0}")]
    Forbidden(String),
    /// A tenant's limit that this call would pass, naming it and the use.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The coordinator is stopping; open watches end with this.
    #[error("the coordinator is shutting down; watch again")]
    ShuttingDown,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ServiceError for ApiError {
    fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::Field(err) => err.error_code(),
            ApiError::Store(err) => err.error_code(),
            ApiError::OutputNotFound(_) => ErrorCode::NotFound,
            // Recorded, so it was there: whatever the store says now (gone
            // included), the client may try again later.
            ApiError::OutputUnreadable { .. } => ErrorCode::Unavailable,
            ApiError::ShuttingDown => ErrorCode::Unavailable,
            ApiError::CannotSignUrls => ErrorCode::Conflict,
            ApiError::UrlNotSigned { source, .. } => source.error_code(),
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Refused,
            ApiError::QuotaExceeded(_) => ErrorCode::ResourceExhausted,
        }
    }

    fn client_message(&self) -> String {
        match self {
            ApiError::Field(err) => err.client_message(),
            ApiError::Store(err) => err.client_message(),
            ApiError::OutputUnreadable { key, .. } => {
                format!("cannot read output {key:?} from storage")
            }
            ApiError::UrlNotSigned { key, .. } => {
                format!("cannot sign a URL for output {key:?}")
            }
            other => other.to_string(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        status::to_status(&err)
    }
}

/// The gRPC answer to a call that produced `result`.
pub fn respond<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}
