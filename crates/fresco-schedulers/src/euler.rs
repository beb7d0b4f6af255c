//! Euler (`EulerDiscreteScheduler`, Karras et al. Algorithm 2 without churn), optionally
//! with Karras sigmas. Owns the Karras-style sigma schedule and the sigma-based x0
//! recovery shared by [`crate::euler_ancestral`] and [`crate::heun`].

use candle_core::Tensor;

use crate::config::{FinalSigmas, PredictionType, SchedulerConfig, TimestepSpacing};
use crate::error::{Result, invalid};
use crate::ops::{lin2, same_shape, scale, step_inputs};
use crate::schedule;
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

/// Timesteps and sigmas (one longer, ending at the final sigma) of the Euler family.
#[derive(Debug, Clone)]
pub(crate) struct KarrasSchedule {
    pub timesteps: Vec<f64>,
    pub sigmas: Vec<f64>,
    pub init_noise_sigma: f64,
}

/// diffusers' Euler/Heun `set_timesteps`: spaced float timesteps, sigmas interpolated at
/// them (or a Karras ramp with timesteps recovered from it), then the final sigma.
pub(crate) fn karras_schedule(
    config: &SchedulerConfig,
    num_inference_steps: usize,
    use_karras: bool,
    final_sigmas: FinalSigmas,
) -> Result<KarrasSchedule> {
    if config.interpolation_type != "linear" {
        return Err(invalid(
            "interpolation_type",
            format!("must be linear (got `{}`)", config.interpolation_type),
        ));
    }
    if config.timestep_type != "discrete" {
        return Err(invalid(
            "timestep_type",
            format!("must be discrete (got `{}`)", config.timestep_type),
        ));
    }
    let acp = schedule::alphas_cumprod_for_sigmas(config)?;
    let train_sigmas = schedule::sigmas_from_alphas_cumprod(&acp);
    let spacing = config.spacing(TimestepSpacing::Linspace)?;
    let mut timesteps = schedule::float_timesteps(
        spacing,
        config.num_train_timesteps,
        num_inference_steps,
        config.steps_offset,
    );
    let mut sigmas: Vec<f64> = timesteps
        .iter()
        .map(|&t| schedule::interp_index(t, &train_sigmas))
        .collect();
    if use_karras {
        let (Some(&first), Some(&last)) = (sigmas.first(), sigmas.last()) else {
            return Err(invalid("num_inference_steps", "must be at least 1"));
        };
        let sigma_min = config.sigma_min.unwrap_or(last);
        let sigma_max = config.sigma_max.unwrap_or(first);
        sigmas = schedule::karras_sigmas(sigma_min, sigma_max, num_inference_steps);
        let log_sigmas: Vec<f64> = train_sigmas.iter().map(|s| s.ln()).collect();
        timesteps = sigmas
            .iter()
            .map(|&s| schedule::sigma_to_t(s, &log_sigmas))
            .collect();
    }
    let last = match final_sigmas {
        FinalSigmas::Zero => 0.0,
        FinalSigmas::SigmaMin => train_sigmas[0],
    };
    sigmas.push(last);
    let max_sigma = sigmas.iter().copied().fold(0.0, f64::max);
    let init_noise_sigma = match spacing {
        TimestepSpacing::Linspace | TimestepSpacing::Trailing => max_sigma,
        TimestepSpacing::Leading => (max_sigma * max_sigma + 1.0).sqrt(),
    };
    Ok(KarrasSchedule {
        timesteps,
        sigmas,
        init_noise_sigma,
    })
}

/// The x0 prediction of the Euler family at noise level `sigma`.
pub(crate) fn sigma_x0(
    prediction: PredictionType,
    sample: &Tensor,
    model_output: &Tensor,
    sigma: f64,
) -> Result<Tensor> {
    match prediction {
        PredictionType::Epsilon => lin2(sample, 1.0, model_output, -sigma),
        PredictionType::VPrediction => {
            let s2 = sigma * sigma + 1.0;
            lin2(model_output, -sigma / s2.sqrt(), sample, 1.0 / s2)
        }
        PredictionType::Sample => Ok(model_output.clone()),
    }
}

/// `sample / sqrt(sigma^2 + 1)`.
pub(crate) fn scale_by_sigma(sample: &Tensor, sigma: f64) -> Result<Tensor> {
    scale(sample, 1.0 / (sigma * sigma + 1.0).sqrt())
}

/// diffusers' `EulerDiscreteScheduler` with its timesteps set.
#[derive(Debug, Clone)]
pub struct Euler {
    schedule: KarrasSchedule,
    prediction: PredictionType,
}

impl Euler {
    /// Builds the scheduler for `num_inference_steps` steps.
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        Ok(Self {
            schedule: karras_schedule(
                config,
                num_inference_steps,
                config.use_karras_sigmas,
                config.final_sigmas()?,
            )?,
            prediction: config.prediction()?,
        })
    }
}

impl Scheduler for Euler {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Euler
    }

    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    fn sigmas(&self) -> Option<&[f64]> {
        Some(&self.schedule.sigmas)
    }

    fn init_noise_sigma(&self) -> f64 {
        self.schedule.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.schedule.timesteps.len())?;
        scale_by_sigma(sample, self.schedule.sigmas[step_index])
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        _noise: Option<&mut dyn NoiseSource>,
    ) -> Result<Tensor> {
        check_index(step_index, self.schedule.timesteps.len())?;
        let (x, out, dtype) = step_inputs(model_output, sample)?;
        let sigma = self.schedule.sigmas[step_index];
        let sigma_next = self.schedule.sigmas[step_index + 1];
        let x0 = sigma_x0(self.prediction, &x, &out, sigma)?;
        let derivative = scale(&(&x - &x0)?, 1.0 / sigma)?;
        let prev = lin2(&x, 1.0, &derivative, sigma_next - sigma)?;
        Ok(prev.to_dtype(dtype)?)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.schedule.timesteps.len())?;
        same_shape(original, noise, "original vs noise")?;
        lin2(original, 1.0, noise, self.schedule.sigmas[step_index])
    }
}
