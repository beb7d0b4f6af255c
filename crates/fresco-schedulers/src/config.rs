//! Scheduler configuration: [`SchedulerConfig`] reads diffusers' `scheduler_config.json`
//! field names (unknown fields are ignored), and [`SetTimestepsOptions`] carries what
//! diffusers' `set_timesteps` gets besides the step count. This module owns parsing
//! (including Python's non-standard `Infinity`/`NaN` JSON tokens) and turning the
//! stringly-typed fields into checked enums.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Result, invalid};

/// A diffusers scheduler config. Field names and defaults follow diffusers; fields whose
/// default differs between diffusers scheduler classes are `Option`s resolved per scheduler
/// (e.g. `timestep_spacing` is `leading` for DDIM/DDPM and `linspace` for the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Number of diffusion steps the model was trained with.
    pub num_train_timesteps: usize,
    /// First beta of the `linear`/`scaled_linear` schedules.
    pub beta_start: f64,
    /// Last beta of the `linear`/`scaled_linear` schedules.
    pub beta_end: f64,
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: String,
    /// Explicit betas; overrides `beta_schedule` when present.
    pub trained_betas: Option<Vec<f64>>,
    /// `epsilon`, `v_prediction`, `sample` (flow models always predict velocity).
    pub prediction_type: String,
    /// `leading`, `trailing` or `linspace`; `None` means the scheduler's diffusers default.
    pub timestep_spacing: Option<String>,
    /// Offset added to `leading` timesteps.
    pub steps_offset: usize,
    /// DDIM: whether the final "previous" alpha product is 1 (else `alphas_cumprod[0]`).
    pub set_alpha_to_one: bool,
    /// Clamp the predicted original sample; `None` means the scheduler's default
    /// (true for DDIM/DDPM, false for Heun).
    pub clip_sample: Option<bool>,
    /// Clamp range for `clip_sample`.
    pub clip_sample_range: f64,
    /// Dynamic thresholding (not supported: must be false).
    pub thresholding: bool,
    /// Rescale betas to zero terminal SNR.
    pub rescale_betas_zero_snr: bool,
    /// DDPM variance: `fixed_small` (default), `fixed_small_log`, `fixed_large`.
    pub variance_type: Option<String>,
    /// Use the Karras et al. sigma schedule.
    pub use_karras_sigmas: bool,
    /// Not supported: must be false.
    pub use_exponential_sigmas: bool,
    /// Not supported: must be false.
    pub use_beta_sigmas: bool,
    /// Not supported: must be false.
    pub use_lu_lambdas: bool,
    /// Not supported: must be false.
    pub use_flow_sigmas: bool,
    /// Karras: override of the smallest sigma.
    pub sigma_min: Option<f64>,
    /// Karras: override of the largest sigma.
    pub sigma_max: Option<f64>,
    /// Last sigma: `zero` (default) or `sigma_min`.
    pub final_sigmas_type: Option<String>,
    /// Euler sigma interpolation: only `linear` is supported.
    pub interpolation_type: String,
    /// Euler timestep type: only `discrete` is supported.
    pub timestep_type: String,
    /// Order of the multistep solvers (UniPC; DPM++ 2M always uses 2).
    pub solver_order: usize,
    /// DPM-Solver algorithm (fresco's DPM++ kinds always use `dpmsolver++`).
    pub algorithm_type: String,
    /// DPM-Solver: `midpoint`/`heun`; UniPC: `bh1`/`bh2`. `None`: the scheduler default.
    pub solver_type: Option<String>,
    /// Use lower-order steps at the end of multistep sampling.
    pub lower_order_final: bool,
    /// DPM-Solver: use a first-order step at the end.
    pub euler_at_final: bool,
    /// DPM-Solver: clip lambda(t) below this value (Python writes `-Infinity`).
    #[serde(deserialize_with = "de_f64_or_token")]
    pub lambda_min_clipped: f64,
    /// UniPC: predict x0 (data prediction). Only `true` is supported.
    pub predict_x0: bool,
    /// UniPC: step indices where the corrector is skipped.
    pub disable_corrector: Vec<usize>,
    /// Flow matching: fixed shift (SD3 uses 3.0).
    pub shift: f64,
    /// Flow matching: resolution-dependent shift with `mu` (FLUX).
    pub use_dynamic_shifting: bool,
    /// Flow matching: shift at `base_image_seq_len`.
    pub base_shift: f64,
    /// Flow matching: shift at `max_image_seq_len`.
    pub max_shift: f64,
    /// Flow matching: sequence length of `base_shift`.
    pub base_image_seq_len: usize,
    /// Flow matching: sequence length of `max_shift`.
    pub max_image_seq_len: usize,
    /// Flow matching dynamic shift function: `exponential` or `linear`.
    pub time_shift_type: String,
    /// Flow matching: stretch the shifted schedule so it ends at this value.
    pub shift_terminal: Option<f64>,
    /// Flow matching: not supported, must be false.
    pub invert_sigmas: bool,
    /// Flow matching: re-noise at each step instead of an ODE step.
    pub stochastic_sampling: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: "linear".into(),
            trained_betas: None,
            prediction_type: "epsilon".into(),
            timestep_spacing: None,
            steps_offset: 0,
            set_alpha_to_one: true,
            clip_sample: None,
            clip_sample_range: 1.0,
            thresholding: false,
            rescale_betas_zero_snr: false,
            variance_type: None,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            use_lu_lambdas: false,
            use_flow_sigmas: false,
            sigma_min: None,
            sigma_max: None,
            final_sigmas_type: None,
            interpolation_type: "linear".into(),
            timestep_type: "discrete".into(),
            solver_order: 2,
            algorithm_type: "dpmsolver++".into(),
            solver_type: None,
            lower_order_final: true,
            euler_at_final: false,
            lambda_min_clipped: f64::NEG_INFINITY,
            predict_x0: true,
            disable_corrector: Vec::new(),
            shift: 1.0,
            use_dynamic_shifting: false,
            base_shift: 0.5,
            max_shift: 1.15,
            base_image_seq_len: 256,
            max_image_seq_len: 4096,
            time_shift_type: "exponential".into(),
            shift_terminal: None,
            invert_sigmas: false,
            stochastic_sampling: false,
        }
    }
}

