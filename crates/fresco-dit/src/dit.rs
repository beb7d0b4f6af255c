//! The diffusion transformer (DiT, Peebles & Xie 2023) in pixel space.
//!
//! Patchify (linear patch embedding + 2-D sin-cos positions computed for the
//! actual grid) → N blocks → final adaLN layer → unpatchify. Each block is
//! adaLN-Zero style: shift/scale/gate for self-attention and MLP come from the
//! conditioning vector `c = t_emb + proj(pooled caption)`. Between the two, a
//! pre-LN cross-attention to the caption tokens (PixArt-α style) lets every patch
//! read the prompt; cross-attention rather than token concatenation keeps the
//! self-attention cost independent of caption length. With
//! [`DitConfig::refiner_channels`] set, a pixel refiner (two 3×3 convolutions
//! over per-pixel features and the noisy input) replaces the plain unpatchify.
//! With [`DitConfig::layout_hidden`] set, a caption layout MLP adds a learned
//! function of (grid position, pooled caption) to every patch token. With
//! [`DitConfig::learned_positions`], a learned vector per grid cell joins the
//! sin-cos positions.
//!
//! Weight names (safetensors keys) are under `dit.`. With
//! [`DitConfig::adaln_zero`] (training) fresh weights zero-init the adaLN
//! modulation layers and the final projection ("Zero"); the random built-in model
//! uses ordinary random init so that prompts and guidance visibly change its output.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::init::Init;
use candle_nn::{Linear, VarBuilder, linear, linear_no_bias};
use fresco_pipeline::{Error, Result};

use crate::config::{DitConfig, Prediction};
use crate::layers::{
    Attention, Conv3x3, Mlp, Norm, affine_norm, linear_with_init, modulate, plain_norm, sincos_2d,
    timestep_features,
};

/// Init of the final projection's weight. DiT zero-initialises it; for a random
/// (untrained) model a small normal init keeps the predicted velocity around 0.2
/// so images are not clamped to black/white while prompts still matter. Only
/// random construction reads init hints; loaded weights ignore them.
const FINAL_INIT: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};

/// A linear layer that starts at zero (weight and bias) under adaLN-Zero, and
/// otherwise uses `fallback` (the ordinary init of the random model).
fn maybe_zero_linear(
    zero: bool,
    in_dim: usize,
    out_dim: usize,
    vb: VarBuilder,
    fallback: impl FnOnce(VarBuilder) -> Result<Linear>,
) -> Result<Linear> {
    if zero {
        linear_with_init(in_dim, out_dim, Init::Const(0.0), vb)
    } else {
        fallback(vb)
    }
}

/// Caption context for one batch: tokens `[B, L, Dt]`, optional additive padding
/// mask `[B, 1, 1, L]`, pooled features `[B, Dt]`.
pub(crate) struct Context {
    pub tokens: Tensor,
    pub mask: Option<Tensor>,
    pub pooled: Tensor,
}

struct Block {
    norm1: Norm,
    attn: Attention,
    norm2: Norm,
    cross: Attention,
    norm3: Norm,
    mlp: Mlp,
    ada: Linear,
}

impl Block {
    fn new(cfg: &DitConfig, device: &Device, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            norm1: plain_norm(d, device)?,
            attn: Attention::new(d, d, cfg.num_heads, vb.pp("attn"))?,
            norm2: affine_norm(d, vb.pp("norm2"))?,
            cross: Attention::new(d, cfg.text.hidden_size, cfg.num_heads, vb.pp("cross"))?,
            norm3: plain_norm(d, device)?,
            mlp: Mlp::new(d, cfg.mlp_hidden(), vb.pp("mlp"))?,
            ada: maybe_zero_linear(cfg.adaln_zero, d, 6 * d, vb.pp("ada"), |vb| {
                Ok(linear(d, 6 * d, vb)?)
            })?,
        })
    }

    /// `x: [B, N, D]`, `c_act = silu(c): [B, D]`.
    fn forward(&self, x: &Tensor, c_act: &Tensor, ctx: &Context) -> Result<Tensor> {
        let m = self.ada.forward(c_act)?.chunk(6, 1)?;
        let (shift_a, scale_a, gate_a) = (&m[0], &m[1], &m[2]);
        let (shift_m, scale_m, gate_m) = (&m[3], &m[4], &m[5]);
        let h = modulate(&self.norm1.forward(x)?, shift_a, scale_a)?;
        let x = (x + self
            .attn
            .forward(&h, &h, None)?
            .broadcast_mul(&gate_a.unsqueeze(1)?)?)?;
        let h = self.norm2.forward(&x)?;
        let x = (&x + self.cross.forward(&h, &ctx.tokens, ctx.mask.as_ref())?)?;
        let h = modulate(&self.norm3.forward(&x)?, shift_m, scale_m)?;
        Ok((&x + self.mlp.forward(&h)?.broadcast_mul(&gate_m.unsqueeze(1)?)?)?)
    }
}

