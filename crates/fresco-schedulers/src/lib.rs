//! Diffusers-compatible noise schedulers over [`candle_core::Tensor`].
//!
//! Each scheduler reproduces the diffusers (0.42) class of the same family step for step:
//! [`ddim`] (`DDIMScheduler`), [`ddpm`] (`DDPMScheduler`), [`euler`]
//! (`EulerDiscreteScheduler`), [`euler_ancestral`] (`EulerAncestralDiscreteScheduler`),
//! [`heun`] (`HeunDiscreteScheduler`), [`dpm_solver`] (`DPMSolverMultistepScheduler`,
//! DPM++ 2M), [`unipc`] (`UniPCMultistepScheduler`) and [`flow_match`]
//! (`FlowMatchEulerDiscreteScheduler`, SD3 and FLUX). [`schedule`] holds the shared
//! `f64` schedule arithmetic, [`config`] the diffusers config, [`error`] the error type.
//!
//! This module owns the [`Scheduler`] trait, the [`SchedulerKind`] name registry and
//! [`from_config`]. A sampling loop is:
//!
//! ```text
//! let mut s = fresco_schedulers::from_config(kind, &config, steps, Default::default())?;
//! let mut x = (initial_noise * s.init_noise_sigma())?;
//! for i in 0..s.timesteps().len() {
//!     let x_in = s.scale_model_input(&x, i)?;
//!     let out = model(&x_in, s.timesteps()[i])?;
//!     x = s.step(&out, i, &x, Some(&mut rng))?;
//! }
//! ```
//!
//! Heun evaluates the model twice per step, so its `timesteps()` repeat (as in diffusers);
//! the loop above is unchanged. Multistep solvers keep their history inside the struct and
//! must be stepped in order; call [`Scheduler::reset`] before reusing one for a new image.

pub mod config;
pub mod ddim;
pub mod ddpm;
pub mod dpm_solver;
pub mod error;
pub mod euler;
pub mod euler_ancestral;
pub mod flow_match;
pub mod heun;
pub(crate) mod multistep;
mod ops;
pub mod schedule;
pub mod unipc;

use std::fmt;
use std::str::FromStr;

use candle_core::Tensor;
use rand::RngCore;

pub use config::{SchedulerConfig, SetTimestepsOptions};
pub use error::{Error, Result};
pub use ops::randn_like;

/// Where a stochastic step's fresh Gaussian noise comes from: any random
/// number generator (standard normal draws, Box–Muller in `f32`, see
/// [`randn_like`]), or a source a caller controls, such as a test replaying
/// the noise a reference run drew.
pub trait NoiseSource {
    /// Standard normal noise shaped and typed like `like`; called once per
    /// stochastic step, in step order.
    fn draw(&mut self, like: &Tensor) -> Result<Tensor>;
}

impl<R: RngCore + ?Sized> NoiseSource for R {
    fn draw(&mut self, like: &Tensor) -> Result<Tensor> {
        randn_like(like, self)
    }
}

/// A diffusion sampler with a fixed schedule of `timesteps().len()` model evaluations.
pub trait Scheduler: Send + fmt::Debug {
    /// Which scheduler this is.
    fn kind(&self) -> SchedulerKind;

    /// The timestep value to pass to the model at each step index (descending; Heun's
    /// repeat). Integral for DDIM/DDPM/DPM++/UniPC, fractional for the Euler family and
    /// flow matching (where it is `sigma * num_train_timesteps`).
    fn timesteps(&self) -> &[f64];

    /// The sigmas (one more than the steps, ending at the final sigma) for sigma-based
    /// schedulers; `None` for DDIM/DDPM.
    fn sigmas(&self) -> Option<&[f64]> {
        None
    }

    /// The factor to multiply unit-variance initial noise by.
    fn init_noise_sigma(&self) -> f64;

    /// The input to feed the model at `step_index` (diffusers' `scale_model_input`).
    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor>;

    /// Advances `sample` by one step given the model output at `step_index`. `noise`
    /// is needed only by stochastic steps (DDIM with eta > 0, DDPM, Euler ancestral,
    /// stochastic flow matching), which draw from it once each; they return
    /// [`Error::RngRequired`] without one. A random number generator is a source.
    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        noise: Option<&mut dyn NoiseSource>,
    ) -> Result<Tensor>;

    /// Noises a clean sample to the noise level of `step_index` (for img2img, where the
    /// loop then starts at `step_index`).
    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor>;

    /// Model evaluations per solver step (2 for Heun, else 1).
    fn order(&self) -> usize {
        1
    }

    /// Clears any multistep state so the scheduler can sample a new image.
    fn reset(&mut self) {}
}

