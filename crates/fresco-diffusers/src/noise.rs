//! Seeded noise, following fresco's per-image seed contract: image `k` of a run
//! with seed `s` has the image seed [`image_seed`]`(s, k)` `= s + k` and draws
//! from stream 0 of a ChaCha RNG seeded with it, first its initial latents, then
//! any noise its sampler's steps need. An image therefore comes out the same
//! whether it is rendered alone or in any batch, and a run with its image seed
//! and `n = 1` renders it again.

use candle_core::{DType, Device, Tensor};
use fresco_pipeline::image_seed;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;

/// The random stream of image `index` of a run seeded with `seed`: stream 0 of
/// its image seed, so `image_rng(s, k)` and `image_rng(s + k, 0)` are one stream.
pub fn image_rng(seed: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(image_seed(seed, index))
}

/// Unit-variance Gaussian latents `[1, c, h, w]` drawn from `rng`.
pub fn gaussian(
    rng: &mut ChaCha8Rng,
    (c, h, w): (usize, usize, usize),
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let like = Tensor::zeros((1, c, h, w), dtype, device)?;
    Ok(fresco_schedulers::randn_like(&like, rng)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() -> Result<()> {
        let d = Device::Cpu;
        let a = gaussian(&mut image_rng(7, 0), (1, 2, 2), DType::F32, &d)?;
        let b = gaussian(&mut image_rng(7, 1), (1, 2, 2), DType::F32, &d)?;
        let a2 = gaussian(&mut image_rng(7, 0), (1, 2, 2), DType::F32, &d)?;
        let (a, b, a2) = (
            a.flatten_all()?.to_vec1::<f32>()?,
            b.flatten_all()?.to_vec1::<f32>()?,
            a2.flatten_all()?.to_vec1::<f32>()?,
        );
        assert_eq!(a, a2);
        assert_ne!(a, b);
        let b2 = gaussian(&mut image_rng(8, 0), (1, 2, 2), DType::F32, &d)?;
        assert_eq!(
            b,
            b2.flatten_all()?.to_vec1::<f32>()?,
            "image 1 of 7 is image 0 of 8"
        );
        Ok(())
    }
}