/// The optional pixel refiner ([`DitConfig::refiner_channels`]): two 3×3
/// convolutions over the final projection's per-pixel features concatenated
/// with the noisy input, `[features ‖ x_t] → conv → SiLU → conv → output`.
struct Refiner {
    channels: usize,
    conv1: Conv3x3,
    conv2: Conv3x3,
}

impl Refiner {
    fn new(cfg: &DitConfig, vb: VarBuilder) -> Result<Self> {
        let r = cfg.refiner_channels;
        let c = cfg.in_channels;
        let out_init = if cfg.adaln_zero {
            Init::Const(0.0)
        } else {
            FINAL_INIT
        };
        Ok(Self {
            channels: r,
            conv1: Conv3x3::new(
                r + c,
                r,
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
                vb.pp("conv1"),
            )?,
            conv2: Conv3x3::new(r, c, out_init, vb.pp("conv2"))?,
        })
    }

    /// `features: [B, N, p·p·R]` (tokens in grid order), `x: [B, C, H, W]` → `[B, C, H, W]`.
    fn forward(&self, features: &Tensor, x: &Tensor, p: usize) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let (gh, gw) = (h / p, w / p);
        let pixels = features
            .reshape((b, gh, gw, p, p, self.channels))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((b, h, w, self.channels))?;
        let noisy = x.to_dtype(pixels.dtype())?.permute((0, 2, 3, 1))?;
        let input = Tensor::cat(&[&pixels, &noisy], 3)?;
        let hidden = self.conv1.forward(&input)?.silu()?;
        Ok(self
            .conv2
            .forward(&hidden)?
            .permute((0, 3, 1, 2))?
            .contiguous()?)
    }
}

/// The optional caption layout MLP ([`DitConfig::layout_hidden`]):
/// `out(GELU(pos_in(pos) + caption_in(pooled)))`, one vector per patch token,
/// added to the patch embeddings. The sum before the GELU lets the hidden
/// units respond to a position and a word together, which is what an outline
/// ("which patches does a square cover?") needs. Under adaLN-Zero the output
/// layer starts at zero, so a fresh model starts without it.
struct CaptionLayout {
    pos_in: Linear,
    caption_in: Linear,
    out: Linear,
}

impl CaptionLayout {
    fn new(cfg: &DitConfig, vb: VarBuilder) -> Result<Self> {
        let (d, h) = (cfg.hidden_size, cfg.layout_hidden);
        Ok(Self {
            pos_in: linear(d, h, vb.pp("pos_in"))?,
            caption_in: linear_no_bias(cfg.text.hidden_size, h, vb.pp("caption_in"))?,
            out: maybe_zero_linear(cfg.adaln_zero, h, d, vb.pp("out"), |vb| {
                Ok(linear(h, d, vb)?)
            })?,
        })
    }

    /// `pos: [1, N, D]` (the 2-D sin-cos positions), `pooled: [B, Dt]` → `[B, N, D]`.
    fn forward(&self, pos: &Tensor, pooled: &Tensor) -> Result<Tensor> {
        let by_position = self.pos_in.forward(pos)?;
        let by_caption = self.caption_in.forward(pooled)?.unsqueeze(1)?;
        let hidden = by_position.broadcast_add(&by_caption)?.gelu()?;
        Ok(self.out.forward(&hidden)?)
    }
}

