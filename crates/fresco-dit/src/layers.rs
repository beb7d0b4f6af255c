//! Transformer building blocks shared by the text encoder and the DiT:
//! multi-head attention, MLP, norms, adaLN modulation and sinusoidal embeddings.
//!
//! candle's fused CPU kernels for layer norm and softmax have no backward pass,
//! so [`Norm`] and [`Attention`] switch to the composite (differentiable) forms
//! whenever their input carries an autograd graph (training); inference on plain
//! tensors keeps the fused kernels and their exact outputs.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::init::Init;
use candle_nn::{LayerNorm, Linear, VarBuilder, linear};
use fresco_pipeline::Result;

/// Largest attention score matrix (elements) materialised at once; queries are
/// processed in chunks so 512×512 images do not need gigabytes of scores.
const MAX_SCORE_ELEMS: usize = 1 << 24;

/// LayerNorm eps used everywhere.
pub(crate) const NORM_EPS: f64 = 1e-6;

/// A LayerNorm (with bias) that is differentiable when it has to be: the fused
/// kernel for plain tensors, the composite form when the input or the parameters
/// are tracked by autograd.
pub(crate) struct Norm(LayerNorm);

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (w, b) = (self.0.weight(), self.0.bias());
        match b {
            Some(b) if x.track_op() || w.track_op() || b.track_op() => {
                candle_nn::ops::layer_norm_slow(x, w, b, self.0.eps() as f32)
            }
            _ => self.0.forward(x),
        }
    }
}

/// LayerNorm without learned affine parameters (DiT's adaLN norms).
pub(crate) fn plain_norm(dim: usize, device: &Device) -> Result<Norm> {
    Ok(Norm(LayerNorm::new(
        Tensor::ones(dim, DType::F32, device)?,
        Tensor::zeros(dim, DType::F32, device)?,
        NORM_EPS,
    )))
}

/// LayerNorm with learned weight and bias (`<prefix>.weight`, `<prefix>.bias`).
pub(crate) fn affine_norm(dim: usize, vb: VarBuilder) -> Result<Norm> {
    Ok(Norm(candle_nn::layer_norm(dim, NORM_EPS, vb)?))
}

/// A biased linear layer whose weight uses `init` when randomly initialised
/// (the bias starts at zero); loading from weights ignores the hints.
pub(crate) fn linear_with_init(
    in_dim: usize,
    out_dim: usize,
    init: Init,
    vb: VarBuilder,
) -> Result<Linear> {
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
    Ok(Linear::new(weight, Some(bias)))
}

/// adaLN modulation: `x · (1 + scale) + shift`, with `shift`/`scale` of shape `[B, D]`
/// broadcast over the token axis of `x: [B, N, D]`.
pub(crate) fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let scale = (scale.unsqueeze(1)? + 1.0)?;
    Ok(x.broadcast_mul(&scale)?
        .broadcast_add(&shift.unsqueeze(1)?)?)
}

