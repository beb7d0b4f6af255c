//! Job labels and the job-level states `ListJobs` filters on.
//!
//! Labels are free-form `key=value` pairs a submitter attaches to a job
//! (`project=catalog-2027`); [`check_labels`] holds their rules, shared by
//! `SubmitJob`, `ListJobs` and the CLI. A [`JobState`] is where a job
//! stands as a whole, derived from its tasks' states and its pause.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::FieldError;

/// The most labels one job carries.
pub const MAX_LABELS: usize = 32;
/// The longest label key.
pub const MAX_LABEL_KEY: usize = 63;
/// The longest label value, in characters.
pub const MAX_LABEL_VALUE: usize = 256;

/// A job's labels, by key.
pub type Labels = BTreeMap<String, String>;

/// Checks labels against their rules: at most [`MAX_LABELS`], keys 1 to
/// [`MAX_LABEL_KEY`] of `[a-z0-9_.-/]`, values at most [`MAX_LABEL_VALUE`]
/// characters. The error names `field` and the rule.
pub fn check_labels<'a>(
    field: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<Labels, FieldError> {
    let labels: Labels = labels
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if labels.len() > MAX_LABELS {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_LABELS} labels (got {})", labels.len()),
        ));
    }
    for (key, value) in &labels {
        check_key(key).map_err(|rule| FieldError::new(field, rule))?;
        let chars = value.chars().count();
        if chars > MAX_LABEL_VALUE {
            return Err(FieldError::new(
                field,
                format!(
                    "value of {key:?} must be at most {MAX_LABEL_VALUE} characters (got {chars})"
                ),
            ));
        }
    }
    Ok(labels)
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_LABEL_KEY {
        return Err(format!(
            "key {key:?} must be 1 to {MAX_LABEL_KEY} characters"
        ));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-/".contains(&b);
    if !key.bytes().all(allowed) {
        return Err(format!(
            "key {key:?} must be lower-case letters, digits, '_', '.', '-' or '/'"
        ));
    }
    Ok(())
}

/// One `key=value` as typed on a command line, split at the first `=`
/// (the coordinator checks the rules).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not key=value"))?;
    Ok((key.to_owned(), value.to_owned()))
}

/// Where a job stands as a whole. A job is active while a task of it is
/// queued or running, and finished after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// A task queued or running (paused jobs included).
    Active,
    /// Active and not paused, with tasks queued and none running.
    Queued,
    /// A task running now.
    Running,
    /// Active and paused.
    Paused,
    /// No task queued or running.
    Finished,
    /// Finished, every task succeeded.
    Succeeded,
    /// Finished, a task failed.
    Failed,
    /// Finished, a task cancelled and none failed.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Active,
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Finished,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Active => "active",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Finished => "finished",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown job state {s:?}: one of {}", names.join(", "))
            })
    }
}

#[cfg(feature = "grpc")]
mod wire {
    use fresco_proto::v1 as pb;

    use super::JobState;

    impl JobState {
        pub fn to_proto(self) -> pb::JobState {
            match self {
                JobState::Active => pb::JobState::Active,
                JobState::Queued => pb::JobState::Queued,
                JobState::Running => pb::JobState::Running,
                JobState::Paused => pb::JobState::Paused,
                JobState::Finished => pb::JobState::Finished,
                JobState::Succeeded => pb::JobState::Succeeded,
                JobState::Failed => pb::JobState::Failed,
                JobState::Cancelled => pb::JobState::Cancelled,
            }
        }

        /// `None` for unspecified (no filter).
        pub fn from_proto(value: pb::JobState) -> Option<Self> {
            JobState::ALL
                .into_iter()
                .find(|state| state.to_proto() == value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn check(pairs: &[(&str, &str)]) -> Result<Labels, FieldError> {
        let pairs = labels(pairs);
        check_labels("labels", pairs.iter().map(|(k, v)| (k, v)))
    }

    #[test]
    fn good_labels_pass() {
        let got = check(&[("project", "catalog-2027"), ("team/a.b_c-d", "")]).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn each_rule_names_labels() {
        let long_key = "k".repeat(64);
        let long_value = "v".repeat(257);
        for bad in [
            vec![("", "x")],
            vec![("Team", "x")],
            vec![("a b", "x")],
            vec![(long_key.as_str(), "x")],
            vec![("k", long_value.as_str())],
        ] {
            let err = check(&bad).unwrap_err();
            assert_eq!(err.field, "labels", "{bad:?}");
        }
        let many: Vec<(String, String)> =
            (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        let err = check_labels("labels", many.iter().map(|(k, v)| (k, v))).unwrap_err();
        assert!(err.rule.contains("at most 32"), "{err}");
    }

    #[test]
    fn parse_label_splits_at_the_first_equals() {
        assert_eq!(
            parse_label("a=b=c").unwrap(),
            ("a".to_owned(), "b=c".to_owned())
        );
        assert!(parse_label("novalue").is_err());
    }

    #[test]
    fn job_states_round_trip_their_names() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!("done".parse::<JobState>().is_err());
    }
}
