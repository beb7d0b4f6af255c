//! fresco's error codes on the wire, both ways: [`to_status`] turns a
//! service error into the `tonic::Status` a server answers with, and
//! [`classify`] turns a `tonic::Status` a client received back into a
//! [`StatusClass`]: retry or not, and whose fault.
//!
//! Each [`ErrorCode`] is one gRPC code. The gRPC codes fresco's servers never
//! send fold, when received, into the code a client should treat them as:
//! what the client's own transport reports for a call cut off mid-way
//! (`UNKNOWN`, `DEADLINE_EXCEEDED`, `ABORTED`, and an `INTERNAL` it made up
//! itself from an HTTP/2 reset) is [`ErrorCode::Interrupted`]; an
//! `INTERNAL` the server sent is permanent.

use std::error::Error as _;

use tonic::{Code, Status};

use super::{ErrorCode, Fault, ServiceError, StatusClass};

impl ErrorCode {
    /// The gRPC code a server answers with.
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::Conflict => Code::FailedPrecondition,
            ErrorCode::Refused => Code::PermissionDenied,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Interrupted => Code::Cancelled,
            ErrorCode::Internal => Code::Internal,
        }
    }

    /// The code a gRPC code stands for when a server sent it.
    pub fn from_grpc_code(code: Code) -> ErrorCode {
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
            Code::NotFound => ErrorCode::NotFound,
            Code::FailedPrecondition | Code::AlreadyExists => ErrorCode::Conflict,
            Code::PermissionDenied => ErrorCode::Refused,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            Code::Unavailable => ErrorCode::Unavailable,
            Code::Cancelled | Code::DeadlineExceeded | Code::Aborted | Code::Unknown => {
                ErrorCode::Interrupted
            }
            // `OK` as an error, a call the server does not have (another
            // fresco version), lost data: nothing a retry fixes.
            Code::Ok | Code::Unimplemented | Code::DataLoss | Code::Internal => ErrorCode::Internal,
        }
    }
}

/// The status a server answers `err` with. Errors of the server's fault are
/// logged here with their whole detail; the client reads
/// [`ServiceError::client_message`] ("internal error" for an internal one).
pub fn to_status<E: ServiceError + ?Sized>(err: &E) -> Status {
    let code = err.error_code();
    match code {
        ErrorCode::Internal => tracing::error!(error = %err, "internal error"),
        _ if code.fault() == Fault::Server => {
            tracing::warn!(code = %code, error = %err, "request not served");
        }
        _ => {}
    }
    Status::new(code.grpc_code(), err.client_message())
}

/// How a client should treat a status it received.
pub fn classify(status: &Status) -> StatusClass {
    received_code(status).class()
}

/// The code of a received status. A status with a source was made by this
/// side's transport from what it saw on the connection (tonic keeps the
/// error it came from), not sent by the server: an `INTERNAL` of that kind
/// is an HTTP/2 stream reset mid-call, not a fault inside the server.
fn received_code(status: &Status) -> ErrorCode {
    match status.code() {
        Code::Internal if status.source().is_some() => ErrorCode::Interrupted,
        code => ErrorCode::from_grpc_code(code),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::FieldError;

    /// Every gRPC code a client can receive from a server, and what fresco
    /// makes of it: (code, fresco's code, retryable, fault).
    #[rustfmt::skip]
    const RECEIVED: [(Code, ErrorCode, bool, Fault); 17] = [
        (Code::Ok,                 ErrorCode::Internal,          false, Fault::Server),
        (Code::Cancelled,          ErrorCode::Interrupted,       true,  Fault::Server),
        (Code::Unknown,            ErrorCode::Interrupted,       true,  Fault::Server),
        (Code::InvalidArgument,    ErrorCode::InvalidArgument,   false, Fault::Caller),
        (Code::DeadlineExceeded,   ErrorCode::Interrupted,       true,  Fault::Server),
        (Code::NotFound,           ErrorCode::NotFound,          false, Fault::Caller),
        (Code::AlreadyExists,      ErrorCode::Conflict,          false, Fault::Caller),
        (Code::PermissionDenied,   ErrorCode::Refused,           false, Fault::Caller),
        (Code::ResourceExhausted,  ErrorCode::ResourceExhausted, false, Fault::Caller),
        (Code::FailedPrecondition, ErrorCode::Conflict,          false, Fault::Caller),
        (Code::Aborted,            ErrorCode::Interrupted,       true,  Fault::Server),
        (Code::OutOfRange,         ErrorCode::InvalidArgument,   false, Fault::Caller),
        (Code::Unimplemented,      ErrorCode::Internal,          false, Fault::Server),
        (Code::Internal,           ErrorCode::Internal,          false, Fault::Server),
        (Code::Unavailable,        ErrorCode::Unavailable,       true,  Fault::Server),
        (Code::DataLoss,           ErrorCode::Internal,          false, Fault::Server),
        (Code::Unauthenticated,    ErrorCode::Unauthenticated,   false, Fault::Caller),
    ];

    #[test]
    fn every_received_code_is_classified() {
        for (code, fresco, retryable, fault) in RECEIVED {
            let class = classify(&Status::new(code, "sent by the server"));
            assert_eq!(
                class,
                StatusClass {
                    code: fresco,
                    retryable,
                    fault
                },
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_database_error_is_not_retried_but_a_cut_stream_is() {
        let sent = Status::internal("internal error");
        assert!(!classify(&sent).retryable, "the server said: permanent");
        let mut cut = Status::internal("h2 protocol error: stream reset");
        cut.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(classify(&cut).code, ErrorCode::Interrupted);
        assert!(classify(&cut).retryable, "the transport said: cut off");
    }

    #[test]
    fn every_code_comes_back_as_itself() {
        for code in ErrorCode::ALL {
            let status = Status::new(code.grpc_code(), "");
            assert_eq!(classify(&status).code, code, "{code}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("database error: relation \"tasks\" does not exist")]
    struct Database;

    impl ServiceError for Database {
        fn error_code(&self) -> ErrorCode {
            ErrorCode::Internal
        }
    }

    #[test]
    fn statuses_carry_the_code_and_the_client_message() {
        let field = to_status(&FieldError::new(
            "limit",
            "must be at most 10000 (got 10001)",
        ));
        assert_eq!(field.code(), Code::InvalidArgument);
        assert_eq!(field.message(), "limit: must be at most 10000 (got 10001)");
        let internal = to_status(&Database);
        assert_eq!(internal.code(), Code::Internal);
        assert_eq!(
            internal.message(),
            "internal error",
            "no SQL reaches a client"
        );
    }
}
