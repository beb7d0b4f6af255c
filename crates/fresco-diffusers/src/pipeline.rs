//! Text-to-image with Stable Diffusion 1.x/2.x and SDXL: [`SdPipeline`] loads a
//! diffusers-layout folder (`text_encoder/`, `tokenizer/` when present, `unet/`, `vae/`,
//! `scheduler/`; SDXL adds `text_encoder_2/` and `tokenizer_2/`) and
//! [`SdPipeline::generate`] runs classifier-free guided sampling with the sampler the
//! run names, then decodes. The UNet runs once per step on the whole batch (negative
//! then positive halves); each image keeps its own scheduler and noise stream.
//!
//! SDXL conditions on both encoders' penultimate hidden states (concatenated), the second
//! encoder's projected pooled vector, and time ids `[height, width, 0, 0, height, width]`
//! (original size, crop top-left, target size). Without a negative prompt its negative
//! conditioning is zeros, as diffusers' `force_zeros_for_empty_prompt` does.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use fresco_pipeline::{Family, Schedule, guidance_enabled};
use fresco_schedulers::{NoiseSource, Scheduler, SchedulerKind};

use crate::clip::ClipTextModel;
use crate::error::{Error, Result, invalid};
use crate::image::{RgbImage, batch_to_rgb8, to_unit_range};
use crate::noise::{gaussian, image_rng};
use crate::scheduler::SchedulerSetup;
use crate::tokenizer::PromptTokenizer;
use crate::unet::{TextTime, Unet, UnetBackend, UnetConditioning};
use crate::vae::Vae;

/// The most images one call renders.
pub const MAX_BATCH: usize = 64;

/// A prompt: text for the folder's tokenizer, or token ids for the text encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Text, tokenized with `tokenizer/` (which the folder must then have).
    Text(String),
    /// Token ids including the begin and end tokens; padded with the encoder's pad id
    /// up to its sequence length.
    Tokens(Vec<u32>),
}

/// What one call to [`SdPipeline::generate`] renders.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// What to draw.
    pub prompt: Prompt,
    /// What to steer away from; `None` means the empty prompt (as in diffusers).
    pub negative: Option<Prompt>,
    /// Classifier-free guidance scale; on above 1 (fresco's one guidance rule,
    /// [`guidance_enabled`]); at 1 or below the negative prompt is not used.
    pub guidance_scale: f64,
    /// Sampler steps.
    pub steps: usize,
    /// The sampler; `None` means the one the folder's scheduler config names
    /// (DDIM when fresco has no equivalent).
    pub sampler: Option<SchedulerKind>,
    /// DDIM's eta (0 is deterministic); ignored by other samplers. A task's
    /// `schedule.eta` takes precedence.
    pub eta: f64,
    /// Schedule knobs overriding the folder's scheduler config (betas, beta
    /// schedule, prediction type, timestep spacing, Karras sigmas, flow shift, eta).
    pub schedule: Schedule,
    /// The run's seed: image `k` has the image seed `seed + first_index + k`
    /// ([`fresco_pipeline::image_seed`]) and draws all its noise from it.
    pub seed: u64,
    /// Image width in pixels; `None` means the model's native size.
    pub width: Option<usize>,
    /// Image height in pixels; `None` means the model's native size.
    pub height: Option<usize>,
    /// How many images.
    pub n: usize,
    /// Index of the first image: image `first_index + k` draws its noise from the
    /// image seed `seed + first_index + k`, so any image of a run can be rendered
    /// again alone (with this index, or with its image seed and index 0).
    pub first_index: u64,
    /// Unit-variance initial latents `[n, channels, height / f, width / f]` to start from
    /// instead of seeded noise (scaled by the sampler's initial sigma, as diffusers does).
    pub init_latents: Option<Tensor>,
}

impl GenerateParams {
    /// Defaults for `prompt`: guidance 7.5, 30 steps, the folder's sampler, seed 0, one
    /// image at the model's native size.
    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            negative: None,
            guidance_scale: 7.5,
            steps: 30,
            sampler: None,
            eta: 0.0,
            schedule: Schedule::default(),
            seed: 0,
            width: None,
            height: None,
            n: 1,
            first_index: 0,
            init_latents: None,
        }
    }
}

