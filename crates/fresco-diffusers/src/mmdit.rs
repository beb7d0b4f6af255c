//! SD3 / SD3.5's MMDiT (diffusers' `SD3Transformer2DModel`), fresco's own implementation
//! under diffusers' parameter names, so a diffusers `transformer/` folder loads as it is.
//!
//! candle-transformers' `mmdit` is not used: it reads the original Stability checkpoint
//! names (fused `qkv`, `joint_blocks.*`), ties the head count to the depth (true of the
//! released SD3 models, not of every config), and casts its timestep features to f16,
//! which breaks f32 runs. This module reads `transformer/config.json`
//! ([`Sd3TransformerConfig`]) and computes in the weights' dtype throughout.
//!
//! Supported: `qk_norm` absent or `rms_norm` (SD3.5 large), and `dual_attention_layers`
//! (SD3.5 medium's MMDiT-X: those blocks add a second, image-only self-attention with its
//! own modulation). Not supported (typed error naming the field): a missing
//! `pos_embed_max_size`, or a dual-attention layer index beyond the model's depth.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Linear, VarBuilder};
use serde::Deserialize;

use crate::dit_layers::{
    FeedForward, Modulation, RmsNorm, SiluMlp, attention, modulate, split_heads, timestep_features,
};
use crate::error::{Error, Result};
use crate::files::read_json;
use crate::weights::Weights;

/// The fields of diffusers' `SD3Transformer2DModel` config (defaults as diffusers').
#[derive(Debug, Clone, Deserialize)]
pub struct Sd3TransformerConfig {
    /// Native latent size (the image is `sample_size * vae_scale_factor` pixels).
    #[serde(default = "d128")]
    pub sample_size: usize,
    /// Side of a latent patch.
    #[serde(default = "d2")]
    pub patch_size: usize,
    /// Latent channels in.
    #[serde(default = "d16")]
    pub in_channels: usize,
    /// Latent channels out (defaults to `in_channels`).
    #[serde(default)]
    pub out_channels: Option<usize>,
    /// Number of joint blocks.
    #[serde(default = "d18")]
    pub num_layers: usize,
    /// Width of an attention head.
    #[serde(default = "d64")]
    pub attention_head_dim: usize,
    /// Attention heads (the model width is `heads * head_dim`).
    #[serde(default = "d18")]
    pub num_attention_heads: usize,
    /// Width of the text context (the T5 width; CLIP states are zero-padded to it).
    #[serde(default = "d4096")]
    pub joint_attention_dim: usize,
    /// Width the context is projected to (must equal the model width).
    #[serde(default = "d1152")]
    pub caption_projection_dim: usize,
    /// Width of the pooled text vector (CLIP-L + CLIP-G projections).
    #[serde(default = "d2048")]
    pub pooled_projection_dim: usize,
    /// Side of the stored position-embedding grid, in patches.
    #[serde(default)]
    pub pos_embed_max_size: Option<usize>,
    /// MMDiT-X (SD3.5 medium): the blocks whose image stream has a second,
    /// image-only self-attention.
    #[serde(default)]
    pub dual_attention_layers: Vec<usize>,
    /// `rms_norm` on queries and keys, or none.
    #[serde(default)]
    pub qk_norm: Option<String>,
}

fn d2() -> usize {
    2
}
fn d16() -> usize {
    16
}
fn d18() -> usize {
    18
}
fn d64() -> usize {
    64
}
fn d128() -> usize {
    128
}
fn d1152() -> usize {
    1152
}
fn d2048() -> usize {
    2048
}
fn d4096() -> usize {
    4096
}

impl Sd3TransformerConfig {
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
        if self.patch_size == 0 {
            return Err(err("patch_size", "must be positive".into()));
        }
        if self.num_layers == 0 || self.num_attention_heads == 0 || self.attention_head_dim == 0 {
            return Err(err(
                "num_layers",
                "layers, heads and head width must be positive".into(),
            ));
        }
        if self.caption_projection_dim != self.inner_dim() {
            return Err(err(
                "caption_projection_dim",
                format!(
                    "{} must equal num_attention_heads * attention_head_dim = {}",
                    self.caption_projection_dim,
                    self.inner_dim()
                ),
            ));
        }
        if self.pos_embed_max_size.is_none() {
            return Err(err(
                "pos_embed_max_size",
                "must be set (fresco reads the stored position embedding)".into(),
            ));
        }
        if let Some(&bad) = self
            .dual_attention_layers
            .iter()
            .find(|&&i| i >= self.num_layers)
        {
            return Err(err(
                "dual_attention_layers",
                format!("layer {bad} is beyond num_layers {}", self.num_layers),
            ));
        }
        match self.qk_norm.as_deref() {
            None | Some("rms_norm") => {}
            Some(other) => {
                return Err(err(
                    "qk_norm",
                    format!("`{other}` (supported: none, rms_norm)"),
                ));
            }
        }
        Ok(())
    }

    /// The model width, `num_attention_heads * attention_head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Latent channels out.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }
}