/// Multi-head attention with separate q/k/v/out projections; used both as
/// self-attention (context = input) and cross-attention (context = caption tokens).
pub(crate) struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    /// `dim`: query/output width; `ctx_dim`: width of the key/value context.
    pub(crate) fn new(dim: usize, ctx_dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            q: linear(dim, dim, vb.pp("q"))?,
            k: linear(ctx_dim, dim, vb.pp("k"))?,
            v: linear(ctx_dim, dim, vb.pp("v"))?,
            out: linear(dim, dim, vb.pp("out"))?,
            heads,
            head_dim: dim / heads,
        })
    }

    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        Ok(x.reshape((b, n, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `x: [B, N, dim]`, `ctx: [B, M, ctx_dim]`, optional additive `mask: [B, 1, 1, M]`
    /// (0 for valid keys, a large negative number for padding). Returns `[B, N, dim]`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.forward_chunked(x, ctx, mask, MAX_SCORE_ELEMS)
    }

    /// [`Self::forward`] with queries processed so that at most `max_score_elems`
    /// attention scores exist at once.
    fn forward_chunked(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        mask: Option<&Tensor>,
        max_score_elems: usize,
    ) -> Result<Tensor> {
        let (b, n, dim) = x.dims3()?;
        let m = ctx.dim(1)?;
        let q = self.split_heads(&self.q.forward(x)?)?;
        let k_t = self
            .split_heads(&self.k.forward(ctx)?)?
            .transpose(2, 3)?
            .contiguous()?;
        let v = self.split_heads(&self.v.forward(ctx)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let chunk = (max_score_elems / (b * self.heads * m).max(1)).clamp(1, n.max(1));
        let mut outs = Vec::with_capacity(n.div_ceil(chunk));
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let qc = if len == n {
                q.clone()
            } else {
                q.narrow(2, start, len)?.contiguous()?
            };
            let mut scores = (qc.matmul(&k_t)? * scale)?;
            if let Some(mask) = mask {
                scores = scores.broadcast_add(mask)?;
            }
            let probs = if scores.track_op() {
                candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?
            } else {
                candle_nn::ops::softmax_last_dim(&scores)?
            };
            outs.push(probs.matmul(&v)?);
            start += len;
        }
        let o = if outs.len() == 1 {
            outs.remove(0)
        } else {
            Tensor::cat(&outs, 2)?
        };
        let o = o.transpose(1, 2)?.reshape((b, n, dim))?;
        Ok(self.out.forward(&o)?)
    }
}

/// A 3×3 convolution (stride 1, zero padding 1) over channels-last images
/// `[B, H, W, C_in] → [B, H, W, C_out]`, computed as nine matrix products over
/// row-shifted views of the padded image, so that training needs only matmul,
/// contiguous narrowing and padding (whose backward passes candle runs fast on
/// CPU, unlike strided copies and its direct convolution kernels).
///
/// The weight is stored as `[C_out, 9·C_in]`, column `(3·dy + dx)·C_in + c`
/// multiplying input channel `c` at offset `(dy − 1, dx − 1)`: the layout of a
/// `[C_out, 3, 3, C_in]` kernel flattened.
pub(crate) struct Conv3x3 {
    weight: Tensor,
    bias: Tensor,
}

impl Conv3x3 {
    /// A convolution whose weight uses `init` when randomly initialised.
    pub(crate) fn new(c_in: usize, c_out: usize, init: Init, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((c_out, 9 * c_in), "weight", init)?;
        let bias = vb.get_with_hints(c_out, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias })
    }

    /// `x: [B, H, W, C_in]` (channels last) → `[B, H, W, C_out]`.
    ///
    /// The padded image is flattened to rows `[B·(H+2)·(W+2), C_in]`; the tap at
    /// `(dy, dx)` of output pixel `(y, x)` is row `(y + dy)·(W+2) + (x + dx)` of its
    /// image, so each tap is one contiguous row range shifted by
    /// `dy·(W+2) + dx`. Output rows whose window would wrap (the padding columns
    /// and rows) are computed and then dropped.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c_in) = x.dims4()?;
        let (hp, wp) = (h + 2, w + 2);
        let rows = x
            .pad_with_zeros(1, 1, 1)?
            .pad_with_zeros(2, 1, 1)?
            .reshape((b * hp * wp, c_in))?;
        let max_shift = 2 * wp + 2;
        let len = b * hp * wp - max_shift;
        let c_out = self.weight.dim(0)?;
        let mut acc = Tensor::zeros((len, c_out), x.dtype(), x.device())?;
        for dy in 0..3 {
            for dx in 0..3 {
                let tap = rows.narrow(0, dy * wp + dx, len)?;
                let k = (3 * dy + dx) * c_in;
                let w_k = self.weight.narrow(1, k, c_in)?.t()?;
                acc = (acc + tap.matmul(&w_k)?)?;
            }
        }
        Ok(acc
            .broadcast_add(&self.bias)?
            .pad_with_zeros(0, 0, max_shift)?
            .reshape((b, hp, wp, c_out))?
            .narrow(1, 0, h)?
            .narrow(2, 0, w)?)
    }
}

/// Two-layer GELU MLP.
pub(crate) struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub(crate) fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(dim, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, dim, vb.pp("fc2"))?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward(&self.fc1.forward(x)?.gelu()?)?)
    }
}

/// Sinusoidal features of a scalar timestep `t` (in model units, i.e. already ×1000):
/// `[cos(t·f_0..f_{h-1}), sin(t·f_0..f_{h-1})]` with `f_i = 10000^(-i/h)`, `h = dim/2`.
pub(crate) fn timestep_features(t: f64, dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|i| (-(10_000f64.ln()) * i as f64 / half as f64).exp())
        .collect();
    let mut out: Vec<f32> = freqs.iter().map(|f| (t * f).cos() as f32).collect();
    out.extend(freqs.iter().map(|f| (t * f).sin() as f32));
    out
}

