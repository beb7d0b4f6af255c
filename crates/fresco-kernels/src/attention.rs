//! Softmax attention on the CPU in `f32`, a block of query rows at a time: for each block
//! and head, the scores `q·kᵀ·scale` for those rows only, the softmax in place, and their
//! product with `v` written straight into the output rows. The full `[heads, q, k]` score
//! tensor is never built (a block's scores stay in cache), and the heads are read from and
//! written to the `[batch, tokens, heads·dim]` layout the projections produce, so no head is
//! transposed or copied. Other devices and dtypes run the same computation in candle ops.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::exp::exp_shifted_sum;
use crate::gemm::{MatMut, MatRef, Threads, matmul};
use crate::simd::vectorized;
use crate::storage::contiguous_f32s;

/// Query rows per block.
const QUERY_BLOCK: usize = 256;

/// `softmax(q kᵀ · scale) v` per head. `q` is `[batch, q_len, heads·dim]`, `k` and `v` are
/// `[batch, kv_len, heads·dim]`; the result is `[batch, q_len, heads·dim]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let (b, q_len, width) = q.dims3()?;
    let (kb, kv_len, k_width) = k.dims3()?;
    if heads == 0 || !width.is_multiple_of(heads) {
        candle_core::bail!("attention: a width of {width} does not split into {heads} heads")
    }
    if kb != b || k_width != width || v.dims() != k.dims() {
        candle_core::bail!(
            "attention: q {:?}, k {:?} and v {:?} do not agree",
            q.dims(),
            k.dims(),
            v.dims()
        )
    }
    if kv_len == 0 {
        candle_core::bail!("attention: there are no keys to attend to")
    }
    let fast =
        matches!(q.device(), Device::Cpu) && [q, k, v].iter().all(|t| t.dtype() == DType::F32);
    if !fast {
        return attention_in_candle_ops(q, k, v, heads, scale);
    }
    let op = AttentionOp {
        heads,
        scale: scale as f32,
        kv_len,
        q_len,
    };
    q.contiguous()?
        .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)
}

/// The same result from candle's matmul and softmax (what the UNet ran before).
pub fn attention_in_candle_ops(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    scale: f64,
) -> Result<Tensor> {
    let (b, q_len, width) = q.dims3()?;
    let heads_first = |t: &Tensor| -> Result<Tensor> {
        let (b, len, width) = t.dims3()?;
        t.reshape((b, len, heads, width / heads))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (q, k, v) = (heads_first(q)?, heads_first(k)?, heads_first(v)?);
    let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((b, q_len, width))
}

struct AttentionOp {
    heads: usize,
    scale: f32,
    q_len: usize,
    kv_len: usize,
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "fresco-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_l: &Layout,
        k: &CpuStorage,
        k_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [q, k, v] = contiguous_f32s(self.name(), [(q, q_l), (k, k_l), (v, v_l)])?;
        let width = q_l.shape().dims()[2];
        let mut out = vec![0f32; q.len()];
        if self.q_len > 0 && width > 0 {
            out.par_chunks_mut(self.q_len * width)
                .zip(q.par_chunks(self.q_len * width))
                .zip(
                    k.par_chunks(self.kv_len * width)
                        .zip(v.par_chunks(self.kv_len * width)),
                )
                .for_each(|((out, q), (k, v))| self.one_batch(q, k, v, out, width));
        }
        Ok((CpuStorage::F32(out), q_l.shape().clone()))
    }
}

impl AttentionOp {
    /// One batch element, its query rows split into blocks run in parallel.
    fn one_batch(&self, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], width: usize) {
        out.par_chunks_mut(QUERY_BLOCK * width)
            .zip(q.par_chunks(QUERY_BLOCK * width))
            .for_each(|(out, q)| {
                let block = Block { q, k, v, width };
                let mut scores = vec![0f32; (q.len() / width) * self.kv_len];
                for head in 0..self.heads {
                    self.one_head(&block, head, out, &mut scores);
                }
            });
    }

    /// One head over one block of query rows.
    fn one_head(&self, block: &Block<'_>, head: usize, out: &mut [f32], scores: &mut [f32]) {
        let width = block.width;
        let dim = width / self.heads;
        let rows = block.q.len() / width;
        let column = head * dim;
        let q = MatRef::rows(&block.q[column..], rows, dim, width);
        let k = MatRef::rows(&block.k[column..], self.kv_len, dim, width);
        let v = MatRef::rows(&block.v[column..], self.kv_len, dim, width);
        let s = MatMut::rows(scores, rows, self.kv_len, self.kv_len);
        matmul(s, q, k.t(), self.scale, false, Threads::One);
        vectorized(|| {
            for row in scores.chunks_exact_mut(self.kv_len) {
                softmax_in_place(row);
            }
        });
        let probs = MatRef::rows(scores, rows, self.kv_len, self.kv_len);
        let dst = MatMut::rows(&mut out[column..], rows, dim, width);
        matmul(dst, probs, v, 1.0, false, Threads::One);
    }
}

/// A block of query rows with the batch element's keys and values, all `width` wide.
struct Block<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    width: usize,
}

#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = exp_shifted_sum(row, max);
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}
