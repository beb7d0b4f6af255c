//! UniPC (`UniPCMultistepScheduler` with `predict_x0 = true`, `bh1`/`bh2`): a multistep
//! predictor (UniP) plus a corrector (UniC) that refines the previous step's result with
//! the new model output. The struct keeps past data predictions, the last sample and the
//! order used by the last predictor.

use candle_core::Tensor;

use crate::config::{PredictionType, SchedulerConfig};
use crate::error::{Error, Result, invalid};
use crate::multistep::{History, MultistepSchedule, data_prediction, multistep_schedule};
use crate::ops::{lin2, same_shape, scale, step_inputs};
use crate::schedule::{vp_alpha_sigma, vp_lambda};
use crate::{NoiseSource, Scheduler, SchedulerKind, check_index};

/// UniPC's B(h) choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniPcSolverType {
    /// B(h) = h.
    Bh1,
    /// B(h) = e^h - 1 (diffusers' default).
    Bh2,
}

/// diffusers' `UniPCMultistepScheduler` with its timesteps set.
#[derive(Debug, Clone)]
pub struct UniPcMultistep {
    schedule: MultistepSchedule,
    prediction: PredictionType,
    solver_type: UniPcSolverType,
    solver_order: usize,
    lower_order_final: bool,
    disable_corrector: Vec<usize>,
    history: History,
    last_sample: Option<Tensor>,
    this_order: usize,
}

/// The coefficients shared by UniP and UniC for step size `h` and ratios `rks`
/// (the last ratio is 1): `(h_phi_1, B(h), R, b)`.
struct Coefficients {
    h_phi_1: f64,
    b_h: f64,
    r: Vec<Vec<f64>>,
    b: Vec<f64>,
}

fn coefficients(h: f64, rks: &[f64], order: usize, solver: UniPcSolverType) -> Coefficients {
    let hh = -h;
    let h_phi_1 = hh.exp_m1();
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial = 1.0;
    let b_h = match solver {
        UniPcSolverType::Bh1 => hh,
        UniPcSolverType::Bh2 => hh.exp_m1(),
    };
    let mut r = Vec::with_capacity(order);
    let mut b = Vec::with_capacity(order);
    for i in 1..=order {
        r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect());
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    Coefficients { h_phi_1, b_h, r, b }
}

/// Solves the `n x n` system `a x = y` (Gaussian elimination with partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut y: Vec<f64>) -> Result<Vec<f64>> {
    let n = y.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        if a[pivot][col] == 0.0 || !a[pivot][col].is_finite() {
            return Err(Error::Shape("UniPC: singular coefficient system".into()));
        }
        a.swap(col, pivot);
        y.swap(col, pivot);
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let f = a[row][col] / pivot_row[col];
            for (v, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *v -= f * p;
            }
            y[row] -= f * y[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (y[row] - s) / a[row][row];
    }
    Ok(x)
}

