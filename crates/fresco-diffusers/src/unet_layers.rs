//! The layers of fresco's own UNet, following diffusers' modules name for name so
//! diffusers weights load unchanged: `ResnetBlock2D`, `Transformer2DModel` (with
//! `BasicTransformerBlock`, cross-attention and the exact-GELU `GEGLU` feed-forward),
//! `Downsample2D`, `Upsample2D` and the sinusoidal timestep embedding. Convolutions,
//! GroupNorm, GEGLU and attention run on `fresco-kernels`.

use candle_core::{D, Tensor};
use candle_nn::{Conv2dConfig, LayerNorm, Linear, Module, VarBuilder};
use fresco_kernels::{Conv2d, GroupNorm};

type R<T> = candle_core::Result<T>;

/// A `k`×`k` convolution with bias, loaded as `candle_nn::conv2d` loads it.
pub(crate) fn conv(
    vb: VarBuilder,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> R<Conv2d> {
    let cfg = Conv2dConfig {
        padding: pad,
        stride,
        ..Default::default()
    };
    Ok(candle_nn::conv2d(cin, cout, k, cfg, vb)?.into())
}

/// diffusers' `Timesteps`: sinusoidal features of (possibly fractional) values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timesteps {
    pub(crate) channels: usize,
    pub(crate) flip_sin_to_cos: bool,
    pub(crate) freq_shift: f64,
}

impl Timesteps {
    /// `[n]` values → `[n, channels]` features.
    pub(crate) fn forward(&self, t: &Tensor) -> R<Tensor> {
        let half = self.channels / 2;
        let freqs: Vec<f32> = (0..half)
            .map(|i| (-(10000f64.ln()) * i as f64 / (half as f64 - self.freq_shift)).exp() as f32)
            .collect();
        let freqs = Tensor::from_vec(freqs, (1, half), t.device())?.to_dtype(t.dtype())?;
        let args = t.unsqueeze(1)?.broadcast_mul(&freqs)?;
        let (sin, cos) = (args.sin()?, args.cos()?);
        let emb = if self.flip_sin_to_cos {
            Tensor::cat(&[cos, sin], D::Minus1)?
        } else {
            Tensor::cat(&[sin, cos], D::Minus1)?
        };
        if self.channels % 2 == 1 {
            emb.pad_with_zeros(D::Minus1, 0, 1)
        } else {
            Ok(emb)
        }
    }
}

/// diffusers' `TimestepEmbedding`: linear, SiLU, linear.
#[derive(Debug)]
pub(crate) struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    pub(crate) fn new(vb: VarBuilder, cin: usize, dim: usize) -> R<Self> {
        Ok(Self {
            linear_1: candle_nn::linear(cin, dim, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(dim, dim, vb.pp("linear_2"))?,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> R<Tensor> {
        self.linear_2
            .forward(&candle_nn::ops::silu(&self.linear_1.forward(xs)?)?)
    }
}

/// diffusers' `ResnetBlock2D` (default time scale shift, SiLU); the VAE's have no time
/// embedding.
#[derive(Debug)]
pub(crate) struct Resnet {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl Resnet {
    pub(crate) fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        temb: Option<usize>,
        groups: usize,
        eps: f64,
    ) -> R<Self> {
        let time_emb_proj = temb
            .map(|temb| candle_nn::linear(temb, cout, vb.pp("time_emb_proj")))
            .transpose()?;
        Ok(Self {
            norm1: GroupNorm::load(vb.pp("norm1"), groups, cin, eps)?,
            conv1: conv(vb.pp("conv1"), cin, cout, 3, 1, 1)?,
            time_emb_proj,
            norm2: GroupNorm::load(vb.pp("norm2"), groups, cout, eps)?,
            conv2: conv(vb.pp("conv2"), cout, cout, 3, 1, 1)?,
            shortcut: if cin != cout {
                Some(conv(vb.pp("conv_shortcut"), cin, cout, 1, 1, 0)?)
            } else {
                None
            },
        })
    }

    /// A UNet resnet: `temb` is the time embedding.
    pub(crate) fn forward(&self, xs: &Tensor, temb: &Tensor) -> R<Tensor> {
        self.forward_with(xs, Some(temb))
    }

    /// A VAE resnet, which has no time embedding.
    pub(crate) fn forward_untimed(&self, xs: &Tensor) -> R<Tensor> {
        self.forward_with(xs, None)
    }

    fn forward_with(&self, xs: &Tensor, temb: Option<&Tensor>) -> R<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward_silu(xs)?)?;
        if let (Some(proj), Some(temb)) = (&self.time_emb_proj, temb) {
            let t = proj
                .forward(&candle_nn::ops::silu(temb)?)?
                .unsqueeze(2)?
                .unsqueeze(3)?;
            h = h.broadcast_add(&t)?;
        }
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        let skip = match &self.shortcut {
            Some(c) => c.forward(xs)?,
            None => xs.clone(),
        };
        skip + h
    }
}

/// diffusers' `Attention` as the UNet's transformers use it (no bias on q/k/v).
#[derive(Debug)]
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    fn new(vb: VarBuilder, dim: usize, context_dim: usize, heads: usize) -> R<Self> {
        Ok(Self {
            to_q: candle_nn::linear_no_bias(dim, dim, vb.pp("to_q"))?,
            to_k: candle_nn::linear_no_bias(context_dim, dim, vb.pp("to_k"))?,
            to_v: candle_nn::linear_no_bias(context_dim, dim, vb.pp("to_v"))?,
            to_out: candle_nn::linear(dim, dim, vb.pp("to_out.0"))?,
            heads,
        })
    }

    fn forward(&self, xs: &Tensor, context: &Tensor) -> R<Tensor> {
        let head_dim = xs.dim(D::Minus1)? / self.heads;
        let q = self.to_q.forward(xs)?;
        let k = self.to_k.forward(context)?;
        let v = self.to_v.forward(context)?;
        let scale = (head_dim as f64).powf(-0.5);
        let out = fresco_kernels::attention(&q, &k, &v, self.heads, scale)?;
        self.to_out.forward(&out)
    }
}

