//! Each kernel against candle's own op on seeded random inputs: convolutions of every
//! stride, padding and kernel size the diffusion models use (and tiles split across
//! output rows), GroupNorm with and without SiLU, attention with partial query blocks,
//! cross-attention and large logits, GEGLU; and the fallback on a dtype the kernels do not
//! take.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use fresco_kernels::{
    Conv2d, GroupNorm, attention, attention_in_candle_ops, conv2d, geglu, geglu_in_candle_ops,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type R = candle_core::Result<()>;

fn random(shape: &[usize], seed: u64) -> candle_core::Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// Largest absolute difference, relative to the reference's largest magnitude (at least 1).
fn relative_gap(got: &Tensor, want: &Tensor) -> candle_core::Result<f32> {
    assert_eq!(got.dims(), want.dims());
    let gap = (got - want)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    let scale = want
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?
        .max(1.0);
    Ok(gap / scale)
}

fn assert_close(got: &Tensor, want: &Tensor, tolerance: f32, what: &str) -> R {
    let gap = relative_gap(got, want)?;
    assert!(gap <= tolerance, "{what}: relative gap {gap} > {tolerance}");
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct ConvCase {
    input: [usize; 4],
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

const fn case(
    input: [usize; 4],
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> ConvCase {
    ConvCase {
        input,
        c_out,
        kernel,
        stride,
        padding,
    }
}

const CONV_CASES: [ConvCase; 9] = [
    // The UNet's and VAE's 3×3 same-size convolutions, odd and non-square sizes included.
    case([2, 8, 9, 7], 5, 3, 1, 1),
    case([2, 16, 16, 16], 16, 3, 1, 1),
    // Downsampling: stride 2 with padding 1 (UNet) and with none (the VAE pads by hand).
    case([1, 4, 8, 8], 6, 3, 2, 1),
    case([1, 5, 11, 10], 4, 3, 2, 0),
    // 1×1: shortcuts and projections, and a strided one.
    case([2, 6, 5, 5], 3, 1, 1, 0),
    case([1, 3, 6, 7], 4, 1, 2, 0),
    // No padding at all, and a kernel as large as the input.
    case([1, 4, 4, 4], 4, 3, 1, 0),
    case([1, 2, 3, 3], 3, 3, 1, 0),
    // Enough columns per image that they are built in more than one tile of rows.
    case([1, 64, 64, 64], 8, 3, 1, 1),
];

#[test]
fn convolutions_match_candle() -> R {
    for (i, c) in CONV_CASES.iter().enumerate() {
        let seed = i as u64 * 10;
        let xs = random(&c.input, seed)?;
        let weight = random(&[c.c_out, c.input[1], c.kernel, c.kernel], seed + 1)?;
        let bias = random(&[c.c_out], seed + 2)?;
        let plain = xs.conv2d(&weight, c.padding, c.stride, 1, 1)?;
        let with_bias = plain.broadcast_add(&bias.reshape((1, c.c_out, 1, 1))?)?;
        let got = conv2d(&xs, &weight, Some(&bias), c.stride, c.padding)?;
        assert_close(&got, &with_bias, 1e-5, &format!("{c:?} with bias"))?;
        let got = conv2d(&xs, &weight, None, c.stride, c.padding)?;
        assert_close(&got, &plain, 1e-5, &format!("{c:?} without bias"))?;
    }
    Ok(())
}

#[test]
fn a_convolution_reads_a_transposed_input_by_its_values() -> R {
    let xs = random(&[1, 6, 10, 4], 7)?.transpose(2, 3)?;
    assert!(!xs.is_contiguous());
    let weight = random(&[5, 6, 3, 3], 8)?;
    let want = xs.conv2d(&weight, 1, 1, 1, 1)?;
    assert_close(
        &conv2d(&xs, &weight, None, 1, 1)?,
        &want,
        1e-5,
        "transposed input",
    )
}

#[test]
fn the_layer_built_from_candles_layer_computes_the_same() -> R {
    let weight = random(&[4, 3, 3, 3], 11)?;
    let bias = random(&[4], 12)?;
    let cfg = candle_nn::Conv2dConfig {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let theirs = candle_nn::Conv2d::new(weight, Some(bias), cfg);
    let ours = Conv2d::from(theirs.clone());
    let xs = random(&[2, 3, 9, 9], 13)?;
    assert_close(&ours.forward(&xs)?, &theirs.forward(&xs)?, 1e-5, "layer")
}

#[test]
fn other_dtypes_run_candles_convolution() -> R {
    let xs = random(&[1, 3, 6, 6], 14)?.to_dtype(DType::F64)?;
    let weight = random(&[2, 3, 3, 3], 15)?.to_dtype(DType::F64)?;
    let got = conv2d(&xs, &weight, None, 1, 1)?;
    assert_eq!(got.dtype(), DType::F64);
    let want = xs.conv2d(&weight, 1, 1, 1, 1)?;
    let gap = (got - want)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?;
    assert_eq!(gap, 0.0);
    Ok(())
}

#[test]
fn a_channel_mismatch_is_an_error_naming_both_counts() -> R {
    let xs = random(&[1, 3, 6, 6], 16)?;
    let weight = random(&[2, 4, 3, 3], 17)?;
    let err = conv2d(&xs, &weight, None, 1, 1)
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(
        err.contains("3 channels") && err.contains("expects 4"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_convolution_without_channels_is_an_error_not_a_panic() -> R {
    let xs = Tensor::zeros((1, 0, 4, 4), DType::F32, &Device::Cpu)?;
    let weight = Tensor::zeros((2, 0, 3, 3), DType::F32, &Device::Cpu)?;
    let err = conv2d(&xs, &weight, None, 1, 1)
        .err()
        .map(|e| e.to_string());
    assert!(err.unwrap_or_default().contains("must be > 0"));
    Ok(())
}

fn norm_weights(channels: usize, seed: u64) -> candle_core::Result<(Tensor, Tensor)> {
    let weight = (random(&[channels], seed)? + 1.0)?;
    Ok((weight, random(&[channels], seed + 1)?))
}

fn norms(
    groups: usize,
    channels: usize,
    seed: u64,
) -> candle_core::Result<(GroupNorm, candle_nn::GroupNorm)> {
    let (weight, bias) = norm_weights(channels, seed)?;
    let tensors = HashMap::from([
        ("weight".to_string(), weight.clone()),
        ("bias".to_string(), bias.clone()),
    ]);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let ours = GroupNorm::load(vb, groups, channels, 1e-6)?;
    let theirs = candle_nn::GroupNorm::new(weight, bias, channels, groups, 1e-6)?;
    Ok((ours, theirs))
}

#[test]
fn group_norm_with_and_without_silu_matches_candle() -> R {
    let cases: [(&[usize], usize); 4] = [
        (&[2, 32, 8, 8], 32),
        (&[1, 64, 5, 3], 8),
        (&[2, 16, 10], 4),
        (&[1, 8, 40, 40], 2),
    ];
    for (i, (shape, groups)) in cases.iter().enumerate() {
        let xs = ((random(shape, 100 + i as u64)? * 3.0)? + 0.5)?;
        let (ours, theirs) = norms(*groups, shape[1], 200 + i as u64)?;
        let want = theirs.forward(&xs)?;
        assert_close(
            &ours.forward(&xs)?,
            &want,
            1e-5,
            &format!("{shape:?} / {groups}"),
        )?;
        let want = candle_nn::ops::silu(&want)?;
        assert_close(
            &ours.forward_silu(&xs)?,
            &want,
            1e-5,
            &format!("{shape:?} / {groups} + silu"),
        )?;
    }
    Ok(())
}

#[test]
fn group_norm_refuses_channels_that_do_not_split() -> R {
    let (weight, bias) = norm_weights(6, 1)?;
    let tensors = HashMap::from([("weight".to_string(), weight), ("bias".to_string(), bias)]);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let err = GroupNorm::load(vb, 4, 6, 1e-6)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("6 channels") && err.contains("4 groups"),
        "{err}"
    );
    Ok(())
}

#[test]
fn attention_matches_candles_matmul_and_softmax() -> R {
    // (batch, q_len, kv_len, heads, dim): partial query blocks, cross-attention over 77
    // text tokens, one wide head (the VAE's), a single query.
    let cases = [
        (2, 70, 70, 8, 16),
        (2, 130, 77, 8, 40),
        (1, 100, 100, 1, 64),
        (1, 1, 5, 2, 8),
    ];
    for (i, (b, q_len, kv_len, heads, dim)) in cases.into_iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let q = random(&[b, q_len, heads * dim], seed)?;
        let k = random(&[b, kv_len, heads * dim], seed + 1)?;
        let v = random(&[b, kv_len, heads * dim], seed + 2)?;
        let scale = (dim as f64).powf(-0.5);
        let want = attention_in_candle_ops(&q, &k, &v, heads, scale)?;
        let got = attention(&q, &k, &v, heads, scale)?;
        assert_close(&got, &want, 1e-5, &format!("case {i}"))?;
    }
    Ok(())
}

#[test]
fn attention_stays_exact_with_large_logits() -> R {
    let q = (random(&[1, 65, 32], 400)? * 30.0)?;
    let k = (random(&[1, 65, 32], 401)? * 30.0)?;
    let v = random(&[1, 65, 32], 402)?;
    let want = attention_in_candle_ops(&q, &k, &v, 2, 0.25)?;
    let got = attention(&q, &k, &v, 2, 0.25)?;
    assert_eq!(
        got.flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .filter(|x| !x.is_finite())
            .count(),
        0
    );
    assert_close(&got, &want, 1e-5, "large logits")
}

#[test]
fn attention_refuses_heads_that_do_not_split_the_width() -> R {
    let q = random(&[1, 4, 12], 500)?;
    let err = attention(&q, &q, &q, 5, 1.0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("12") && err.contains("5 heads"), "{err}");
    Ok(())
}

#[test]
fn geglu_matches_candles_split_gelu_and_product() -> R {
    for (i, shape) in [&[2, 70, 64][..], &[3, 10], &[1, 17, 2]].iter().enumerate() {
        let xs = (random(shape, 600 + i as u64)? * 4.0)?;
        let want = geglu_in_candle_ops(&xs)?;
        assert_close(&geglu(&xs)?, &want, 1e-5, &format!("{shape:?}"))?;
    }
    Ok(())
}

#[test]
fn geglu_refuses_an_odd_width() -> R {
    let err = geglu(&random(&[2, 5], 700)?)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("(5) must be even"), "{err}");
    Ok(())
}
