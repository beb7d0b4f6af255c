//! The error codes of fresco's services, in one vocabulary for both sides
//! of a call.
//!
//! Every service error type names its code by implementing
//! [`ServiceError`] (`FieldError` here, `StoreError`, `StorageError`, the
//! coordinator's `ApiError`). Each [`ErrorCode`] says whose fault it is and
//! whether the same call may succeed when sent again; those two answers are
//! what a client needs, and they live here only.
//!
//! With the `grpc` feature, [`grpc`] maps the codes onto gRPC in both
//! directions: an error into a `tonic::Status` on the server, and a received
//! `tonic::Status` back into a [`StatusClass`] on the client.

#[cfg(feature = "grpc")]
pub mod grpc;

#[cfg(feature = "grpc")]
pub use grpc::{classify, to_status};

/// What went wrong with a call, in fresco's words. Each code is one gRPC
/// code on the wire; the codes fresco's servers never send fold into the
/// nearest one when received (see [`grpc`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request field breaks a rule (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// The job, task, worker or output named does not exist (`NOT_FOUND`).
    NotFound,
    /// What the request names exists but its state refuses the call: a
    /// stale fencing token, a task that has ended, a request id used for
    /// another submission (`FAILED_PRECONDITION`).
    Conflict,
    /// This caller may not do it: a quarantined worker, one that already
    /// failed the task, a role or credential kind that does not open the
    /// call (`PERMISSION_DENIED`).
    Refused,
    /// No credential, or one malformed, unknown or revoked
    /// (`UNAUTHENTICATED`).
    Unauthenticated,
    /// A message over the size limit, or a tenant at one of its quotas
    /// (`RESOURCE_EXHAUSTED`).
    ResourceExhausted,
    /// The database, the object store or the coordinator is away for now
    /// (`UNAVAILABLE`).
    Unavailable,
    /// The call ended before its answer came back: cancelled, past its
    /// deadline or cut off mid-way (`CANCELLED`). It may or may not have
    /// taken effect.
    Interrupted,
    /// A fault inside the server that sending again will not fix
    /// (`INTERNAL`). Its detail stays in the server's log.
    Internal,
}

/// Whose fault a failed call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The request, or what it asks of the farm's current state: change the
    /// request (or the state) before sending it again.
    Caller,
    /// The farm: a service away, a call cut off, or a fault inside it.
    Server,
}

/// How a client should treat a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusClass {
    /// The code, in fresco's vocabulary.
    pub code: ErrorCode,
    /// Whether the same call, sent again later, may succeed.
    pub retryable: bool,
    /// Whose fault it is.
    pub fault: Fault,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Refused,
        ErrorCode::Unauthenticated,
        ErrorCode::ResourceExhausted,
        ErrorCode::Unavailable,
        ErrorCode::Interrupted,
        ErrorCode::Internal,
    ];

    /// Whose fault an error with this code is.
    pub fn fault(self) -> Fault {
        match self {
            ErrorCode::InvalidArgument
            | ErrorCode::NotFound
            | ErrorCode::Conflict
            | ErrorCode::Refused
            | ErrorCode::Unauthenticated
            | ErrorCode::ResourceExhausted => Fault::Caller,
            ErrorCode::Unavailable | ErrorCode::Interrupted | ErrorCode::Internal => Fault::Server,
        }
    }

    /// Whether the same call may succeed when sent again: only when the
    /// server was away or the call was cut off. A fault inside the server
    /// (`Internal`) is permanent: a database error repeats.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::Interrupted)
    }

    /// The whole classification of this code.
    pub fn class(self) -> StatusClass {
        StatusClass {
            code: self,
            retryable: self.is_retryable(),
            fault: self.fault(),
        }
    }

    /// The code's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::NotFound => "not found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Refused => "refused",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::ResourceExhausted => "resource exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a fresco service can answer a call with.
pub trait ServiceError: std::error::Error {
    /// The one code this error stands for.
    fn error_code(&self) -> ErrorCode;

    /// What the caller is told. By default the error's own message, except
    /// for [`ErrorCode::Internal`]: database internals stay inside, so a
    /// client reads "internal error" and the server's log the detail.
    fn client_message(&self) -> String {
        match self.error_code() {
            ErrorCode::Internal => "internal error".to_owned(),
            _ => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorCode::*;

    #[test]
    fn each_code_has_one_fault_and_retry_rule() {
        // (code, retryable, fault)
        let table = [
            (InvalidArgument, false, Fault::Caller),
            (NotFound, false, Fault::Caller),
            (Conflict, false, Fault::Caller),
            (Refused, false, Fault::Caller),
            (Unauthenticated, false, Fault::Caller),
            (ResourceExhausted, false, Fault::Caller),
            (Unavailable, true, Fault::Server),
            (Interrupted, true, Fault::Server),
            (Internal, false, Fault::Server),
        ];
        assert_eq!(
            table.len(),
            ErrorCode::ALL.len(),
            "every code is in the table"
        );
        for (code, retryable, fault) in table {
            let class = code.class();
            assert_eq!(
                (class.code, class.retryable, class.fault),
                (code, retryable, fault),
                "{code}"
            );
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connection to 10.0.0.7:5432 refused")]
    struct Leaky(ErrorCode);

    impl ServiceError for Leaky {
        fn error_code(&self) -> ErrorCode {
            self.0
        }
    }

    #[test]
    fn internal_detail_never_reaches_the_client() {
        assert_eq!(Leaky(Internal).client_message(), "internal error");
        assert_eq!(
            Leaky(Unavailable).client_message(),
            "connection to 10.0.0.7:5432 refused",
            "other codes say what happened"
        );
        let field = crate::FieldError::new("tasks[3].steps", "must be between 1 and 200 (got 0)");
        assert_eq!(field.error_code(), InvalidArgument);
        assert_eq!(
            field.client_message(),
            "tasks[3].steps: must be between 1 and 200 (got 0)"
        );
    }
}
