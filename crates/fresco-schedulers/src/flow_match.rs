//! Flow-matching Euler (`FlowMatchEulerDiscreteScheduler`): the model predicts the
//! velocity `noise - x0`, sigmas fall from 1 to 0 with a fixed shift (SD3) or a dynamic,
//! resolution dependent shift `mu` (FLUX), and a step is `x + (sigma_next - sigma) * v`.
//! The timestep passed to the model is `sigma * num_train_timesteps`.

use candle_core::Tensor;

use crate::config::SchedulerConfig;
use crate::error::{Error, Result, invalid};
use crate::ops::{lin2, same_shape, step_inputs};
use crate::schedule;
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

/// diffusers' `FlowMatchEulerDiscreteScheduler` with its timesteps set.
#[derive(Debug, Clone)]
pub struct FlowMatchEuler {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    stochastic: bool,
}

impl FlowMatchEuler {
    /// Builds the scheduler for `num_inference_steps` steps. `mu` is required (and only
    /// used) when the config has `use_dynamic_shifting`.
    pub fn new(
        config: &SchedulerConfig,
        num_inference_steps: usize,
        mu: Option<f64>,
    ) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        if config.use_karras_sigmas {
            return Err(invalid(
                "use_karras_sigmas",
                "must be false for flow matching (not supported)",
            ));
        }
        if config.invert_sigmas {
            return Err(invalid("invert_sigmas", "must be false (not supported)"));
        }
        if !(config.shift.is_finite() && config.shift > 0.0) {
            return Err(invalid(
                "shift",
                format!("must be a positive finite number, got {}", config.shift),
            ));
        }
        let exponential = match config.time_shift_type.as_str() {
            "exponential" => true,
            "linear" => false,
            other => {
                return Err(invalid(
                    "time_shift_type",
                    format!("must be exponential or linear (got `{other}`)"),
                ));
            }
        };
        let mu = if config.use_dynamic_shifting {
            match mu {
                Some(m) if m.is_finite() => Some(m),
                Some(m) => return Err(invalid("mu", format!("must be finite, got {m}"))),
                None => {
                    return Err(invalid(
                        "mu",
                        "is required when use_dynamic_shifting is true",
                    ));
                }
            }
        } else {
            None
        };
        let n_train = config.num_train_timesteps as f64;
        // Training sigmas run from 1 down to 1/N, statically shifted unless dynamic.
        let train_edge = |s: f64| {
            if config.use_dynamic_shifting {
                s
            } else {
                schedule::static_shift(config.shift, s)
            }
        };
        let sigma_max = train_edge(1.0);
        let sigma_min = train_edge(1.0 / n_train);
        let mut sigmas: Vec<f64> = schedule::linspace(
            sigma_max * n_train,
            sigma_min * n_train,
            num_inference_steps,
        )
        .into_iter()
        .map(|t| t / n_train)
        .map(|s| match mu {
            Some(mu) => schedule::time_shift(exponential, mu, s),
            None => schedule::static_shift(config.shift, s),
        })
        .collect();
        if let Some(terminal) = config.shift_terminal {
            if !(terminal.is_finite() && terminal > 0.0 && terminal < 1.0) {
                return Err(invalid("shift_terminal", "must be in (0, 1)"));
            }
            // diffusers' stretch_shift_to_terminal.
            if let Some(&last) = sigmas.last() {
                let one_minus_last = 1.0 - last;
                let scale = one_minus_last / (1.0 - terminal);
                for s in &mut sigmas {
                    *s = 1.0 - (1.0 - *s) / scale;
                }
            }
        }
        let timesteps = sigmas.iter().map(|s| s * n_train).collect();
        sigmas.push(0.0);
        Ok(Self {
            timesteps,
            sigmas,
            stochastic: config.stochastic_sampling,
        })
    }
}

impl Scheduler for FlowMatchEuler {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::FlowEuler
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> Option<&[f64]> {
        Some(&self.sigmas)
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
        let (x, v, dtype) = step_inputs(model_output, sample)?;
        let sigma = self.sigmas[step_index];
        let sigma_next = self.sigmas[step_index + 1];
        let prev = if self.stochastic {
            let noise_source = noise.ok_or(Error::RngRequired {
                scheduler: "flow_euler",
            })?;
            let x0 = lin2(&x, 1.0, &v, -sigma)?;
            let noise = noise_source.draw(&x0)?;
            lin2(&x0, 1.0 - sigma_next, &noise, sigma_next)?
        } else {
            lin2(&x, 1.0, &v, sigma_next - sigma)?
        };
        Ok(prev.to_dtype(dtype)?)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.timesteps.len())?;
        same_shape(original, noise, "original vs noise")?;
        let sigma = self.sigmas[step_index];
        lin2(original, 1.0 - sigma, noise, sigma)
    }
}