/// One stream's side of a joint attention: its projections and optional q/k norms.
#[derive(Debug, Clone)]
struct StreamQkv {
    q: Linear,
    k: Linear,
    v: Linear,
    norm_q: Option<RmsNorm>,
    norm_k: Option<RmsNorm>,
}

impl StreamQkv {
    fn new(
        dim: usize,
        head_dim: usize,
        rms: bool,
        names: [&str; 5],
        vb: &VarBuilder,
    ) -> candle_core::Result<Self> {
        let norm = |name: &str| -> candle_core::Result<Option<RmsNorm>> {
            if rms {
                Ok(Some(RmsNorm::new(head_dim, 1e-6, vb.pp(name))?))
            } else {
                Ok(None)
            }
        };
        Ok(Self {
            q: candle_nn::linear(dim, dim, vb.pp(names[0]))?,
            k: candle_nn::linear(dim, dim, vb.pp(names[1]))?,
            v: candle_nn::linear(dim, dim, vb.pp(names[2]))?,
            norm_q: norm(names[3])?,
            norm_k: norm(names[4])?,
        })
    }

    /// `[batch, heads, seq, head_dim]` queries, keys and values.
    fn forward(&self, xs: &Tensor, heads: usize) -> candle_core::Result<[Tensor; 3]> {
        let q = split_heads(&self.q.forward(xs)?, heads)?;
        let k = split_heads(&self.k.forward(xs)?, heads)?;
        let v = split_heads(&self.v.forward(xs)?, heads)?;
        let q = match &self.norm_q {
            Some(n) => n.forward(&q)?,
            None => q,
        };
        let k = match &self.norm_k {
            Some(n) => n.forward(&k)?,
            None => k,
        };
        Ok([q, k, v])
    }
}

/// How a block's context stream is normed: fully (`AdaLayerNormZero`, six vectors) or,
/// in the last block, only for attention (`AdaLayerNormContinuous`: scale then shift).
#[derive(Debug, Clone)]
enum ContextSide {
    Full {
        norm1: Modulation,
        to_add_out: Linear,
        ff: FeedForward,
    },
    PreOnly {
        norm1: Modulation,
    },
}

/// MMDiT-X's second attention of a dual-attention block (`attn2`): self-attention over
/// the image stream alone, modulated and gated by the last three of the block's nine
/// `norm1` vectors (diffusers' `SD35AdaLayerNormZeroX`).
#[derive(Debug, Clone)]
struct ImageSelfAttention {
    qkv: StreamQkv,
    to_out: Linear,
}

impl ImageSelfAttention {
    fn new(dim: usize, head_dim: usize, rms: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            qkv: StreamQkv::new(
                dim,
                head_dim,
                rms,
                ["to_q", "to_k", "to_v", "norm_q", "norm_k"],
                &vb,
            )?,
            to_out: candle_nn::linear(dim, dim, vb.pp("to_out.0"))?,
        })
    }

    fn forward(&self, xs: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let [q, k, v] = self.qkv.forward(xs, heads)?;
        self.to_out.forward(&attention(&q, &k, &v)?)
    }
}

/// diffusers' `JointTransformerBlock`.
#[derive(Debug, Clone)]
struct JointBlock {
    norm1: Modulation,
    x_qkv: StreamQkv,
    c_qkv: StreamQkv,
    to_out: Linear,
    attn2: Option<ImageSelfAttention>,
    ff: FeedForward,
    context: ContextSide,
    heads: usize,
}

