//! `fresco-kernels-bench`: times each `fresco-kernels` kernel against the candle op it
//! replaces, on the layer shapes of the `mid` bench folder, a full-size SD 1.5 UNet at
//! 512×512 and its VAE, in the same process and on the same inputs, and prints one JSON
//! line per shape with both medians and their ratio (fresco / candle: below 1 is faster).
//!
//! Threads: both sides use rayon's pool, sized by `RAYON_NUM_THREADS` (candle reads the same
//! variable); the count in effect is reported as `threads`.

use std::time::Instant;

use anyhow::{Result, ensure};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use clap::Parser;
use fresco_kernels::{
    GroupNorm, attention, attention_in_candle_ops, conv2d, geglu, geglu_in_candle_ops,
};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Times fresco-kernels against candle's ops on diffusion-model layer shapes")]
struct Args {
    /// Untimed calls before timing each side.
    #[arg(long, env = "FRESCO_BENCH_WARMUP", default_value_t = 1)]
    warmup: usize,
    /// Timed calls per side and shape.
    #[arg(long, env = "FRESCO_BENCH_REPS", default_value_t = 5)]
    reps: usize,
    /// Only the shapes whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

/// One layer shape and the two ways to compute it.
struct Case {
    name: &'static str,
    ours: Box<dyn Fn() -> candle_core::Result<Tensor>>,
    candle: Box<dyn Fn() -> candle_core::Result<Tensor>>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.reps > 0, "--reps must be at least 1");
    for case in cases()? {
        if args.only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let (ours, out_a) = time(&*case.ours, &args)?;
        let (candle, out_b) = time(&*case.candle, &args)?;
        let gap = (out_a - out_b)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        println!(
            "{}",
            json!({
                "kernel": case.name,
                "threads": rayon::current_num_threads(),
                "fresco_ms_median": ours,
                "candle_ms_median": candle,
                "ratio": ours / candle,
                "max_abs_difference": gap,
            })
        );
    }
    Ok(())
}

/// The median milliseconds of `f` over `--reps` calls, and its last output.
fn time(f: &dyn Fn() -> candle_core::Result<Tensor>, args: &Args) -> Result<(f64, Tensor)> {
    for _ in 0..args.warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(args.reps);
    let mut last = None;
    for _ in 0..args.reps {
        let started = Instant::now();
        last = Some(f()?);
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let out = last.ok_or_else(|| anyhow::anyhow!("no timed call"))?;
    Ok((times[times.len() / 2], out))
}

fn random(shape: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu)
}

fn conv_case(name: &'static str, input: [usize; 4], c_out: usize, stride: usize) -> Result<Case> {
    let xs = random(&input)?;
    let weight = (random(&[c_out, input[1], 3, 3])? * 0.05)?;
    let bias = random(&[c_out])?;
    let (x2, w2, b2) = (xs.clone(), weight.clone(), bias.clone());
    Ok(Case {
        name,
        ours: Box::new(move || conv2d(&xs, &weight, Some(&bias), stride, 1)),
        candle: Box::new(move || {
            x2.conv2d(&w2, 1, stride, 1, 1)?
                .broadcast_add(&b2.reshape((1, (), 1, 1))?)
        }),
    })
}

fn norm_case(name: &'static str, input: [usize; 4]) -> Result<Case> {
    let xs = random(&input)?;
    let channels = input[1];
    let (weight, bias) = (random(&[channels])?, random(&[channels])?);
    let tensors = std::collections::HashMap::from([
        ("weight".to_string(), weight.clone()),
        ("bias".to_string(), bias.clone()),
    ]);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let ours = GroupNorm::load(vb, 32, channels, 1e-5)?;
    let theirs = candle_nn::GroupNorm::new(weight, bias, channels, 32, 1e-5)?;
    let x2 = xs.clone();
    Ok(Case {
        name,
        ours: Box::new(move || ours.forward_silu(&xs)),
        candle: Box::new(move || candle_nn::ops::silu(&theirs.forward(&x2)?)),
    })
}

fn attention_case(
    name: &'static str,
    (batch, q_len, kv_len): (usize, usize, usize),
    width: usize,
    heads: usize,
) -> Result<Case> {
    let q = random(&[batch, q_len, width])?;
    let k = random(&[batch, kv_len, width])?;
    let v = random(&[batch, kv_len, width])?;
    let scale = ((width / heads) as f64).powf(-0.5);
    let (q2, k2, v2) = (q.clone(), k.clone(), v.clone());
    Ok(Case {
        name,
        ours: Box::new(move || attention(&q, &k, &v, heads, scale)),
        candle: Box::new(move || attention_in_candle_ops(&q2, &k2, &v2, heads, scale)),
    })
}

fn geglu_case(name: &'static str, shape: [usize; 3]) -> Result<Case> {
    let xs = random(&shape)?;
    let x2 = xs.clone();
    Ok(Case {
        name,
        ours: Box::new(move || geglu(&xs)),
        candle: Box::new(move || geglu_in_candle_ops(&x2)),
    })
}

/// Batch 2 for the UNet (classifier-free guidance), 1 for the VAE.
fn cases() -> Result<Vec<Case>> {
    Ok(vec![
        conv_case("conv3x3 mid unet 128ch 32x32", [2, 128, 32, 32], 128, 1)?,
        conv_case("conv3x3 mid unet 512ch 8x8", [2, 512, 8, 8], 512, 1)?,
        conv_case("conv3x3 mid vae 128ch 256x256", [1, 128, 256, 256], 128, 1)?,
        conv_case("conv3x3 sd15 unet 320ch 64x64", [2, 320, 64, 64], 320, 1)?,
        conv_case("conv3x3 sd15 unet 640ch 32x32", [2, 640, 32, 32], 640, 1)?,
        conv_case("conv3x3 sd15 unet 1280ch 16x16", [2, 1280, 16, 16], 1280, 1)?,
        conv_case(
            "conv3x3 stride2 sd15 unet 320ch 64x64",
            [2, 320, 64, 64],
            320,
            2,
        )?,
        conv_case("conv3x3 sd15 vae 512ch 128x128", [1, 512, 128, 128], 512, 1)?,
        norm_case("groupnorm+silu mid unet 128ch 32x32", [2, 128, 32, 32])?,
        norm_case("groupnorm+silu sd15 unet 320ch 64x64", [2, 320, 64, 64])?,
        norm_case("groupnorm+silu mid vae 128ch 256x256", [1, 128, 256, 256])?,
        geglu_case("geglu mid unet 1024 tokens 2x512", [2, 1024, 1024])?,
        geglu_case("geglu sd15 unet 4096 tokens 2x1280", [2, 4096, 2560])?,
        attention_case(
            "self-attention mid unet 1024 tokens",
            (2, 1024, 1024),
            128,
            8,
        )?,
        attention_case("cross-attention mid unet 1024x77", (2, 1024, 77), 128, 8)?,
        attention_case(
            "self-attention sd15 unet 4096 tokens",
            (2, 4096, 4096),
            320,
            8,
        )?,
        attention_case("cross-attention sd15 unet 4096x77", (2, 4096, 77), 320, 8)?,
        attention_case(
            "self-attention sd15 vae 4096 tokens 1 head",
            (1, 4096, 4096),
            512,
            1,
        )?,
    ])
}
