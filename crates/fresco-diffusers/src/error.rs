//! The crate's error type: every failure names the file (and, for weights, the tensor
//! and the shapes) it comes from, so a broken model folder explains itself.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model folder or generating images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the model folder must hold is not there.
    #[error("missing file {}", path.display())]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// A file exists but could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A config file is not valid JSON for its schema.
    #[error("parsing {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A config file asks for something fresco does not implement.
    #[error("{}: unsupported `{field}`: {detail}", path.display())]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// The config field at fault.
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A safetensors file could not be opened or parsed (truncated, corrupt header, ...).
    #[error("{}: invalid safetensors file: {detail}", path.display())]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// A tensor the model needs is not in the weights file.
    #[error("{}: missing tensor `{name}` (expected shape {expected:?})", path.display())]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
    },
    /// A tensor has a different shape than the config implies.
    #[error(
        "{}: tensor `{name}` has shape {actual:?}, expected {expected:?}",
        path.display()
    )]
    TensorShape {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// Building a component from its weights failed for another reason.
    #[error("{}: {source}", path.display())]
    Model {
        /// The weights file.
        path: PathBuf,
        /// The underlying candle error.
        source: candle_core::Error,
    },
    /// The tokenizer files exist but could not be loaded or used.
    #[error("{}: tokenizer: {detail}", path.display())]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A text prompt was given but the model folder has no tokenizer.
    #[error(
        "a text prompt needs a tokenizer, but the model folder has none: missing file {}",
        path.display()
    )]
    NoTokenizer {
        /// The tokenizer file that was looked for.
        path: PathBuf,
    },
    /// A generation parameter breaks a rule.
    #[error("invalid parameter `{field}`: {rule}")]
    InvalidParams {
        /// The parameter.
        field: &'static str,
        /// The rule it breaks.
        rule: String,
    },
    /// The progress callback asked to stop.
    #[error("generation cancelled")]
    Cancelled,
    /// A scheduler could not be built or stepped.
    #[error("scheduler: {0}")]
    Scheduler(#[from] fresco_schedulers::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Crate result alias.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> Error {
    Error::InvalidParams {
        field,
        rule: rule.into(),
    }
}