/// The learned position table ([`DitConfig::learned_positions`]): one vector
/// per cell of the largest patch grid, stored row-major as
/// `[side·side, hidden]` under `dit.pos_table.weight`.
struct PositionTable {
    side: usize,
    weight: Tensor,
}

impl PositionTable {
    fn new(cfg: &DitConfig, vb: VarBuilder) -> Result<Self> {
        let side = cfg.max_side as usize / cfg.patch_size;
        let init = if cfg.adaln_zero {
            Init::Const(0.0)
        } else {
            FINAL_INIT
        };
        let weight = vb.get_with_hints((side * side, cfg.hidden_size), "weight", init)?;
        Ok(Self { side, weight })
    }

    /// The vectors of the top-left `gh × gw` cells, row-major: `[1, gh·gw, hidden]`.
    fn grid(&self, gh: usize, gw: usize) -> Result<Tensor> {
        if gh > self.side || gw > self.side {
            return Err(Error::InvalidParams(format!(
                "a {gw}x{gh} patch grid exceeds the learned {0}x{0} position table",
                self.side
            )));
        }
        let hidden = self.weight.dim(1)?;
        Ok(self
            .weight
            .reshape((self.side, self.side, hidden))?
            .narrow(0, 0, gh)?
            .narrow(1, 0, gw)?
            .contiguous()?
            .reshape((1, gh * gw, hidden))?)
    }
}

/// The DiT velocity model.
pub(crate) struct Dit {
    patch: usize,
    hidden: usize,
    freq: usize,
    x_embed: Linear,
    t_fc1: Linear,
    t_fc2: Linear,
    y_proj: Linear,
    blocks: Vec<Block>,
    final_norm: Norm,
    final_ada: Linear,
    final_linear: Linear,
    refiner: Option<Refiner>,
    layout: Option<CaptionLayout>,
    positions: Option<PositionTable>,
    prediction: Prediction,
}

