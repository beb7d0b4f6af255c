//! Building blocks shared by fresco's diffusion transformers (SD3's MMDiT in [`crate::mmdit`]
//! and FLUX in [`crate::flux_model`]), under diffusers' parameter names: sinusoidal timestep
//! features (computed in f32 whatever the model's dtype), the two-layer SiLU MLPs that embed
//! timesteps and pooled text, adaptive layer-norm modulation, the tanh-GELU feed-forward,
//! affine-free layer norm, RMS norm and scaled dot-product attention.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

/// diffusers' `Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)`: `[cos, sin]`
/// of `t * 10000^(-i / (dim / 2))`, one row per timestep, `[n, dim]` in `dtype`.
pub(crate) fn timestep_features(
    timesteps: &[f64],
    dim: usize,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let half = dim / 2;
    let exponent = -(10000f32.ln());
    let freqs: Vec<f32> = (0..half)
        .map(|i| (exponent * i as f32 / half as f32).exp())
        .collect();
    let mut rows = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        let t = t as f32;
        rows.extend(freqs.iter().map(|f| (t * f).cos()));
        rows.extend(freqs.iter().map(|f| (t * f).sin()));
        // An odd width gets one zero column, as diffusers pads.
        rows.extend(std::iter::repeat_n(0f32, dim - 2 * half));
    }
    Tensor::from_vec(rows, (timesteps.len(), dim), device)?.to_dtype(dtype)
}

/// `linear_2(silu(linear_1(x)))`: diffusers' `TimestepEmbedding` and
/// `PixArtAlphaTextProjection(act_fn="silu")`.
#[derive(Debug, Clone)]
pub(crate) struct SiluMlp {
    linear_1: Linear,
    linear_2: Linear,
}

impl SiluMlp {
    pub(crate) fn new(
        input: usize,
        hidden: usize,
        out: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            linear_1: candle_nn::linear(input, hidden, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(hidden, out, vb.pp("linear_2"))?,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.linear_2
            .forward(&candle_nn::ops::silu(&self.linear_1.forward(xs)?)?)
    }
}

/// The `linear` of diffusers' adaptive norms (`AdaLayerNormZero`, `AdaLayerNormZeroSingle`,
/// `AdaLayerNormContinuous`): `linear(silu(emb))` split into `chunks` vectors, each
/// `[batch, 1, dim]` so it broadcasts over the sequence.
#[derive(Debug, Clone)]
pub(crate) struct Modulation {
    linear: Linear,
    chunks: usize,
}

impl Modulation {
    pub(crate) fn new(
        cond_dim: usize,
        dim: usize,
        chunks: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            linear: candle_nn::linear(cond_dim, chunks * dim, vb.pp("linear"))?,
            chunks,
        })
    }

    pub(crate) fn forward(&self, emb: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let out = self.linear.forward(&candle_nn::ops::silu(emb)?)?;
        out.unsqueeze(1)?.chunk(self.chunks, D::Minus1)
    }
}

/// `layer_norm(x) * (1 + scale) + shift` with an affine-free layer norm (eps 1e-6).
pub(crate) fn modulate(xs: &Tensor, shift: &Tensor, scale: &Tensor) -> candle_core::Result<Tensor> {
    layer_norm(xs, 1e-6)?
        .broadcast_mul(&(scale + 1.0)?)?
        .broadcast_add(shift)
}

/// Layer norm over the last dimension without weight or bias.
pub(crate) fn layer_norm(xs: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let dtype = xs.dtype();
    let xs = xs.to_dtype(DType::F32)?;
    let mean = xs.mean_keepdim(D::Minus1)?;
    let centered = xs.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(dtype)
}

/// diffusers' `RMSNorm(dim, eps, elementwise_affine=True)`: a `weight` of `dim`.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub(crate) fn new(dim: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let dtype = xs.dtype();
        let x32 = xs.to_dtype(DType::F32)?;
        let rms = (x32.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?;
        x32.broadcast_div(&rms)?
            .to_dtype(dtype)?
            .broadcast_mul(&self.weight)
    }
}

/// diffusers' `FeedForward(dim, dim_out=dim, activation_fn="gelu-approximate")`:
/// `net.2(gelu_tanh(net.0.proj(x)))` with a hidden width of `4 * dim`.
#[derive(Debug, Clone)]
pub(crate) struct FeedForward {
    proj_in: Linear,
    proj_out: Linear,
}

impl FeedForward {
    pub(crate) fn new(dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            proj_in: candle_nn::linear(dim, 4 * dim, vb.pp("net.0.proj"))?,
            proj_out: candle_nn::linear(4 * dim, dim, vb.pp("net.2"))?,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.proj_out.forward(&self.proj_in.forward(xs)?.gelu()?)
    }
}

/// `[batch, seq, heads * head_dim]` → `[batch, heads, seq, head_dim]`.
pub(crate) fn split_heads(xs: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (b, s, width) = xs.dims3()?;
    xs.reshape((b, s, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// Softmax attention of `[batch, heads, seq, head_dim]` inputs, scaled by
/// `1 / sqrt(head_dim)`, returned as `[batch, seq, heads * head_dim]`.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, s, d) = q.dims4()?;
    let dtype = q.dtype();
    let scale = 1.0 / (d as f64).sqrt();
    let scores = (q
        .to_dtype(DType::F32)?
        .matmul(&k.to_dtype(DType::F32)?.t()?)?
        * scale)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
    probs.matmul(v)?.transpose(1, 2)?.reshape((b, s, h * d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestep_features_are_cos_then_sin() -> candle_core::Result<()> {
        let f = timestep_features(&[0.0, 1.0], 4, DType::F32, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(f[0], vec![1.0, 1.0, 0.0, 0.0]);
        // freqs: 1 and 10000^(-1/2) = 0.01.
        assert!((f[1][0] - 1f32.cos()).abs() < 1e-6);
        assert!((f[1][1] - 0.01f32.cos()).abs() < 1e-6);
        assert!((f[1][2] - 1f32.sin()).abs() < 1e-6);
        assert!((f[1][3] - 0.01f32.sin()).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn layer_norm_centres_and_scales() -> candle_core::Result<()> {
        let x = Tensor::new(&[[1f32, 2.0, 3.0, 4.0]], &Device::Cpu)?;
        let y = layer_norm(&x, 0.0)?.to_vec2::<f32>()?;
        let mean: f32 = y[0].iter().sum::<f32>() / 4.0;
        let var: f32 = y[0].iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6);
        assert!((var - 1.0).abs() < 1e-5);
        Ok(())
    }
}
