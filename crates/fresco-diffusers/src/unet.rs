//! The denoising UNet of a model folder: loads `unet/config.json` and its weights and
//! runs one noise prediction. [`UnetConditioning`] carries everything a prediction is
//! conditioned on (SDXL adds a pooled text vector and size/crop time ids). Every config
//! runs on fresco's own UNet ([`crate::unet_native`], on `fresco-kernels`' convolution,
//! GroupNorm and attention); candle-transformers' UNet stays available for SD 1.x/2.x
//! configs ([`UnetBackend::Candle`]) to compare against.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;

use crate::error::{Error, Result};
use crate::unet_config::{ResolvedUnet, UnetConfig};
use crate::unet_native::NativeUnet;
use crate::weights::Weights;

/// SDXL's added conditioning (`addition_embed_type = "text_time"`).
#[derive(Debug, Clone, Copy)]
pub struct TextTime<'a> {
    /// The pooled, projected text vector, `[batch, dim]`.
    pub text_embeds: &'a Tensor,
    /// Original size, crop top-left and target size, `[batch, 6]`.
    pub time_ids: &'a Tensor,
}

/// What one noise prediction is conditioned on.
#[derive(Debug, Clone, Copy)]
pub struct UnetConditioning<'a> {
    /// Text states for cross-attention, `[batch, seq, cross_attention_dim]`.
    pub encoder_hidden_states: &'a Tensor,
    /// SDXL's added embedding inputs; `None` for SD 1.x/2.x.
    pub text_time: Option<TextTime<'a>>,
}

/// Which implementation runs a UNet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnetBackend {
    /// fresco's own UNet for every config (exact-GELU feed-forward, as diffusers).
    #[default]
    Native,
    /// candle-transformers' UNet where it can express the config (SD 1.x/2.x), fresco's
    /// own otherwise (SDXL).
    Candle,
}

/// A UNet with its weights.
#[derive(Debug)]
pub struct Unet {
    config: ResolvedUnet,
    model: Model,
}

#[derive(Debug)]
enum Model {
    Candle(Box<UNet2DConditionModel>),
    Native(Box<NativeUnet>),
}

impl Unet {
    /// Loads a UNet folder (`config.json` and `diffusion_pytorch_model.safetensors`).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::load_with(dir, dtype, device, UnetBackend::Native)
    }

    /// Loads a UNet folder on the given implementation.
    pub fn load_with(
        dir: &Path,
        dtype: DType,
        device: &Device,
        backend: UnetBackend,
    ) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = UnetConfig::from_file(&config_path)?;
        if config.text_time || backend == UnetBackend::Native {
            let weights = Weights::open(dir, "diffusion_pytorch_model", dtype, device)?;
            let model = weights.build(|vb| NativeUnet::new(vb, &config))?;
            return Ok(Self {
                config,
                model: Model::Native(Box::new(model)),
            });
        }
        let last = config
            .levels
            .last()
            .map(|l| (l.cross_attention, l.transformer_layers));
        if let Some((false, layers)) = last
            && layers != 1
        {
            return Err(Error::Unsupported {
                path: config_path,
                field: "transformer_layers_per_block".into(),
                detail: "the mid block's depth must be 1 when the last level has no \
                         cross-attention"
                    .into(),
            });
        }
        let weights = Weights::open(dir, "diffusion_pytorch_model", dtype, device)?;
        let (in_channels, out_channels) = (config.raw.in_channels, config.raw.out_channels);
        let candle_config = config.candle_config();
        let model = weights.build(|vb| {
            UNet2DConditionModel::new(vb, in_channels, out_channels, false, candle_config)
        })?;
        Ok(Self {
            config,
            model: Model::Candle(Box::new(model)),
        })
    }

    /// The checked config the UNet was built from.
    pub fn config(&self) -> &ResolvedUnet {
        &self.config
    }

    /// Predicts the model output for `latents` (`[batch, in_channels, h, w]`) at
    /// `timestep`.
    pub fn forward(
        &self,
        latents: &Tensor,
        timestep: f64,
        cond: &UnetConditioning<'_>,
    ) -> Result<Tensor> {
        let ctx = cond.encoder_hidden_states;
        match (&self.model, cond.text_time) {
            (Model::Candle(m), None) => Ok(m.forward(latents, timestep, ctx)?),
            (Model::Native(m), Some(tt)) if m.takes_text_time() => {
                Ok(m.forward(latents, timestep, ctx, Some((tt.text_embeds, tt.time_ids)))?)
            }
            (Model::Native(m), None) if !m.takes_text_time() => {
                Ok(m.forward(latents, timestep, ctx, None)?)
            }
            (_, Some(_)) => Err(crate::error::invalid(
                "text_time",
                "this UNet takes no added text/time embedding",
            )),
            (_, None) => Err(crate::error::invalid(
                "text_time",
                "this UNet needs the pooled text embedding and time ids",
            )),
        }
    }
}
