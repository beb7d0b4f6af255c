//! [`FieldError`]: a request field that breaks a rule.

use crate::status::{ErrorCode, ServiceError};

/// A request field that breaks a rule: [`ErrorCode::InvalidArgument`]
/// (`INVALID_ARGUMENT`), with a message naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    /// The field's path in the request, e.g. `tasks[3].steps`.
    pub field: String,
    /// The rule it breaks, e.g. `must be between 1 and 200 (got 0)`.
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The same error for a field nested under `prefix` (`tasks[3]` + `steps`).
    pub fn under(self, prefix: &str) -> Self {
        Self {
            field: format!("{prefix}.{}", self.field),
            rule: self.rule,
        }
    }
}

impl ServiceError for FieldError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}

pub type Result<T, E = FieldError> = std::result::Result<T, E>;