/// What diffusers' `set_timesteps` gets besides the step count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SetTimestepsOptions {
    /// Flow matching with `use_dynamic_shifting` (FLUX): the shift exponent `mu`
    /// (see [`SchedulerConfig::calculate_shift`]). Required there, ignored elsewhere.
    pub mu: Option<f64>,
    /// DDIM: the `eta` of the DDIM paper (0 = deterministic). Ignored elsewhere.
    pub eta: f64,
}

impl SchedulerConfig {
    /// Parses a diffusers `scheduler_config.json` (tolerating Python's `Infinity`,
    /// `-Infinity` and `NaN` tokens; unknown fields such as `_class_name` are ignored).
    pub fn from_json_str(text: &str) -> Result<Self> {
        Ok(serde_json::from_value(python_json_to_value(text)?)?)
    }

    /// FLUX's `calculate_shift`: `mu` for an image of `image_seq_len` latent tokens,
    /// linear between (`base_image_seq_len`, `base_shift`) and (`max_image_seq_len`, `max_shift`).
    pub fn calculate_shift(&self, image_seq_len: usize) -> f64 {
        let base = self.base_image_seq_len as f64;
        let max = self.max_image_seq_len as f64;
        let m = (self.max_shift - self.base_shift) / (max - base);
        let b = self.base_shift - m * base;
        image_seq_len as f64 * m + b
    }
}

/// Parses JSON written by Python's `json` module, which may contain the bare tokens
/// `Infinity`, `-Infinity` and `NaN`; they become the strings `"Infinity"`, `"-Infinity"`
/// and `"NaN"` (fields that accept them read those strings back as floats).
pub fn python_json_to_value(text: &str) -> Result<serde_json::Value> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            rest = &rest[1..];
            continue;
        }
        let mut matched = false;
        for token in ["-Infinity", "Infinity", "NaN"] {
            if let Some(after) = rest.strip_prefix(token) {
                out.push('"');
                out.push_str(token);
                out.push('"');
                rest = after;
                matched = true;
                break;
            }
        }
        if !matched {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Ok(serde_json::from_str(&out)?)
}

fn de_f64_or_token<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrToken {
        Num(f64),
        Token(String),
        Null(()),
    }
    match NumOrToken::deserialize(d)? {
        NumOrToken::Num(v) => Ok(v),
        NumOrToken::Null(()) => Ok(f64::NEG_INFINITY),
        NumOrToken::Token(s) => match s.as_str() {
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "NaN" | "nan" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!(
                "expected a number, got `{other}`"
            ))),
        },
    }
}