impl UniPcMultistep {
    /// Builds the scheduler for `num_inference_steps` steps.
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        config.validate_common(num_inference_steps)?;
        if !(1..=3).contains(&config.solver_order) {
            return Err(invalid(
                "solver_order",
                format!("must be 1, 2 or 3 for UniPC, got {}", config.solver_order),
            ));
        }
        if !config.predict_x0 {
            return Err(invalid("predict_x0", "must be true (not supported)"));
        }
        let solver_type = match config.solver_type.as_deref() {
            None | Some("bh2") => UniPcSolverType::Bh2,
            Some("bh1") => UniPcSolverType::Bh1,
            Some(other) => {
                return Err(invalid(
                    "solver_type",
                    format!("must be bh1 or bh2 for UniPC (got `{other}`)"),
                ));
            }
        };
        Ok(Self {
            schedule: multistep_schedule(config, num_inference_steps, config.use_karras_sigmas)?,
            prediction: config.prediction()?,
            solver_type,
            solver_order: config.solver_order,
            lower_order_final: config.lower_order_final,
            disable_corrector: config.disable_corrector.clone(),
            history: History::default(),
            last_sample: None,
            this_order: 1,
        })
    }

    /// `(alpha, sigma, lambda)` at schedule index `i`.
    fn point(&self, i: usize) -> (f64, f64, f64) {
        let s = self.schedule.sigmas[i];
        let (a, sg) = vp_alpha_sigma(s);
        (a, sg, vp_lambda(s))
    }

    /// UniC: corrects `last_sample` (the sample before the previous predictor step) with the
    /// new data prediction `model_t` at `step_index`. Runs before `model_t` is recorded.
    fn corrector(
        &self,
        model_t: &Tensor,
        last_sample: &Tensor,
        step_index: usize,
    ) -> Result<Tensor> {
        let order = self.this_order;
        let m0 = self.history.back(0)?;
        let (alpha_t, sigma_t, lambda_t) = self.point(step_index);
        let (_, sigma_s0, lambda_s0) = self.point(step_index - 1);
        let h = lambda_t - lambda_s0;
        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for i in 1..order {
            let (_, _, lambda_si) = self.point(step_index - (i + 1));
            let rk = (lambda_si - lambda_s0) / h;
            rks.push(rk);
            d1s.push(scale(&(self.history.back(i)? - m0)?, 1.0 / rk)?);
        }
        rks.push(1.0);
        let c = coefficients(h, &rks, order, self.solver_type);
        let rhos_c = if order == 1 {
            vec![0.5]
        } else {
            solve(c.r, c.b)?
        };
        let mut x_t = lin2(last_sample, sigma_t / sigma_s0, m0, -alpha_t * c.h_phi_1)?;
        let k = -alpha_t * c.b_h;
        for (rho, d1) in rhos_c.iter().zip(&d1s) {
            x_t = lin2(&x_t, 1.0, d1, k * rho)?;
        }
        let d1_t = (model_t - m0)?;
        let last_rho = rhos_c.last().copied().unwrap_or(0.5);
        lin2(&x_t, 1.0, &d1_t, k * last_rho)
    }

    /// UniP: the predictor step from `sample` at `step_index` with the given order.
    fn predictor(&self, sample: &Tensor, step_index: usize, order: usize) -> Result<Tensor> {
        let m0 = self.history.back(0)?;
        let (alpha_t, sigma_t, lambda_t) = self.point(step_index + 1);
        let (_, sigma_s0, lambda_s0) = self.point(step_index);
        let h = lambda_t - lambda_s0;
        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for i in 1..order {
            let (_, _, lambda_si) = self.point(step_index - i);
            let rk = (lambda_si - lambda_s0) / h;
            rks.push(rk);
            d1s.push(scale(&(self.history.back(i)? - m0)?, 1.0 / rk)?);
        }
        rks.push(1.0);
        let c = coefficients(h, &rks, order, self.solver_type);
        let rhos_p = match order {
            1 => Vec::new(),
            2 => vec![0.5],
            _ => {
                let n = order - 1;
                let r: Vec<Vec<f64>> = c.r[..n].iter().map(|row| row[..n].to_vec()).collect();
                solve(r, c.b[..n].to_vec())?
            }
        };
        let mut x_t = lin2(sample, sigma_t / sigma_s0, m0, -alpha_t * c.h_phi_1)?;
        let k = -alpha_t * c.b_h;
        for (rho, d1) in rhos_p.iter().zip(&d1s) {
            x_t = lin2(&x_t, 1.0, d1, k * rho)?;
        }
        Ok(x_t)
    }
}

impl Scheduler for UniPcMultistep {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::UniPc
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
        self.history.check("unipc", step_index)?;
        let (mut x, out, dtype) = step_inputs(model_output, sample)?;

        let x0 = data_prediction(self.prediction, &x, &out, self.schedule.sigmas[step_index])?;
        if step_index > 0
            && !self.disable_corrector.contains(&(step_index - 1))
            && let Some(last) = &self.last_sample
        {
            x = self.corrector(&x0, last, step_index)?;
        }
        self.history.push(x0, self.solver_order);
        let mut order = if self.lower_order_final {
            self.solver_order.min(len - step_index)
        } else {
            self.solver_order
        };
        order = order.min(self.history.lower_order_nums + 1);
        self.this_order = order;
        let prev = self.predictor(&x, step_index, order)?;
        self.last_sample = Some(x);
        if self.history.lower_order_nums < self.solver_order {
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
        self.last_sample = None;
        self.this_order = 1;
    }
}
