//! `fresco-diffusion`: turns render tasks into images.
//!
//! This crate owns the [`Pipeline`] abstraction the worker codes against, the
//! built-in DiT flow-matching model ([`DitPipeline`], id `tiny-random-dit`), the
//! model [`registry`], an LRU [`cache::ModelCache`] of loaded pipelines, PNG
//! encoding with text metadata ([`png_encode`]), and the `--device` names the
//! worker and the training tools accept ([`device`]).
//!
//! Reproducibility contract, the same for every model family: image `k` of a
//! task with seed `s` has the image seed [`image_seed`]`(s, k)` `= s + k`, and
//! all its noise is drawn from that image seed alone. The image seed is what
//! its PNG and the job's manifest carry; submitted with `n = 1` it renders
//! exactly that image again. What each family accepts (samplers, schedule
//! knobs, sides) is [`Family::capabilities`]; classifier-free guidance runs
//! when [`guidance_enabled`].
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
pub use seed::{derive_image_seed, image_seed, splitmix64};
pub use types::{
    Capabilities, Family, GenerateParams, GeneratedImage, Knobs, Pipeline, Progress, Schedule,
    guidance_enabled,
};