impl Dit {
    pub(crate) fn new(cfg: &DitConfig, device: &Device, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let patch_dim = cfg.patch_size * cfg.patch_size * cfg.in_channels;
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(cfg, device, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let refiner = (cfg.refiner_channels > 0)
            .then(|| Refiner::new(cfg, vb.pp("refine")))
            .transpose()?;
        // With a refiner the projection feeds it features, so only the refiner's
        // last convolution starts at zero.
        let final_out = match &refiner {
            Some(r) => cfg.patch_size * cfg.patch_size * r.channels,
            None => patch_dim,
        };
        Ok(Self {
            patch: cfg.patch_size,
            hidden: d,
            freq: cfg.freq_embed_size,
            x_embed: linear(patch_dim, d, vb.pp("x_embed"))?,
            t_fc1: linear(cfg.freq_embed_size, d, vb.pp("t_embed.fc1"))?,
            t_fc2: linear(d, d, vb.pp("t_embed.fc2"))?,
            y_proj: linear(cfg.text.hidden_size, d, vb.pp("y_proj"))?,
            blocks,
            final_norm: plain_norm(d, device)?,
            final_ada: maybe_zero_linear(cfg.adaln_zero, d, 2 * d, vb.pp("final.ada"), |vb| {
                Ok(linear(d, 2 * d, vb)?)
            })?,
            final_linear: maybe_zero_linear(
                cfg.adaln_zero && refiner.is_none(),
                d,
                final_out,
                vb.pp("final.linear"),
                |vb| linear_with_init(d, final_out, FINAL_INIT, vb),
            )?,
            refiner,
            layout: (cfg.layout_hidden > 0)
                .then(|| CaptionLayout::new(cfg, vb.pp("layout")))
                .transpose()?,
            positions: cfg
                .learned_positions
                .then(|| PositionTable::new(cfg, vb.pp("pos_table")))
                .transpose()?,
            prediction: cfg.prediction,
        })
    }

    /// Predicted velocity `v = noise − x0` for `x: [B, 3, H, W]` at flow time `t ∈ [0, 1]`
    /// (same `t` for the whole batch). Returns `[B, 3, H, W]`. With
    /// [`Prediction::X0`] the head's clean-image estimate is converted to a velocity.
    pub(crate) fn forward(&self, x: &Tensor, t: f64, ctx: &Context) -> Result<Tensor> {
        self.forward_ts(x, &[t], ctx)
    }

    /// [`Self::forward`] with one flow time per batch row (`ts.len() == B`), or one
    /// shared by the whole batch (`ts.len() == 1`), as used in training.
    pub(crate) fn forward_ts(&self, x: &Tensor, ts: &[f64], ctx: &Context) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if ts.len() != 1 && ts.len() != b {
            return Err(Error::InvalidParams(format!(
                "expected 1 or {b} flow times, got {}",
                ts.len()
            )));
        }
        let p = self.patch;
        if h % p != 0 || w % p != 0 {
            return Err(Error::InvalidParams(format!(
                "{w}x{h} is not a multiple of the patch size {p}"
            )));
        }
        let (gh, gw) = (h / p, w / p);
        let device = x.device();

        let patches = patchify(x, p)?;
        let mut pos = Tensor::from_vec(
            sincos_2d(gh, gw, self.hidden),
            (1, gh * gw, self.hidden),
            device,
        )?;
        if let Some(table) = &self.positions {
            pos = (pos + table.grid(gh, gw)?)?;
        }
        let mut tokens = self.x_embed.forward(&patches)?.broadcast_add(&pos)?;
        if let Some(layout) = &self.layout {
            tokens = (tokens + layout.forward(&pos, &ctx.pooled)?)?;
        }

        // Conditioning vector c = MLP(sinusoid(1000 t)) + proj(pooled caption).
        let tf = Tensor::from_vec(
            ts.iter()
                .flat_map(|&t| timestep_features(t * 1000.0, self.freq))
                .collect(),
            (ts.len(), self.freq),
            device,
        )?;
        let t_emb = self.t_fc2.forward(&self.t_fc1.forward(&tf)?.silu()?)?;
        let cond = self.y_proj.forward(&ctx.pooled)?.broadcast_add(&t_emb)?;
        let c_act = cond.silu()?;

        for block in &self.blocks {
            tokens = block.forward(&tokens, &c_act, ctx)?;
        }
        let m = self.final_ada.forward(&c_act)?.chunk(2, 1)?;
        let out = modulate(&self.final_norm.forward(&tokens)?, &m[0], &m[1])?;
        let out = self.final_linear.forward(&out)?;

        let out = match &self.refiner {
            Some(refiner) => refiner.forward(&out, x, p)?,
            None => unpatchify(&out, p, c, h, w)?,
        }
        .to_dtype(DType::F32)?;
        match self.prediction {
            Prediction::Velocity => Ok(out),
            Prediction::X0 => {
                // v̂ = (x_t − x̂0) / max(t, X0_MIN_T), one divisor per row.
                let inv: Vec<f32> = ts
                    .iter()
                    .map(|&t| (1.0 / t.max(Prediction::X0_MIN_T)) as f32)
                    .collect();
                let inv = Tensor::from_vec(inv, (ts.len(), 1, 1, 1), device)?;
                Ok((x.to_dtype(DType::F32)? - out)?.broadcast_mul(&inv)?)
            }
            Prediction::Preconditioned => {
                let (skip, scale): (Vec<f32>, Vec<f32>) = ts
                    .iter()
                    .map(|&t| {
                        let (a, b) = Prediction::preconditioning(t);
                        (a as f32, b as f32)
                    })
                    .unzip();
                let skip = Tensor::from_vec(skip, (ts.len(), 1, 1, 1), device)?;
                let scale = Tensor::from_vec(scale, (ts.len(), 1, 1, 1), device)?;
                Ok((x.to_dtype(DType::F32)?.broadcast_mul(&skip)? + out.broadcast_mul(&scale)?)?)
            }
        }
    }
}

/// `[B, C, H, W] → [B, (H/p)·(W/p), p·p·C]`: patches in row-major grid order, each
/// flattened as (row in patch, column in patch, channel).
fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (gh, gw) = (h / p, w / p);
    Ok(x.reshape((b, c, gh, p, gw, p))?
        .permute((0, 2, 4, 3, 5, 1))?
        .contiguous()?
        .reshape((b, gh * gw, p * p * c))?)
}

