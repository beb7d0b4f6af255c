//! diffusers' `GEGLU` activation on the CPU in `f32`: the projection's output `[.., 2n]`
//! splits into a value half and a gate half, and the result is `value · gelu(gate)` with
//! the exact (erf) GELU, in one pass. candle makes three (the split's copy, `gelu_erf`
//! through a scalar `erf`, the product). Other devices and dtypes run candle's ops.

use candle_core::{CpuStorage, CustomOp1, D, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::exp::gelu_erf;
use crate::simd::vectorized;
use crate::storage::contiguous_f32;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// `value · gelu_erf(gate)` for `[value, gate] = xs.chunk(2, last dim)`.
pub fn geglu(xs: &Tensor) -> Result<Tensor> {
    let width = xs.dim(D::Minus1)?;
    if width % 2 != 0 {
        candle_core::bail!("geglu: the last dimension ({width}) must be even")
    }
    if !(matches!(xs.device(), Device::Cpu) && xs.dtype() == DType::F32) {
        return geglu_in_candle_ops(xs);
    }
    xs.contiguous()?.apply_op1_no_bwd(&Geglu)
}

/// The same result from candle's ops (what the UNet ran before).
pub fn geglu_in_candle_ops(xs: &Tensor) -> Result<Tensor> {
    let parts = xs.chunk(2, D::Minus1)?;
    &parts[0] * parts[1].gelu_erf()?
}

struct Geglu;

impl CustomOp1 for Geglu {
    fn name(&self) -> &'static str {
        "fresco-geglu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(self.name(), xs, layout)?;
        let mut dims = layout.shape().dims().to_vec();
        let half = dims.last().copied().unwrap_or(0) / 2;
        if let Some(last) = dims.last_mut() {
            *last = half;
        }
        let mut out = vec![0f32; xs.len() / 2];
        if half > 0 {
            out.par_chunks_mut(ROWS_PER_TASK * half)
                .zip(xs.par_chunks(ROWS_PER_TASK * 2 * half))
                .for_each(|(out, xs)| vectorized(|| gate_rows(xs, out, half)));
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

#[inline(always)]
fn gate_rows(xs: &[f32], out: &mut [f32], half: usize) {
    for (row, out) in xs.chunks_exact(2 * half).zip(out.chunks_exact_mut(half)) {
        let (value, gate) = row.split_at(half);
        for ((o, v), g) in out.iter_mut().zip(value).zip(gate) {
            *o = v * gelu_erf(*g);
        }
    }
}
