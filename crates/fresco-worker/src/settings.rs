//! The worker's settings.

use std::sync::Arc;
use std::time::Duration;

use fresco_dispatch::Dispatch;

/// Where the worker pops task ids from.
#[derive(Clone)]
pub enum DispatchSource {
    /// Redis at this URL, under the key prefix the coordinator names.
    Redis { url: String },
    /// Queues shared with a coordinator in the same process (`fresco dev`).
    InProcess(Arc<dyn Dispatch>),
}

impl std::fmt::Debug for DispatchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DispatchSource::Redis { url } => f.debug_struct("Redis").field("url", url).finish(),
            DispatchSource::InProcess(_) => f.write_str("InProcess"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The coordinator's gRPC endpoint, e.g. `http://127.0.0.1:50051`.
    pub coordinator: String,
    pub dispatch: DispatchSource,
    /// Output storage URL (s3://bucket/prefix or file:///dir).
    pub storage: String,
    /// A name for logs and listings.
    pub name: String,
    /// Models this worker serves.
    pub models: Vec<String>,
    /// Where model folders are found besides the built-in models.
    pub registry: fresco_diffusion::ModelRegistry,
    /// Bytes of model weights kept loaded between tasks.
    pub cache_budget_bytes: u64,
    /// The device models sample on.
    pub device: candle_core::Device,
    /// How long a shutdown waits for the running task before giving it back.
    pub shutdown_grace: Duration,
    /// How long one pop waits for work.
    pub pop_timeout: Duration,
    /// How long a finished result is held while its report keeps failing.
    pub report_patience: Duration,
}
