//! State and schedule shared by the multistep solvers [`crate::dpm_solver`] and
//! [`crate::unipc`]: integer timesteps over `n + 1` points, VP sigmas (optionally Karras),
//! the data (x0) prediction, the ring of past converted model outputs, and the rule that
//! steps follow each other (a fresh solver may start at any index, for img2img).

use candle_core::Tensor;

use crate::config::{FinalSigmas, PredictionType, SchedulerConfig, TimestepSpacing};
use crate::error::{Error, Result};
use crate::ops::lin2;
use crate::schedule;

/// Timesteps and sigmas of diffusers' DPM-Solver/UniPC `set_timesteps`.
#[derive(Debug, Clone)]
pub(crate) struct MultistepSchedule {
    pub timesteps: Vec<f64>,
    pub sigmas: Vec<f64>,
}

pub(crate) fn multistep_schedule(
    config: &SchedulerConfig,
    num_inference_steps: usize,
    use_karras: bool,
) -> Result<MultistepSchedule> {
    let acp = schedule::alphas_cumprod_for_sigmas(config)?;
    let n_train = config.num_train_timesteps;
    // lambda_t descends with t; timesteps whose lambda is below the clip are skipped.
    let clipped = acp
        .iter()
        .filter(|&&a| {
            let lambda = 0.5 * a.ln() - 0.5 * (1.0 - a).ln();
            lambda < config.lambda_min_clipped
        })
        .count();
    let last_timestep = n_train - clipped;
    let spacing = config.spacing(TimestepSpacing::Linspace)?;
    let mut timesteps = schedule::multistep_timesteps(
        spacing,
        last_timestep,
        n_train,
        num_inference_steps,
        config.steps_offset,
    );
    let train_sigmas = schedule::sigmas_from_alphas_cumprod(&acp);
    let mut sigmas: Vec<f64>;
    if use_karras {
        let (Some(&min), Some(&max)) = (train_sigmas.first(), train_sigmas.last()) else {
            return Err(Error::InvalidConfig {
                field: "num_train_timesteps",
                rule: "must be at least 2".into(),
            });
        };
        let sigma_min = config.sigma_min.unwrap_or(min);
        let sigma_max = config.sigma_max.unwrap_or(max);
        sigmas = schedule::karras_sigmas(sigma_min, sigma_max, num_inference_steps);
        let log_sigmas: Vec<f64> = train_sigmas.iter().map(|s| s.ln()).collect();
        timesteps = sigmas
            .iter()
            .map(|&s| schedule::sigma_to_t(s, &log_sigmas).round_ties_even())
            .collect();
    } else {
        sigmas = timesteps
            .iter()
            .map(|&t| schedule::interp_index(t, &train_sigmas))
            .collect();
    }
    let last = match config.final_sigmas()? {
        FinalSigmas::Zero => 0.0,
        FinalSigmas::SigmaMin => train_sigmas[0],
    };
    sigmas.push(last);
    Ok(MultistepSchedule { timesteps, sigmas })
}

/// The data prediction x0 of a VP model output at Karras-style `sigma`.
pub(crate) fn data_prediction(
    prediction: PredictionType,
    sample: &Tensor,
    model_output: &Tensor,
    sigma: f64,
) -> Result<Tensor> {
    let (alpha_t, sigma_t) = schedule::vp_alpha_sigma(sigma);
    match prediction {
        PredictionType::Epsilon => lin2(sample, 1.0 / alpha_t, model_output, -sigma_t / alpha_t),
        PredictionType::Sample => Ok(model_output.clone()),
        PredictionType::VPrediction => lin2(sample, alpha_t, model_output, -sigma_t),
    }
}

/// Step bookkeeping: past data predictions (oldest first) and the next expected index.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    pub outputs: Vec<Tensor>,
    pub lower_order_nums: usize,
    pub next_index: usize,
    pub started: bool,
}

impl History {
    /// Checks the step order (a fresh history may start anywhere).
    pub fn check(&mut self, scheduler: &'static str, step_index: usize) -> Result<()> {
        if !self.started {
            self.started = true;
            self.next_index = step_index;
        }
        if step_index != self.next_index {
            return Err(Error::StepOutOfOrder {
                scheduler,
                expected: self.next_index,
                got: step_index,
            });
        }
        Ok(())
    }

    /// Appends a data prediction, keeping the last `order`.
    pub fn push(&mut self, x0: Tensor, order: usize) {
        self.outputs.push(x0);
        if self.outputs.len() > order {
            let excess = self.outputs.len() - order;
            self.outputs.drain(..excess);
        }
    }

    /// The `k`-th most recent data prediction (0 = newest).
    pub fn back(&self, k: usize) -> Result<&Tensor> {
        self.outputs
            .len()
            .checked_sub(k + 1)
            .and_then(|i| self.outputs.get(i))
            .ok_or_else(|| Error::Shape(format!("multistep history has no entry {k} back")))
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
