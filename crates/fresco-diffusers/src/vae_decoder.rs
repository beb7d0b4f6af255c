//! diffusers' `AutoencoderKL` decoder on fresco's own layers (`fresco-kernels`' convolution,
//! fused GroupNorm + SiLU and attention): `post_quant_conv` (when the config has one),
//! `decoder.conv_in`, the mid block (resnet, single-head self-attention, resnet), the up
//! blocks (`layers_per_block + 1` resnets each, and a nearest ×2 upsample on all but the
//! last), then the output GroupNorm, SiLU and convolution. Attention weights load under
//! diffusers' names (`to_q`, `to_k`, `to_v`, `to_out.0`) or the older ones (`query`, `key`,
//! `value`, `proj_attn`), as linear or 1×1-convolution weights.

use candle_core::{DType, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use fresco_kernels::{Conv2d, GroupNorm};

use crate::unet_layers::{Resnet, Upsample, conv};
use crate::vae::VaeConfig;

type R<T> = candle_core::Result<T>;

/// The decoder half of a VAE, from latents to an image in `[-1, 1]` (before clamping).
#[derive(Debug)]
pub(crate) struct VaeDecoder {
    post_quant_conv: Option<Conv2d>,
    conv_in: Conv2d,
    mid: MidBlock,
    up_blocks: Vec<UpBlock>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

const EPS: f64 = 1e-6;

impl VaeDecoder {
    /// Loads the decoder from the root of a VAE folder's weights.
    pub(crate) fn new(vb: VarBuilder, config: &VaeConfig) -> R<Self> {
        let channels = &config.block_out_channels;
        let (first, last) = match (channels.first(), channels.last()) {
            (Some(f), Some(l)) => (*f, *l),
            _ => candle_core::bail!("block_out_channels is empty"),
        };
        let latent = config.latent_channels;
        let groups = config.norm_num_groups;
        let post_quant_conv = config
            .use_post_quant_conv
            .then(|| conv(vb.pp("post_quant_conv"), latent, latent, 1, 1, 0))
            .transpose()?;
        let vb = vb.pp("decoder");
        let reversed: Vec<usize> = channels.iter().rev().copied().collect();
        let up_blocks = reversed
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let cin = if i == 0 { out } else { reversed[i - 1] };
                let spec = UpBlockSpec {
                    cin,
                    cout: out,
                    resnets: config.layers_per_block + 1,
                    groups,
                    upsample: i + 1 < reversed.len(),
                };
                UpBlock::new(vb.pp(format!("up_blocks.{i}")), spec)
            })
            .collect::<R<Vec<_>>>()?;
        Ok(Self {
            post_quant_conv,
            conv_in: conv(vb.pp("conv_in"), latent, last, 3, 1, 1)?,
            mid: MidBlock::new(vb.pp("mid_block"), last, groups)?,
            up_blocks,
            norm_out: GroupNorm::load(vb.pp("conv_norm_out"), groups, first, EPS)?,
            conv_out: conv(vb.pp("conv_out"), first, config.out_channels, 3, 1, 1)?,
        })
    }

    /// Latents (already unscaled) `[b, latent, h, w]` → images `[b, out, h·2ⁿ, w·2ⁿ]`.
    pub(crate) fn decode(&self, latents: &Tensor) -> R<Tensor> {
        let xs = match &self.post_quant_conv {
            Some(c) => c.forward(latents)?,
            None => latents.clone(),
        };
        let mut xs = self.mid.forward(&self.conv_in.forward(&xs)?)?;
        for block in &self.up_blocks {
            xs = block.forward(&xs)?;
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&xs)?)
    }
}

/// `UNetMidBlock2D` as the VAE has it: resnet, attention, resnet.
#[derive(Debug)]
struct MidBlock {
    first: Resnet,
    attention: SpatialAttention,
    second: Resnet,
}

