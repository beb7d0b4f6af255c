//! The task state machine.
//!
//! ```text
//! queued ──claim──▶ running ──complete──▶ succeeded
//!   │                 │ ├────fail (no attempts left)──▶ failed
//!   │                 │ └────fail / lease expiry (attempts left)──▶ queued
//!   └──cancel──▶ cancelled ◀──cancel──┘
//! ```
//! The store enforces these edges in SQL (`WHERE state = ..`); this type is
//! the reference they are checked against.

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "grpc")]
use fresco_proto::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 5] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Whether a task in this state will never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }

    /// Whether `self → next` is an edge of the state machine.
    pub fn can_become(self, next: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Queued, Cancelled)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, Queued)
                | (Running, Cancelled)
        )
    }

    #[cfg(feature = "grpc")]
    pub fn to_proto(self) -> pb::TaskState {
        match self {
            TaskState::Queued => pb::TaskState::Queued,
            TaskState::Running => pb::TaskState::Running,
            TaskState::Succeeded => pb::TaskState::Succeeded,
            TaskState::Failed => pb::TaskState::Failed,
            TaskState::Cancelled => pb::TaskState::Cancelled,
        }
    }

    /// The state a proto enum value names; `None` for unspecified.
    #[cfg(feature = "grpc")]
    pub fn from_proto(value: pb::TaskState) -> Option<Self> {
        match value {
            pb::TaskState::Unspecified => None,
            pb::TaskState::Queued => Some(TaskState::Queued),
            pb::TaskState::Running => Some(TaskState::Running),
            pb::TaskState::Succeeded => Some(TaskState::Succeeded),
            pb::TaskState::Failed => Some(TaskState::Failed),
            pb::TaskState::Cancelled => Some(TaskState::Cancelled),
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown task state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in TaskState::ALL {
                assert!(!from.can_become(to), "{from} -> {to} must be refused");
            }
        }
    }

    #[test]
    fn only_running_tasks_finish() {
        assert!(Running.can_become(Succeeded));
        assert!(!Queued.can_become(Succeeded));
        assert!(!Queued.can_become(Failed));
        assert!(Queued.can_become(Running));
        assert!(!Running.can_become(Running));
        assert!(Running.can_become(Queued), "lease expiry");
    }

    #[test]
    fn names_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().unwrap(), state);
            #[cfg(feature = "grpc")]
            assert_eq!(TaskState::from_proto(state.to_proto()), Some(state));
        }
        assert!("done".parse::<TaskState>().is_err());
    }
}
