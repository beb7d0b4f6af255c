//! Flow-matching samplers: the timestep schedule and the Euler / Heun ODE solvers.
//!
//! Rectified flow: `x_t = (1 − t)·x0 + t·noise`, the model predicts the velocity
//! `v = dx_t/dt = noise − x0`, and sampling integrates from `t = 1` (pure noise)
//! down to `t = 0` (the image).

use std::ops::ControlFlow;

use candle_core::Tensor;
use fresco_pipeline::{Error, Family, Progress, Result};

/// A flow-matching ODE solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampler {
    /// First order: one model evaluation per step.
    Euler,
    /// Second order (Heun / improved Euler): two evaluations per step, except the
    /// last step into `t = 0`, which is an Euler step.
    Heun,
}

impl Sampler {
    /// Parses a sampler name (case-insensitive), one of the DiT family's
    /// [`Capabilities::samplers`](crate::Capabilities::samplers).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "euler" => Ok(Self::Euler),
            "heun" => Ok(Self::Heun),
            _ => Err(Error::UnknownSampler {
                sampler: name.to_owned(),
                supported: Family::Dit.capabilities().samplers.join(", "),
            }),
        }
    }
}

/// `steps + 1` flow times from 1 down to 0, linearly spaced then shifted with
/// `t' = s·t / (1 + (s − 1)·t)` (`s = 1`: no shift; `s > 1` spends more steps at high noise).
pub fn timesteps(steps: u32, shift: f64) -> Vec<f64> {
    let n = f64::from(steps.max(1));
    (0..=steps.max(1))
        .map(|i| {
            let t = 1.0 - f64::from(i) / n;
            shift * t / (1.0 + (shift - 1.0) * t)
        })
        .collect()
}

/// Integrates `x` (pure noise at `ts[0]`) along `ts` with `velocity(x, t)`.
///
/// After each of the `ts.len() − 1` steps, `on_step` receives
/// `Progress { step: i + 1, total }`; `Break` stops with [`Error::Cancelled`].
pub fn sample(
    sampler: Sampler,
    mut x: Tensor,
    ts: &[f64],
    velocity: &mut dyn FnMut(&Tensor, f64) -> Result<Tensor>,
    on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Tensor> {
    let total = u32::try_from(ts.len().saturating_sub(1))
        .map_err(|_| Error::InvalidParams("too many steps".into()))?;
    for (i, w) in ts.windows(2).enumerate() {
        let (t, t_next) = (w[0], w[1]);
        let dt = t_next - t;
        let v = velocity(&x, t)?;
        let x_euler = (&x + (&v * dt)?)?;
        x = match sampler {
            Sampler::Heun if t_next > 0.0 => {
                let v2 = velocity(&x_euler, t_next)?;
                (&x + ((v + v2)? * (dt / 2.0))?)?
            }
            _ => x_euler,
        };
        let progress = Progress {
            step: i as u32 + 1,
            total,
        };
        if on_step(progress).is_break() {
            tracing::info!(
                step = progress.step,
                total,
                "generation cancelled by caller"
            );
            return Err(Error::Cancelled);
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_runs_from_one_to_zero() {
        let ts = timesteps(4, 1.0);
        assert_eq!(ts, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
        let shifted = timesteps(4, 3.0);
        assert_eq!(shifted.first(), Some(&1.0));
        assert_eq!(shifted.last(), Some(&0.0));
        assert!(shifted[2] > 0.5, "shift must move mid-steps towards noise");
    }

    #[test]
    fn unknown_sampler_is_an_error() {
        assert_eq!(Sampler::from_name("Heun").unwrap(), Sampler::Heun);
        assert!(matches!(
            Sampler::from_name("ddim"),
            Err(Error::UnknownSampler { .. })
        ));
    }

    /// With the exact velocity of a straight path to a fixed target, both solvers
    /// must land on the target.
    #[test]
    fn exact_velocity_reaches_target() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[0.5f32, -0.25, 0.0], &dev).unwrap();
        let noise = Tensor::new(&[1.0f32, 2.0, -1.5], &dev).unwrap();
        for sampler in [Sampler::Euler, Sampler::Heun] {
            let mut evals = 0;
            let mut velocity = |x: &Tensor, t: f64| -> Result<Tensor> {
                evals += 1;
                Ok(((x - &target)? / t)?)
            };
            let mut steps_seen = Vec::new();
            let out = sample(
                sampler,
                noise.clone(),
                &timesteps(5, 2.0),
                &mut velocity,
                &mut |p| {
                    steps_seen.push((p.step, p.total));
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
            let got = out.to_vec1::<f32>().unwrap();
            for (g, want) in got.iter().zip([0.5f32, -0.25, 0.0]) {
                assert!((g - want).abs() < 1e-5, "{sampler:?}: {got:?}");
            }
            assert_eq!(steps_seen, (1..=5).map(|s| (s, 5)).collect::<Vec<_>>());
            let want_evals = if sampler == Sampler::Euler { 5 } else { 9 };
            assert_eq!(evals, want_evals, "{sampler:?}");
        }
    }
}