impl MidBlock {
    fn new(vb: VarBuilder, c: usize, groups: usize) -> R<Self> {
        Ok(Self {
            first: Resnet::new(vb.pp("resnets.0"), c, c, None, groups, EPS)?,
            attention: SpatialAttention::new(vb.pp("attentions.0"), c, groups)?,
            second: Resnet::new(vb.pp("resnets.1"), c, c, None, groups, EPS)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> R<Tensor> {
        let xs = self.first.forward_untimed(xs)?;
        let xs = self.attention.forward(&xs)?;
        self.second.forward_untimed(&xs)
    }
}

/// What an [`UpBlock`] is built from.
#[derive(Debug, Clone, Copy)]
struct UpBlockSpec {
    cin: usize,
    cout: usize,
    resnets: usize,
    groups: usize,
    upsample: bool,
}

/// `UpDecoderBlock2D`: resnets, then an optional nearest ×2 upsample and convolution.
#[derive(Debug)]
struct UpBlock {
    resnets: Vec<Resnet>,
    upsample: Option<Upsample>,
}

impl UpBlock {
    fn new(vb: VarBuilder, s: UpBlockSpec) -> R<Self> {
        let resnets = (0..s.resnets)
            .map(|j| {
                let cin = if j == 0 { s.cin } else { s.cout };
                Resnet::new(
                    vb.pp(format!("resnets.{j}")),
                    cin,
                    s.cout,
                    None,
                    s.groups,
                    EPS,
                )
            })
            .collect::<R<Vec<_>>>()?;
        let upsample = s
            .upsample
            .then(|| Upsample::new(vb.pp("upsamplers.0"), s.cout))
            .transpose()?;
        Ok(Self { resnets, upsample })
    }

    fn forward(&self, xs: &Tensor) -> R<Tensor> {
        let mut xs = xs.clone();
        for resnet in &self.resnets {
            xs = resnet.forward_untimed(&xs)?;
        }
        match &self.upsample {
            Some(u) => u.forward(&xs, None),
            None => Ok(xs),
        }
    }
}

/// The VAE's single-head self-attention over all positions, with a residual.
#[derive(Debug)]
struct SpatialAttention {
    norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
}

impl SpatialAttention {
    fn new(vb: VarBuilder, c: usize, groups: usize) -> R<Self> {
        let names = if vb.contains_tensor("to_q.weight") {
            ["to_q", "to_k", "to_v", "to_out.0"]
        } else {
            ["query", "key", "value", "proj_attn"]
        };
        let [to_q, to_k, to_v, to_out] = names.map(|n| projection(vb.pp(n), c));
        Ok(Self {
            norm: GroupNorm::load(vb.pp("group_norm"), groups, c, EPS)?,
            to_q: to_q?,
            to_k: to_k?,
            to_v: to_v?,
            to_out: to_out?,
        })
    }

    fn forward(&self, xs: &Tensor) -> R<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let tokens = self
            .norm
            .forward(xs)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        // In f32 whatever the model's dtype, as diffusers' and candle's VAEs do: one head
        // over every position can overflow half precision.
        let dtype = tokens.dtype();
        let f32 = |t: Tensor| t.to_dtype(DType::F32);
        let q = f32(self.to_q.forward(&tokens)?)?;
        let k = f32(self.to_k.forward(&tokens)?)?;
        let v = f32(self.to_v.forward(&tokens)?)?;
        let out = fresco_kernels::attention(&q, &k, &v, 1, (c as f64).powf(-0.5))?;
        let out = self
            .to_out
            .forward(&out.to_dtype(dtype)?)?
            .transpose(1, 2)?
            .reshape((b, c, h, w))?;
        out + xs
    }
}

/// A `c × c` projection with bias, stored as a linear or a 1×1 convolution weight.
fn projection(vb: VarBuilder, c: usize) -> R<Linear> {
    let stored_as_conv = vb.contains_tensor("weight") && vb.get_unchecked("weight")?.rank() == 4;
    if !stored_as_conv {
        return candle_nn::linear(c, c, vb);
    }
    let weight = vb.get((c, c, 1, 1), "weight")?.reshape((c, c))?;
    Ok(Linear::new(weight, Some(vb.get(c, "bias")?)))
}
