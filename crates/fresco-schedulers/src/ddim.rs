//! DDIM (`DDIMScheduler`): deterministic for `eta = 0`, stochastic with seeded noise for
//! `eta > 0`. Owns the alpha-product based x0/epsilon recovery shared with [`crate::ddpm`].

use candle_core::Tensor;

use crate::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use crate::error::{Error, Result, invalid};
use crate::ops::{clamp, lin2, same_shape, scale, step_inputs};
use crate::schedule;
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

/// diffusers' `DDIMScheduler` with its timesteps set.
#[derive(Debug, Clone)]
pub struct Ddim {
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    timesteps: Vec<f64>,
    step_ratio: usize,
    prediction: PredictionType,
    clip_sample: Option<f64>,
    eta: f64,
}

/// Recovers `(x0, epsilon)` from a model output at alpha product `alpha_prod_t`.
pub(crate) fn x0_and_eps(
    prediction: PredictionType,
    sample: &Tensor,
    model_output: &Tensor,
    alpha_prod_t: f64,
) -> Result<(Tensor, Tensor)> {
    let beta_prod_t = 1.0 - alpha_prod_t;
    let (sa, sb) = (alpha_prod_t.sqrt(), beta_prod_t.sqrt());
    Ok(match prediction {
        PredictionType::Epsilon => (
            lin2(sample, 1.0 / sa, model_output, -sb / sa)?,
            model_output.clone(),
        ),
        PredictionType::Sample => (
            model_output.clone(),
            lin2(sample, 1.0 / sb, model_output, -sa / sb)?,
        ),
        PredictionType::VPrediction => (
            lin2(sample, sa, model_output, -sb)?,
            lin2(model_output, sa, sample, sb)?,
        ),
    })
}

impl Ddim {
    /// Builds the scheduler for `num_inference_steps` steps with the given `eta`.
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize, eta: f64) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(invalid(
                "eta",
                format!("must be a finite number >= 0, got {eta}"),
            ));
        }
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
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ok(Self {
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps,
            step_ratio: n_train / num_inference_steps,
            prediction: config.prediction()?,
            clip_sample: config
                .clip_sample
                .unwrap_or(true)
                .then_some(config.clip_sample_range),
            eta,
        })
    }

    fn alpha_at(&self, t: i64) -> f64 {
        usize::try_from(t)
            .ok()
            .and_then(|i| self.alphas_cumprod.get(i).copied())
            .unwrap_or(self.final_alpha_cumprod)
    }
}

impl Scheduler for Ddim {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ddim
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
        let t = self.timesteps[step_index] as i64;
        let prev_t = t - self.step_ratio as i64;
        let alpha_prod_t = self.alpha_at(t);
        let alpha_prod_prev = if prev_t >= 0 {
            self.alpha_at(prev_t)
        } else {
            self.final_alpha_cumprod
        };
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_prev = 1.0 - alpha_prod_prev;

        // As diffusers' default (`use_clipped_model_output = False`), epsilon is not
        // recomputed from a clipped x0.
        let (mut x0, eps) = x0_and_eps(self.prediction, &x, &out, alpha_prod_t)?;
        if let Some(range) = self.clip_sample {
            x0 = clamp(&x0, range)?;
        }
        let variance = (beta_prod_prev / beta_prod_t) * (1.0 - alpha_prod_t / alpha_prod_prev);
        let std_dev_t = self.eta * variance.sqrt();
        let dir_coeff = (1.0 - alpha_prod_prev - std_dev_t * std_dev_t).sqrt();
        let mut prev = lin2(&x0, alpha_prod_prev.sqrt(), &eps, dir_coeff)?;
        if self.eta > 0.0 {
            let noise_source = noise.ok_or(Error::RngRequired { scheduler: "ddim" })?;
            let noise = noise_source.draw(&prev)?;
            prev = (prev + scale(&noise, std_dev_t)?)?;
        }
        Ok(prev.to_dtype(dtype)?)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        same_shape(original, noise, "original vs noise")?;
        let a = self.alpha_at(self.timesteps[step_index] as i64);
        lin2(original, a.sqrt(), noise, (1.0 - a).sqrt())
    }
}
