//! fresco's domain, shared by the coordinator, the worker and the CLI.
//!
//! - [`a1111`]: the webui-style `parameters` text every PNG carries.
//! - [`access`]: credential kinds, client roles, tenants, the caller.
//! - [`credentials`]: API keys and worker tokens as text: their format,
//!   making one, reading one back, the digest a store keeps.
//! - [`ids`]: job, task and worker ids, parsed with errors naming the field.
//! - [`params`]: the parameters of a task, their defaults and limits.
//! - [`schedule`]: a task's sampler schedule knobs.
//! - [`capabilities`]: what each model family accepts (samplers, schedule
//!   knobs, image sides, negative prompt, guidance) and the built-in model ids.
//! - [`model_capabilities`]: what one served model accepts, the rule that
//!   admits a task to it, and the built-in models' capabilities.
//! - [`png_text`]: the text chunks of a PNG, read back.
//! - [`state`]: the task state machine.
//! - [`sweep`]: a job as the product of parameter axes, its expansion
//!   order, and each task's coordinates in it.
//! - [`labels`]: job labels and their rules; job-level states.
//! - [`keys`]: where outputs live in the object store.
//! - [`digest`]: SHA-256 digests as lower-case hex (outputs, weights).
//! - [`manifest`]: a row of a job's manifest, its JSON Lines form and
//!   columns (and with `grpc` its wire form).
//! - [`error`]: [`FieldError`], a request field that breaks a rule.
//! - [`failure`]: whose fault a failed attempt was ([`FailureKind`]).
//! - [`status`]: the error codes every fresco service error names, and
//!   (with `grpc`) their one map onto gRPC statuses and back.
//!
//! With the `grpc` feature (on by default), the wire side:
//! - [`bearer`]: the interceptor that sends a client's key with every call.
//! - [`validate`]: turns a `SubmitJobRequest` into a checked [`params::JobSpec`].
//! - [`prompts_file`]: reads `.txt`, `.jsonl` and `.csv` prompt files.
//! - the `fresco-proto` conversions of [`TaskState`] and [`params::Schedule`].
//!
//! This crate never pulls in candle, sqlx or redis: a client install uses it.
//! Without `grpc` it pulls no tonic either, which is how `fresco-store` uses it.

pub mod a1111;
pub mod access;
#[cfg(feature = "grpc")]
pub mod bearer;
pub mod capabilities;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod failure;
pub mod ids;
pub mod keys;
pub mod labels;
pub mod manifest;
pub mod model_capabilities;
pub mod params;
pub mod png_text;
#[cfg(feature = "grpc")]
pub mod prompts_file;
pub mod schedule;
pub mod state;
pub mod status;
pub mod sweep;
#[cfg(feature = "grpc")]
pub mod validate;

pub use access::{Caller, CredentialKind, DEFAULT_TENANT, Role};
pub use error::{FieldError, Result};
pub use failure::FailureKind;
pub use ids::{JobId, TaskId, WorkerId};
pub use labels::{JobState, Labels};
pub use model_capabilities::ModelCapabilities;
pub use params::{JobSpec, Limits, QueuedTask, TaskSpec};
pub use state::TaskState;
pub use status::{ErrorCode, Fault, ServiceError};
