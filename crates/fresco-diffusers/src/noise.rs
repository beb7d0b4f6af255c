//! Seeded noise: image `k` of a run with seed `s` draws from its own ChaCha stream
//! `(s, k)`, first its initial latents, then any noise its sampler's steps need. An
//! image therefore comes out the same whether it is rendered alone or in any batch.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;

/// The random stream of image `index` of a run seeded with `seed`.
pub fn image_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
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
        Ok(())
    }
}
