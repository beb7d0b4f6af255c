//! `fresco-pipeline`: the model contract every model family implements and
//! the fresco worker codes against. It holds no model itself but `noop`,
//! which samples nothing.
//!
//! - [`types`]: the [`Pipeline`] trait, what to render ([`GenerateParams`]),
//!   what comes back ([`GeneratedImage`]) and per-step [`Progress`].
//! - [`error`]: the [`Error`] every pipeline returns.
//! - [`registry`]: [`ModelRegistry`], the models a worker can serve: the
//!   built-in models and the [`FolderKind`]s the families register into it,
//!   found in a models directory or a Hugging Face hub cache.
//! - [`cache`]: [`ModelCache`], loaded pipelines kept under a byte budget.
//! - [`device`]: the `--device` names (`cpu`, `cuda`, `cuda:N`).
//! - [`seed`]: the per-image seed contract and seeded noise.
//! - [`weights`]: the SHA-256 that names a model's weights.
//! - [`noop`]: the built-in `noop` model: blank images, no sampling, for
//!   benchmarks and trying a farm.
//!
//! Reproducibility contract, the same for every model family: image `k` of a
//! task with seed `s` has the image seed [`image_seed`]`(s, k)` `= s + k`, and
//! all its noise is drawn from that image seed alone. The image seed is what
//! its PNG carries; submitted with `n = 1` it renders exactly that image
//! again. What each family accepts (samplers, schedule knobs, sides) is
//! [`Family::capabilities`]; classifier-free guidance runs when
//! [`guidance_enabled`].
//!
//! The families live in their own crates: fresco's DiT in `fresco-dit`, the
//! diffusers-format models (SD 1.x/2.x, SDXL, SD3, FLUX) in
//! `fresco-diffusers`. The worker wires them into one registry.

pub mod cache;
pub mod device;
pub mod error;
pub mod noop;
pub mod registry;
pub mod seed;
pub mod types;
pub mod weights;

pub use cache::{CacheStats, Fetched, Loader, ModelCache, WeightsHasher};
pub use device::{device_label, parse_device};
pub use error::{Error, Result};
pub use fresco_core::ModelCapabilities;
pub use registry::{BuiltinWeights, CapabilitiesReader, FolderKind, ModelRegistry};
pub use seed::{derive_image_seed, image_seed, splitmix64};
pub use types::{
    Capabilities, Family, GenerateParams, GeneratedImage, Knobs, Pipeline, Progress, Schedule,
    guidance_enabled,
};