/// 2-D sin-cos position embedding (MAE/DiT style) for a `gh × gw` patch grid,
/// row-major, `dim` a multiple of 4: first half encodes the row, second half the column.
pub(crate) fn sincos_2d(gh: usize, gw: usize, dim: usize) -> Vec<f32> {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter)
        .map(|i| 1.0 / 10_000f64.powf(i as f64 / quarter as f64))
        .collect();
    let mut out = Vec::with_capacity(gh * gw * dim);
    for r in 0..gh {
        for c in 0..gw {
            for pos in [r as f64, c as f64] {
                out.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                out.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    out
}

/// Mean over the token axis: `[B, N, D] → [B, D]`.
pub(crate) fn mean_tokens(x: &Tensor) -> Result<Tensor> {
    Ok(x.mean(1)?)
}

/// Additive attention mask row for a caption of `valid` tokens padded to `len`.
pub(crate) fn padding_mask_row(valid: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| if i < valid { 0.0 } else { -1e9 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarBuilder;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn sincos_grid_shape_and_origin() {
        let e = sincos_2d(3, 5, 8);
        assert_eq!(e.len(), 3 * 5 * 8);
        // Position (0,0): sin = 0, cos = 1 for both halves.
        assert_eq!(&e[..8], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        // Different positions get different embeddings.
        assert_ne!(&e[8..16], &e[16..24]);
    }

    #[test]
    fn timestep_features_differ_by_t() {
        let a = timestep_features(0.0, 16);
        let b = timestep_features(500.0, 16);
        assert_eq!(a.len(), 16);
        assert_eq!(&a[..8], &[1.0; 8]);
        assert_ne!(a, b);
    }

    #[test]
    fn chunked_attention_matches_single_pass_and_masks_padding() {
        let dev = Device::Cpu;
        let (init, _) = crate::init::SeededInit::new(3);
        let vb = VarBuilder::from_backend(Box::new(init), DType::F32, dev.clone());
        let attn = Attention::new(8, 8, 2, vb).unwrap();
        let x = Tensor::from_vec(
            fresco_pipeline::seed::gaussian_noise(1, 2 * 5 * 8),
            (2, 5, 8),
            &dev,
        )
        .unwrap();
        // Context: 3 real tokens + 1 padding token that must be ignored.
        let ctx = Tensor::from_vec(
            fresco_pipeline::seed::gaussian_noise(2, 2 * 4 * 8),
            (2, 4, 8),
            &dev,
        )
        .unwrap();
        let mask_rows: Vec<f32> = [padding_mask_row(3, 4), padding_mask_row(3, 4)].concat();
        let mask = Tensor::from_vec(mask_rows, (2, 1, 1, 4), &dev).unwrap();
        let masked = attn.forward(&x, &ctx, Some(&mask)).unwrap();
        let trimmed = attn
            .forward(&x, &ctx.narrow(1, 0, 3).unwrap(), None)
            .unwrap();
        assert_eq!(masked.dims(), &[2, 5, 8]);
        assert!(max_abs_diff(&masked, &trimmed) < 1e-5);
        // Chunking queries (2 scores rows at a time) must not change the result.
        let chunked = attn
            .forward_chunked(&x, &ctx, Some(&mask), 2 * 2 * 4 * 2)
            .unwrap();
        assert!(max_abs_diff(&masked, &chunked) < 1e-6);
        // Without the mask, the padding token does change the result.
        let unmasked = attn.forward(&x, &ctx, None).unwrap();
        assert!(max_abs_diff(&masked, &unmasked) > 1e-4);
    }

    /// The neighbourhood form must be the ordinary convolution (cross-correlation,
    /// zero padding 1) with the kernel `[C_out, 3, 3, C_in]` it stores.
    #[test]
    fn conv3x3_matches_candle_conv2d() {
        let dev = Device::Cpu;
        let (b, h, w, c_in, c_out) = (2, 5, 7, 3, 4);
        let weight = Tensor::from_vec(
            fresco_pipeline::seed::gaussian_noise(7, c_out * 9 * c_in),
            (c_out, 9 * c_in),
            &dev,
        )
        .unwrap();
        let bias =
            Tensor::from_vec(fresco_pipeline::seed::gaussian_noise(8, c_out), c_out, &dev).unwrap();
        let conv = Conv3x3 {
            weight: weight.clone(),
            bias: bias.clone(),
        };
        let x = Tensor::from_vec(
            fresco_pipeline::seed::gaussian_noise(9, b * h * w * c_in),
            (b, h, w, c_in),
            &dev,
        )
        .unwrap();
        let ours = conv.forward(&x).unwrap();
        let kernel = weight
            .reshape((c_out, 3, 3, c_in))
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap()
            .contiguous()
            .unwrap();
        let nchw = x.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
        let reference = nchw
            .conv2d(&kernel, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap())
            .unwrap()
            .permute((0, 2, 3, 1))
            .unwrap();
        assert_eq!(ours.dims(), &[b, h, w, c_out]);
        assert!(max_abs_diff(&ours, &reference) < 1e-4);
    }

    #[test]
    fn modulate_is_identity_for_zero_shift_scale() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 12.0, &dev)
            .unwrap()
            .reshape((1, 3, 4))
            .unwrap();
        let z = Tensor::zeros((1, 4), DType::F32, &dev).unwrap();
        let y = modulate(&x, &z, &z).unwrap();
        assert_eq!(y.to_vec3::<f32>().unwrap(), x.to_vec3::<f32>().unwrap());
        let one = Tensor::ones((1, 4), DType::F32, &dev).unwrap();
        let y = modulate(&x, &one, &one).unwrap();
        assert_eq!(
            y.to_vec3::<f32>().unwrap()[0][1],
            vec![9.0, 11.0, 13.0, 15.0]
        );
    }
}
