//! The error every pipeline returns, and the `Result` alias of the model
//! contract.

use std::path::PathBuf;

/// Everything that can go wrong while loading models or sampling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model id is neither built in nor otherwise known to the registry.
    #[error("unknown model `{0}`")]
    UnknownModel(String),

    /// The requested sampler is not implemented by the pipeline.
    #[error("unknown sampler `{sampler}` (supported: {supported})")]
    UnknownSampler {
        /// What the task asked for.
        sampler: String,
        /// Comma-separated list of what the pipeline supports.
        supported: String,
    },

    /// Generation parameters the pipeline cannot honour (bad size, zero steps, ...).
    #[error("invalid generation parameters: {0}")]
    InvalidParams(String),

    /// The progress callback asked to stop.
    #[error("generation cancelled")]
    Cancelled,

    /// A model directory lacks a required file.
    #[error("model file missing: {}", .0.display())]
    MissingModelFile(PathBuf),

    /// A model configuration is inconsistent or unreadable.
    #[error("invalid model config: {0}")]
    Config(String),

    /// Reading or writing a file failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// JSON (de)serialisation of a model config failed.
    #[error("config json: {0}")]
    Json(#[from] serde_json::Error),

    /// A tensor operation failed (shape mismatch, missing weight, device error...).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),

    /// An internal invariant broke (e.g. a lock poisoned by a panicking thread).
    #[error("internal error: {0}")]
    Internal(String),

    /// A model of another pipeline crate (e.g. a Stable Diffusion folder)
    /// failed to load or run.
    #[error("model {model}: {source}")]
    Model {
        /// The model id.
        model: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// What a model accepts cannot be told without loading it: a built-in
    /// model missing from the capability table, or a folder kind that reads
    /// no capabilities.
    #[error("capabilities of model `{model}` unknown: {reason}")]
    CapabilitiesUnknown {
        /// The model id.
        model: String,
        /// Why.
        reason: String,
    },

    /// A device name (`--device`) is malformed, or names a GPU this build or
    /// machine does not have.
    #[error("device {0}")]
    Device(String),
}

/// The model contract's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
