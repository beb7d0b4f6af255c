//! The crate's error type: every fallible library function returns [`Result`].

use std::path::PathBuf;

/// Errors raised while training, checkpointing or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model pipeline failed (construction, forward pass, saving).
    #[error(transparent)]
    Diffusion(#[from] fresco_pipeline::Error),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// Data generation, analysis or image output failed.
    #[error(transparent)]
    Shapes(#[from] fresco_shapes::Error),
    /// Reading or writing a file failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be (de)serialised.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Options that cannot work (zero batch, resume with a different seed, ...).
    #[error("invalid options: {0}")]
    Options(String),
    /// The loss became NaN or infinite.
    #[error("loss diverged at step {step}: {loss}")]
    Diverged {
        /// Step at which it happened.
        step: u64,
        /// The offending value.
        loss: f32,
    },
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an `io::Error` on `path` to [`Error::Io`].
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
