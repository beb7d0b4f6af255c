//! `fresco-diffusers`: the diffusers-format model families on candle, loaded
//! from diffusers-layout model folders: Stable Diffusion 1.x/2.x and SDXL
//! ([`SdPipeline`]), SD3 ([`Sd3Pipeline`]) and FLUX.1 ([`FluxPipeline`]). Each
//! is served to the worker through the model contract of `fresco-pipeline`
//! ([`serve`]); this crate does not depend on fresco's DiT. The benchmark
//! against diffusers is the separate `fresco-diffusers-bench` crate.
//!
//! [`SdPipeline`] is the entry point: [`SdPipeline::load`] reads a folder and
//! [`SdPipeline::generate`] renders images from a prompt (text, or token ids for
//! folders without a tokenizer) with classifier-free guidance and any sampler of
//! `fresco-schedulers`. Every file problem is a typed [`Error`] naming the file (and,
//! for weights, the tensor and shapes).
//!
//! Modules, one job each:
//! - [`pipeline`]: the text-to-image loop and its parameters;
//! - [`clip`]: the CLIP text encoders (fresco's own, configured from `config.json`);
//! - [`unet`] / [`unet_config`]: the denoising UNet and its config checks and mapping;
//!   [`unet_native`] and `unet_layers`: fresco's own UNet (SDXL's added embedding);
//! - [`vae`]: the VAE config and latent decoding;
//! - [`folder_capabilities`]: what a folder accepts, from its configs alone;
//! - [`serve`]: a loaded folder behind the worker's `Pipeline` interface, and the
//!   registry entry that recognises Stable Diffusion folders;
//! - [`scheduler`]: `scheduler_config.json` → a fresco-schedulers sampler;
//! - [`tokenizer`]: prompt text → padded CLIP token ids;
//! - [`noise`]: per-image seeded noise streams;
//! - [`image`]: decoded output → `[0, 1]` → 8-bit RGB;
//! - `weights` and `files`: safetensors and config files with errors that name them;
//! - [`error`]: the error type.
//!
//! Flow-matching models, with the same folder layout and error rules:
//! - [`sd3`]: SD3 / SD3.5 text-to-image ([`Sd3Pipeline`]); [`mmdit`]: its transformer;
//! - [`flux`]: FLUX.1 schnell/dev text-to-image ([`FluxPipeline`]) and latent packing;
//!   [`flux_model`]: its transformer;
//! - [`flow_params`]: the parameters of an SD3 or FLUX run ([`FlowParams`]);
//! - [`flow`]: `scheduler_config.json` → fresco-schedulers' flow-match Euler, with the
//!   sigmas and `mu` each diffusers pipeline uses;
//! - [`clip_prompt`]: a CLIP encoder with its tokenizer; [`t5`]: the T5 encoder;
//! - `dit_layers`: the transformer building blocks the flow models share.

pub mod clip;
pub mod clip_prompt;
mod dit_layers;
pub mod error;
mod files;
pub mod flow;
pub mod flow_params;
pub mod flux;
pub mod flux_model;
pub mod folder_capabilities;
pub mod image;
pub mod mmdit;
pub mod noise;
pub mod pipeline;
pub mod scheduler;
pub mod sd3;
pub mod serve;
pub mod t5;
pub mod tokenizer;
pub mod unet;
pub mod unet_config;
mod unet_layers;
pub mod unet_native;
pub mod vae;
mod vae_decoder;
mod weights;

pub use error::{Error, Result};
pub use flow_params::FlowParams;
pub use flux::FluxPipeline;
pub use fresco_schedulers::SchedulerKind;
pub use image::RgbImage;
pub use pipeline::{GenerateParams, Prompt, SdPipeline};
pub use sd3::Sd3Pipeline;
pub use unet::UnetBackend;
