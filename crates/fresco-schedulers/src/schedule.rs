//! Shared schedule arithmetic, all in `f64`: beta schedules, cumulative alpha products,
//! zero-terminal-SNR rescaling, timestep spacing, sigma interpolation, the Karras sigma
//! ramp, sigma → timestep inversion and flow-matching time shifts. Every function mirrors
//! the diffusers (numpy/torch) computation of the same name, including numpy's
//! round-half-to-even.

use crate::config::{BetaSchedule, SchedulerConfig, TimestepSpacing};
use crate::error::{Result, invalid};

/// numpy's `linspace(start, end, n)` (the last point is exactly `end`).
pub fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
            v[n - 1] = end;
            v
        }
    }
}

/// The betas of `config` (`trained_betas` when given, else `beta_schedule`).
pub fn betas(config: &SchedulerConfig) -> Result<Vec<f64>> {
    let n = config.num_train_timesteps;
    if let Some(trained) = &config.trained_betas {
        if trained.len() != n {
            return Err(invalid(
                "trained_betas",
                format!(
                    "must have num_train_timesteps ({n}) entries, got {}",
                    trained.len()
                ),
            ));
        }
        if trained.iter().any(|b| !(*b > 0.0 && *b < 1.0)) {
            return Err(invalid("trained_betas", "every beta must be in (0, 1)"));
        }
        return Ok(trained.clone());
    }
    let kind = config.beta_schedule_kind()?;
    if kind != BetaSchedule::SquaredCosCapV2 {
        let (s, e) = (config.beta_start, config.beta_end);
        if !(s.is_finite() && s > 0.0 && s < 1.0) {
            return Err(invalid("beta_start", format!("must be in (0, 1), got {s}")));
        }
        if !(e.is_finite() && e > 0.0 && e < 1.0) {
            return Err(invalid("beta_end", format!("must be in (0, 1), got {e}")));
        }
        if e < s {
            return Err(invalid(
                "beta_end",
                format!("must not be smaller than beta_start ({s}), got {e}"),
            ));
        }
    }
    Ok(match kind {
        BetaSchedule::Linear => linspace(config.beta_start, config.beta_end, n),
        BetaSchedule::ScaledLinear => linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), n)
            .into_iter()
            .map(|b| b * b)
            .collect(),
        BetaSchedule::SquaredCosCapV2 => squaredcos_cap_v2(n),
    })
}

/// diffusers' `betas_for_alpha_bar` with the cosine alpha-bar of Nichol & Dhariwal
/// (`max_beta` 0.999), computed in floating point throughout.
pub fn squaredcos_cap_v2(n: usize) -> Vec<f64> {
    let alpha_bar = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
        })
        .collect()
}

/// diffusers' `rescale_zero_terminal_snr`: rescales betas so the last alpha product is 0.
pub fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let mut sqrt_acp = cumprod_alphas(betas);
    for v in &mut sqrt_acp {
        *v = v.sqrt();
    }
    let (Some(&a0), Some(&at)) = (sqrt_acp.first(), sqrt_acp.last()) else {
        return Vec::new();
    };
    let acp: Vec<f64> = sqrt_acp
        .iter()
        .map(|v| {
            let r = (v - at) * a0 / (a0 - at);
            r * r
        })
        .collect();
    let mut out = Vec::with_capacity(acp.len());
    out.push(1.0 - acp[0]);
    for w in acp.windows(2) {
        out.push(1.0 - w[1] / w[0]);
    }
    out
}

fn cumprod_alphas(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0;
    betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc
        })
        .collect()
}

/// The cumulative alpha products of `config`, after zero-SNR rescaling when asked.
///
/// The betas are computed in `f64`, but the products are rounded to `f32` the way
/// diffusers stores them: betas as a float32 tensor, `alphas = 1 - betas` in float32 and
/// `cumprod` accumulating in double (PyTorch's CPU accumulator) with each product stored
/// as float32. Without this the Karras timesteps (recovered from log-sigmas) drift by
/// about 1e-3 from diffusers'.
pub fn alphas_cumprod(config: &SchedulerConfig) -> Result<Vec<f64>> {
    let mut b = betas(config)?;
    if config.rescale_betas_zero_snr {
        b = rescale_zero_terminal_snr(&b);
    }
    let mut acc = 1.0f64;
    Ok(b.iter()
        .map(|&beta| {
            let alpha = 1.0f32 - beta as f32;
            acc *= f64::from(alpha);
            f64::from(acc as f32)
        })
        .collect())
}

/// Like [`alphas_cumprod`], but (as diffusers' sigma-based schedulers do) a zero last
/// product under zero-SNR rescaling is replaced by 2^-24 so the largest sigma is finite.
pub fn alphas_cumprod_for_sigmas(config: &SchedulerConfig) -> Result<Vec<f64>> {
    let mut acp = alphas_cumprod(config)?;
    if config.rescale_betas_zero_snr
        && let Some(last) = acp.last_mut()
    {
        *last = 2f64.powi(-24);
    }
    Ok(acp)
}

/// The training sigmas `sqrt((1 - acp) / acp)`, ascending with the timestep.
pub fn sigmas_from_alphas_cumprod(acp: &[f64]) -> Vec<f64> {
    acp.iter().map(|a| ((1.0 - a) / a).sqrt()).collect()
}

