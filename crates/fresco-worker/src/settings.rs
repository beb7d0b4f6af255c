//! The worker's settings.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The coordinator's gRPC endpoint, e.g. `http://127.0.0.1:50051`.
    pub coordinator: String,
    pub redis_url: String,
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
    /// How long a shutdown waits for the running task before giving it back.
    pub shutdown_grace: Duration,
    /// How long one pop waits for work.
    pub pop_timeout: Duration,
    /// How long a finished result is held while its report keeps failing.
    pub report_patience: Duration,
}
