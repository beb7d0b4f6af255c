//! 2-D convolution on the CPU in `f32`, NCHW in and out, as one matrix product per tile of
//! output rows: `out[c_out, pixels] = weight[c_out, c_in·kh·kw] × columns[c_in·kh·kw, pixels]`.
//! The weight is used as stored (its NCHW layout already is that matrix), the columns
//! (im2col) are built a bounded tile at a time with whole-row copies, and the product is
//! written straight into the output with the bias already in place, so nothing is
//! transposed and the output needs no second pass. A 1×1, stride-1, unpadded convolution
//! reads the input itself as its columns. Other devices, dtypes, dilations and groups run
//! candle's own `conv2d`.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::gemm::{MatMut, MatRef, Threads, matmul};
use crate::storage::contiguous_f32s;

/// Upper bound on one tile of columns, in bytes.
const COLUMN_TILE_BYTES: usize = 8 << 20;

/// A convolution layer: weight `[c_out, c_in, kh, kw]`, optional bias `[c_out]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    /// Dilation and groups other than 1 go to candle's convolution.
    dilation: usize,
    groups: usize,
}

impl From<candle_nn::Conv2d> for Conv2d {
    fn from(conv: candle_nn::Conv2d) -> Self {
        let cfg = *conv.config();
        Self {
            weight: conv.weight().clone(),
            bias: conv.bias().cloned(),
            stride: cfg.stride,
            padding: cfg.padding,
            dilation: cfg.dilation,
            groups: cfg.groups,
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.dilation == 1 && self.groups == 1 {
            return conv2d(
                xs,
                &self.weight,
                self.bias.as_ref(),
                self.stride,
                self.padding,
            );
        }
        let out = xs.conv2d(
            &self.weight,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        add_bias(out, self.bias.as_ref())
    }
}

/// `xs` `[b, c_in, h, w]` convolved with `weight` `[c_out, c_in, kh, kw]`, plus `bias`
/// `[c_out]`: candle's `conv2d` with dilation 1 and one group, computed as the module
/// docs say on the CPU in `f32`.
pub fn conv2d(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let fast = matches!(xs.device(), Device::Cpu)
        && xs.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32)
        && stride > 0;
    if !fast {
        return add_bias(xs.conv2d(weight, padding, stride, 1, 1)?, bias);
    }
    let (c_out, c_in, _, _) = weight.dims4()?;
    let (_, x_c, _, _) = xs.dims4()?;
    if x_c != c_in {
        candle_core::bail!("conv2d: input has {x_c} channels, the weight expects {c_in}")
    }
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(c_out, DType::F32, &Device::Cpu)?,
    };
    let op = Conv2dOp { stride, padding };
    xs.contiguous()?
        .apply_op3_no_bwd(&weight.contiguous()?, &bias, &op)
}

fn add_bias(out: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => out.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(out),
    }
}

/// The shapes one call works on.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
    out_h: usize,
    out_w: usize,
}

