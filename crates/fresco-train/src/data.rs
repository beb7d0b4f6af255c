//! Training batches: samples of a [`fresco_shapes::Dataset`] turned into
//! flow-matching inputs `x_t = (1 − t)·x0 + t·ε` and targets `v = ε − x0`, with
//! caption dropout to the null caption (so classifier-free guidance works).

use candle_core::{Device, Tensor};
use fresco_diffusion::tokenizer::{NULL_TOKEN, Tokenizer};
use fresco_shapes::Dataset;
use fresco_shapes::image_io::rgb_to_chw;
use rand::Rng;

use crate::error::Result;
use crate::schedule::{LogitNormalParams, TimeSampling, normal_vec, sample_t};

/// Clean images and captions of one batch.
#[derive(Debug, Clone)]
pub struct CleanBatch {
    /// Planar `[B, 3, S, S]` pixels in `[-1, 1]`, row after row.
    pub x0: Vec<f32>,
    /// One caption per image.
    pub captions: Vec<String>,
    /// Planar `[B, 3, S, S]` foreground mask: 1 where the pixel differs from its
    /// image's background colour, 0 on the background.
    pub foreground: Vec<f32>,
    /// Image side.
    pub size: usize,
}

impl CleanBatch {
    /// Renders dataset samples `indices`.
    pub fn from_dataset(dataset: &Dataset, indices: &[u64]) -> Result<Self> {
        let size = dataset.image_size();
        let mut x0 = Vec::with_capacity(indices.len() * 3 * (size * size) as usize);
        let mut captions = Vec::with_capacity(indices.len());
        let mut foreground = Vec::with_capacity(x0.capacity());
        for &i in indices {
            let s = dataset.sample(i)?;
            x0.extend(rgb_to_chw(&s.rgb, size, size)?);
            foreground.extend(foreground_mask(&s.rgb, s.scene.background.rgb()));
            captions.push(s.caption);
        }
        Ok(Self {
            x0,
            captions,
            foreground,
            size: size as usize,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.captions.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.captions.is_empty()
    }
}

/// Smallest summed RGB difference from the background colour that counts a
/// pixel as foreground (anti-aliased edges included, compression-free renders).
const FOREGROUND_MIN_DIFF: u32 = 24;

/// Planar `[3, S, S]` mask of the pixels of row-major RGB8 `rgb` that differ from
/// `background`, repeated for each channel.
fn foreground_mask(rgb: &[u8], background: [u8; 3]) -> Vec<f32> {
    let plane: Vec<f32> = rgb
        .chunks_exact(3)
        .map(|p| {
            let diff: u32 = p
                .iter()
                .zip(background)
                .map(|(&a, b)| u32::from(a.abs_diff(b)))
                .sum();
            if diff >= FOREGROUND_MIN_DIFF {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    plane.repeat(3)
}

/// `x_t = (1 − t)·x0 + t·noise` for one image: the flow's noisy point at `t`.
pub(crate) fn noised(x0: &[f32], noise: &[f32], t: f64) -> Vec<f32> {
    let tf = t as f32;
    x0.iter()
        .zip(noise)
        .map(|(&x, &e)| (1.0 - tf) * x + tf * e)
        .collect()
}

/// Model inputs and regression target of one step.
pub struct NoisyBatch {
    /// `x_t: [B, 3, S, S]`.
    pub x_t: Tensor,
    /// Flow time of each row.
    pub t: Vec<f64>,
    /// Token ids of each row's (possibly dropped) caption.
    pub captions: Vec<Vec<u32>>,
    /// `v = ε − x0: [B, 3, S, S]`.
    pub target: Tensor,
    /// Per-pixel loss weights `[B, 3, S, S]` (see [`Noising::foreground_weight`]);
    /// `None`: every pixel weighs the same.
    pub weights: Option<Tensor>,
}

/// How a [`CleanBatch`] is noised.
#[derive(Debug, Clone, Copy)]
pub struct Noising {
    /// Distribution of flow times.
    pub time_sampling: TimeSampling,
    /// Location and scale of the logit-normal time distribution.
    pub logit_normal: LogitNormalParams,
    /// Probability of replacing a caption by the null caption.
    pub caption_dropout: f64,
    /// Loss weight of foreground pixels relative to background ones (1: none).
    pub foreground_weight: f64,
}

/// Draws `t`, `ε` and caption dropout from `rng` and builds the step's tensors.
pub fn noisy_batch<R: Rng + ?Sized>(
    clean: &CleanBatch,
    tokenizer: &Tokenizer,
    noising: Noising,
    rng: &mut R,
    device: &Device,
) -> Result<NoisyBatch> {
    let b = clean.len();
    let per = 3 * clean.size * clean.size;
    let t: Vec<f64> = (0..b)
        .map(|_| sample_t(rng, noising.time_sampling, noising.logit_normal))
        .collect();
    let captions = clean
        .captions
        .iter()
        .map(|c| {
            if rng.random::<f64>() < noising.caption_dropout {
                vec![NULL_TOKEN]
            } else {
                tokenizer.tokenize(c).ids
            }
        })
        .collect();
    let eps = normal_vec(rng, b * per);
    let mut x_t = Vec::with_capacity(b * per);
    let mut target = Vec::with_capacity(b * per);
    for (row, &tr) in t.iter().enumerate() {
        let tf = tr as f32;
        let range = row * per..(row + 1) * per;
        for (&x, &e) in clean.x0[range.clone()].iter().zip(&eps[range]) {
            x_t.push((1.0 - tf) * x + tf * e);
            target.push(e - x);
        }
    }
    let shape = (b, 3, clean.size, clean.size);
    let weights = if noising.foreground_weight == 1.0 {
        None
    } else {
        let extra = (noising.foreground_weight - 1.0) as f32;
        let w: Vec<f32> = clean.foreground.iter().map(|&m| 1.0 + extra * m).collect();
        Some(Tensor::from_vec(w, shape, device)?)
    };
    Ok(NoisyBatch {
        x_t: Tensor::from_vec(x_t, shape, device)?,
        t,
        captions,
        target: Tensor::from_vec(target, shape, device)?,
        weights,
    })
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use fresco_diffusion::sampler::{Sampler, sample, timesteps};
    use fresco_shapes::Split;

    use super::*;
    use crate::presets::Preset;
    use crate::schedule::step_rng;

    const SIDE: u32 = 16;

    fn clean(indices: &[u64]) -> CleanBatch {
        let ds = Dataset::new(3, SIDE, Split::Train).unwrap();
        CleanBatch::from_dataset(&ds, indices).unwrap()
    }

    fn tokenizer() -> Tokenizer {
        let cfg = Preset::Tiny.config();
        Tokenizer::new(&cfg.text.vocab, cfg.text.max_tokens)
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn no_progress() -> impl FnMut(fresco_diffusion::Progress) -> ControlFlow<()> {
        |_| ControlFlow::Continue(())
    }

    /// Oracle check of the training convention against the sampler: a model that
    /// returns exactly what training regresses to must, when the pipeline's sampler
    /// integrates it from pure noise (t = 1) to t = 0, pass through the training
    /// `x_t` at the training `t` and land on the training image `x0`.
    #[test]
    fn sampler_integrating_the_training_target_recovers_x0() {
        let dev = Device::Cpu;
        let clean = clean(&[0]);
        let shape = (1, 3, clean.size, clean.size);
        let x0 = Tensor::from_vec(clean.x0.clone(), shape, &dev).unwrap();
        let noising = Noising {
            time_sampling: TimeSampling::Uniform,
            logit_normal: LogitNormalParams::default(),
            caption_dropout: 0.0,
            foreground_weight: 1.0,
        };
        let nb = noisy_batch(&clean, &tokenizer(), noising, &mut step_rng(1, 0), &dev).unwrap();
        let t = nb.t[0];
        assert!(t > 0.05 && t < 0.95, "t = {t}");
        // ε of this sample, recovered from x_t and the target.
        let eps = (&nb.x_t + (&nb.target * (1.0 - t)).unwrap()).unwrap();
        // x_t = (1 − t)·x0 + t·ε (so x_1 is pure noise and x_0 the image).
        let path = ((&x0 * (1.0 - t)).unwrap() + (&eps * t).unwrap()).unwrap();
        assert!(max_abs(&path, &nb.x_t) < 1e-5);
        // target = dx_t/dt along that path.
        let h = 1e-3;
        let at = |s: f64| ((&x0 * (1.0 - s)).unwrap() + (&eps * s).unwrap()).unwrap();
        let dxdt = ((at(t + h) - at(t - h)).unwrap() / (2.0 * h)).unwrap();
        assert!(max_abs(&dxdt, &nb.target) < 1e-2);

        for sampler in [Sampler::Euler, Sampler::Heun] {
            // Constant oracle: the exact training target of this (x0, ε) pair.
            let mut oracle =
                |_: &Tensor, _: f64| -> fresco_diffusion::Result<Tensor> { Ok(nb.target.clone()) };
            let mid = sample(
                sampler,
                eps.clone(),
                &[1.0, t],
                &mut oracle,
                &mut no_progress(),
            );
            assert!(max_abs(&mid.unwrap(), &nb.x_t) < 1e-4, "{sampler:?}");
            let end = sample(
                sampler,
                eps.clone(),
                &timesteps(10, 3.0),
                &mut oracle,
                &mut no_progress(),
            );
            assert!(max_abs(&end.unwrap(), &x0) < 1e-4, "{sampler:?}");

            // The regression optimum for a one-image data set, as a model of
            // (x_t, t): E[ε − x0 | x_t] = (x_t − x0) / t. From any noise it must
            // reach x0.
            let mut optimal =
                |x: &Tensor, s: f64| -> fresco_diffusion::Result<Tensor> { Ok(((x - &x0)? / s)?) };
            let other_noise = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
            let end = sample(
                sampler,
                other_noise,
                &timesteps(7, 1.0),
                &mut optimal,
                &mut no_progress(),
            );
            assert!(max_abs(&end.unwrap(), &x0) < 1e-4, "{sampler:?}");
        }
    }

    /// Dropped captions must be exactly the unconditional input of guidance: the
    /// pipeline encodes the (default empty) negative prompt with the same tokenizer.
    #[test]
    fn dropped_captions_are_the_samplers_unconditional_caption() {
        let tok = tokenizer();
        let clean = clean(&[0, 1, 2, 3]);
        let noising = |caption_dropout| Noising {
            time_sampling: TimeSampling::LogitNormal,
            logit_normal: LogitNormalParams::default(),
            caption_dropout,
            foreground_weight: 1.0,
        };
        let dropped = noisy_batch(
            &clean,
            &tok,
            noising(1.0),
            &mut step_rng(2, 0),
            &Device::Cpu,
        )
        .unwrap();
        let empty = tok.tokenize("").ids;
        assert_eq!(empty, vec![NULL_TOKEN]);
        assert!(dropped.captions.iter().all(|c| *c == empty));
        let kept = noisy_batch(
            &clean,
            &tok,
            noising(0.0),
            &mut step_rng(2, 0),
            &Device::Cpu,
        )
        .unwrap();
        for (ids, caption) in kept.captions.iter().zip(&clean.captions) {
            assert_eq!(*ids, tok.tokenize(caption).ids);
            assert!(!ids.contains(&NULL_TOKEN), "{caption}");
        }
        assert!(dropped.t.iter().all(|t| *t > 0.0 && *t < 1.0));
    }

    /// Training pixels are in [-1, 1] (the range the pipeline decodes), and use it.
    #[test]
    fn clean_pixels_span_minus_one_to_one() {
        let clean = clean(&(0..16).collect::<Vec<_>>());
        let (lo, hi) = clean
            .x0
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(lo >= -1.0 && hi <= 1.0, "{lo}..{hi}");
        assert!(lo < -0.9 && hi > 0.9, "{lo}..{hi}");
    }
}
