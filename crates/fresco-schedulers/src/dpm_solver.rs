//! DPM-Solver++ 2M (`DPMSolverMultistepScheduler` with `algorithm_type = "dpmsolver++"`,
//! `solver_order = 2`, `midpoint` or `heun` second-order update), with or without Karras
//! sigmas. The struct keeps the previous data prediction between steps.

use candle_core::Tensor;

use crate::config::{PredictionType, SchedulerConfig};
use crate::error::{Result, invalid};
use crate::multistep::{History, MultistepSchedule, data_prediction, multistep_schedule};
use crate::ops::{lin2, same_shape, scale, step_inputs};
use crate::schedule::{vp_alpha_sigma, vp_lambda};
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

/// The second-order update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    /// diffusers' default.
    Midpoint,
    /// Heun-style correction of the first-order term.
    Heun,
}

const ORDER: usize = 2;

/// diffusers' `DPMSolverMultistepScheduler` (DPM++ 2M) with its timesteps set.
#[derive(Debug, Clone)]
pub struct DpmSolverMultistep {
    schedule: MultistepSchedule,
    prediction: PredictionType,
    solver_type: SolverType,
    lower_order_final: bool,
    euler_at_final: bool,
    final_sigma_zero: bool,
    karras: bool,
    history: History,
}

impl DpmSolverMultistep {
    /// Builds DPM++ 2M for `num_inference_steps` steps; `karras` selects Karras sigmas
    /// (overriding the config's `use_karras_sigmas`). The config's `algorithm_type` and
    /// `solver_order` are not consulted: this is always dpmsolver++ of order 2.
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize, karras: bool) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        let solver_type = match config.solver_type.as_deref() {
            None | Some("midpoint") => SolverType::Midpoint,
            Some("heun") => SolverType::Heun,
            Some(other) => {
                return Err(invalid(
                    "solver_type",
                    format!("must be midpoint or heun for DPM-Solver (got `{other}`)"),
                ));
            }
        };
        Ok(Self {
            schedule: multistep_schedule(config, num_inference_steps, karras)?,
            prediction: config.prediction()?,
            solver_type,
            lower_order_final: config.lower_order_final,
            euler_at_final: config.euler_at_final,
            final_sigma_zero: config.final_sigmas()? == crate::config::FinalSigmas::Zero,
            karras,
            history: History::default(),
        })
    }
}

impl Scheduler for DpmSolverMultistep {
    fn kind(&self) -> SchedulerKind {
        if self.karras {
            SchedulerKind::DpmPp2mKarras
        } else {
            SchedulerKind::DpmPp2m
        }
    }

    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    fn sigmas(&self) -> Option<&[f64]> {
        Some(&self.schedule.sigmas)
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.schedule.timesteps.len())?;
        Ok(sample.clone())
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        _noise: Option<&mut dyn NoiseSource>,
    ) -> Result<Tensor> {
        let len = self.schedule.timesteps.len();
        check_index(step_index, len)?;
        self.history.check("dpm_solver", step_index)?;
        let (x, out, dtype) = step_inputs(model_output, sample)?;
        let sigmas = &self.schedule.sigmas;

        let lower_order_final = step_index == len - 1
            && (self.euler_at_final
                || (self.lower_order_final && len < 15)
                || self.final_sigma_zero);
        let x0 = data_prediction(self.prediction, &x, &out, sigmas[step_index])?;
        self.history.push(x0, ORDER);

        let (alpha_t, sigma_t) = vp_alpha_sigma(sigmas[step_index + 1]);
        let (_, sigma_s0) = vp_alpha_sigma(sigmas[step_index]);
        let lambda_t = vp_lambda(sigmas[step_index + 1]);
        let lambda_s0 = vp_lambda(sigmas[step_index]);
        let h = lambda_t - lambda_s0;
        // exp(-h) - 1, which is -1 when the target sigma is 0 (h = +inf).
        let phi = (-h).exp_m1();
        let m0 = self.history.back(0)?;
        let prev = if self.history.lower_order_nums < 1 || lower_order_final {
            lin2(&x, sigma_t / sigma_s0, m0, -alpha_t * phi)?
        } else {
            let m1 = self.history.back(1)?;
            let lambda_s1 = vp_lambda(sigmas[step_index - 1]);
            let r0 = (lambda_s0 - lambda_s1) / h;
            let d1 = scale(&(m0 - m1)?, 1.0 / r0)?;
            let first = lin2(&x, sigma_t / sigma_s0, m0, -alpha_t * phi)?;
            match self.solver_type {
                SolverType::Midpoint => lin2(&first, 1.0, &d1, -0.5 * alpha_t * phi)?,
                SolverType::Heun => lin2(&first, 1.0, &d1, alpha_t * (phi / h + 1.0))?,
            }
        };
        if self.history.lower_order_nums < ORDER {
            self.history.lower_order_nums += 1;
        }
        self.history.next_index += 1;
        Ok(prev.to_dtype(dtype)?)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_index(step_index, self.schedule.timesteps.len())?;
        same_shape(original, noise, "original vs noise")?;
        let (alpha, sigma) = vp_alpha_sigma(self.schedule.sigmas[step_index]);
        lin2(original, alpha, noise, sigma)
    }

    fn reset(&mut self) {
        self.history.reset();
    }
}