/// The inverse of [`patchify`]: `[B, (H/p)·(W/p), p·p·C] → [B, C, H, W]`.
fn unpatchify(x: &Tensor, p: usize, c: usize, h: usize, w: usize) -> Result<Tensor> {
    let b = x.dim(0)?;
    let (gh, gw) = (h / p, w / p);
    Ok(x.reshape((b, gh, gw, p, p, c))?
        .permute((0, 5, 1, 3, 2, 4))?
        .contiguous()?
        .reshape((b, c, h, w))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout MLP must let position and caption act together: the change
    /// from one patch to another has to depend on the caption (an outline is
    /// "this patch, for this word"), which a plain sum of a position term and a
    /// caption term could not do.
    #[test]
    fn caption_layout_lets_position_and_caption_interact() {
        let dev = Device::Cpu;
        let mut cfg = DitConfig::tiny();
        cfg.layout_hidden = 16;
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let layout = CaptionLayout::new(&cfg, vb).unwrap();
        let d = cfg.hidden_size;
        let pos = Tensor::from_vec(sincos_2d(1, 2, d), (1, 2, d), &dev).unwrap();
        let pooled = Tensor::randn(0f32, 1.0, (2, cfg.text.hidden_size), &dev).unwrap();
        let out = layout.forward(&pos, &pooled).unwrap();
        assert_eq!(out.dims(), &[2, 2, d]);
        let rows = out.to_vec3::<f32>().unwrap();
        let step = |caption: usize| -> Vec<f32> {
            (0..d)
                .map(|k| rows[caption][1][k] - rows[caption][0][k])
                .collect()
        };
        let (a, b) = (step(0), step(1));
        let gap = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            gap > 1e-3,
            "the position step is the same for both captions"
        );
        let moved = a.iter().map(|x| x.abs()).fold(0f32, f32::max);
        assert!(moved > 1e-3, "the output does not depend on the position");
    }

    /// A grid smaller than the table takes its top-left cells in row-major
    /// order (so a cell keeps its vector whatever the image size), and a grid
    /// larger than the table is refused.
    #[test]
    fn position_table_gives_each_cell_its_own_vector() {
        let dev = Device::Cpu;
        let mut cfg = DitConfig::tiny();
        cfg.learned_positions = true;
        cfg.max_side = 4 * cfg.patch_size as u32;
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let table = PositionTable::new(&cfg, vb).unwrap();
        assert_eq!(table.side, 4);
        let rows = table.weight.to_vec2::<f32>().unwrap();
        let grid = table.grid(2, 3).unwrap();
        assert_eq!(grid.dims(), &[1, 6, cfg.hidden_size]);
        let got = grid.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        for (k, cell) in [0, 1, 2, 4, 5, 6].into_iter().enumerate() {
            assert_eq!(got[k], rows[cell], "token {k}");
        }
        assert_ne!(rows[0], rows[1], "cells share a vector");
        assert!(table.grid(5, 1).is_err());
    }

    /// Token `k` of the patchified image must be the pixels of grid cell
    /// `(k / gw, k % gw)`, and unpatchify must put every value back where it was:
    /// otherwise each token's prediction lands on another token's pixels.
    #[test]
    fn unpatchify_inverts_patchify_in_grid_order() {
        let dev = Device::Cpu;
        let (b, c, h, w, p) = (2, 3, 8, 12, 4);
        let n = b * c * h * w;
        let x = Tensor::arange(0f32, n as f32, &dev)
            .unwrap()
            .reshape((b, c, h, w))
            .unwrap();
        let tokens = patchify(&x, p).unwrap();
        assert_eq!(tokens.dims(), &[b, (h / p) * (w / p), p * p * c]);
        let flat =
            |bi: usize, ci: usize, y: usize, xx: usize| (((bi * c + ci) * h + y) * w + xx) as f32;
        let tok = tokens.to_vec3::<f32>().unwrap();
        // Grid cell (row 1, column 2) of image 1 is token 1·3 + 2 = 5; its value
        // at (row 3, column 1, channel 2) of the patch is element (3·p + 1)·c + 2.
        assert_eq!(tok[1][5][(3 * p + 1) * c + 2], flat(1, 2, 4 + 3, 8 + 1));
        let back = unpatchify(&tokens, p, c, h, w).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
