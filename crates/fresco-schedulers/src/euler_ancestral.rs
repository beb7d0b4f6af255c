//! Euler ancestral (`EulerAncestralDiscreteScheduler`): an Euler step down to `sigma_down`
//! followed by fresh noise of scale `sigma_up`; needs an RNG at every step.

use candle_core::Tensor;

use crate::config::{FinalSigmas, PredictionType, SchedulerConfig};
use crate::error::{Error, Result};
use crate::euler::{KarrasSchedule, karras_schedule, scale_by_sigma, sigma_x0};
use crate::ops::{lin2, same_shape, scale, to_work};
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

/// diffusers' `EulerAncestralDiscreteScheduler` with its timesteps set.
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    schedule: KarrasSchedule,
    prediction: PredictionType,
}

impl EulerAncestral {
    /// Builds the scheduler for `num_inference_steps` steps (diffusers' Euler ancestral
    /// has no Karras sigmas and always ends at sigma 0).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        Ok(Self {
            schedule: karras_schedule(config, num_inference_steps, false, FinalSigmas::Zero)?,
            prediction: config.prediction()?,
        })
    }
}

impl Scheduler for EulerAncestral {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::EulerAncestral
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
        noise: Option<&mut dyn NoiseSource>,
    ) -> Result<Tensor> {
        check_index(step_index, self.schedule.timesteps.len())?;
        same_shape(model_output, sample, "model output vs sample")?;
        let noise_source = noise.ok_or(Error::RngRequired {
            scheduler: "euler_a",
        })?;
        let dtype = sample.dtype();
        let x = to_work(sample, dtype)?;
        let out = to_work(model_output, dtype)?;
        let sigma_from = self.schedule.sigmas[step_index];
        let sigma_to = self.schedule.sigmas[step_index + 1];
        let x0 = sigma_x0(self.prediction, &x, &out, sigma_from)?;
        let sigma_up = (sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to)
            / (sigma_from * sigma_from))
            .sqrt();
        let sigma_down = (sigma_to * sigma_to - sigma_up * sigma_up).sqrt();
        let derivative = scale(&(&x - &x0)?, 1.0 / sigma_from)?;
        let prev = lin2(&x, 1.0, &derivative, sigma_down - sigma_from)?;
        let noise = noise_source.draw(&prev)?;
        let prev = lin2(&prev, 1.0, &noise, sigma_up)?;
        Ok(prev.to_dtype(dtype)?)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.schedule.timesteps.len())?;
        same_shape(original, noise, "original vs noise")?;
        lin2(original, 1.0, noise, self.schedule.sigmas[step_index])
    }
}
