//! DDPM (`DDPMScheduler`): ancestral sampling of Ho et al. with the `fixed_small`,
//! `fixed_small_log` and `fixed_large` variances. Every step but the last adds noise, so
//! it needs an RNG.

use candle_core::Tensor;

use crate::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use crate::ddim::x0_and_eps;
use crate::error::{Error, Result, invalid};
use crate::ops::{clamp, lin2, same_shape, scale, step_inputs};
use crate::schedule;
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

/// DDPM's variance choices supported by fresco.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarianceType {
    /// The posterior variance (diffusers' default).
    FixedSmall,
    /// The posterior variance, through a log (same values, diffusers' formula).
    FixedSmallLog,
    /// The step's beta.
    FixedLarge,
}

/// diffusers' `DDPMScheduler` with its timesteps set.
#[derive(Debug, Clone)]
pub struct Ddpm {
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<f64>,
    prediction: PredictionType,
    clip_sample: Option<f64>,
    variance: VarianceType,
}

impl Ddpm {
    /// Builds the scheduler for `num_inference_steps` steps.
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        let alphas_cumprod = schedule::alphas_cumprod(config)?;
        let n_train = config.num_train_timesteps;
        let spacing = config.spacing(TimestepSpacing::Leading)?;
        let timesteps = schedule::discrete_timesteps(
            spacing,
            n_train,
            num_inference_steps,
            config.steps_offset,
        );
        if timesteps.iter().any(|&t| t < 0.0 || t >= n_train as f64) {
            return Err(invalid(
                "steps_offset",
                format!("puts a timestep outside 0..{n_train}"),
            ));
        }
        let variance = match config.variance_type.as_deref() {
            None | Some("fixed_small") => VarianceType::FixedSmall,
            Some("fixed_small_log") => VarianceType::FixedSmallLog,
            Some("fixed_large") => VarianceType::FixedLarge,
            Some(other) => {
                return Err(invalid(
                    "variance_type",
                    format!("must be fixed_small, fixed_small_log or fixed_large (got `{other}`)"),
                ));
            }
        };
        Ok(Self {
            alphas_cumprod,
            timesteps,
            prediction: config.prediction()?,
            clip_sample: config
                .clip_sample
                .unwrap_or(true)
                .then_some(config.clip_sample_range),
            variance,
        })
    }

    /// `(alpha_prod_t, alpha_prod_prev)` at `step_index` (the previous timestep is the next
    /// entry of the schedule, alpha product 1 past the end).
    fn alphas(&self, step_index: usize) -> (f64, f64) {
        let at = |t: f64| self.alphas_cumprod.get(t as usize).copied().unwrap_or(1.0);
        let a_t = at(self.timesteps[step_index]);
        let a_prev = self.timesteps.get(step_index + 1).map_or(1.0, |&t| at(t));
        (a_t, a_prev)
    }
}

impl Scheduler for Ddpm {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ddpm
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        Ok(sample.clone())
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        noise: Option<&mut dyn NoiseSource>,
    ) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        let (x, out, dtype) = step_inputs(model_output, sample)?;
        let (alpha_prod_t, alpha_prod_prev) = self.alphas(step_index);
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_prev = 1.0 - alpha_prod_prev;
        let current_alpha_t = alpha_prod_t / alpha_prod_prev;
        let current_beta_t = 1.0 - current_alpha_t;

        let (mut x0, _) = x0_and_eps(self.prediction, &x, &out, alpha_prod_t)?;
        if let Some(range) = self.clip_sample {
            x0 = clamp(&x0, range)?;
        }
        let x0_coeff = alpha_prod_prev.sqrt() * current_beta_t / beta_prod_t;
        let x_coeff = current_alpha_t.sqrt() * beta_prod_prev / beta_prod_t;
        let mut prev = lin2(&x0, x0_coeff, &x, x_coeff)?;

        if self.timesteps[step_index] > 0.0 {
            let noise_source = noise.ok_or(Error::RngRequired { scheduler: "ddpm" })?;
            let noise = noise_source.draw(&prev)?;
            let small =
                ((1.0 - alpha_prod_prev) / (1.0 - alpha_prod_t) * current_beta_t).max(1e-20);
            let std = match self.variance {
                VarianceType::FixedSmall => small.sqrt(),
                VarianceType::FixedSmallLog => (0.5 * small.ln()).exp(),
                VarianceType::FixedLarge => current_beta_t.sqrt(),
            };
            prev = (prev + scale(&noise, std)?)?;
        }
        Ok(prev.to_dtype(dtype)?)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        same_shape(original, noise, "original vs noise")?;
        let (a, _) = self.alphas(step_index);
        lin2(original, a.sqrt(), noise, (1.0 - a).sqrt())
    }
}
