//! GroupNorm over NCHW, optionally followed by SiLU, in one pass over each group on the CPU
//! in `f32`: the group's mean and variance (summed in `f32` lanes, carried in `f64`), then
//! `x · a + b` per channel with `a`, `b` folding the statistics into the affine weights,
//! and SiLU on the value still in a register. candle's `GroupNorm` makes about eight passes
//! over memory for the same result, and a following SiLU one more. Other devices and
//! dtypes run candle's ops.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::exp::silu;
use crate::simd::vectorized;
use crate::storage::contiguous_f32s;

/// diffusers' `GroupNorm`: weight and bias per channel.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    /// Loads `weight` and `bias` (`[channels]`) as `candle_nn::group_norm` does.
    pub fn load(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            candle_core::bail!("group_norm: {channels} channels do not split into {groups} groups")
        }
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.))?,
            bias: vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.))?,
            groups,
            eps,
        })
    }

    /// GroupNorm followed by SiLU.
    pub fn forward_silu(&self, xs: &Tensor) -> Result<Tensor> {
        self.apply(xs, true)
    }

    fn apply(&self, xs: &Tensor, silu: bool) -> Result<Tensor> {
        let channels = self.weight.elem_count();
        let fast = matches!(xs.device(), Device::Cpu)
            && xs.dtype() == DType::F32
            && self.weight.dtype() == DType::F32;
        if !fast {
            let plain = candle_nn::GroupNorm::new(
                self.weight.clone(),
                self.bias.clone(),
                channels,
                self.groups,
                self.eps,
            )?
            .forward(xs)?;
            return if silu {
                candle_nn::ops::silu(&plain)
            } else {
                Ok(plain)
            };
        }
        if xs.rank() < 3 || xs.dim(1)? != channels {
            candle_core::bail!(
                "group_norm: expects [batch, {channels}, ...], got {:?}",
                xs.dims()
            )
        }
        let op = GroupNormOp {
            groups: self.groups,
            eps: self.eps,
            silu,
        };
        xs.contiguous()?
            .apply_op3_no_bwd(&self.weight.contiguous()?, &self.bias.contiguous()?, &op)
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.apply(xs, false)
    }
}

struct GroupNormOp {
    groups: usize,
    eps: f64,
    silu: bool,
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "fresco-group-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_l: &Layout,
        weight: &CpuStorage,
        weight_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let inputs = [(xs, xs_l), (weight, weight_l), (bias, bias_l)];
        let [xs_data, weight, bias] = contiguous_f32s(self.name(), inputs)?;
        let dims = xs_l.shape().dims();
        let spatial: usize = dims[2..].iter().product();
        let per_group = dims[1] / self.groups;
        let group_len = per_group * spatial;
        let mut out = vec![0f32; xs_data.len()];
        if group_len > 0 {
            out.par_chunks_mut(group_len)
                .zip(xs_data.par_chunks(group_len))
                .enumerate()
                .for_each(|(i, (dst, src))| {
                    let first_channel = (i % self.groups) * per_group;
                    let channels = first_channel..first_channel + per_group;
                    let affine = (&weight[channels.clone()], &bias[channels]);
                    self.normalise_group(src, dst, spatial, affine);
                });
        }
        Ok((CpuStorage::F32(out), xs_l.shape().clone()))
    }
}

impl GroupNormOp {
    /// One group: `src` and `dst` hold its channels, `spatial` values each.
    fn normalise_group(
        &self,
        src: &[f32],
        dst: &mut [f32],
        spatial: usize,
        affine: (&[f32], &[f32]),
    ) {
        vectorized(|| self.normalise_group_inline(src, dst, spatial, affine));
    }

    #[inline(always)]
    fn normalise_group_inline(
        &self,
        src: &[f32],
        dst: &mut [f32],
        spatial: usize,
        affine: (&[f32], &[f32]),
    ) {
        let n = src.len() as f64;
        let mean = lane_sum(src, |x| x) / n;
        let mean_f32 = mean as f32;
        let var = lane_sum(src, |x| (x - mean_f32) * (x - mean_f32)) / n;
        let inv_std = 1.0 / (var + self.eps).sqrt();
        let (weight, bias) = affine;
        for ((src, dst), (w, b)) in src
            .chunks_exact(spatial)
            .zip(dst.chunks_exact_mut(spatial))
            .zip(weight.iter().zip(bias))
        {
            let scale = (inv_std * f64::from(*w)) as f32;
            let shift = (f64::from(*b) - mean * inv_std * f64::from(*w)) as f32;
            if self.silu {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = silu(s * scale + shift);
                }
            } else {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s * scale + shift;
                }
            }
        }
    }
}

/// `Σ f(x)`: sixteen `f32` lanes over blocks of 1024 values, each block's total added in
/// `f64`.
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    const LANES: usize = 16;
    let mut total = 0f64;
    for block in xs.chunks(1024) {
        let mut lanes = [0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (lane, x) in lanes.iter_mut().zip(chunk) {
                *lane += f(*x);
            }
        }
        let tail: f32 = chunks.remainder().iter().map(|x| f(*x)).sum();
        total += f64::from(lanes.iter().sum::<f32>() + tail);
    }
    total
}
