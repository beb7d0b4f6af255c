//! Training batches: samples of a [`fresco_shapes::Dataset`] turned into
//! flow-matching inputs `x_t = (1 − t)·x0 + t·ε` and targets `v = ε − x0`, with
//! caption dropout to the null caption (so classifier-free guidance works).

use candle_core::{Device, Tensor};
use fresco_diffusion::tokenizer::{NULL_TOKEN, Tokenizer};
use fresco_shapes::Dataset;
use fresco_shapes::image_io::rgb_to_chw;
use rand::Rng;

use crate::error::Result;
use crate::schedule::{TimeSampling, normal_vec, sample_t};

/// Clean images and captions of one batch.
#[derive(Debug, Clone)]
pub struct CleanBatch {
    /// Planar `[B, 3, S, S]` pixels in `[-1, 1]`, row after row.
    pub x0: Vec<f32>,
    /// One caption per image.
    pub captions: Vec<String>,
    /// Image side.
    pub size: usize,
}

impl CleanBatch {
    /// Renders dataset samples `indices`.
    pub fn from_dataset(dataset: &Dataset, indices: &[u64]) -> Result<Self> {
        let size = dataset.image_size();
        let mut x0 = Vec::with_capacity(indices.len() * 3 * (size * size) as usize);
        let mut captions = Vec::with_capacity(indices.len());
        for &i in indices {
            let s = dataset.sample(i)?;
            x0.extend(rgb_to_chw(&s.rgb, size, size)?);
            captions.push(s.caption);
        }
        Ok(Self {
            x0,
            captions,
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
}

/// How a [`CleanBatch`] is noised.
#[derive(Debug, Clone, Copy)]
pub struct Noising {
    /// Distribution of flow times.
    pub time_sampling: TimeSampling,
    /// Probability of replacing a caption by the null caption.
    pub caption_dropout: f64,
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
        .map(|_| sample_t(rng, noising.time_sampling))
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
    Ok(NoisyBatch {
        x_t: Tensor::from_vec(x_t, shape, device)?,
        t,
        captions,
        target: Tensor::from_vec(target, shape, device)?,
    })
}