/// Integer timesteps of DDIM/DDPM `set_timesteps` (descending): the float
/// timesteps rounded half to even (leading and trailing spacings are
/// integral already).
pub fn discrete_timesteps(
    spacing: TimestepSpacing,
    num_train: usize,
    n: usize,
    steps_offset: usize,
) -> Vec<f64> {
    float_timesteps(spacing, num_train, n, steps_offset)
        .into_iter()
        .map(f64::round_ties_even)
        .collect()
}

/// numpy's `arange(num_train, 0, -num_train / n)` (unrounded).
fn trailing(num_train: usize, n: usize) -> Vec<f64> {
    let ratio = num_train as f64 / n as f64;
    let len = (num_train as f64 / ratio).ceil() as usize;
    (0..len)
        .map(|i| num_train as f64 - i as f64 * ratio)
        .collect()
}

/// Float timesteps of the Euler/Heun family `set_timesteps` (descending).
pub fn float_timesteps(
    spacing: TimestepSpacing,
    num_train: usize,
    n: usize,
    steps_offset: usize,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => linspace(0.0, (num_train - 1) as f64, n)
            .into_iter()
            .rev()
            .collect(),
        TimestepSpacing::Leading => {
            let ratio = num_train / n;
            (0..n)
                .rev()
                .map(|i| (i * ratio + steps_offset) as f64)
                .collect()
        }
        TimestepSpacing::Trailing => trailing(num_train, n)
            .into_iter()
            .map(|t| t.round_ties_even() - 1.0)
            .collect(),
    }
}

/// Integer timesteps of the DPM-Solver/UniPC `set_timesteps` (descending; these split
/// the range into `n + 1` points and drop the last).
pub fn multistep_timesteps(
    spacing: TimestepSpacing,
    last_timestep: usize,
    num_train: usize,
    n: usize,
    steps_offset: usize,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => {
            let mut v: Vec<f64> = linspace(0.0, last_timestep as f64 - 1.0, n + 1)
                .into_iter()
                .map(f64::round_ties_even)
                .collect();
            v.reverse();
            v.truncate(n);
            v
        }
        TimestepSpacing::Leading => {
            let ratio = last_timestep / (n + 1);
            (1..=n)
                .rev()
                .map(|i| (i * ratio + steps_offset) as f64)
                .collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = num_train as f64 / n as f64;
            let len = (last_timestep as f64 / ratio).ceil() as usize;
            (0..len)
                .map(|i| (last_timestep as f64 - i as f64 * ratio).round_ties_even() - 1.0)
                .collect()
        }
    }
}

/// numpy's `interp(x, arange(len(fp)), fp)` (clamped at both ends).
pub fn interp_index(x: f64, fp: &[f64]) -> f64 {
    let Some(&last) = fp.last() else {
        return f64::NAN;
    };
    if x <= 0.0 {
        return fp[0];
    }
    let max = (fp.len() - 1) as f64;
    if x >= max {
        return last;
    }
    let i = x.floor() as usize;
    let frac = x - i as f64;
    if frac == 0.0 {
        return fp[i];
    }
    fp[i] + (fp[i + 1] - fp[i]) * frac
}

/// Karras et al. (2022) sigma ramp with rho = 7 from `sigma_max` down to `sigma_min`.
pub fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0;
    let min_inv = sigma_min.powf(1.0 / rho);
    let max_inv = sigma_max.powf(1.0 / rho);
    linspace(0.0, 1.0, n)
        .into_iter()
        .map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho))
        .collect()
}

/// diffusers' `_sigma_to_t`: the (fractional) training timestep of `sigma`, by linear
/// interpolation in log-sigma. `log_sigmas` ascend with the timestep.
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let n = log_sigmas.len();
    if n < 2 {
        return 0.0;
    }
    let log_sigma = sigma.max(1e-10).ln();
    // Last index whose log-sigma is <= log_sigma (0 when there is none), capped at n - 2.
    let low = log_sigmas
        .iter()
        .rposition(|&l| log_sigma - l >= 0.0)
        .unwrap_or(0)
        .min(n - 2);
    let (lo, hi) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((lo - log_sigma) / (lo - hi)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

/// Flow-matching static shift: `shift * s / (1 + (shift - 1) * s)`.
pub fn static_shift(shift: f64, sigma: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// Flow-matching dynamic (resolution dependent) shift with exponent `mu`.
pub fn time_shift(exponential: bool, mu: f64, sigma: f64) -> f64 {
    if exponential {
        mu.exp() / (mu.exp() + (1.0 / sigma - 1.0))
    } else {
        mu / (mu + (1.0 / sigma - 1.0))
    }
}

/// Alpha and sigma of the variance-preserving process at Karras-style `sigma`:
/// `alpha = 1 / sqrt(sigma^2 + 1)`, `sigma_t = sigma * alpha`.
pub fn vp_alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

/// Log signal-to-noise half ratio `ln(alpha) - ln(sigma_t)` (+inf at sigma 0).
pub fn vp_lambda(sigma: f64) -> f64 {
    let (a, s) = vp_alpha_sigma(sigma);
    a.ln() - s.ln()
}
