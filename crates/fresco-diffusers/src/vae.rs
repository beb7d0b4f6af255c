//! The VAE of a model folder (diffusers' `AutoencoderKL`): parses `vae/config.json`,
//! refuses layouts the decoder cannot express (naming the field), loads the decoder's
//! weights ([`crate::vae_decoder`]) and decodes latents into images in `[-1, 1]`, undoing
//! the config's `scaling_factor` (and `shift_factor`, when set).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::files::read_json;
use crate::vae_decoder::VaeDecoder;
use crate::weights::Weights;

/// The fields of diffusers' `AutoencoderKL` config that fresco reads or checks.
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    /// Image channels in.
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out.
    #[serde(default = "three")]
    pub out_channels: usize,
    /// Channels per level.
    pub block_out_channels: Vec<usize>,
    /// `DownEncoderBlock2D` per level.
    #[serde(default)]
    pub down_block_types: Vec<String>,
    /// `UpDecoderBlock2D` per level.
    #[serde(default)]
    pub up_block_types: Vec<String>,
    /// Resnets per block.
    #[serde(default = "one")]
    pub layers_per_block: usize,
    /// `silu`.
    #[serde(default = "silu")]
    pub act_fn: String,
    /// Latent channels.
    #[serde(default = "four")]
    pub latent_channels: usize,
    /// Group norm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Latents are `encode(x) * scaling_factor`.
    #[serde(default = "sd_scale")]
    pub scaling_factor: f64,
    /// Latents are `(encode(x) - shift_factor) * scaling_factor` when set.
    #[serde(default)]
    pub shift_factor: Option<f64>,
    /// Whether the encoder output goes through `quant_conv`.
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    /// Whether latents go through `post_quant_conv` first.
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    /// Must be true.
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
    /// Per-channel latent statistics (must be null).
    #[serde(default)]
    pub latents_mean: Option<serde_json::Value>,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn one() -> usize {
    1
}
fn thirty_two() -> usize {
    32
}
fn yes() -> bool {
    true
}
fn silu() -> String {
    "silu".into()
}
fn sd_scale() -> f64 {
    0.18215
}

impl VaeConfig {
    /// Reads `vae/config.json` and checks it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = read_json(path)?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let err = |field: &str, detail: String| Error::Unsupported {
            path: PathBuf::from(path),
            field: field.into(),
            detail,
        };
        if self.block_out_channels.is_empty() {
            return Err(err("block_out_channels", "is empty".into()));
        }
        if self.act_fn != "silu" {
            return Err(err("act_fn", format!("`{}` (must be silu)", self.act_fn)));
        }
        if let Some(t) = self
            .down_block_types
            .iter()
            .find(|t| *t != "DownEncoderBlock2D")
        {
            return Err(err("down_block_types", format!("`{t}`")));
        }
        if let Some(t) = self
            .up_block_types
            .iter()
            .find(|t| *t != "UpDecoderBlock2D")
        {
            return Err(err("up_block_types", format!("`{t}`")));
        }
        if !self.mid_block_add_attention {
            return Err(err("mid_block_add_attention", "must be true".into()));
        }
        if self.latents_mean.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(err("latents_mean", "must be null".into()));
        }
        if !(self.scaling_factor.is_finite() && self.scaling_factor != 0.0) {
            return Err(err("scaling_factor", "must be a non-zero number".into()));
        }
        Ok(())
    }

    /// How many times the VAE halves the image size (the latent-to-pixel factor is
    /// `2^vae_downsamplings`).
    pub fn downsamplings(&self) -> usize {
        self.block_out_channels.len() - 1
    }
}

/// A VAE with its weights.
#[derive(Debug)]
pub struct Vae {
    config: VaeConfig,
    decoder: VaeDecoder,
}

impl Vae {
    /// Loads a VAE folder (`config.json` and `diffusion_pytorch_model.safetensors`).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = VaeConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, "diffusion_pytorch_model", dtype, device)?;
        let decoder = weights.build(|vb| VaeDecoder::new(vb, &config))?;
        Ok(Self { config, decoder })
    }

    /// The config the VAE was built from.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Decodes scaled latents (what the sampler produces) into images in about `[-1, 1]`,
    /// `[batch, out_channels, h * f, w * f]`.
    ///
    /// Images are decoded one at a time: candle-transformers 0.11.1's `AutoEncoderKL`
    /// decodes batches of more than one image wrongly (its mid-block attention; the
    /// `seeds` tests catch a regression), and decoding is a small part of a run.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let mut xs = latents.affine(1.0 / self.config.scaling_factor, 0.0)?;
        if let Some(shift) = self.config.shift_factor {
            xs = xs.affine(1.0, shift)?;
        }
        let images = (0..xs.dim(0)?)
            .map(|k| self.decoder.decode(&xs.narrow(0, k, 1)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&images, 0)?)
    }
}
