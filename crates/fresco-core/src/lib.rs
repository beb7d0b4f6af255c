//! fresco's domain, shared by the coordinator, the worker and the CLI.
//!
//! - [`ids`]: job, task and worker ids, parsed with errors naming the field.
//! - [`params`]: the parameters of a task, their defaults and limits.
//! - [`capabilities`]: what each model family accepts (samplers, schedule
//!   knobs, image sides, negative prompt, guidance) and the built-in model ids.
//! - [`validate`]: turns a `SubmitJobRequest` into a checked [`params::JobSpec`].
//! - [`state`]: the task state machine.
//! - [`prompts_file`]: reads `.txt`, `.jsonl` and `.csv` prompt files.
//! - [`keys`]: where outputs live in the object store.
//! - [`error`]: the one place where domain errors become gRPC statuses.
//!
//! This crate never pulls in candle, sqlx or redis: a client install uses it.

pub mod capabilities;
pub mod error;
pub mod ids;
pub mod keys;
pub mod params;
pub mod prompts_file;
pub mod schedule;
pub mod state;
pub mod validate;

pub use error::{FieldError, Result};
pub use ids::{JobId, TaskId, WorkerId};
pub use params::{JobSpec, Limits, QueuedTask, TaskSpec};
pub use state::TaskState;
