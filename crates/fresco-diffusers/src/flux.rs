//! Text-to-image with FLUX.1 schnell and dev: [`FluxPipeline`] loads a diffusers-layout
//! folder (`text_encoder/` + `tokenizer/` CLIP-L, `text_encoder_2/` + `tokenizer_2/` T5,
//! `transformer/`, `vae/` with 16 latent channels, `shift_factor` and `scaling_factor`,
//! `scheduler/` flow matching) and [`FluxPipeline::generate`] samples as diffusers'
//! `FluxPipeline` does:
//!
//! - conditioning: CLIP-L's pooled output (not projected) and T5's last state over
//!   `max_sequence_length` tokens; no classifier-free guidance (one pass per step);
//! - FLUX-dev (`guidance_embeds`) embeds the guidance value instead; schnell has no
//!   guidance embedding and ignores it;
//! - latents `[16, h / 8, w / 8]` (seeded noise, or [`FlowParams::init_latents`] when
//!   given) are packed 2x2 into tokens of 64 channels with position ids
//!   `(0, row, column)`, and unpacked before decoding;
//! - sigmas are `linspace(1, 1/steps, steps)`, shifted by `mu` of the token count when the
//!   scheduler shifts dynamically (dev), else by its fixed `shift` (see [`crate::flow`]);
//!   a run's `flow_shift`, when given, replaces both.

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use fresco_pipeline::Family;
use fresco_schedulers::{NoiseSource, Scheduler};

use crate::clip_prompt::ClipPromptEncoder;
use crate::error::{Error, Result};
use crate::flow::{FlowSampler, FlowSchedule, FlowSigmas};
use crate::flow_params::FlowParams;
use crate::flux_model::{FluxConditioning, FluxTransformer};
use crate::image::{RgbImage, batch_to_rgb8, to_unit_range};
use crate::noise::{gaussian, image_rng};
use crate::pipeline::Prompt;
use crate::t5::T5TextEncoder;
use crate::vae::Vae;

/// T5 tokens FLUX reads by default (diffusers' `FluxPipeline` default).
pub const FLUX_MAX_SEQUENCE_LENGTH: usize = 512;
/// The native size in latents per side (diffusers' `default_sample_size`).
const DEFAULT_SAMPLE_SIZE: usize = 128;

/// A loaded FLUX.1 model.
#[derive(Debug)]
pub struct FluxPipeline {
    device: Device,
    dtype: DType,
    clip: ClipPromptEncoder,
    t5: T5TextEncoder,
    transformer: FluxTransformer,
    vae: Vae,
    sampler: FlowSampler,
}

/// What the FLUX transformer is conditioned on for one prompt.
#[derive(Debug, Clone)]
pub struct FluxPromptEmbeds {
    /// T5 states `[1, max_sequence_length, joint_attention_dim]`.
    pub context: Tensor,
    /// CLIP-L's pooled output `[1, hidden]`.
    pub pooled: Tensor,
}

/// Packs latents `[b, c, h, w]` into `[b, (h/2) * (w/2), 4c]` tokens (2x2 patches).
pub fn pack_latents(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    Ok(x.reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 2, 4, 1, 3, 5))?
        .reshape((b, (h / 2) * (w / 2), c * 4))?)
}

/// Inverts [`pack_latents`] for latents of `h x w`.
pub fn unpack_latents(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (b, _, c4) = x.dims3()?;
    let c = c4 / 4;
    Ok(x.reshape((b, h / 2, w / 2, c, 2, 2))?
        .permute((0, 3, 1, 4, 2, 5))?
        .reshape((b, c, h, w))?)
}

/// Position ids `(0, row, column)` of the packed tokens of `h x w` latents, row-major.
pub fn image_ids(h: usize, w: usize) -> Vec<[f64; 3]> {
    (0..h / 2)
        .flat_map(|r| (0..w / 2).map(move |c| [0.0, r as f64, c as f64]))
        .collect()
}

