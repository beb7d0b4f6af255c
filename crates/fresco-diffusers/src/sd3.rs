//! Text-to-image with Stable Diffusion 3 / 3.5: [`Sd3Pipeline`] loads a diffusers-layout
//! folder (`text_encoder/` + `tokenizer/` CLIP-L and `text_encoder_2/` + `tokenizer_2/`
//! CLIP-G, both with projections; optional `text_encoder_3/` + `tokenizer_3/` T5;
//! `transformer/` MMDiT; `vae/` with 16 latent channels and `shift_factor`;
//! `scheduler/` flow matching) and [`Sd3Pipeline::generate`] samples with fresco-schedulers'
//! flow-match Euler and classifier-free guidance, as diffusers'
//! `StableDiffusion3Pipeline` does:
//!
//! - context: both CLIPs' penultimate states side by side, zero-padded to
//!   `joint_attention_dim`, followed by T5's last state over `max_sequence_length` tokens,
//!   or by zeros `[77, joint_attention_dim]` when the folder has no T5;
//! - pooled: both CLIPs' projected pooled vectors side by side;
//! - each encoder may see its own prompt (diffusers' `prompt`, `prompt_2`, `prompt_3`:
//!   [`FlowParams::prompt`], [`FlowParams::prompt_2`], [`FlowParams::t5_prompt`]);
//! - the negative prompt defaults to the empty prompt (not to zeros);
//! - the run starts from seeded noise, or from [`FlowParams::init_latents`] when given;
//! - the transformer sees `sigma * 1000`; the scheduler's own sigmas are used, shifted by
//!   `mu` of the image's patch count when the config shifts dynamically, or by a run's
//!   fixed `flow_shift` when it gives one.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use fresco_pipeline::{Family, guidance_enabled};
use fresco_schedulers::{NoiseSource, Scheduler};

use crate::clip_prompt::ClipPromptEncoder;
use crate::error::{Error, Result};
use crate::flow::{FlowSampler, FlowSchedule, FlowSigmas};
use crate::flow_params::FlowParams;
use crate::image::{RgbImage, batch_to_rgb8, to_unit_range};
use crate::mmdit::Sd3Transformer;
use crate::noise::{gaussian, image_rng};
use crate::pipeline::Prompt;
use crate::t5::T5TextEncoder;
use crate::vae::Vae;

/// T5 tokens SD3 reads by default.
pub const SD3_MAX_SEQUENCE_LENGTH: usize = 256;

/// A loaded SD3 / SD3.5 model.
#[derive(Debug)]
pub struct Sd3Pipeline {
    dir: PathBuf,
    device: Device,
    dtype: DType,
    clip_l: ClipPromptEncoder,
    clip_g: ClipPromptEncoder,
    t5: Option<T5TextEncoder>,
    transformer: Sd3Transformer,
    vae: Vae,
    sampler: FlowSampler,
}

/// Everything the transformer is conditioned on for one prompt.
#[derive(Debug, Clone)]
pub struct Sd3Conditioning {
    /// `[1, clip_seq + t5_seq, joint_attention_dim]`.
    pub context: Tensor,
    /// `[1, pooled_projection_dim]`.
    pub pooled: Tensor,
}

