//! The fresco worker: pops task ids from the dispatch queues (models it
//! already holds first), claims each through the coordinator, samples with
//! a cached pipeline while heartbeating, uploads the PNGs, then reports.
//!
//! - [`settings`]: what the daemon is told at start, with its defaults and checks.
//! - [`models`]: the model registry of every family, and which models the
//!   worker serves.
//! - [`device`]: the `--device` and `--dtype` flags, and the cache budget.
//! - [`coordinator`]: the gRPC client, with retries for reports.
//! - [`render`]: one task's images, from parameters to PNG bytes.
//! - [`failure`]: every way an attempt fails, and whose fault each is.
//! - [`png`]: PNG encoding with the images' parameters as text chunks.
//! - [`task`]: one claimed task, end to end, with its heartbeat.
//! - [`metrics`]: the Prometheus metrics the worker exports.
//! - [`daemon`]: register, then pop → claim → run until shutdown.
//! - [`idle`]: pings while the worker has nothing to run (liveness, drain).

pub mod coordinator;
pub mod daemon;
pub mod device;
pub mod failure;
pub mod idle;
pub mod metrics;
pub mod models;
pub mod png;
pub mod render;
pub mod settings;
pub mod task;

pub use settings::{DispatchSource, Settings};