/// The schedulers fresco offers, by user-facing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// `ddim`: DDIMScheduler.
    Ddim,
    /// `ddpm`: DDPMScheduler.
    Ddpm,
    /// `euler`: EulerDiscreteScheduler (Karras sigmas when the config asks).
    Euler,
    /// `euler_a`: EulerAncestralDiscreteScheduler.
    EulerAncestral,
    /// `heun`: HeunDiscreteScheduler.
    Heun,
    /// `dpmpp_2m`: DPMSolverMultistepScheduler, dpmsolver++ order 2, no Karras sigmas.
    DpmPp2m,
    /// `dpmpp_2m_karras`: as `dpmpp_2m` with Karras sigmas.
    DpmPp2mKarras,
    /// `unipc`: UniPCMultistepScheduler.
    UniPc,
    /// `flow_euler`: FlowMatchEulerDiscreteScheduler (SD3 fixed shift, FLUX dynamic shift).
    FlowEuler,
}

/// Every name [`by_name`] knows, in a stable order.
pub const NAMES: &[&str] = &[
    "ddim",
    "ddpm",
    "euler",
    "euler_a",
    "heun",
    "dpmpp_2m",
    "dpmpp_2m_karras",
    "unipc",
    "flow_euler",
];

const KINDS: &[SchedulerKind] = &[
    SchedulerKind::Ddim,
    SchedulerKind::Ddpm,
    SchedulerKind::Euler,
    SchedulerKind::EulerAncestral,
    SchedulerKind::Heun,
    SchedulerKind::DpmPp2m,
    SchedulerKind::DpmPp2mKarras,
    SchedulerKind::UniPc,
    SchedulerKind::FlowEuler,
];

impl SchedulerKind {
    /// The user-facing name (an entry of [`NAMES`]).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::Ddpm => "ddpm",
            Self::Euler => "euler",
            Self::EulerAncestral => "euler_a",
            Self::Heun => "heun",
            Self::DpmPp2m => "dpmpp_2m",
            Self::DpmPp2mKarras => "dpmpp_2m_karras",
            Self::UniPc => "unipc",
            Self::FlowEuler => "flow_euler",
        }
    }

    /// Every kind, in the order of [`NAMES`].
    pub fn all() -> &'static [SchedulerKind] {
        KINDS
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        by_name(s).ok_or_else(|| Error::UnknownScheduler {
            name: s.to_string(),
            known: NAMES.join(", "),
        })
    }
}

/// Looks a scheduler up by its user-facing name (exact, lowercase).
pub fn by_name(name: &str) -> Option<SchedulerKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// Builds a scheduler of `kind` from a diffusers config, with its timesteps set for
/// `num_inference_steps` (diffusers' constructor followed by `set_timesteps`).
pub fn from_config(
    kind: SchedulerKind,
    config: &SchedulerConfig,
    num_inference_steps: usize,
    options: SetTimestepsOptions,
) -> Result<Box<dyn Scheduler>> {
    Ok(match kind {
        SchedulerKind::Ddim => Box::new(ddim::Ddim::new(config, num_inference_steps, options.eta)?),
        SchedulerKind::Ddpm => Box::new(ddpm::Ddpm::new(config, num_inference_steps)?),
        SchedulerKind::Euler => Box::new(euler::Euler::new(config, num_inference_steps)?),
        SchedulerKind::EulerAncestral => Box::new(euler_ancestral::EulerAncestral::new(
            config,
            num_inference_steps,
        )?),
        SchedulerKind::Heun => Box::new(heun::Heun::new(config, num_inference_steps)?),
        SchedulerKind::DpmPp2m => Box::new(dpm_solver::DpmSolverMultistep::new(
            config,
            num_inference_steps,
            false,
        )?),
        SchedulerKind::DpmPp2mKarras => Box::new(dpm_solver::DpmSolverMultistep::new(
            config,
            num_inference_steps,
            true,
        )?),
        SchedulerKind::UniPc => Box::new(unipc::UniPcMultistep::new(config, num_inference_steps)?),
        SchedulerKind::FlowEuler => Box::new(flow_match::FlowMatchEuler::new(
            config,
            num_inference_steps,
            options.mu,
        )?),
    })
}

/// Errors unless `index < len`.
pub(crate) fn check_index(index: usize, len: usize) -> Result<()> {
    if index >= len {
        return Err(Error::StepIndexOutOfRange { index, len });
    }
    Ok(())
}