impl JointBlock {
    fn new(
        c: &Sd3TransformerConfig,
        pre_only: bool,
        dual: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let dim = c.inner_dim();
        let rms = c.qk_norm.is_some();
        let attn2 = if dual {
            Some(ImageSelfAttention::new(
                dim,
                c.attention_head_dim,
                rms,
                vb.pp("attn2"),
            )?)
        } else {
            None
        };
        let attn = vb.pp("attn");
        let x_qkv = StreamQkv::new(
            dim,
            c.attention_head_dim,
            rms,
            ["to_q", "to_k", "to_v", "norm_q", "norm_k"],
            &attn,
        )?;
        let c_qkv = StreamQkv::new(
            dim,
            c.attention_head_dim,
            rms,
            [
                "add_q_proj",
                "add_k_proj",
                "add_v_proj",
                "norm_added_q",
                "norm_added_k",
            ],
            &attn,
        )?;
        let context = if pre_only {
            ContextSide::PreOnly {
                norm1: Modulation::new(dim, dim, 2, vb.pp("norm1_context"))?,
            }
        } else {
            ContextSide::Full {
                norm1: Modulation::new(dim, dim, 6, vb.pp("norm1_context"))?,
                to_add_out: candle_nn::linear(dim, dim, attn.pp("to_add_out"))?,
                ff: FeedForward::new(dim, vb.pp("ff_context"))?,
            }
        };
        let norm1_chunks = if attn2.is_some() { 9 } else { 6 };
        Ok(Self {
            norm1: Modulation::new(dim, dim, norm1_chunks, vb.pp("norm1"))?,
            x_qkv,
            c_qkv,
            to_out: candle_nn::linear(dim, dim, attn.pp("to_out.0"))?,
            attn2,
            ff: FeedForward::new(dim, vb.pp("ff"))?,
            context,
            heads: c.num_attention_heads,
        })
    }

    /// Returns the new `(context, hidden)`; the context is `None` after the last block.
    fn forward(
        &self,
        hidden: &Tensor,
        context: &Tensor,
        temb: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Tensor)> {
        let m = self.norm1.forward(temb)?;
        let block_input = hidden;
        let x_in = modulate(hidden, &m[0], &m[1])?;
        let (c_in, c_mod) = match &self.context {
            ContextSide::Full { norm1, .. } => {
                let cm = norm1.forward(temb)?;
                (modulate(context, &cm[0], &cm[1])?, Some(cm))
            }
            ContextSide::PreOnly { norm1 } => {
                let cm = norm1.forward(temb)?;
                // AdaLayerNormContinuous: scale first, then shift.
                (modulate(context, &cm[1], &cm[0])?, None)
            }
        };
        let [xq, xk, xv] = self.x_qkv.forward(&x_in, self.heads)?;
        let [cq, ck, cv] = self.c_qkv.forward(&c_in, self.heads)?;
        let n_x = x_in.dim(1)?;
        let q = Tensor::cat(&[xq, cq], 2)?;
        let k = Tensor::cat(&[xk, ck], 2)?;
        let v = Tensor::cat(&[xv, cv], 2)?;
        let joint = attention(&q, &k, &v)?;
        let x_attn = self.to_out.forward(&joint.narrow(1, 0, n_x)?)?;
        let mut hidden = (hidden + x_attn.broadcast_mul(&m[2])?)?;
        if let Some(attn2) = &self.attn2 {
            // The second attention reads the block's input, normed with its own
            // shift and scale, and adds after the joint attention.
            let x_in2 = modulate(block_input, &m[6], &m[7])?;
            hidden = (&hidden + attn2.forward(&x_in2, self.heads)?.broadcast_mul(&m[8])?)?;
        }
        let ff_in = modulate(&hidden, &m[3], &m[4])?;
        let hidden = (&hidden + self.ff.forward(&ff_in)?.broadcast_mul(&m[5])?)?;
        let context = match (&self.context, c_mod) {
            (ContextSide::Full { to_add_out, ff, .. }, Some(cm)) => {
                let n_c = context.dim(1)?;
                let c_attn = to_add_out.forward(&joint.narrow(1, n_x, n_c)?)?;
                let context = (context + c_attn.broadcast_mul(&cm[2])?)?;
                let ff_in = modulate(&context, &cm[3], &cm[4])?;
                Some((&context + ff.forward(&ff_in)?.broadcast_mul(&cm[5])?)?)
            }
            _ => None,
        };
        Ok((context, hidden))
    }
}

/// SD3's MMDiT with its weights.
#[derive(Debug)]
pub struct Sd3Transformer {
    config: Sd3TransformerConfig,
    patch_proj: Conv2d,
    pos_embed: Tensor,
    timestep_embedder: SiluMlp,
    text_embedder: SiluMlp,
    context_embedder: Linear,
    blocks: Vec<JointBlock>,
    norm_out: Modulation,
    proj_out: Linear,
}