impl Sd3Pipeline {
    /// Loads every component of the diffusers-layout folder `dir` onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device, dtype: DType) -> Result<Self> {
        let dir = dir.as_ref();
        let sampler = FlowSampler::from_file(&dir.join("scheduler/scheduler_config.json"))?;
        let clip_l = ClipPromptEncoder::load(
            &dir.join("text_encoder"),
            &dir.join("tokenizer"),
            dtype,
            device,
        )?;
        let clip_g = ClipPromptEncoder::load(
            &dir.join("text_encoder_2"),
            &dir.join("tokenizer_2"),
            dtype,
            device,
        )?;
        let t5 = if dir.join("text_encoder_3").is_dir() {
            Some(T5TextEncoder::load(
                &dir.join("text_encoder_3"),
                &dir.join("tokenizer_3"),
                dtype,
                device,
            )?)
        } else {
            None
        };
        let transformer = Sd3Transformer::load(&dir.join("transformer"), dtype, device)?;
        let vae = Vae::load(&dir.join("vae"), dtype, device)?;
        let pipe = Self {
            dir: dir.to_path_buf(),
            device: device.clone(),
            dtype,
            clip_l,
            clip_g,
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
        let (l, g) = (self.clip_l.model().config(), self.clip_g.model().config());
        for (name, c) in [("text_encoder", l), ("text_encoder_2", g)] {
            if c.projection_dim.is_none() {
                return Err(Error::Unsupported {
                    path: dir.join(name).join("config.json"),
                    field: "projection_dim".into(),
                    detail: "SD3's CLIP encoders need a text projection".into(),
                });
            }
        }
        if l.max_position_embeddings != g.max_position_embeddings {
            return Err(Error::Unsupported {
                path: dir.join("text_encoder_2/config.json"),
                field: "max_position_embeddings".into(),
                detail: format!(
                    "{} differs from text_encoder's {}",
                    g.max_position_embeddings, l.max_position_embeddings
                ),
            });
        }
        let pooled = l.projection_dim.unwrap_or(0) + g.projection_dim.unwrap_or(0);
        if pooled != tc.pooled_projection_dim {
            return Err(mismatch(
                "pooled_projection_dim",
                format!(
                    "{} does not match the CLIP projections' total {pooled}",
                    tc.pooled_projection_dim
                ),
            ));
        }
        let clip_width = l.hidden_size + g.hidden_size;
        if clip_width > tc.joint_attention_dim {
            return Err(mismatch(
                "joint_attention_dim",
                format!(
                    "{} is narrower than the CLIP states' total {clip_width}",
                    tc.joint_attention_dim
                ),
            ));
        }
        if let Some(t5) = &self.t5
            && t5.config().d_model != tc.joint_attention_dim
        {
            return Err(mismatch(
                "joint_attention_dim",
                format!(
                    "{} does not match text_encoder_3's d_model {}",
                    tc.joint_attention_dim,
                    t5.config().d_model
                ),
            ));
        }
        if self.vae.config().latent_channels != tc.in_channels
            || tc.out_channels() != tc.in_channels
        {
            return Err(mismatch(
                "in_channels",
                format!(
                    "{} (out {}) does not match the VAE's {} latent channels",
                    tc.in_channels,
                    tc.out_channels(),
                    self.vae.config().latent_channels
                ),
            ));
        }
        Ok(())
    }

    /// The transformer.
    pub fn transformer(&self) -> &Sd3Transformer {
        &self.transformer
    }

    /// The VAE.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// Whether the folder has a T5 encoder.
    pub fn has_t5(&self) -> bool {
        self.t5.is_some()
    }

    /// The CLIP-L (`text_encoder/`) and CLIP-G (`text_encoder_2/`) encoders.
    pub fn clip_encoders(&self) -> [&ClipPromptEncoder; 2] {
        [&self.clip_l, &self.clip_g]
    }

    /// The T5 encoder (`text_encoder_3/`), when the folder has one.
    pub fn t5(&self) -> Option<&T5TextEncoder> {
        self.t5.as_ref()
    }

    /// The flow-matching scheduler config.
    pub fn sampler(&self) -> &FlowSampler {
        &self.sampler
    }

    /// Pixels per latent along each side.
    pub fn vae_scale_factor(&self) -> usize {
        1 << self.vae.config().downsamplings()
    }

    /// The native image size `(width, height)`.
    pub fn default_size(&self) -> (usize, usize) {
        let side = self.transformer.config().sample_size * self.vae_scale_factor();
        (side, side)
    }

