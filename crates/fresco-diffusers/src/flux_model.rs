//! The FLUX.1 transformer (diffusers' `FluxTransformer2DModel`), fresco's own
//! implementation under diffusers' parameter names, so a diffusers `transformer/` folder
//! loads as it is: double-stream blocks (separate image and text weights, joint
//! attention), single-stream blocks (one sequence, attention and MLP in parallel),
//! 3-axis rotary position embedding over `(0, row, column)` ids, and a timestep, pooled
//! text and (FLUX-dev, `guidance_embeds`) guidance embedding.
//!
//! candle-transformers' `flux` is not used: it reads the original Black Forest Labs
//! checkpoint names (fused `qkv`, `double_blocks.*`, `img_in`), which would need a
//! renaming and re-fusing layer for every diffusers tensor.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::Deserialize;

use crate::dit_layers::{
    FeedForward, Modulation, RmsNorm, SiluMlp, attention, modulate, split_heads, timestep_features,
};
use crate::error::{Error, Result};
use crate::files::read_json;
use crate::weights::Weights;

/// The fields of diffusers' `FluxTransformer2DModel` config (defaults as diffusers').
#[derive(Debug, Clone, Deserialize)]
pub struct FluxTransformerConfig {
    /// Must be 1 (latents are packed 2x2 before the transformer).
    #[serde(default = "one")]
    pub patch_size: usize,
    /// Packed latent channels in (4 x the VAE's latent channels).
    #[serde(default = "d64")]
    pub in_channels: usize,
    /// Packed channels out (defaults to `in_channels`).
    #[serde(default)]
    pub out_channels: Option<usize>,
    /// Double-stream blocks.
    #[serde(default = "d19")]
    pub num_layers: usize,
    /// Single-stream blocks.
    #[serde(default = "d38")]
    pub num_single_layers: usize,
    /// Width of an attention head.
    #[serde(default = "d128")]
    pub attention_head_dim: usize,
    /// Attention heads (the model width is `heads * head_dim`).
    #[serde(default = "d24")]
    pub num_attention_heads: usize,
    /// Width of the T5 context.
    #[serde(default = "d4096")]
    pub joint_attention_dim: usize,
    /// Width of the pooled CLIP vector.
    #[serde(default = "d768")]
    pub pooled_projection_dim: usize,
    /// Whether the model embeds a guidance value (FLUX-dev) or not (FLUX-schnell).
    #[serde(default)]
    pub guidance_embeds: bool,
    /// Rotary widths per id axis; they sum to `attention_head_dim`.
    #[serde(default = "axes")]
    pub axes_dims_rope: Vec<usize>,
}

fn one() -> usize {
    1
}
fn d19() -> usize {
    19
}
fn d24() -> usize {
    24
}
fn d38() -> usize {
    38
}
fn d64() -> usize {
    64
}
fn d128() -> usize {
    128
}
fn d768() -> usize {
    768
}
fn d4096() -> usize {
    4096
}
fn axes() -> Vec<usize> {
    vec![16, 56, 56]
}

/// Base of the rotary frequencies.
const ROPE_THETA: f64 = 10000.0;
/// Width of the sinusoidal timestep and guidance features.
const TIME_FEATURES: usize = 256;

impl FluxTransformerConfig {
    /// Reads and checks `transformer/config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = read_json(path)?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let err = |field: &str, detail: String| Error::Unsupported {
            path: PathBuf::from(path),
            field: field.into(),
            detail,
        };
        if self.patch_size != 1 {
            return Err(err(
                "patch_size",
                format!("{} (must be 1)", self.patch_size),
            ));
        }
        if self.num_attention_heads == 0 || self.attention_head_dim == 0 {
            return Err(err(
                "num_attention_heads",
                "heads and head width must be positive".into(),
            ));
        }
        let sum: usize = self.axes_dims_rope.iter().sum();
        if self.axes_dims_rope.len() != 3
            || sum != self.attention_head_dim
            || self.axes_dims_rope.iter().any(|d| !d.is_multiple_of(2))
        {
            return Err(err(
                "axes_dims_rope",
                format!(
                    "{:?} must be three even widths summing to attention_head_dim {}",
                    self.axes_dims_rope, self.attention_head_dim
                ),
            ));
        }
        Ok(())
    }

    /// The model width, `num_attention_heads * attention_head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Packed channels out.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }
}

