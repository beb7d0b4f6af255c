//! Whose fault a failed attempt was: [`FailureKind`].
//!
//! A worker reports each failure as `request` (the task's own parameters or
//! prompt: the model cannot run it anywhere, so the task fails at once and
//! the worker is not blamed) or `worker` (its device, memory, model files or
//! storage: the task is retried elsewhere after its backoff, and the failure
//! counts towards the worker's quarantine). A task's error history also
//! records `lease` (the worker stopped sending heartbeats: the worker's
//! fault, counted like `worker`) and `deadline` (the task was still queued
//! when its job's deadline passed: nobody's fault, never retried).

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "grpc")]
use fresco_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// Why an attempt failed, as a task's error history and a worker's recent
/// errors record it. An entry stored before kinds were recorded reads as
/// [`FailureKind::Worker`]: every failure counted against its worker then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The task's parameters or prompt: fails at once, not the worker's fault.
    Request,
    /// The worker's device, memory, model files or storage.
    #[default]
    Worker,
    /// The lease expired: the worker stopped sending heartbeats.
    Lease,
    /// The task was still queued when its job's deadline passed.
    Deadline,
}

impl FailureKind {
    pub const ALL: [FailureKind; 4] = [
        FailureKind::Request,
        FailureKind::Worker,
        FailureKind::Lease,
        FailureKind::Deadline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Request => "request",
            FailureKind::Worker => "worker",
            FailureKind::Lease => "lease",
            FailureKind::Deadline => "deadline",
        }
    }

    /// Whether the failure is its worker's: it counts towards the worker's
    /// quarantine (and ends a probation).
    pub fn blames_worker(self) -> bool {
        matches!(self, FailureKind::Worker | FailureKind::Lease)
    }

    /// Whether another attempt may succeed where this one failed: not for
    /// a request the model cannot run, nor past a deadline.
    pub fn is_retryable(self) -> bool {
        self.blames_worker()
    }

    /// The kind a worker reported; unspecified is treated as `worker`.
    #[cfg(feature = "grpc")]
    pub fn from_proto(value: pb::FailureKind) -> Self {
        match value {
            pb::FailureKind::Request => FailureKind::Request,
            pb::FailureKind::Worker | pb::FailureKind::Unspecified => FailureKind::Worker,
        }
    }

    /// The kind as a worker reports it: the wire only says whose fault it
    /// was, so an expired lease is the worker's, and a deadline (never
    /// reported by a worker) is unspecified.
    #[cfg(feature = "grpc")]
    pub fn to_proto(self) -> pb::FailureKind {
        match self {
            FailureKind::Request => pb::FailureKind::Request,
            FailureKind::Worker | FailureKind::Lease => pb::FailureKind::Worker,
            FailureKind::Deadline => pb::FailureKind::Unspecified,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown failure kind {0:?} (request, worker, lease or deadline)")]
pub struct UnknownFailureKind(pub String);

impl FromStr for FailureKind {
    type Err = UnknownFailureKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownFailureKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_from_their_names_and_json() {
        for kind in FailureKind::ALL {
            assert_eq!(kind.as_str().parse::<FailureKind>().ok(), Some(kind));
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{kind}\""));
            let back: FailureKind = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, kind);
        }
        assert!("boom".parse::<FailureKind>().is_err());
    }

    #[test]
    fn only_the_workers_faults_count_against_it() {
        let blamed: Vec<_> = FailureKind::ALL
            .into_iter()
            .filter(|k| k.blames_worker())
            .collect();
        assert_eq!(blamed, [FailureKind::Worker, FailureKind::Lease]);
        assert!(!FailureKind::Request.is_retryable());
        assert!(FailureKind::Worker.is_retryable());
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn unspecified_on_the_wire_is_the_workers_fault() {
        assert_eq!(
            FailureKind::from_proto(pb::FailureKind::Unspecified),
            FailureKind::Worker
        );
        for kind in [FailureKind::Request, FailureKind::Worker] {
            assert_eq!(FailureKind::from_proto(kind.to_proto()), kind);
        }
        assert_eq!(FailureKind::Lease.to_proto(), pb::FailureKind::Worker);
    }
}