impl FluxPipeline {
    /// Loads every component of the diffusers-layout folder `dir` onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device, dtype: DType) -> Result<Self> {
        let dir = dir.as_ref();
        let sampler = FlowSampler::from_file(&dir.join("scheduler/scheduler_config.json"))?;
        let clip = ClipPromptEncoder::load(
            &dir.join("text_encoder"),
            &dir.join("tokenizer"),
            dtype,
            device,
        )?;
        let t5 = T5TextEncoder::load(
            &dir.join("text_encoder_2"),
            &dir.join("tokenizer_2"),
            dtype,
            device,
        )?;
        let transformer = FluxTransformer::load(&dir.join("transformer"), dtype, device)?;
        let vae = Vae::load(&dir.join("vae"), dtype, device)?;
        let pipe = Self {
            device: device.clone(),
            dtype,
            clip,
            t5,
            transformer,
            vae,
            sampler,
        };
        pipe.check_shapes(dir)?;
        Ok(pipe)
    }

    fn check_shapes(&self, dir: &Path) -> Result<()> {
        let tc = self.transformer.config();
        let config = dir.join("transformer/config.json");
        let mismatch = |field: &str, detail: String| Error::Unsupported {
            path: config.clone(),
            field: field.into(),
            detail,
        };
        let hidden = self.clip.model().config().hidden_size;
        if tc.pooled_projection_dim != hidden {
            return Err(mismatch(
                "pooled_projection_dim",
                format!(
                    "{} does not match text_encoder's hidden size {hidden}",
                    tc.pooled_projection_dim
                ),
            ));
        }
        let d_model = self.t5.config().d_model;
        if tc.joint_attention_dim != d_model {
            return Err(mismatch(
                "joint_attention_dim",
                format!(
                    "{} does not match text_encoder_2's d_model {d_model}",
                    tc.joint_attention_dim
                ),
            ));
        }
        let latent = self.vae.config().latent_channels;
        if tc.in_channels != 4 * latent || tc.out_channels() != tc.in_channels {
            return Err(mismatch(
                "in_channels",
                format!(
                    "{} (out {}) must be 4 x the VAE's {latent} latent channels",
                    tc.in_channels,
                    tc.out_channels()
                ),
            ));
        }
        Ok(())
    }

    /// The transformer.
    pub fn transformer(&self) -> &FluxTransformer {
        &self.transformer
    }

    /// The VAE.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// The flow-matching scheduler config.
    pub fn sampler(&self) -> &FlowSampler {
        &self.sampler
    }

    /// The CLIP encoder (`text_encoder/`).
    pub fn clip(&self) -> &ClipPromptEncoder {
        &self.clip
    }

    /// The T5 encoder (`text_encoder_2/`).
    pub fn t5(&self) -> &T5TextEncoder {
        &self.t5
    }

    /// Whether the model embeds a guidance value (FLUX-dev).
    pub fn embeds_guidance(&self) -> bool {
        self.transformer.config().guidance_embeds
    }

    /// Pixels per latent along each side.
    pub fn vae_scale_factor(&self) -> usize {
        1 << self.vae.config().downsamplings()
    }

    /// The native image size `(width, height)`.
    pub fn default_size(&self) -> (usize, usize) {
        let side = DEFAULT_SAMPLE_SIZE * self.vae_scale_factor();
        (side, side)
    }

    /// Image tokens (packed 2x2 latents) of a `width x height` image.
    pub fn image_seq_len(&self, width: usize, height: usize) -> usize {
        let f = 2 * self.vae_scale_factor();
        (width / f) * (height / f)
    }

    /// The sampler of a `steps`-step run at `width x height`, with a fixed
    /// `flow_shift` in place of the folder's shifting when given.
    pub fn schedule(
        &self,
        steps: usize,
        width: usize,
        height: usize,
        flow_shift: Option<f64>,
    ) -> Result<FlowSchedule> {
        self.sampler.build_shifted(
            steps,
            self.image_seq_len(width, height),
            FlowSigmas::Pipeline,
            flow_shift,
        )
    }

    /// What the transformer is conditioned on: CLIP's pooled output for `prompt`, T5's
    /// states for `t5_prompt` over `t5_len` tokens.
    pub fn encode_prompt(
        &self,
        prompt: &Prompt,
        t5_prompt: &Prompt,
        t5_len: usize,
    ) -> Result<FluxPromptEmbeds> {
        let pooled = self.clip.encode(prompt, &self.device)?.pooled;
        let context = self.t5.encode(t5_prompt, t5_len)?;
        Ok(FluxPromptEmbeds { context, pooled })
    }

    /// Renders images as a `[n, 3, height, width]` tensor with values in `[0, 1]`.
    pub fn generate_tensor(&self, params: &FlowParams) -> Result<Tensor> {
        self.generate_tensor_with(params, &mut |_, _| ControlFlow::Continue(()))
    }

    /// [`Self::generate_tensor`], calling `on_step(done, total)` after every
    /// sampler step; `ControlFlow::Break` stops with [`Error::Cancelled`].
    pub fn generate_tensor_with(
        &self,
        params: &FlowParams,
        on_step: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<Tensor> {
        let f = self.vae_scale_factor();
        let multiple = Family::Flux.capabilities().sides.multiple(f, 0);
        let (width, height) = params.check(self.default_size(), multiple)?;
        let n = params.n;
        let t5_len = params
            .max_sequence_length
            .unwrap_or(FLUX_MAX_SEQUENCE_LENGTH);
        let embeds = self.encode_prompt(&params.prompt, params.t5(), t5_len)?;
        let context = embeds.context.repeat((n, 1, 1))?;
        let pooled = embeds.pooled.repeat((n, 1))?;
        let guidance = self.embeds_guidance().then_some(params.guidance_scale);

        let (lh, lw) = (height / f, width / f);
        let ids = image_ids(lh, lw);
        let channels = self.vae.config().latent_channels;
        let mut images = Vec::with_capacity(n);
        let mut timesteps = Vec::new();
        for k in 0..n {
            let mut rng = image_rng(params.seed, params.first_index + k as u64);
            let shape = (channels, lh, lw);
            let noise = match params.init_latents_of(k, shape)? {
                Some(given) => given.to_device(&self.device)?.to_dtype(self.dtype)?,
                None => gaussian(&mut rng, shape, self.dtype, &self.device)?,
            };
            let schedule = self.schedule(params.steps, width, height, params.flow_shift)?;
            timesteps = schedule.timesteps;
            images.push(ImageState {
                rng,
                scheduler: schedule.scheduler,
                latents: pack_latents(&noise)?,
            });
        }

        for (i, &t) in timesteps.iter().enumerate() {
            let x = Tensor::cat(&images.iter().map(|s| &s.latents).collect::<Vec<_>>(), 0)?;
            let cond = FluxConditioning {
                context: &context,
                pooled: &pooled,
                timestep: t,
                guidance,
            };
            let pred = self.transformer.forward(&x, &ids, &cond)?;
            for (k, s) in images.iter_mut().enumerate() {
                let noise: &mut dyn NoiseSource = &mut s.rng;
                s.latents = s
                    .scheduler
                    .step(&pred.i(k..k + 1)?, i, &s.latents, Some(noise))?;
            }
            if on_step(i + 1, timesteps.len()).is_break() {
                return Err(Error::Cancelled);
            }
        }

        let latents: Vec<Tensor> = images.into_iter().map(|s| s.latents).collect();
        let latents = unpack_latents(&Tensor::cat(&latents, 0)?, lh, lw)?;
        let decoded = self.vae.decode(&latents)?;
        to_unit_range(&decoded)
    }

    /// Renders images as 8-bit RGB.
    pub fn generate(&self, params: &FlowParams) -> Result<Vec<RgbImage>> {
        self.generate_with(params, &mut |_, _| ControlFlow::Continue(()))
    }

    /// [`Self::generate`] with a progress callback (see [`Self::generate_tensor_with`]).
    pub fn generate_with(
        &self,
        params: &FlowParams,
        on_step: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<Vec<RgbImage>> {
        batch_to_rgb8(
            &self.generate_tensor_with(params, on_step)?,
            params.first_index,
        )
    }
}

/// One image's sampling state.
struct ImageState {
    rng: rand_chacha::ChaCha8Rng,
    scheduler: Box<dyn Scheduler>,
    latents: Tensor,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_groups_2x2_patches() -> Result<()> {
        let x = Tensor::arange(0f32, 2.0 * 4.0 * 6.0, &Device::Cpu)?.reshape((1, 2, 4, 6))?;
        let packed = pack_latents(&x)?;
        assert_eq!(packed.dims(), &[1, 6, 8]);
        // Token 0 = channel 0's top-left 2x2 patch, then channel 1's.
        let first = packed.i((0, 0))?.to_vec1::<f32>()?;
        assert_eq!(first, vec![0.0, 1.0, 6.0, 7.0, 24.0, 25.0, 30.0, 31.0]);
        let back = unpack_latents(&packed, 4, 6)?;
        assert_eq!(
            back.flatten_all()?.to_vec1::<f32>()?,
            x.flatten_all()?.to_vec1::<f32>()?
        );
        assert_eq!(image_ids(4, 6)[4], [0.0, 1.0, 1.0]);
        Ok(())
    }
}
