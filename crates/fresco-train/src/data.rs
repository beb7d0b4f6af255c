//! Training batches: samples of a [`fresco_shapes::Dataset`] turned into
//! flow-matching inputs `x_t = (1 − t)·x0 + t·ε` and targets `v = ε − x0`, with
//! caption dropout to the null caption (so classifier-free guidance works) and
//! optional per-pixel loss weights on each shape and along its outline.

use candle_core::{Device, Tensor};
use fresco_dit::tokenizer::{NULL_TOKEN, Tokenizer};
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
    /// Planar `[B, 3, S, S]` outline band: 1 where a pixel's 3×3 neighbourhood
    /// holds both foreground and background pixels, 0 elsewhere.
    pub outline: Vec<f32>,
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
        let mut outline = Vec::with_capacity(x0.capacity());
        let side = size as usize;
        for &i in indices {
            let s = dataset.sample(i)?;
            x0.extend(rgb_to_chw(&s.rgb, size, size)?);
            let mask = foreground_mask(&s.rgb, s.scene.background.rgb());
            let band = outline_band(&mask, side);
            foreground.extend(planar(&mask));
            outline.extend(planar(&band));
            captions.push(s.caption);
        }
        Ok(Self {
            x0,
            captions,
            foreground,
            outline,
            size: side,
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

/// Row-major `[S, S]` mask of the pixels of row-major RGB8 `rgb` that differ
/// from `background`.
fn foreground_mask(rgb: &[u8], background: [u8; 3]) -> Vec<bool> {
    rgb.chunks_exact(3)
        .map(|p| {
            let diff: u32 = p
                .iter()
                .zip(background)
                .map(|(&a, b)| u32::from(a.abs_diff(b)))
                .sum();
            diff >= FOREGROUND_MIN_DIFF
        })
        .collect()
}

/// Row-major `[S, S]` band along the outline of `mask` (side `side`): the pixels
/// whose 3×3 neighbourhood, clipped to the image, holds both values of the mask.
/// It is about three pixels wide, straddling the edge.
fn outline_band(mask: &[bool], side: usize) -> Vec<bool> {
    let at = |x: usize, y: usize| mask[y * side + x];
    (0..side * side)
        .map(|i| {
            let (x, y) = (i % side, i / side);
            let own = at(x, y);
            let ys = y.saturating_sub(1)..=(y + 1).min(side - 1);
            ys.flat_map(|ny| (x.saturating_sub(1)..=(x + 1).min(side - 1)).map(move |nx| (nx, ny)))
                .any(|(nx, ny)| at(nx, ny) != own)
        })
        .collect()
}

/// A row-major mask as planar `[3, S, S]` zeros and ones, the same for each
/// channel.
fn planar(mask: &[bool]) -> Vec<f32> {
    let plane: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
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
    /// Per-pixel loss weights `[B, 3, S, S]` (see [`Noising::foreground_weight`]
    /// and [`Noising::outline_weight`]); `None`: every pixel weighs the same.
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
    /// Loss weight of the pixels along the shape's outline (the band of
    /// [`CleanBatch::outline`]) relative to the others (1: none). Multiplies
    /// with the foreground weight where both apply.
    pub outline_weight: f64,
}

impl Noising {
    /// Per-pixel loss weights of `clean`, planar like its pixels; `None` when
    /// every pixel weighs the same.
    fn pixel_weights(&self, clean: &CleanBatch) -> Option<Vec<f32>> {
        if self.foreground_weight == 1.0 && self.outline_weight == 1.0 {
            return None;
        }
        let (fg, edge) = (self.foreground_weight as f32, self.outline_weight as f32);
        let pick = |m: f32, w: f32| if m > 0.5 { w } else { 1.0 };
        Some(
            clean
                .foreground
                .iter()
                .zip(&clean.outline)
                .map(|(&f, &o)| pick(f, fg) * pick(o, edge))
                .collect(),
        )
    }
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
    let weights = noising
        .pixel_weights(clean)
        .map(|w| Tensor::from_vec(w, shape, device))
        .transpose()?;
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

    use fresco_dit::sampler::{Sampler, sample, timesteps};
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

    fn no_progress() -> impl FnMut(fresco_pipeline::Progress) -> ControlFlow<()> {
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
            outline_weight: 1.0,
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
                |_: &Tensor, _: f64| -> fresco_pipeline::Result<Tensor> { Ok(nb.target.clone()) };
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
                |x: &Tensor, s: f64| -> fresco_pipeline::Result<Tensor> { Ok(((x - &x0)? / s)?) };
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
            outline_weight: 1.0,
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

    /// The band is every pixel within one step (8-neighbourhood) of the other
    /// side of the edge: the square's own border ring and the ring around it.
    #[test]
    fn outline_band_straddles_the_edge_and_nothing_else() {
        let side = 8;
        let square = |x: usize, y: usize, lo: usize, hi: usize| {
            (lo..=hi).contains(&x) && (lo..=hi).contains(&y)
        };
        let mask: Vec<bool> = (0..side * side)
            .map(|i| square(i % side, i / side, 2, 5))
            .collect();
        let band = outline_band(&mask, side);
        for (i, &b) in band.iter().enumerate() {
            let (x, y) = (i % side, i / side);
            let expected = square(x, y, 1, 6) && !square(x, y, 3, 4);
            assert_eq!(b, expected, "pixel ({x}, {y})");
        }
        assert!(outline_band(&[true; 16], 4).iter().all(|&b| !b));
    }

    /// `--outline-weight` weighs exactly the band pixels of real samples, and
    /// multiplies with `--foreground-weight` where both apply.
    #[test]
    fn outline_weight_weighs_the_band_of_each_sample() {
        let clean = clean(&(0..8).collect::<Vec<_>>());
        let band_share = clean.outline.iter().sum::<f32>() / clean.outline.len() as f32;
        assert!((0.03..0.6).contains(&band_share), "{band_share}");
        for (f, o) in clean.foreground.iter().zip(&clean.outline) {
            assert!([0.0, 1.0].contains(f) && [0.0, 1.0].contains(o));
        }
        let noising = |foreground_weight, outline_weight| Noising {
            time_sampling: TimeSampling::Uniform,
            logit_normal: LogitNormalParams::default(),
            caption_dropout: 0.0,
            foreground_weight,
            outline_weight,
        };
        assert!(noising(1.0, 1.0).pixel_weights(&clean).is_none());
        let weights = |fw, ow| {
            let nb = noisy_batch(
                &clean,
                &tokenizer(),
                noising(fw, ow),
                &mut step_rng(4, 0),
                &Device::Cpu,
            )
            .unwrap();
            nb.weights
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        for (w, o) in weights(1.0, 5.0).iter().zip(&clean.outline) {
            assert_eq!(*w, if *o > 0.5 { 5.0 } else { 1.0 });
        }
        let both = weights(2.0, 5.0);
        let seen: std::collections::BTreeSet<u32> = both.iter().map(|w| w.to_bits()).collect();
        let seen: Vec<f32> = seen.into_iter().map(f32::from_bits).collect();
        assert_eq!(seen, vec![1.0, 2.0, 5.0, 10.0]);
        for ((w, f), o) in both.iter().zip(&clean.foreground).zip(&clean.outline) {
            assert_eq!(*w, (1.0 + f) * (1.0 + 4.0 * o));
        }
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
