//! [`DitPipeline`]: a DiT flow-matching model plus its tokenizer and caption
//! encoder, implementing [`Pipeline`]. Owns construction (seeded random weights,
//! or `config.json` + `model.safetensors` from a directory), saving, parameter
//! checks, classifier-free guidance and the conversion of samples to RGB8.
//! Trainable construction (from a `VarMap`) lives in `trainable`, behind the
//! `train` feature.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use fresco_pipeline::seed::{derive_image_seed, gaussian_noise, image_seed};
use fresco_pipeline::{Error, Family, GenerateParams, GeneratedImage, Pipeline, Progress, Result};
use tracing::{debug, info};

use crate::config::DitConfig;
use crate::dit::{Context, Dit};
use crate::init::SeededInit;
use crate::layers::padding_mask_row;
use crate::sampler::{Sampler, sample, timesteps};
use crate::text_encoder::{EncodedText, TextEncoder};
use crate::tokenizer::Tokenizer;

/// File name of the configuration inside a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A pixel-space DiT text-to-image pipeline.
pub struct DitPipeline {
    pub(crate) model_id: String,
    pub(crate) config: DitConfig,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) text: TextEncoder,
    pub(crate) dit: Dit,
    pub(crate) weights: HashMap<String, Tensor>,
    pub(crate) device: Device,
}

impl std::fmt::Debug for DitPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DitPipeline")
            .field("model_id", &self.model_id)
            .field("config", &self.config)
            .field("tensors", &self.weights.len())
            .field("device", &self.device)
            .finish()
    }
}

impl DitPipeline {
    /// A model with weights drawn deterministically from `seed` (ChaCha, per tensor name).
    pub fn random(model_id: &str, config: DitConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let (init, recorded) = SeededInit::new(seed);
        let vb = VarBuilder::from_backend(Box::new(init), DType::F32, device.clone());
        let (text, dit, tokenizer) = Self::build_modules(&config, vb, device)?;
        let weights = recorded
            .lock()
            .map_err(|_| Error::Internal("weight record lock poisoned".into()))?
            .clone();
        Ok(Self {
            model_id: model_id.to_owned(),
            config,
            tokenizer,
            text,
            dit,
            weights,
            device: device.clone(),
        })
    }