/// A loaded Stable Diffusion 1.x/2.x or SDXL model.
#[derive(Debug)]
pub struct SdPipeline {
    dir: PathBuf,
    device: Device,
    dtype: DType,
    text_encoder: ClipTextModel,
    tokenizer: Option<PromptTokenizer>,
    /// SDXL's second encoder and its tokenizer.
    text_encoder_2: Option<(ClipTextModel, Option<PromptTokenizer>)>,
    unet: Unet,
    vae: Vae,
    scheduler: SchedulerSetup,
}

impl SdPipeline {
    /// Loads every component of the diffusers-layout folder `dir` onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_with(dir, device, dtype, UnetBackend::Native)
    }

    /// As [`SdPipeline::load`], running the UNet on the given implementation.
    pub fn load_with(
        dir: impl AsRef<Path>,
        device: &Device,
        dtype: DType,
        backend: UnetBackend,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let scheduler = SchedulerSetup::from_file(&dir.join("scheduler/scheduler_config.json"))?;
        let text_encoder = ClipTextModel::load(&dir.join("text_encoder"), dtype, device)?;
        let tokenizer_dir = dir.join("tokenizer");
        let tokenizer = if PromptTokenizer::exists(&tokenizer_dir) {
            Some(PromptTokenizer::load(&tokenizer_dir)?)
        } else {
            None
        };
        let text_encoder_2 = if dir.join("text_encoder_2").is_dir() {
            let encoder = ClipTextModel::load(&dir.join("text_encoder_2"), dtype, device)?;
            let tokenizer_dir = dir.join("tokenizer_2");
            let tokenizer = if PromptTokenizer::exists(&tokenizer_dir) {
                Some(PromptTokenizer::load(&tokenizer_dir)?)
            } else {
                None
            };
            Some((encoder, tokenizer))
        } else {
            None
        };
        let unet = Unet::load_with(&dir.join("unet"), dtype, device, backend)?;
        let vae = Vae::load(&dir.join("vae"), dtype, device)?;
        if unet.config().text_time != text_encoder_2.is_some() {
            return Err(Error::Unsupported {
                path: dir.join("unet/config.json"),
                field: "addition_embed_type".into(),
                detail: "`text_time` needs a folder with text_encoder_2/, and only it".into(),
            });
        }
        let hidden = text_encoder.config().hidden_size
            + text_encoder_2
                .as_ref()
                .map_or(0, |(e, _)| e.config().hidden_size);
        if hidden != unet.config().cross_attention_dim {
            return Err(Error::Unsupported {
                path: dir.join("unet/config.json"),
                field: "cross_attention_dim".into(),
                detail: format!(
                    "{} does not match the text encoders' hidden size {hidden}",
                    unet.config().cross_attention_dim
                ),
            });
        }
        Ok(Self {
            dir,
            device: device.clone(),
            dtype,
            text_encoder,
            tokenizer,
            text_encoder_2,
            unet,
            vae,
            scheduler,
        })
    }

    /// The text encoder.
    pub fn text_encoder(&self) -> &ClipTextModel {
        &self.text_encoder
    }

    /// The UNet.
    pub fn unet(&self) -> &Unet {
        &self.unet
    }

    /// The VAE.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// The scheduler config and default sampler.
    pub fn scheduler(&self) -> &SchedulerSetup {
        &self.scheduler
    }

    /// Pixels per latent along each side.
    pub fn vae_scale_factor(&self) -> usize {
        1 << self.vae.config().downsamplings()
    }

    /// The native image size `(width, height)`.
    pub fn default_size(&self) -> (usize, usize) {
        let side = self.unet.config().raw.sample_size.unwrap_or(64) * self.vae_scale_factor();
        (side, side)
    }

    /// The token ids the (first) text encoder sees for `prompt`.
    pub fn token_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        self.ids_for(
            prompt,
            &self.text_encoder,
            self.tokenizer.as_ref(),
            "tokenizer",
        )
    }

    fn ids_for(
        &self,
        prompt: &Prompt,
        encoder: &ClipTextModel,
        tokenizer: Option<&PromptTokenizer>,
        tokenizer_dir: &str,
    ) -> Result<Vec<u32>> {
        let config = encoder.config();
        let len = config.max_position_embeddings;
        let ids = match prompt {
            Prompt::Text(text) => match tokenizer {
                Some(t) => t.encode(text, len)?,
                None => {
                    return Err(Error::NoTokenizer {
                        path: PromptTokenizer::primary_file(&self.dir.join(tokenizer_dir)),
                    });
                }
            },
            Prompt::Tokens(ids) => {
                if ids.len() > len {
                    return Err(invalid(
                        "prompt",
                        format!("{} token ids, more than the encoder's {len}", ids.len()),
                    ));
                }
                let mut ids = ids.clone();
                ids.resize(len, config.pad_id());
                ids
            }
        };
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= config.vocab_size) {
            return Err(invalid(
                "prompt",
                format!(
                    "token id {bad} outside the vocabulary of {}",
                    config.vocab_size
                ),
            ));
        }
        Ok(ids)
    }

    /// The empty prompt (diffusers' default negative prompt for SD 1.x/2.x).
    fn empty_prompt(&self) -> Prompt {
        match &self.tokenizer {
            Some(_) => Prompt::Text(String::new()),
            None => {
                let c = self.text_encoder.config();
                Prompt::Tokens(vec![c.bos_token_id, c.eos_token_id])
            }
        }
    }

    /// What the UNet is conditioned on for `prompt`: the text states `[1, seq, dim]` and,
    /// for SDXL, the pooled text vector `[1, dim]`.
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<(Tensor, Option<Tensor>)> {
        let ids1 = self.token_ids(prompt)?;
        let Some((encoder2, tokenizer2)) = &self.text_encoder_2 else {
            return Ok((self.encode_ids(&ids1)?, None));
        };
        let tokenizer2 = tokenizer2.as_ref().or(self.tokenizer.as_ref());
        let ids2 = self.ids_for(prompt, encoder2, tokenizer2, "tokenizer_2")?;
        let out1 = self
            .text_encoder
            .forward(&Tensor::new(ids1.as_slice(), &self.device)?.unsqueeze(0)?)?;
        let out2 = encoder2.forward(&Tensor::new(ids2.as_slice(), &self.device)?.unsqueeze(0)?)?;
        let penultimate = |o: &crate::clip::ClipOutput| -> Result<Tensor> {
            let n = o.hidden_states.len();
            o.hidden_states
                .get(n.saturating_sub(2))
                .cloned()
                .ok_or_else(|| invalid("text_encoder", "has no hidden layers"))
        };
        let states = Tensor::cat(&[penultimate(&out1)?, penultimate(&out2)?], 2)?;
        let pooled = out2.text_embeds.ok_or_else(|| Error::MissingTensor {
            path: self.dir.join("text_encoder_2/model.safetensors"),
            name: "text_projection.weight".into(),
            expected: vec![
                encoder2.config().projection_dim.unwrap_or(0),
                encoder2.config().hidden_size,
            ],
        })?;
        Ok((states, Some(pooled)))
    }

    /// The text encoder's last hidden state for token ids, `[1, seq, hidden]`.
    pub fn encode_ids(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        Ok(self.text_encoder.forward(&ids)?.last_hidden_state)
    }

    /// Renders images as a `[n, 3, height, width]` tensor with values in `[0, 1]`.
    pub fn generate_tensor(&self, params: &GenerateParams) -> Result<Tensor> {
        self.generate_tensor_with(params, &mut |_, _| ControlFlow::Continue(()))
    }

    /// [`Self::generate_tensor`], calling `on_step(done, total)` after every
    /// sampler step; `ControlFlow::Break` stops with [`Error::Cancelled`].
    pub fn generate_tensor_with(
        &self,
        params: &GenerateParams,
        on_step: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<Tensor> {
        let (width, height, kind) = self.check_run(params)?;
        let guided = guidance_enabled(params.guidance_scale);
        let cond = self.conditioning(params, guided, (width, height))?;
        let images = self.initial_states(params, kind, (width, height))?;
        let images = self.denoise(params, guided, &cond, images, on_step)?;
        let latents: Vec<Tensor> = images.into_iter().map(|s| s.latents).collect();
        let decoded = self.vae.decode(&Tensor::cat(&latents, 0)?)?;
        to_unit_range(&decoded)
    }

    /// Checks what a run asks for; returns its `(width, height)` and sampler.
    fn check_run(&self, params: &GenerateParams) -> Result<(usize, usize, SchedulerKind)> {
        let (width, height) = self.check_size(params)?;
        if params.n == 0 || params.n > MAX_BATCH {
            return Err(invalid("n", format!("must be between 1 and {MAX_BATCH}")));
        }
        if !params.guidance_scale.is_finite() {
            return Err(invalid("guidance_scale", "must be a finite number"));
        }
        let kind = params
            .sampler
            .or(self.scheduler.default_kind)
            .unwrap_or(SchedulerKind::Ddim);
        Ok((width, height, kind))
    }

    /// What the UNet sees besides the latents, for the whole batch: with guidance,
    /// the negative half first, then the positive half.
    fn conditioning(
        &self,
        params: &GenerateParams,
        guided: bool,
        (width, height): (usize, usize),
    ) -> Result<BatchConditioning> {
        let n = params.n;
        let (cond, cond_pooled) = self.encode_prompt(&params.prompt)?;
        let sdxl = self.text_encoder_2.is_some();
        let (context, pooled) = if guided {
            let (uncond, uncond_pooled) = match (&params.negative, sdxl) {
                (Some(p), _) => self.encode_prompt(p)?,
                (None, false) => self.encode_prompt(&self.empty_prompt())?,
                (None, true) => (
                    cond.zeros_like()?,
                    cond_pooled.as_ref().map(Tensor::zeros_like).transpose()?,
                ),
            };
            let context = Tensor::cat(&[uncond.repeat((n, 1, 1))?, cond.repeat((n, 1, 1))?], 0)?;
            let pooled = match (uncond_pooled, &cond_pooled) {
                (Some(u), Some(c)) => {
                    Some(Tensor::cat(&[u.repeat((n, 1))?, c.repeat((n, 1))?], 0)?)
                }
                _ => None,
            };
            (context, pooled)
        } else {
            (
                cond.repeat((n, 1, 1))?,
                cond_pooled.map(|c| c.repeat((n, 1))).transpose()?,
            )
        };
        let time_ids = match &pooled {
            Some(p) => {
                let (h, w) = (height as f32, width as f32);
                let row = Tensor::new(&[[h, w, 0.0, 0.0, h, w]], &self.device)?;
                Some(row.repeat((p.dim(0)?, 1))?.to_dtype(self.dtype)?)
            }
            None => None,
        };
        Ok(BatchConditioning {
            context,
            pooled,
            time_ids,
        })
    }

    /// Every image's noise stream, scheduler and initial latents: image
    /// `first_index + k` draws from its image seed (see [`crate::noise`]), unless
    /// the run gives its initial latents.
    fn initial_states(
        &self,
        params: &GenerateParams,
        kind: SchedulerKind,
        (width, height): (usize, usize),
    ) -> Result<Vec<ImageState>> {
        let n = params.n;
        let f = self.vae_scale_factor();
        let shape = (self.unet.config().raw.in_channels, height / f, width / f);
        let mut images = Vec::with_capacity(n);
        for k in 0..n {
            let mut rng = image_rng(params.seed, params.first_index + k as u64);
            let noise = match &params.init_latents {
                Some(given) => given.i(k..k + 1)?.to_dtype(self.dtype)?,
                None => gaussian(&mut rng, shape, self.dtype, &self.device)?,
            };
            let scheduler = self.scheduler.build_with(
                kind,
                params.steps,
                params.schedule.eta.unwrap_or(params.eta),
                &params.schedule,
            )?;
            let latents = (noise * scheduler.init_noise_sigma())?;
            images.push(ImageState {
                rng,
                scheduler,
                latents,
            });
        }
        if let Some(given) = &params.init_latents {
            let want = [n, shape.0, shape.1, shape.2];
            if given.dims() != want {
                return Err(invalid(
                    "init_latents",
                    format!("shape {:?}, expected {want:?}", given.dims()),
                ));
            }
        }
        Ok(images)
    }

    /// The sampling loop: one UNet pass on the whole batch per step, then each
    /// image's own scheduler step (drawing from its own stream).
    fn denoise(
        &self,
        params: &GenerateParams,
        guided: bool,
        cond: &BatchConditioning,
        mut images: Vec<ImageState>,
        on_step: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<Vec<ImageState>> {
        let n = params.n;
        let conditioning = UnetConditioning {
            encoder_hidden_states: &cond.context,
            text_time: match (&cond.pooled, &cond.time_ids) {
                (Some(text_embeds), Some(time_ids)) => Some(TextTime {
                    text_embeds,
                    time_ids,
                }),
                _ => None,
            },
        };
        let timesteps: Vec<f64> = images
            .first()
            .map(|s| s.scheduler.timesteps().to_vec())
            .unwrap_or_default();
        for (i, &t) in timesteps.iter().enumerate() {
            let inputs = images
                .iter()
                .map(|s| s.scheduler.scale_model_input(&s.latents, i))
                .collect::<fresco_schedulers::Result<Vec<_>>>()?;
            let x = Tensor::cat(&inputs, 0)?;
            let model_in = if guided {
                Tensor::cat(&[&x, &x], 0)?
            } else {
                x
            };
            let pred = self.unet.forward(&model_in, t, &conditioning)?;
            let pred = if guided {
                let uncond = pred.i(0..n)?;
                let text = pred.i(n..2 * n)?;
                (&uncond + ((text - &uncond)? * params.guidance_scale)?)?
            } else {
                pred
            };
            for (k, s) in images.iter_mut().enumerate() {
                let out = pred.i(k..k + 1)?;
                let noise: &mut dyn NoiseSource = &mut s.rng;
                s.latents = s.scheduler.step(&out, i, &s.latents, Some(noise))?;
            }
            if on_step(i + 1, timesteps.len()).is_break() {
                return Err(Error::Cancelled);
            }
        }
        Ok(images)
    }

    /// Renders images as 8-bit RGB.
    pub fn generate(&self, params: &GenerateParams) -> Result<Vec<RgbImage>> {
        self.generate_with(params, &mut |_, _| ControlFlow::Continue(()))
    }

    /// [`Self::generate`] with a progress callback (see [`Self::generate_tensor_with`]).
    pub fn generate_with(
        &self,
        params: &GenerateParams,
        on_step: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<Vec<RgbImage>> {
        batch_to_rgb8(
            &self.generate_tensor_with(params, on_step)?,
            params.first_index,
        )
    }

    fn check_size(&self, params: &GenerateParams) -> Result<(usize, usize)> {
        let (dw, dh) = self.default_size();
        let (width, height) = (params.width.unwrap_or(dw), params.height.unwrap_or(dh));
        let f = Family::StableDiffusion
            .capabilities()
            .sides
            .multiple(self.vae_scale_factor(), 1);
        for (field, v) in [("width", width), ("height", height)] {
            if v == 0 || !v.is_multiple_of(f) {
                return Err(invalid(
                    field,
                    format!("{v} is not a positive multiple of {f}"),
                ));
            }
        }
        Ok((width, height))
    }
}

/// The UNet's conditioning for a whole batch (negative half first under guidance).
struct BatchConditioning {
    /// Text states `[rows, seq, dim]`.
    context: Tensor,
    /// SDXL: the pooled text vectors `[rows, dim]`.
    pooled: Option<Tensor>,
    /// SDXL: the size and crop time ids `[rows, 6]`.
    time_ids: Option<Tensor>,
}

/// One image's sampling state.
struct ImageState {
    rng: rand_chacha::ChaCha8Rng,
    scheduler: Box<dyn Scheduler>,
    latents: Tensor,
}
