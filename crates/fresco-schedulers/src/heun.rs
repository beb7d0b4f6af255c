//! Heun (`HeunDiscreteScheduler`, Karras et al. Algorithm 1 without churn): a second-order
//! method that evaluates the model twice per step. Its schedule repeats every timestep but
//! the first, as diffusers does, and the struct carries the first-order half-step state.

use candle_core::Tensor;

use crate::config::{FinalSigmas, PredictionType, SchedulerConfig};
use crate::error::{Error, Result};
use crate::euler::{karras_schedule, scale_by_sigma, sigma_x0};
use crate::ops::{clamp, lin2, same_shape, scale, step_inputs};
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

#[derive(Debug, Clone)]
struct FirstOrderState {
    derivative: Tensor,
    dt: f64,
    sample: Tensor,
}

/// diffusers' `HeunDiscreteScheduler` with its timesteps set.
#[derive(Debug, Clone)]
pub struct Heun {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    init_noise_sigma: f64,
    prediction: PredictionType,
    clip_sample: Option<f64>,
    state: Option<FirstOrderState>,
    next_index: usize,
}

impl Heun {
    /// Builds the scheduler for `num_inference_steps` solver steps
    /// (`2 * num_inference_steps - 1` model evaluations).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        let s = karras_schedule(
            config,
            num_inference_steps,
            config.use_karras_sigmas,
            FinalSigmas::Zero,
        )?;
        let n = s.sigmas.len();
        let mut sigmas = Vec::with_capacity(2 * n);
        sigmas.push(s.sigmas[0]);
        for &sig in &s.sigmas[1..n - 1] {
            sigmas.push(sig);
            sigmas.push(sig);
        }
        sigmas.push(s.sigmas[n - 1]);
        let mut timesteps = Vec::with_capacity(2 * s.timesteps.len());
        timesteps.push(s.timesteps[0]);
        for &t in &s.timesteps[1..] {
            timesteps.push(t);
            timesteps.push(t);
        }
        Ok(Self {
            timesteps,
            sigmas,
            init_noise_sigma: s.init_noise_sigma,
            prediction: config.prediction()?,
            clip_sample: config
                .clip_sample
                .unwrap_or(false)
                .then_some(config.clip_sample_range),
            state: None,
            next_index: 0,
        })
    }
}

impl Scheduler for Heun {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Heun
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> Option<&[f64]> {
        Some(&self.sigmas)
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        scale_by_sigma(sample, self.sigmas[step_index])
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        _noise: Option<&mut dyn NoiseSource>,
    ) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        // A fresh scheduler may start anywhere on a step boundary (img2img); afterwards the
        // indices must follow each other.
        if self.state.is_none() && self.next_index == 0 && step_index.is_multiple_of(2) {
            self.next_index = step_index;
        }
        if step_index != self.next_index {
            return Err(Error::StepOutOfOrder {
                scheduler: "heun",
                expected: self.next_index,
                got: step_index,
            });
        }
        let (x, out, dtype) = step_inputs(model_output, sample)?;
        let prev = match self.state.take() {
            None => {
                let sigma = self.sigmas[step_index];
                let sigma_next = self.sigmas[step_index + 1];
                let mut x0 = sigma_x0(self.prediction, &x, &out, sigma)?;
                if let Some(range) = self.clip_sample {
                    x0 = clamp(&x0, range)?;
                }
                let derivative = scale(&(&x - &x0)?, 1.0 / sigma)?;
                let dt = sigma_next - sigma;
                let prev = lin2(&x, 1.0, &derivative, dt)?;
                self.state = Some(FirstOrderState {
                    derivative,
                    dt,
                    sample: x,
                });
                prev
            }
            Some(first) => {
                let sigma_next = self.sigmas[step_index];
                let mut x0 = sigma_x0(self.prediction, &x, &out, sigma_next)?;
                if let Some(range) = self.clip_sample {
                    x0 = clamp(&x0, range)?;
                }
                let derivative = scale(&(&x - &x0)?, 1.0 / sigma_next)?;
                let derivative = lin2(&first.derivative, 0.5, &derivative, 0.5)?;
                lin2(&first.sample, 1.0, &derivative, first.dt)?
            }
        };
        self.next_index += 1;
        Ok(prev.to_dtype(dtype)?)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        same_shape(original, noise, "original vs noise")?;
        lin2(original, 1.0, noise, self.sigmas[step_index])
    }

    fn order(&self) -> usize {
        2
    }

    fn reset(&mut self) {
        self.state = None;
        self.next_index = 0;
    }
}
