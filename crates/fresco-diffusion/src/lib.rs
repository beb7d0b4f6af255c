//! `fresco-diffusion`: turns render tasks into images.
//!
//! This crate owns the [`Pipeline`] abstraction the worker codes against, the
//! built-in DiT flow-matching model ([`DitPipeline`], id `tiny-random-dit`), the
//! model [`registry`], an LRU [`cache::ModelCache`] of loaded pipelines, PNG
//! encoding with text metadata ([`png_encode`]), and the `--device` names the
//! worker and the training tools accept ([`device`]).
//!
//! Reproducibility contract: image `k` of a task with seed `s` starts from noise
//! drawn only from [`derive_image_seed`]`(s, k)`, so every image can be
//! regenerated on its own and is identical to the batch result.
//!
//! Training (crate `fresco-train`) builds the same modules from a candle
//! `VarMap` ([`DitPipeline::seeded_varmap`], [`DitPipeline::from_varmap`]) and
//! calls [`DitPipeline::velocity`].

pub mod cache;
pub mod config;
pub mod device;
mod dit;
pub mod error;
mod init;
mod layers;
pub mod pipeline;
pub mod png_encode;
pub mod registry;
pub mod sampler;
mod seed;
mod text_encoder;
pub mod tokenizer;
mod trainable;
mod types;
mod vocab;

pub use cache::{CacheStats, ModelCache};
pub use config::{DitConfig, Prediction, TextConfig};
pub use device::{device_label, parse_device};
pub use error::{Error, Result};
pub use pipeline::DitPipeline;
pub use registry::ModelRegistry;
pub use seed::{derive_image_seed, splitmix64};
pub use types::{GenerateParams, GeneratedImage, Pipeline, Progress, Schedule};
