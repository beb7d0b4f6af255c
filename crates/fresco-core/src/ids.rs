//! Typed ids for jobs, tasks and workers (UUIDs underneath).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::FieldError;

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ".")]
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses a request field, naming it in the error.
            pub fn parse_field(field: &str, value: &str) -> Result<Self, FieldError> {
                value
                    .parse()
                    .map_err(|_| FieldError::new(field, format!("must be a UUID (got {value:?})")))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(JobId, "job");
uuid_id!(TaskId, "task");
uuid_id!(WorkerId, "worker");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_field_names_the_field_on_error() {
        let err = JobId::parse_field("job_id", "not-a-uuid").unwrap_err();
        assert_eq!(err.field, "job_id");
        assert!(err.rule.contains("UUID"), "{err}");
        let id = JobId::new();
        assert_eq!(JobId::parse_field("job_id", &id.to_string()).unwrap(), id);
    }
}