/// Width of the sinusoidal timestep features.
const TIME_FEATURES: usize = 256;

impl Sd3Transformer {
    /// Loads `config.json` and `diffusion_pytorch_model.safetensors` (or its shards) from a
    /// `transformer/` folder.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = Sd3TransformerConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, "diffusion_pytorch_model", dtype, device)?;
        weights.build(|vb| Self::new(config, vb))
    }

    /// Builds the model from a checked config over any weight source (diffusers names).
    pub fn new(c: Sd3TransformerConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let dim = c.inner_dim();
        let p = c.patch_size;
        let max = c.pos_embed_max_size.unwrap_or(0);
        let patch_proj = candle_nn::conv2d(
            c.in_channels,
            dim,
            p,
            candle_nn::Conv2dConfig {
                stride: p,
                ..Default::default()
            },
            vb.pp("pos_embed.proj"),
        )?;
        let pos_embed = vb.get((1, max * max, dim), "pos_embed.pos_embed")?;
        let tt = vb.pp("time_text_embed");
        let blocks = (0..c.num_layers)
            .map(|i| {
                JointBlock::new(
                    &c,
                    i + 1 == c.num_layers,
                    c.dual_attention_layers.contains(&i),
                    vb.pp(format!("transformer_blocks.{i}")),
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            patch_proj,
            pos_embed,
            timestep_embedder: SiluMlp::new(TIME_FEATURES, dim, dim, tt.pp("timestep_embedder"))?,
            text_embedder: SiluMlp::new(c.pooled_projection_dim, dim, dim, tt.pp("text_embedder"))?,
            context_embedder: candle_nn::linear(
                c.joint_attention_dim,
                dim,
                vb.pp("context_embedder"),
            )?,
            blocks,
            norm_out: Modulation::new(dim, dim, 2, vb.pp("norm_out"))?,
            proj_out: candle_nn::linear(dim, p * p * c.out_channels(), vb.pp("proj_out"))?,
            config: c,
        })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &Sd3TransformerConfig {
        &self.config
    }

    /// The velocity for latents `x` (`[batch, in_channels, h, w]`, `h` and `w` multiples of
    /// the patch size) at `timestep` (`sigma * 1000`), given the joint text states
    /// (`[batch, seq, joint_attention_dim]`) and pooled text (`[batch, pooled_dim]`).
    pub fn forward(
        &self,
        x: &Tensor,
        timestep: f64,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let p = self.config.patch_size;
        let max = self.config.pos_embed_max_size.unwrap_or(0);
        let (gh, gw) = (h / p, w / p);
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) || gh > max || gw > max {
            return Err(crate::error::invalid(
                "latents",
                format!(
                    "{h}x{w} latents need multiples of the patch size {p}, at most {} per side",
                    max * p
                ),
            ));
        }
        let dim = self.config.inner_dim();
        // Patch embedding plus the centre crop of the stored position grid.
        let xs = self.patch_proj.forward(x)?;
        let xs = xs.flatten_from(2)?.transpose(1, 2)?;
        let pos = self
            .pos_embed
            .reshape((1, max, max, dim))?
            .narrow(1, (max - gh) / 2, gh)?
            .narrow(2, (max - gw) / 2, gw)?
            .reshape((1, gh * gw, dim))?;
        let mut hidden = xs.broadcast_add(&pos)?;
        let t = timestep_features(&vec![timestep; b], TIME_FEATURES, x.dtype(), x.device())?;
        let temb = (self.timestep_embedder.forward(&t)? + self.text_embedder.forward(pooled)?)?;
        let mut context = self.context_embedder.forward(context)?;
        for block in &self.blocks {
            let (c, x) = block.forward(&hidden, &context, &temb)?;
            hidden = x;
            if let Some(c) = c {
                context = c;
            }
        }
        let m = self.norm_out.forward(&temb)?;
        let hidden = modulate(&hidden, &m[1], &m[0])?;
        let out = self.proj_out.forward(&hidden)?;
        // "nhwpqc -> nchpwq"
        let c_out = self.config.out_channels();
        let out = out
            .reshape((b, gh, gw, p, p, c_out))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, c_out, gh * p, gw * p))?;
        Ok(out)
    }
}