/// diffusers' `BasicTransformerBlock`: self-attention, cross-attention, GEGLU.
#[derive(Debug)]
struct TransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
}

impl TransformerBlock {
    fn new(vb: VarBuilder, dim: usize, context_dim: usize, heads: usize, eps: f64) -> R<Self> {
        let inner = dim * 4;
        Ok(Self {
            norm1: candle_nn::layer_norm(dim, eps, vb.pp("norm1"))?,
            attn1: Attention::new(vb.pp("attn1"), dim, dim, heads)?,
            norm2: candle_nn::layer_norm(dim, eps, vb.pp("norm2"))?,
            attn2: Attention::new(vb.pp("attn2"), dim, context_dim, heads)?,
            norm3: candle_nn::layer_norm(dim, eps, vb.pp("norm3"))?,
            ff_in: candle_nn::linear(dim, inner * 2, vb.pp("ff.net.0.proj"))?,
            ff_out: candle_nn::linear(inner, dim, vb.pp("ff.net.2"))?,
        })
    }

    fn forward(&self, xs: &Tensor, context: &Tensor) -> R<Tensor> {
        let n1 = self.norm1.forward(xs)?;
        let xs = (self.attn1.forward(&n1, &n1)? + xs)?;
        let xs = (self.attn2.forward(&self.norm2.forward(&xs)?, context)? + &xs)?;
        let h = self.ff_in.forward(&self.norm3.forward(&xs)?)?;
        self.ff_out.forward(&fresco_kernels::geglu(&h)?)? + xs
    }
}

/// A 1×1 convolution or a linear layer (`use_linear_projection`).
#[derive(Debug)]
enum Proj {
    Conv(Conv2d),
    Linear(Linear),
}

/// diffusers' `Transformer2DModel` over a feature map.
#[derive(Debug)]
pub(crate) struct Transformer2D {
    norm: GroupNorm,
    proj_in: Proj,
    blocks: Vec<TransformerBlock>,
    proj_out: Proj,
}

/// What a [`Transformer2D`] is built from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransformerSpec {
    pub(crate) channels: usize,
    pub(crate) heads: usize,
    pub(crate) depth: usize,
    pub(crate) context_dim: usize,
    pub(crate) groups: usize,
    pub(crate) norm_eps: f64,
    pub(crate) linear_projection: bool,
}

impl Transformer2D {
    pub(crate) fn new(vb: VarBuilder, s: TransformerSpec) -> R<Self> {
        let c = s.channels;
        let proj = |name: &str| -> R<Proj> {
            Ok(if s.linear_projection {
                Proj::Linear(candle_nn::linear(c, c, vb.pp(name))?)
            } else {
                Proj::Conv(conv(vb.pp(name), c, c, 1, 1, 0)?)
            })
        };
        let blocks = (0..s.depth)
            .map(|i| {
                TransformerBlock::new(
                    vb.pp(format!("transformer_blocks.{i}")),
                    c,
                    s.context_dim,
                    s.heads,
                    s.norm_eps,
                )
            })
            .collect::<R<Vec<_>>>()?;
        Ok(Self {
            norm: GroupNorm::load(vb.pp("norm"), s.groups, c, 1e-6)?,
            proj_in: proj("proj_in")?,
            blocks,
            proj_out: proj("proj_out")?,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor, context: &Tensor) -> R<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let to_tokens =
            |t: Tensor| -> R<Tensor> { t.permute((0, 2, 3, 1))?.reshape((b, h * w, c)) };
        let to_map = |t: Tensor| -> R<Tensor> {
            t.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
        };
        let normed = self.norm.forward(xs)?;
        let mut tokens = match &self.proj_in {
            Proj::Conv(p) => to_tokens(p.forward(&normed)?)?,
            Proj::Linear(p) => p.forward(&to_tokens(normed)?)?,
        };
        for block in &self.blocks {
            tokens = block.forward(&tokens, context)?;
        }
        let out = match &self.proj_out {
            Proj::Conv(p) => p.forward(&to_map(tokens)?)?,
            Proj::Linear(p) => to_map(p.forward(&tokens)?)?,
        };
        out + xs
    }
}

/// diffusers' `Downsample2D`: a stride-2 3×3 convolution.
#[derive(Debug)]
pub(crate) struct Downsample(Conv2d);

impl Downsample {
    pub(crate) fn new(vb: VarBuilder, c: usize, padding: usize) -> R<Self> {
        Ok(Self(conv(vb.pp("conv"), c, c, 3, 2, padding)?))
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> R<Tensor> {
        self.0.forward(xs)
    }
}

/// diffusers' `Upsample2D`: nearest ×2 (or to the skip's size), then a 3×3 convolution.
#[derive(Debug)]
pub(crate) struct Upsample(Conv2d);

impl Upsample {
    pub(crate) fn new(vb: VarBuilder, c: usize) -> R<Self> {
        Ok(Self(conv(vb.pp("conv"), c, c, 3, 1, 1)?))
    }

    pub(crate) fn forward(&self, xs: &Tensor, size: Option<(usize, usize)>) -> R<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let (th, tw) = size.unwrap_or((2 * h, 2 * w));
        self.0.forward(&xs.upsample_nearest2d(th, tw)?)
    }
}
