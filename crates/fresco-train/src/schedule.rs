//! Schedules of the training run: learning rate (linear warmup, then cosine decay)
//! and the distribution of flow times `t`, plus the per-step RNG that makes every
//! step a pure function of `(seed, step)` (so resuming needs only the step counter).

use clap::ValueEnum;
use fresco_pipeline::splitmix64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How training flow times `t ∈ (0, 1)` are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSampling {
    /// `t = sigmoid(n)`, `n ~ N(0, 1)` (SD3): more weight on mid-range noise levels.
    LogitNormal,
    /// `t ~ U(0, 1)`.
    Uniform,
}

/// Location and scale of [`TimeSampling::LogitNormal`]: `t = sigmoid(location +
/// scale·n)`, `n ~ N(0, 1)`. A positive location moves the mass towards high
/// noise (`t → 1`), where the layout of a picture is decided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogitNormalParams {
    /// Mean of the logit of `t`.
    pub location: f64,
    /// Standard deviation of the logit of `t` (> 0).
    pub scale: f64,
}

impl Default for LogitNormalParams {
    /// SD3's `N(0, 1)` on the logit: median `t` of one half.
    fn default() -> Self {
        Self {
            location: 0.0,
            scale: 1.0,
        }
    }
}

/// Draws one flow time (`logit` is read by [`TimeSampling::LogitNormal`] only).
pub fn sample_t<R: Rng + ?Sized>(rng: &mut R, mode: TimeSampling, logit: LogitNormalParams) -> f64 {
    match mode {
        TimeSampling::LogitNormal => {
            let n = logit.location + logit.scale * standard_normal(rng);
            1.0 / (1.0 + (-n).exp())
        }
        TimeSampling::Uniform => rng.random::<f64>(),
    }
}

/// One N(0, 1) sample (Box–Muller, using the cosine branch only).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` N(0, 1) samples as `f32`, both Box–Muller branches.
pub fn normal_vec<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        out.push((r * th.cos()) as f32);
        out.push((r * th.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// The RNG of training step `step` (0-based) for run seed `seed`.
pub fn step_rng(seed: u64, step: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(step ^ 0x7472_6169_6e00)))
}

/// Learning rate at `step` (0-based) of `total`: linear warmup from `base/warmup`
/// to `base` over `warmup` steps, then cosine decay to `base · min_ratio` at `total`.
pub fn learning_rate(step: u64, total: u64, warmup: u64, base: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    base * (min_ratio + (1.0 - min_ratio) * cosine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_warms_up_then_decays() {
        let lr = |s| learning_rate(s, 1000, 100, 1e-3, 0.1);
        assert!((lr(0) - 1e-5).abs() < 1e-12);
        assert!((lr(99) - 1e-3).abs() < 1e-12);
        assert!((lr(100) - 1e-3).abs() < 1e-12);
        assert!(lr(550) < lr(300) && lr(300) < lr(100));
        assert!((lr(1000) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn times_are_in_range_and_steps_reproducible() {
        let mut rng = step_rng(1, 5);
        for mode in [TimeSampling::LogitNormal, TimeSampling::Uniform] {
            for _ in 0..1000 {
                let t = sample_t(&mut rng, mode, LogitNormalParams::default());
                assert!((0.0..=1.0).contains(&t));
            }
        }
        let a: Vec<f32> = normal_vec(&mut step_rng(1, 5), 7);
        assert_eq!(a, normal_vec(&mut step_rng(1, 5), 7));
        assert_ne!(a, normal_vec(&mut step_rng(1, 6), 7));
    }

    /// The logit of a logit-normal draw has the configured mean and spread, so
    /// a positive location moves training towards high noise levels.
    #[test]
    fn logit_normal_location_and_scale_shape_the_times() {
        let logits = |params: LogitNormalParams| -> (f64, f64, f64) {
            let mut rng = step_rng(3, 0);
            let n = 20_000;
            let ts: Vec<f64> = (0..n)
                .map(|_| sample_t(&mut rng, TimeSampling::LogitNormal, params))
                .collect();
            let ls: Vec<f64> = ts.iter().map(|t| (t / (1.0 - t)).ln()).collect();
            let mean = ls.iter().sum::<f64>() / n as f64;
            let var = ls.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n as f64;
            let high = ts.iter().filter(|&&t| t > 0.85).count() as f64 / n as f64;
            (mean, var.sqrt(), high)
        };
        let (mean, std, high_default) = logits(LogitNormalParams::default());
        assert!(
            mean.abs() < 0.03 && (std - 1.0).abs() < 0.03,
            "{mean} {std}"
        );
        let shifted = LogitNormalParams {
            location: 0.8,
            scale: 0.8,
        };
        let (mean, std, high_shifted) = logits(shifted);
        assert!(
            (mean - 0.8).abs() < 0.03 && (std - 0.8).abs() < 0.03,
            "{mean} {std}"
        );
        // P(t > 0.85) = P(n > 1.73): 4 % unshifted, 12 % shifted.
        assert!(
            high_default < 0.06 && high_shifted > 0.1,
            "{high_default} {high_shifted}"
        );
    }
}