impl Geometry {
    fn patch(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    fn reads_input_as_columns(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    /// Output rows per tile, so that a tile of columns stays under [`COLUMN_TILE_BYTES`].
    fn rows_per_tile(&self) -> usize {
        let row_bytes = self.patch() * self.out_w * std::mem::size_of::<f32>();
        (COLUMN_TILE_BYTES / row_bytes.max(1)).clamp(1, self.out_h.max(1))
    }
}

struct Conv2dOp {
    stride: usize,
    padding: usize,
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "fresco-conv2d"
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
        let (b, c_in, h, w) = xs_l.shape().dims4()?;
        let (c_out, _, kh, kw) = weight_l.shape().dims4()?;
        if c_in == 0 || c_out == 0 {
            candle_core::bail!(
                "conv2d: {c_in} input and {c_out} output channels (both must be > 0)"
            )
        }
        let (padded_h, padded_w) = (h + 2 * self.padding, w + 2 * self.padding);
        if padded_h < kh || padded_w < kw {
            candle_core::bail!(
                "conv2d: a {kh}×{kw} kernel does not fit a padded {padded_h}×{padded_w} input"
            )
        }
        let g = Geometry {
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            stride: self.stride,
            padding: self.padding,
            out_h: (padded_h - kh) / self.stride + 1,
            out_w: (padded_w - kw) / self.stride + 1,
        };
        let inputs = [(xs, xs_l), (weight, weight_l), (bias, bias_l)];
        let [xs, weight, bias] = contiguous_f32s(self.name(), inputs)?;
        let out = convolve(&g, b, xs, weight, bias);
        Ok((
            CpuStorage::F32(out),
            Shape::from((b, c_out, g.out_h, g.out_w)),
        ))
    }
}

/// The whole batch: the output starts as the bias, then each image adds its products.
fn convolve(g: &Geometry, batch: usize, xs: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let pixels = g.out_h * g.out_w;
    let mut out: Vec<f32> = Vec::with_capacity(batch * g.c_out * pixels);
    for _ in 0..batch {
        for &b in bias {
            out.extend(std::iter::repeat_n(b, pixels));
        }
    }
    let weight = MatRef::rows(weight, g.c_out, g.patch(), g.patch());
    let mut columns = Vec::new();
    for (image, out_image) in xs
        .chunks_exact(g.c_in * g.h * g.w)
        .zip(out.chunks_exact_mut(g.c_out * pixels))
    {
        convolve_image(g, image, weight, out_image, &mut columns);
    }
    out
}

/// One image, a tile of output rows at a time; `columns` is scratch reused across calls.
fn convolve_image(
    g: &Geometry,
    image: &[f32],
    weight: MatRef<'_>,
    out: &mut [f32],
    columns: &mut Vec<f32>,
) {
    let pixels = g.out_h * g.out_w;
    let threads = Threads::Pool(rayon::current_num_threads());
    if g.reads_input_as_columns() {
        let rhs = MatRef::rows(image, g.c_in, pixels, pixels);
        matmul(
            MatMut::rows(out, g.c_out, pixels, pixels),
            weight,
            rhs,
            1.0,
            true,
            threads,
        );
        return;
    }
    let tile_rows = g.rows_per_tile();
    for first_row in (0..g.out_h).step_by(tile_rows) {
        let rows = tile_rows.min(g.out_h - first_row);
        let tile_pixels = rows * g.out_w;
        columns.resize(g.patch() * tile_pixels, 0.0);
        fill_columns(g, image, first_row..first_row + rows, columns);
        let rhs = MatRef::rows(columns, g.patch(), tile_pixels, tile_pixels);
        let dst = MatMut::rows(
            &mut out[first_row * g.out_w..],
            g.c_out,
            tile_pixels,
            pixels,
        );
        matmul(dst, weight, rhs, 1.0, true, threads);
    }
}

/// im2col for the output rows `rows`: row `(c, ky, kx)` of `columns` holds, for each output
/// pixel of the tile, the input value under kernel tap `(ky, kx)` of channel `c` (0 in the
/// padding).
fn fill_columns(g: &Geometry, image: &[f32], rows: std::ops::Range<usize>, columns: &mut [f32]) {
    let tile_pixels = rows.len() * g.out_w;
    columns
        .par_chunks_mut(tile_pixels)
        .enumerate()
        .for_each(|(patch_row, column_row)| {
            let (c, tap) = (patch_row / (g.kh * g.kw), patch_row % (g.kh * g.kw));
            let (ky, kx) = (tap / g.kw, tap % g.kw);
            let channel = &image[c * g.h * g.w..(c + 1) * g.h * g.w];
            for (out_y, dst) in rows.clone().zip(column_row.chunks_exact_mut(g.out_w)) {
                match (out_y * g.stride + ky).checked_sub(g.padding) {
                    Some(in_y) if in_y < g.h => {
                        let src = &channel[in_y * g.w..(in_y + 1) * g.w];
                        fill_row(g, kx, src, dst);
                    }
                    _ => dst.fill(0.0),
                }
            }
        });
}

/// One output row's values under kernel column `kx`, read from input row `src`.
fn fill_row(g: &Geometry, kx: usize, src: &[f32], dst: &mut [f32]) {
    // Output x reads input x · stride + kx - padding; it is inside the row for x in
    // [first, last).
    let first = g.padding.saturating_sub(kx).div_ceil(g.stride).min(g.out_w);
    let last = ((g.w + g.padding).saturating_sub(kx))
        .div_ceil(g.stride)
        .clamp(first, g.out_w);
    dst[..first].fill(0.0);
    dst[last..].fill(0.0);
    let start = first * g.stride + kx - g.padding;
    if g.stride == 1 {
        dst[first..last].copy_from_slice(&src[start..start + (last - first)]);
    } else {
        for (d, s) in dst[first..last]
            .iter_mut()
            .zip(src[start..].iter().step_by(g.stride))
        {
            *d = *s;
        }
    }
}
