//! `fresco-shapes`: the data side and the yardstick of fresco's built-in diffusion
//! model.
//!
//! * [`Dataset`] — seeded procedural generation of captioned images (one shape on
//!   a solid background), reproducible bit for bit on every machine, with a fixed
//!   held-out rule ([`Split`], [`Scene::is_held_out`]).
//! * [`vocabulary`] — the closed caption vocabulary for building a text encoder.
//! * [`parse_prompt`] — what a prompt asks for.
//! * [`analyze()`] — a deterministic, non-ML scorer that reads background colour,
//!   foreground colour, shape, size and position back from pixels.
//! * [`Evaluator`] — aggregate accuracy / diversity tables over (prompt, image) pairs.
//!
//! ```
//! use fresco_shapes::{Dataset, Split, analyze};
//! let samples = Dataset::generate(7, 4, 32, Split::Train)?;
//! for s in &samples {
//!     let a = analyze(&s.rgb, 32, 32)?;
//!     assert_eq!(a.shape, Some(s.scene.shape));
//! }
//! # Ok::<(), fresco_shapes::Error>(())
//! ```

pub mod analyze;
pub mod caption;
pub mod dataset;
pub mod error;
pub mod eval;
mod geometry;
pub mod image_io;
pub mod render;
pub mod scene;
pub mod vocab;

pub use analyze::{Analysis, analyze, classify_colour};
pub use caption::{
    Caption, DEFAULT_LAYOUT_PERCENT, PromptAttributes, caption, caption_naming,
    caption_naming_with, full_caption, parse_prompt,
};
pub use dataset::{Dataset, Framing, Sample, Sizing, Split, add_noise};
pub use error::{Error, Result};
pub use eval::{EvalReport, Evaluator, Ratio, Tally, mean_abs_distance};
pub use render::render;
pub use scene::{Jitter, Scene, is_held_out_combination};
pub use vocab::{Col, Colour, Position, Row, Shape, Size, vocabulary};