    /// Builds a model from explicit weights (e.g. loaded from safetensors).
    /// Missing or mis-shaped tensors are reported as [`Error::Candle`].
    pub fn from_weights(
        model_id: &str,
        config: DitConfig,
        weights: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, device);
        let (text, dit, tokenizer) = Self::build_modules(&config, vb, device)?;
        Ok(Self {
            model_id: model_id.to_owned(),
            config,
            tokenizer,
            text,
            dit,
            weights,
            device: device.clone(),
        })
    }

    /// Builds a model from a `config.json` text and `model.safetensors` bytes
    /// held in memory (the built-in trained model is embedded this way).
    pub fn from_bytes(
        model_id: &str,
        config_json: &str,
        safetensors: &[u8],
        device: &Device,
    ) -> Result<Self> {
        let config: DitConfig = serde_json::from_str(config_json)?;
        let weights = candle_core::safetensors::load_buffer(safetensors, device)?;
        Self::from_weights(model_id, config, weights, device)
    }

    /// Loads `dir/config.json` and `dir/model.safetensors`; the model id is the
    /// directory's name. A missing file is reported as [`Error::MissingModelFile`].
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let model_id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self::from_dir_with_id(dir, &model_id, device)
    }

    /// [`Self::from_dir`] with an explicit model id.
    pub fn from_dir_with_id(
        dir: impl AsRef<Path>,
        model_id: &str,
        device: &Device,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = existing(dir.join(CONFIG_FILE))?;
        let weights_path = existing(dir.join(WEIGHTS_FILE))?;
        let json = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
            path: config_path.clone(),
            source,
        })?;
        let config: DitConfig = serde_json::from_str(&json)?;
        let weights = candle_core::safetensors::load(&weights_path, device)?;
        Self::from_weights(model_id, config, weights, device)
    }

    /// Writes `dir/config.json` and `dir/model.safetensors` (creating `dir`).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let config_path = dir.join(CONFIG_FILE);
        std::fs::write(&config_path, serde_json::to_string_pretty(&self.config)?).map_err(
            |source| Error::Io {
                path: config_path.clone(),
                source,
            },
        )?;
        candle_core::safetensors::save(&self.weights, dir.join(WEIGHTS_FILE))?;
        Ok(())
    }

    /// Every weight as bytes, in one canonical form: tensor by tensor in
    /// name order, each its name, a NUL byte, then its values as
    /// little-endian `f32`. What a model without a weights file (a seeded
    /// random one) has its weights hash taken over.
    pub fn weights_bytes(&self) -> Result<Vec<u8>> {
        let mut names: Vec<&String> = self.weights.keys().collect();
        names.sort();
        let mut bytes = Vec::with_capacity(self.memory_bytes() as usize);
        for name in names {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            let tensor = &self.weights[name];
            let values = tensor
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            for value in values {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
        Ok(bytes)
    }

    /// The model configuration.
    pub fn config(&self) -> &DitConfig {
        &self.config
    }

    /// The tokenizer (exposed so callers can report dropped words up front).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub(crate) fn build_modules(
        config: &DitConfig,
        vb: VarBuilder,
        device: &Device,
    ) -> Result<(TextEncoder, Dit, Tokenizer)> {
        let tokenizer = Tokenizer::new(&config.text.vocab, config.text.max_tokens);
        let text = TextEncoder::new(&config.text, tokenizer.table_size(), vb.pp("text"))?;
        let dit = Dit::new(config, device, vb.pp("dit"))?;
        Ok((text, dit, tokenizer))
    }

    /// Renders one image per image seed in `seeds`, in one batch; image `k` starts
    /// from the gaussian noise of `derive_image_seed(seeds[k], 0)` (see
    /// [`derive_image_seed`]), reports `seed = seeds[k]` and gets `index = k`.
    /// `params.n` and `params.seed` are ignored. [`Pipeline::generate`] is this
    /// with `seeds = [image_seed(seed, 0), …, image_seed(seed, n − 1)]`.
    pub fn generate_with_seeds(
        &self,
        params: &GenerateParams,
        seeds: &[u64],
        on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Vec<GeneratedImage>> {
        let started = Instant::now();
        let sampler = self.check_params(params, seeds.len())?;
        let (w, h) = (params.width as usize, params.height as usize);
        let n = seeds.len();

        let guided = params.guided();
        let cond = self.encode_caption(&params.prompt)?;
        let ctx = if guided {
            let uncond = self.encode_caption(&params.negative_prompt)?;
            batch_context(&[(&uncond, n), (&cond, n)], &self.device)?
        } else {
            batch_context(&[(&cond, n)], &self.device)?
        };

        let mut noise = Vec::with_capacity(n * 3 * h * w);
        for &seed in seeds {
            noise.extend(gaussian_noise(derive_image_seed(seed, 0), 3 * h * w));
        }
        let x = Tensor::from_vec(noise, (n, 3, h, w), &self.device)?;

        let g = f64::from(params.guidance);
        let mut velocity = |x: &Tensor, t: f64| -> Result<Tensor> {
            if !guided {
                return self.dit.forward(x, t, &ctx);
            }
            let v = self.dit.forward(&Tensor::cat(&[x, x], 0)?, t, &ctx)?;
            let v_uncond = v.narrow(0, 0, n)?;
            let v_cond = v.narrow(0, n, n)?;
            Ok((&v_uncond + ((&v_cond - &v_uncond)? * g)?)?)
        };
        let ts = timesteps(
            params.steps,
            params.schedule.flow_shift.unwrap_or(self.config.shift),
        );
        let x0 = sample(sampler, x, &ts, &mut velocity, on_step)?;
        let images = to_images(&x0, seeds, params.width, params.height)?;
        info!(
            model = %self.model_id,
            n,
            steps = params.steps,
            width = params.width,
            height = params.height,
            sampler = %params.sampler,
            seconds = started.elapsed().as_secs_f64(),
            "generated images"
        );
        Ok(images)
    }

    fn check_params(&self, p: &GenerateParams, n: usize) -> Result<Sampler> {
        let sampler = Sampler::from_name(&p.sampler)?;
        let invalid = |m: String| Err(Error::InvalidParams(m));
        if p.steps == 0 {
            return invalid("steps must be > 0".into());
        }
        if n == 0 {
            return invalid("n must be > 0".into());
        }
        let sides = Family::Dit.capabilities().sides;
        let patch = sides.multiple(1, self.config.patch_size);
        for (name, v) in [("width", p.width), ("height", p.height)] {
            if v == 0 || !(v as usize).is_multiple_of(patch) {
                return invalid(format!(
                    "{name} {v} must be a positive multiple of the patch size {patch}"
                ));
            }
            if sides.max_side_in_config && v > self.config.max_side {
                return invalid(format!(
                    "{name} {v} exceeds the model maximum {}",
                    self.config.max_side
                ));
            }
        }
        if !p.guidance.is_finite() {
            return invalid(format!("guidance must be finite, got {}", p.guidance));
        }
        p.check_knobs(Family::Dit, &self.model_id)?;
        Ok(sampler)
    }

    fn encode_caption(&self, text: &str) -> Result<EncodedText> {
        let tokens = self.tokenizer.tokenize(text);
        debug!(model = %self.model_id, tokens = tokens.ids.len(), dropped = tokens.unknown.len(), "caption tokenized");
        self.text.encode(&tokens.ids, &self.device)
    }
}

fn existing(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingModelFile(path))
    }
}