    /// Image tokens (patches) of a `width x height` image.
    pub fn image_seq_len(&self, width: usize, height: usize) -> usize {
        let f = self.vae_scale_factor() * self.transformer.config().patch_size;
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
            FlowSigmas::Scheduler,
            flow_shift,
        )
    }

    /// What the transformer is conditioned on for `prompt` (`t5_prompt` for T5, over
    /// `t5_len` tokens).
    pub fn encode_prompt(
        &self,
        prompt: &Prompt,
        t5_prompt: &Prompt,
        t5_len: usize,
    ) -> Result<Sd3Conditioning> {
        self.encode_with([prompt, prompt], t5_prompt, t5_len)
    }

    /// As [`Sd3Pipeline::encode_prompt`] with one prompt per CLIP encoder (CLIP-L, then
    /// CLIP-G: diffusers' `prompt` and `prompt_2`).
    pub fn encode_with(
        &self,
        [prompt_l, prompt_g]: [&Prompt; 2],
        t5_prompt: &Prompt,
        t5_len: usize,
    ) -> Result<Sd3Conditioning> {
        let joint = self.transformer.config().joint_attention_dim;
        let l = self.clip_l.encode(prompt_l, &self.device)?;
        let g = self.clip_g.encode(prompt_g, &self.device)?;
        let clip = Tensor::cat(
            &[
                ClipPromptEncoder::penultimate(&l)?,
                ClipPromptEncoder::penultimate(&g)?,
            ],
            2,
        )?;
        let (_, clip_seq, clip_width) = clip.dims3()?;
        let clip = if clip_width < joint {
            let pad = Tensor::zeros((1, clip_seq, joint - clip_width), self.dtype, &self.device)?;
            Tensor::cat(&[clip, pad], 2)?
        } else {
            clip
        };
        let t5 = match &self.t5 {
            Some(t5) => t5.encode(t5_prompt, t5_len)?,
            None => Tensor::zeros((1, clip_seq, joint), self.dtype, &self.device)?,
        };
        let context = Tensor::cat(&[clip, t5], 1)?;
        let projected = |out: crate::clip::ClipOutput, name: &str, encoder: &ClipPromptEncoder| {
            out.text_embeds.ok_or_else(|| {
                let c = encoder.model().config();
                Error::MissingTensor {
                    path: self.dir.join(name).join("model.safetensors"),
                    name: "text_projection.weight".into(),
                    expected: vec![c.projection_dim.unwrap_or(0), c.hidden_size],
                }
            })
        };
        let pooled = Tensor::cat(
            &[
                projected(l, "text_encoder", &self.clip_l)?,
                projected(g, "text_encoder_2", &self.clip_g)?,
            ],
            1,
        )?;
        Ok(Sd3Conditioning { context, pooled })
    }

    fn negative(&self, params: &FlowParams, t5_len: usize) -> Result<Sd3Conditioning> {
        match &params.negative {
            Some(p) => self.encode_with([p, p], p, t5_len),
            None => {
                let t5_empty = self
                    .t5
                    .as_ref()
                    .map_or(Prompt::Tokens(Vec::new()), T5TextEncoder::empty_prompt);
                self.encode_with(
                    [&self.clip_l.empty_prompt(), &self.clip_g.empty_prompt()],
                    &t5_empty,
                    t5_len,
                )
            }
        }
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
        let multiple = Family::Sd3
            .capabilities()
            .sides
            .multiple(f, self.transformer.config().patch_size);
        let (width, height) = params.check(self.default_size(), multiple)?;
        let n = params.n;
        let t5_len = params
            .max_sequence_length
            .unwrap_or(SD3_MAX_SEQUENCE_LENGTH);
        let guided = guidance_enabled(params.guidance_scale);

        let cond = self.encode_with([&params.prompt, params.clip_2()], params.t5(), t5_len)?;
        let (context, pooled) = if guided {
            let uncond = self.negative(params, t5_len)?;
            (
                Tensor::cat(
                    &[
                        uncond.context.repeat((n, 1, 1))?,
                        cond.context.repeat((n, 1, 1))?,
                    ],
                    0,
                )?,
                Tensor::cat(
                    &[uncond.pooled.repeat((n, 1))?, cond.pooled.repeat((n, 1))?],
                    0,
                )?,
            )
        } else {
            (cond.context.repeat((n, 1, 1))?, cond.pooled.repeat((n, 1))?)
        };

        let shape = (self.transformer.config().in_channels, height / f, width / f);
        let mut images = Vec::with_capacity(n);
        let mut timesteps = Vec::new();
        for k in 0..n {
            let mut rng = image_rng(params.seed, params.first_index + k as u64);
            let latents = match params.init_latents_of(k, shape)? {
                Some(given) => given.to_device(&self.device)?.to_dtype(self.dtype)?,
                None => gaussian(&mut rng, shape, self.dtype, &self.device)?,
            };
            let schedule = self.schedule(params.steps, width, height, params.flow_shift)?;
            timesteps = schedule.timesteps;
            images.push(ImageState {
                rng,
                scheduler: schedule.scheduler,
                latents,
            });
        }

        for (i, &t) in timesteps.iter().enumerate() {
            let x = Tensor::cat(&images.iter().map(|s| &s.latents).collect::<Vec<_>>(), 0)?;
            let model_in = if guided {
                Tensor::cat(&[&x, &x], 0)?
            } else {
                x
            };
            let pred = self.transformer.forward(&model_in, t, &context, &pooled)?;
            let pred = if guided {
                let uncond = pred.i(0..n)?;
                let text = pred.i(n..2 * n)?;
                (&uncond + ((text - &uncond)? * params.guidance_scale)?)?
            } else {
                pred
            };
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
        let decoded = self.vae.decode(&Tensor::cat(&latents, 0)?)?;
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
