//! Tensor helpers shared by the schedulers: linear combinations with `f64` coefficients,
//! the working dtype (half-precision samples are stepped in `f32`, as diffusers upcasts),
//! shape checks and seeded Gaussian noise (drawn in `f32`, then cast to the sample dtype).

use candle_core::{DType, Tensor};
use rand::{Rng, RngCore};

use crate::error::{Error, Result};

/// The dtype a step computes in: `f32` for half-precision samples, else the sample's own.
pub(crate) fn work_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        other => other,
    }
}

/// `t` converted to the working dtype of `dtype`.
pub(crate) fn to_work(t: &Tensor, dtype: DType) -> Result<Tensor> {
    Ok(t.to_dtype(work_dtype(dtype))?)
}

/// `a * ca + b * cb`.
pub(crate) fn lin2(a: &Tensor, ca: f64, b: &Tensor, cb: f64) -> Result<Tensor> {
    Ok((a.affine(ca, 0.0)? + b.affine(cb, 0.0)?)?)
}

/// `t * c`.
pub(crate) fn scale(t: &Tensor, c: f64) -> Result<Tensor> {
    Ok(t.affine(c, 0.0)?)
}

/// Errors unless `a` and `b` have the same shape.
pub(crate) fn same_shape(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::Shape(format!(
            "{what}: {:?} vs {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok(())
}

/// Standard normal noise shaped and typed like `like` (Box–Muller over `rng`, in `f32`).
pub fn randn_like<R: RngCore + ?Sized>(like: &Tensor, rng: &mut R) -> Result<Tensor> {
    let n = like.elem_count();
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        // u1 in (0, 1] so the logarithm is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        values.push((r * theta.cos()) as f32);
        values.push((r * theta.sin()) as f32);
    }
    values.truncate(n);
    let noise = Tensor::from_vec(values, like.shape(), like.device())?;
    Ok(noise.to_dtype(like.dtype())?)
}

/// Clamps `t` to `[-range, range]`.
pub(crate) fn clamp(t: &Tensor, range: f64) -> Result<Tensor> {
    Ok(t.clamp(-range, range)?)
}

/// What every `step` starts from: the model output and the sample checked
/// for equal shapes and both in the working dtype, plus the sample's own
/// dtype to cast the result back to.
pub(crate) fn step_inputs(
    model_output: &Tensor,
    sample: &Tensor,
) -> Result<(Tensor, Tensor, DType)> {
    same_shape(model_output, sample, "model output vs sample")?;
    let dtype = sample.dtype();
    Ok((
        to_work(sample, dtype)?,
        to_work(model_output, dtype)?,
        dtype,
    ))
}