/// The checked form of `beta_schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetaSchedule {
    /// `linear`
    Linear,
    /// `scaled_linear`
    ScaledLinear,
    /// `squaredcos_cap_v2`
    SquaredCosCapV2,
}

/// The checked form of `prediction_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionType {
    /// The model predicts the noise.
    Epsilon,
    /// The model predicts v = alpha * eps - sigma * x0.
    VPrediction,
    /// The model predicts the clean sample.
    Sample,
}

/// The checked form of `timestep_spacing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// `leading`
    Leading,
    /// `trailing`
    Trailing,
    /// `linspace`
    Linspace,
}

/// The checked form of `final_sigmas_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSigmas {
    /// The schedule ends at sigma 0.
    Zero,
    /// The schedule ends at the training schedule's smallest sigma.
    SigmaMin,
}

impl SchedulerConfig {
    pub(crate) fn beta_schedule_kind(&self) -> Result<BetaSchedule> {
        match self.beta_schedule.as_str() {
            "linear" => Ok(BetaSchedule::Linear),
            "scaled_linear" => Ok(BetaSchedule::ScaledLinear),
            "squaredcos_cap_v2" => Ok(BetaSchedule::SquaredCosCapV2),
            other => Err(invalid(
                "beta_schedule",
                format!("must be linear, scaled_linear or squaredcos_cap_v2 (got `{other}`)"),
            )),
        }
    }

    pub(crate) fn prediction(&self) -> Result<PredictionType> {
        match self.prediction_type.as_str() {
            "epsilon" => Ok(PredictionType::Epsilon),
            "v_prediction" => Ok(PredictionType::VPrediction),
            "sample" => Ok(PredictionType::Sample),
            other => Err(invalid(
                "prediction_type",
                format!("must be epsilon, v_prediction or sample (got `{other}`)"),
            )),
        }
    }

    pub(crate) fn spacing(&self, default: TimestepSpacing) -> Result<TimestepSpacing> {
        match self.timestep_spacing.as_deref() {
            None => Ok(default),
            Some("leading") => Ok(TimestepSpacing::Leading),
            Some("trailing") => Ok(TimestepSpacing::Trailing),
            Some("linspace") => Ok(TimestepSpacing::Linspace),
            Some(other) => Err(invalid(
                "timestep_spacing",
                format!("must be leading, trailing or linspace (got `{other}`)"),
            )),
        }
    }

    pub(crate) fn final_sigmas(&self) -> Result<FinalSigmas> {
        match self.final_sigmas_type.as_deref() {
            None | Some("zero") => Ok(FinalSigmas::Zero),
            Some("sigma_min") => Ok(FinalSigmas::SigmaMin),
            Some(other) => Err(invalid(
                "final_sigmas_type",
                format!("must be zero or sigma_min (got `{other}`)"),
            )),
        }
    }

    /// Rules shared by every scheduler, checked before building one.
    pub(crate) fn validate_common(&self, num_inference_steps: usize) -> Result<()> {
        if self.num_train_timesteps < 2 {
            return Err(invalid("num_train_timesteps", "must be at least 2"));
        }
        if num_inference_steps == 0 || num_inference_steps > self.num_train_timesteps {
            return Err(invalid(
                "num_inference_steps",
                format!(
                    "must be between 1 and num_train_timesteps ({}), got {num_inference_steps}",
                    self.num_train_timesteps
                ),
            ));
        }
        if self.thresholding {
            return Err(invalid("thresholding", "must be false (not supported)"));
        }
        for (field, on) in [
            ("use_exponential_sigmas", self.use_exponential_sigmas),
            ("use_beta_sigmas", self.use_beta_sigmas),
            ("use_lu_lambdas", self.use_lu_lambdas),
            ("use_flow_sigmas", self.use_flow_sigmas),
        ] {
            if on {
                return Err(invalid(field, "must be false (not supported)"));
            }
        }
        if let Some(v) = self.sigma_min
            && !(v.is_finite() && v > 0.0)
        {
            return Err(invalid("sigma_min", "must be a positive finite number"));
        }
        if let Some(v) = self.sigma_max
            && !(v.is_finite() && v > 0.0)
        {
            return Err(invalid("sigma_max", "must be a positive finite number"));
        }
        if !(self.clip_sample_range.is_finite() && self.clip_sample_range > 0.0) {
            return Err(invalid(
                "clip_sample_range",
                "must be a positive finite number",
            ));
        }
        Ok(())
    }
}
