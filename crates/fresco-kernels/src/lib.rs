//! CPU kernels for diffusion models, as candle custom ops, for the layers where candle's
//! generic CPU ops spend most of a UNet or VAE step:
//! - [`conv2d`]: im2col a tile at a time, one `gemm` per tile straight into NCHW with the
//!   bias in place;
//! - [`GroupNorm`]: GroupNorm, with the SiLU that follows it fused in;
//! - [`attention`]: softmax attention a block of query rows at a time, heads read in place.
//! - [`geglu`]: the gated GELU of the UNet's feed-forward, in one pass.
//!
//! Each runs on the CPU in `f32` and falls back to candle's own ops on any other device or
//! dtype, so callers use them unconditionally. `tests/against_candle.rs` checks each against
//! candle's op on random inputs; `fresco-diffusers-bench kernels` times each against it.
//! The private `gemm` module holds the crate's one `unsafe` call; `simd` runs the
//! element-wise loops with the widest vector instructions the CPU has.

mod attention;
mod conv2d;
mod exp;
mod geglu;
mod gemm;
mod group_norm;
mod simd;
mod storage;

pub use attention::{attention, attention_in_candle_ops};
pub use conv2d::{Conv2d, conv2d};
pub use geglu::{geglu, geglu_in_candle_ops};
pub use group_norm::GroupNorm;