/// Stacks captions (each repeated `count` times) into one padded batch context.
pub(crate) fn batch_context(parts: &[(&EncodedText, usize)], device: &Device) -> Result<Context> {
    let max_len = parts
        .iter()
        .map(|(e, _)| e.tokens.dim(1))
        .collect::<candle_core::Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(1);
    let mut tokens = Vec::with_capacity(parts.len());
    let mut pooled = Vec::with_capacity(parts.len());
    let mut mask = Vec::new();
    let mut padded = false;
    let mut rows = 0;
    for (enc, count) in parts {
        let (_, len, dim) = enc.tokens.dims3()?;
        let t = if len < max_len {
            padded = true;
            let pad = Tensor::zeros((1, max_len - len, dim), DType::F32, device)?;
            Tensor::cat(&[&enc.tokens, &pad], 1)?
        } else {
            enc.tokens.clone()
        };
        tokens.push(t.repeat((*count, 1, 1))?);
        pooled.push(enc.pooled.repeat((*count, 1))?);
        for _ in 0..*count {
            mask.extend(padding_mask_row(len, max_len));
        }
        rows += count;
    }
    let mask = if padded {
        Some(Tensor::from_vec(mask, (rows, 1, 1, max_len), device)?)
    } else {
        None
    };
    Ok(Context {
        tokens: Tensor::cat(&tokens, 0)?,
        mask,
        pooled: Tensor::cat(&pooled, 0)?,
    })
}

/// `[n, 3, H, W]` in [-1, 1] → RGB8 images (clamped, rounded).
fn to_images(x0: &Tensor, seeds: &[u64], width: u32, height: u32) -> Result<Vec<GeneratedImage>> {
    let (w, h) = (width as usize, height as usize);
    let plane = w * h;
    let values = x0.flatten_all()?.to_vec1::<f32>()?;
    let to_u8 = |v: f32| ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
    Ok(seeds
        .iter()
        .enumerate()
        .map(|(k, &seed)| {
            let img = &values[k * 3 * plane..(k + 1) * 3 * plane];
            let mut rgb = Vec::with_capacity(3 * plane);
            for i in 0..plane {
                rgb.extend([
                    to_u8(img[i]),
                    to_u8(img[plane + i]),
                    to_u8(img[2 * plane + i]),
                ]);
            }
            GeneratedImage {
                index: k as u32,
                seed,
                width,
                height,
                rgb,
            }
        })
        .collect())
}

impl Pipeline for DitPipeline {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn samplers(&self) -> &'static [&'static str] {
        Family::Dit.capabilities().samplers
    }

    fn memory_bytes(&self) -> u64 {
        self.weights
            .values()
            .map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
            .sum()
    }

    fn generate(
        &self,
        params: &GenerateParams,
        on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Vec<GeneratedImage>> {
        let seeds: Vec<u64> = (0..params.n)
            .map(|k| image_seed(params.seed, u64::from(k)))
            .collect();
        if seeds.is_empty() {
            return Err(Error::InvalidParams("n must be > 0".into()));
        }
        self.generate_with_seeds(params, &seeds, on_step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Training images are `rgb / 127.5 − 1` (fresco_shapes::image_io::rgb_to_chw,
    /// planar CHW); decoding a sample must invert exactly that.
    #[test]
    fn to_images_inverts_the_training_pixel_encoding() {
        let (w, h) = (3usize, 2usize);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 15 % 256) as u8).collect();
        let mut chw = vec![0f32; rgb.len()];
        for i in 0..w * h {
            for c in 0..3 {
                chw[c * w * h + i] = f32::from(rgb[i * 3 + c]) / 127.5 - 1.0;
            }
        }
        let x0 = Tensor::from_vec(chw, (1, 3, h, w), &Device::Cpu).unwrap();
        let images = to_images(&x0, &[7], w as u32, h as u32).unwrap();
        assert_eq!(images[0].rgb, rgb);
        let ends = Tensor::new(&[-1f32, 1.0, -3.0, 3.0], &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap()
            .repeat((1, 3, 1, 1))
            .unwrap();
        let img = to_images(&ends, &[0], 4, 1).unwrap();
        assert_eq!(&img[0].rgb[..6], &[0, 0, 0, 255, 255, 255]);
        assert_eq!(&img[0].rgb[6..], &[0, 0, 0, 255, 255, 255]);
    }
}