/// Rotary tables for position ids `[seq][3]`: `cos`/`sin` of `[seq, head_dim / 2]`, the
/// axes' frequency bands side by side (diffusers' `FluxPosEmbed`, pairs interleaved as
/// candle's `rope_i` applies them).
pub(crate) fn rope_tables(
    ids: &[[f64; 3]],
    axes: &[usize],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let half: usize = axes.iter().sum::<usize>() / 2;
    let mut cos = Vec::with_capacity(ids.len() * half);
    let mut sin = Vec::with_capacity(ids.len() * half);
    for id in ids {
        for (axis, &dim) in axes.iter().enumerate() {
            for j in 0..dim / 2 {
                let freq = 1.0 / ROPE_THETA.powf((2 * j) as f64 / dim as f64);
                let angle = id[axis] * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
    }
    let cos = Tensor::from_vec(cos, (ids.len(), half), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (ids.len(), half), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Queries, keys and values of one stream, with the RMS q/k norms FLUX always has.
#[derive(Debug, Clone)]
struct Qkv {
    q: Linear,
    k: Linear,
    v: Linear,
    norm_q: RmsNorm,
    norm_k: RmsNorm,
}

impl Qkv {
    fn new(
        dim: usize,
        head_dim: usize,
        names: [&str; 5],
        vb: &VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            q: candle_nn::linear(dim, dim, vb.pp(names[0]))?,
            k: candle_nn::linear(dim, dim, vb.pp(names[1]))?,
            v: candle_nn::linear(dim, dim, vb.pp(names[2]))?,
            norm_q: RmsNorm::new(head_dim, 1e-6, vb.pp(names[3]))?,
            norm_k: RmsNorm::new(head_dim, 1e-6, vb.pp(names[4]))?,
        })
    }

    fn forward(&self, xs: &Tensor, heads: usize) -> candle_core::Result<[Tensor; 3]> {
        let q = self
            .norm_q
            .forward(&split_heads(&self.q.forward(xs)?, heads)?)?;
        let k = self
            .norm_k
            .forward(&split_heads(&self.k.forward(xs)?, heads)?)?;
        let v = split_heads(&self.v.forward(xs)?, heads)?;
        Ok([q, k, v])
    }
}

const IMAGE_QKV: [&str; 5] = ["to_q", "to_k", "to_v", "norm_q", "norm_k"];
const TEXT_QKV: [&str; 5] = [
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "norm_added_q",
    "norm_added_k",
];

/// Rotary embedding, then attention (`[batch, heads, seq, head_dim]` in).
fn rope_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rope: &(Tensor, Tensor),
) -> candle_core::Result<Tensor> {
    let q = candle_nn::rotary_emb::rope_i(&q.contiguous()?, &rope.0, &rope.1)?;
    let k = candle_nn::rotary_emb::rope_i(&k.contiguous()?, &rope.0, &rope.1)?;
    attention(&q, &k, v)
}

/// diffusers' `FluxTransformerBlock` (double stream).
#[derive(Debug, Clone)]
struct DoubleBlock {
    norm1: Modulation,
    norm1_context: Modulation,
    img: Qkv,
    txt: Qkv,
    to_out: Linear,
    to_add_out: Linear,
    ff: FeedForward,
    ff_context: FeedForward,
    heads: usize,
}

impl DoubleBlock {
    fn new(c: &FluxTransformerConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let dim = c.inner_dim();
        let attn = vb.pp("attn");
        Ok(Self {
            norm1: Modulation::new(dim, dim, 6, vb.pp("norm1"))?,
            norm1_context: Modulation::new(dim, dim, 6, vb.pp("norm1_context"))?,
            img: Qkv::new(dim, c.attention_head_dim, IMAGE_QKV, &attn)?,
            txt: Qkv::new(dim, c.attention_head_dim, TEXT_QKV, &attn)?,
            to_out: candle_nn::linear(dim, dim, attn.pp("to_out.0"))?,
            to_add_out: candle_nn::linear(dim, dim, attn.pp("to_add_out"))?,
            ff: FeedForward::new(dim, vb.pp("ff"))?,
            ff_context: FeedForward::new(dim, vb.pp("ff_context"))?,
            heads: c.num_attention_heads,
        })
    }

    /// Returns the new `(text, image)` streams.
    fn forward(
        &self,
        img: &Tensor,
        txt: &Tensor,
        temb: &Tensor,
        rope: &(Tensor, Tensor),
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let m = self.norm1.forward(temb)?;
        let cm = self.norm1_context.forward(temb)?;
        let img_in = modulate(img, &m[0], &m[1])?;
        let txt_in = modulate(txt, &cm[0], &cm[1])?;
        let [iq, ik, iv] = self.img.forward(&img_in, self.heads)?;
        let [tq, tk, tv] = self.txt.forward(&txt_in, self.heads)?;
        // Text first: the rotary ids are (text ids, image ids).
        let q = Tensor::cat(&[tq, iq], 2)?;
        let k = Tensor::cat(&[tk, ik], 2)?;
        let v = Tensor::cat(&[tv, iv], 2)?;
        let joint = rope_attention(&q, &k, &v, rope)?;
        let n_txt = txt.dim(1)?;
        let n_img = img.dim(1)?;
        let txt_attn = self.to_add_out.forward(&joint.narrow(1, 0, n_txt)?)?;
        let img_attn = self.to_out.forward(&joint.narrow(1, n_txt, n_img)?)?;

        let img = (img + img_attn.broadcast_mul(&m[2])?)?;
        let ff_in = modulate(&img, &m[3], &m[4])?;
        let img = (&img + self.ff.forward(&ff_in)?.broadcast_mul(&m[5])?)?;

        let txt = (txt + txt_attn.broadcast_mul(&cm[2])?)?;
        let ff_in = modulate(&txt, &cm[3], &cm[4])?;
        let txt = (&txt + self.ff_context.forward(&ff_in)?.broadcast_mul(&cm[5])?)?;
        Ok((txt, img))
    }
}

/// diffusers' `FluxSingleTransformerBlock`: one sequence (text then image).
#[derive(Debug, Clone)]
struct SingleBlock {
    norm: Modulation,
    qkv: Qkv,
    proj_mlp: Linear,
    proj_out: Linear,
    heads: usize,
}

impl SingleBlock {
    fn new(c: &FluxTransformerConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let dim = c.inner_dim();
        let mlp = 4 * dim;
        Ok(Self {
            norm: Modulation::new(dim, dim, 3, vb.pp("norm"))?,
            qkv: Qkv::new(dim, c.attention_head_dim, IMAGE_QKV, &vb.pp("attn"))?,
            proj_mlp: candle_nn::linear(dim, mlp, vb.pp("proj_mlp"))?,
            proj_out: candle_nn::linear(dim + mlp, dim, vb.pp("proj_out"))?,
            heads: c.num_attention_heads,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        temb: &Tensor,
        rope: &(Tensor, Tensor),
    ) -> candle_core::Result<Tensor> {
        let m = self.norm.forward(temb)?;
        let normed = modulate(xs, &m[0], &m[1])?;
        let mlp = self.proj_mlp.forward(&normed)?.gelu()?;
        let [q, k, v] = self.qkv.forward(&normed, self.heads)?;
        let attn = rope_attention(&q, &k, &v, rope)?;
        let out = self
            .proj_out
            .forward(&Tensor::cat(&[attn, mlp], 2)?)?
            .broadcast_mul(&m[2])?;
        xs + out
    }
}

/// What the FLUX transformer is conditioned on besides the latents.
#[derive(Debug, Clone, Copy)]
pub struct FluxConditioning<'a> {
    /// T5 states `[batch, txt_seq, joint_attention_dim]`.
    pub context: &'a Tensor,
    /// Pooled CLIP vectors `[batch, pooled_projection_dim]`.
    pub pooled: &'a Tensor,
    /// The timestep, `sigma * 1000`.
    pub timestep: f64,
    /// FLUX-dev's guidance value (ignored by models without a guidance embedding).
    pub guidance: Option<f64>,
}

/// The FLUX transformer with its weights.
#[derive(Debug)]
pub struct FluxTransformer {
    config: FluxTransformerConfig,
    x_embedder: Linear,
    timestep_embedder: SiluMlp,
    guidance_embedder: Option<SiluMlp>,
    text_embedder: SiluMlp,
    context_embedder: Linear,
    double: Vec<DoubleBlock>,
    single: Vec<SingleBlock>,
    norm_out: Modulation,
    proj_out: Linear,
}

impl FluxTransformer {
    /// Loads `config.json` and `diffusion_pytorch_model.safetensors` (or its shards) from a
    /// `transformer/` folder.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = FluxTransformerConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, "diffusion_pytorch_model", dtype, device)?;
        weights.build(|vb| Self::new(config, vb))
    }

    /// Builds the model from a checked config over any weight source (diffusers names).
    pub fn new(c: FluxTransformerConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let dim = c.inner_dim();
        let tt = vb.pp("time_text_embed");
        let guidance_embedder = if c.guidance_embeds {
            Some(SiluMlp::new(
                TIME_FEATURES,
                dim,
                dim,
                tt.pp("guidance_embedder"),
            )?)
        } else {
            None
        };
        let double = (0..c.num_layers)
            .map(|i| DoubleBlock::new(&c, vb.pp(format!("transformer_blocks.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let single = (0..c.num_single_layers)
            .map(|i| SingleBlock::new(&c, vb.pp(format!("single_transformer_blocks.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            x_embedder: candle_nn::linear(c.in_channels, dim, vb.pp("x_embedder"))?,
            timestep_embedder: SiluMlp::new(TIME_FEATURES, dim, dim, tt.pp("timestep_embedder"))?,
            guidance_embedder,
            text_embedder: SiluMlp::new(c.pooled_projection_dim, dim, dim, tt.pp("text_embedder"))?,
            context_embedder: candle_nn::linear(
                c.joint_attention_dim,
                dim,
                vb.pp("context_embedder"),
            )?,
            double,
            single,
            norm_out: Modulation::new(dim, dim, 2, vb.pp("norm_out"))?,
            proj_out: candle_nn::linear(dim, c.out_channels(), vb.pp("proj_out"))?,
            config: c,
        })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &FluxTransformerConfig {
        &self.config
    }

    /// The velocity for packed latents `[batch, seq, in_channels]` whose tokens have the
    /// position ids `img_ids` (`(0, row, column)`); text tokens have id `(0, 0, 0)`.
    pub fn forward(
        &self,
        img: &Tensor,
        img_ids: &[[f64; 3]],
        cond: &FluxConditioning,
    ) -> Result<Tensor> {
        let (b, seq, _) = img.dims3()?;
        if seq != img_ids.len() {
            return Err(crate::error::invalid(
                "img_ids",
                format!("{} ids for {seq} image tokens", img_ids.len()),
            ));
        }
        let (dtype, device) = (img.dtype(), img.device());
        let t = timestep_features(&vec![cond.timestep; b], TIME_FEATURES, dtype, device)?;
        let mut temb =
            (self.timestep_embedder.forward(&t)? + self.text_embedder.forward(cond.pooled)?)?;
        if let Some(embedder) = &self.guidance_embedder {
            let g = cond.guidance.ok_or_else(|| {
                crate::error::invalid("guidance_scale", "this model embeds a guidance value")
            })?;
            let g = timestep_features(&vec![g * 1000.0; b], TIME_FEATURES, dtype, device)?;
            temb = (temb + embedder.forward(&g)?)?;
        }
        let mut txt = self.context_embedder.forward(cond.context)?;
        let mut hidden = self.x_embedder.forward(img)?;
        let n_txt = txt.dim(1)?;
        let ids: Vec<[f64; 3]> = std::iter::repeat_n([0.0; 3], n_txt)
            .chain(img_ids.iter().copied())
            .collect();
        let rope = rope_tables(&ids, &self.config.axes_dims_rope, dtype, device)?;
        for block in &self.double {
            (txt, hidden) = block.forward(&hidden, &txt, &temb, &rope)?;
        }
        let mut joint = Tensor::cat(&[txt, hidden], 1)?;
        for block in &self.single {
            joint = block.forward(&joint, &temb, &rope)?;
        }
        let hidden = joint.narrow(1, n_txt, seq)?;
        let m = self.norm_out.forward(&temb)?;
        // AdaLayerNormContinuous: scale first, then shift.
        let hidden = modulate(&hidden, &m[1], &m[0])?;
        Ok(self.proj_out.forward(&hidden)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_tables_follow_the_axes() -> candle_core::Result<()> {
        let (cos, sin) = rope_tables(&[[0.0, 2.0, 3.0]], &[2, 2, 4], DType::F32, &Device::Cpu)?;
        let (cos, sin) = (cos.to_vec2::<f32>()?, sin.to_vec2::<f32>()?);
        assert_eq!(cos[0].len(), 4);
        // Axis 0 (id 0): angle 0; axis 1 (id 2): freq 1; axis 2 (id 3): freqs 1 and 0.01.
        assert_eq!((cos[0][0], sin[0][0]), (1.0, 0.0));
        assert!((cos[0][1] - 2f32.cos()).abs() < 1e-6);
        assert!((sin[0][2] - 3f32.sin()).abs() < 1e-6);
        assert!((sin[0][3] - 0.03f32.sin()).abs() < 1e-6);
        Ok(())
    }
}
