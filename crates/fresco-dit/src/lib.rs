//! `fresco-dit`: fresco's own text-to-image model, a pixel-space DiT trained
//! with flow matching, as a [`Pipeline`](fresco_pipeline::Pipeline) of the
//! model contract in `fresco-pipeline`.
//!
//! - [`pipeline`]: [`DitPipeline`]: construction (seeded random weights,
//!   bytes, a model folder), saving, parameter checks, guidance, sampling.
//! - [`config`]: [`DitConfig`], the architecture a `config.json` describes.
//! - [`builtin`]: the built-in models (`fresco-shapes`, whose trained weights
//!   are compiled in, `tiny-random-dit`, `tiny-random-dit-b`) and the DiT
//!   model-folder kind, registered into a
//!   [`ModelRegistry`](fresco_pipeline::ModelRegistry) by [`register`].
//! - [`sampler`]: the Euler and Heun flow-matching samplers.
//! - [`tokenizer`]: the word-level caption tokenizer.
//! - Private: the DiT blocks (`dit`, `layers`), the caption encoder
//!   (`text_encoder`), the seeded weight init (`init`) and the built-in
//!   vocabulary (`vocab`).
//!
//! Reproducibility follows the contract's seed rule
//! ([`image_seed`](fresco_pipeline::image_seed)): image `k` of a task with
//! seed `s` draws its noise from image seed `s + k` alone, so every image can
//! be regenerated on its own and is identical to the batch result.
//!
//! Training (crate `fresco-train`, with this crate's `train` feature) builds
//! the same modules from a candle `VarMap` (`DitPipeline::seeded_varmap`,
//! `DitPipeline::from_varmap`) and calls `DitPipeline::velocity`; that code
//! (`trainable`) is not compiled without the feature, so the worker does not
//! carry it.

pub mod builtin;
pub mod config;
mod dit;
mod init;
mod layers;
pub mod pipeline;
pub mod sampler;
mod text_encoder;
pub mod tokenizer;
#[cfg(feature = "train")]
mod trainable;
mod vocab;

pub use builtin::{folder_kind, register};
pub use config::{DitConfig, Prediction, TextConfig};
pub use pipeline::DitPipeline;
