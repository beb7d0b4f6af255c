//! The crate's error type: every fallible public function returns [`Result`].

use std::path::PathBuf;

/// Errors raised by generation, analysis, evaluation and image I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested image side length is outside the supported range.
    #[error("image size {size} is not supported (expected {min}..={max} pixels)")]
    InvalidImageSize {
        /// The size that was asked for.
        size: u32,
        /// Smallest supported size.
        min: u32,
        /// Largest supported size.
        max: u32,
    },
    /// A pixel buffer does not match the stated dimensions.
    #[error("pixel buffer has {actual} bytes but {width}x{height} RGB8 needs {expected}")]
    BufferSize {
        /// Stated width.
        width: u32,
        /// Stated height.
        height: u32,
        /// Bytes expected (`width * height * 3`).
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
    /// A caption mix asked for more than every caption.
    #[error("layout percent {0} is not a percentage (expected 0..=100)")]
    InvalidLayoutPercent(u32),
    /// A shape weight outside `1..=max`.
    #[error("shape weight {shape}={weight} is out of range (expected 1..={max})")]
    InvalidShapeWeight {
        /// The shape's word.
        shape: &'static str,
        /// The weight asked for.
        weight: u32,
        /// The largest weight accepted.
        max: u32,
    },
    /// Images are too small to analyse.
    #[error("image {width}x{height} is too small to analyse (min 8x8)")]
    TooSmall {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// Encoding a PNG failed.
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
    /// A file could not be written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// JSON serialisation failed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// A grid was requested for no images or for images of different sizes.
    #[error("cannot build a grid: {0}")]
    Grid(String),
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
