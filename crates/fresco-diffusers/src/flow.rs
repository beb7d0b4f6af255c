//! The flow-matching sampler of SD3 and FLUX runs: reads
//! `scheduler/scheduler_config.json` (diffusers' `FlowMatchEulerDiscreteScheduler`: `shift`,
//! `use_dynamic_shifting`, `base_shift`, `max_shift`, `base_image_seq_len`,
//! `max_image_seq_len`, ...) and builds fresco-schedulers' [`FlowMatchEuler`] the way each
//! diffusers pipeline calls `set_timesteps`:
//!
//! - [`FlowSigmas::Scheduler`] (`StableDiffusion3Pipeline`): the scheduler's own sigmas,
//!   `linspace(1, 1/N_train)` shifted by `shift`, or by `mu` when the config has
//!   `use_dynamic_shifting`;
//! - [`FlowSigmas::Pipeline`] (`FluxPipeline`): the pipeline passes its own sigmas,
//!   `linspace(1, 1/steps, steps)`, which the scheduler shifts by `mu` (dynamic) or `shift`.
//!
//! In both, `mu` is [`SchedulerConfig::calculate_shift`] of the image's token count.
//! fresco-schedulers takes no explicit sigmas, so the pipeline schedule is obtained exactly
//! from a config with `num_train_timesteps = steps` (its sigma grid is then
//! `linspace(1, 1/steps)`) and dynamic shifting (a fixed shift `s` is the exponential
//! time shift with `mu = ln s`); the timestep passed to the model is still
//! `sigma * num_train_timesteps` of the real config ([`FlowSchedule::timesteps`]).

use std::path::Path;

use fresco_schedulers::flow_match::FlowMatchEuler;
use fresco_schedulers::{Scheduler, SchedulerConfig};

use crate::error::{Error, Result};
use crate::scheduler::SchedulerSetup;

/// Which sigmas `set_timesteps` gets (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSigmas {
    /// The scheduler's own (SD3).
    Scheduler,
    /// `linspace(1, 1/steps, steps)` (FLUX).
    Pipeline,
}

/// A folder's flow-matching scheduler config.
#[derive(Debug, Clone)]
pub struct FlowSampler {
    config: SchedulerConfig,
}

/// One image's flow-matching sampler with the timesteps its model sees.
#[derive(Debug)]
pub struct FlowSchedule {
    /// The sampler (its `sigmas()` are the run's).
    pub scheduler: Box<dyn Scheduler>,
    /// `sigma * num_train_timesteps` per step, what the transformer is given.
    pub timesteps: Vec<f64>,
    /// The shift exponent used, when the config shifts dynamically.
    pub mu: Option<f64>,
}

impl FlowSampler {
    /// Reads `scheduler_config.json`; its `_class_name`, when present, must be
    /// `FlowMatchEulerDiscreteScheduler`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let setup = SchedulerSetup::from_file(path)?;
        if setup
            .default_kind
            .is_some_and(|k| k != fresco_schedulers::SchedulerKind::FlowEuler)
        {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                field: "_class_name".into(),
                detail: "flow-matching models need FlowMatchEulerDiscreteScheduler".into(),
            });
        }
        Ok(Self::new(setup.config))
    }

    /// A sampler over an already parsed config.
    pub fn new(config: SchedulerConfig) -> Self {
        Self { config }
    }

    /// This sampler with the fixed time shift `shift` in place of the config's
    /// `shift` and dynamic shifting: what a run's `flow_shift` knob asks for.
    pub fn with_shift(&self, shift: f64) -> Self {
        Self::new(SchedulerConfig {
            shift,
            use_dynamic_shifting: false,
            ..self.config.clone()
        })
    }

    /// [`Self::build`], with a run's fixed `flow_shift` in place of the config's
    /// shifting when given (see [`Self::with_shift`]).
    pub fn build_shifted(
        &self,
        steps: usize,
        image_seq_len: usize,
        sigmas: FlowSigmas,
        flow_shift: Option<f64>,
    ) -> Result<FlowSchedule> {
        match flow_shift {
            Some(shift) => self.with_shift(shift).build(steps, image_seq_len, sigmas),
            None => self.build(steps, image_seq_len, sigmas),
        }
    }

    /// The parsed config.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// `mu` for an image of `image_seq_len` tokens when the config shifts dynamically.
    pub fn mu(&self, image_seq_len: usize) -> Option<f64> {
        self.config
            .use_dynamic_shifting
            .then(|| self.config.calculate_shift(image_seq_len))
    }

    /// The sampler of a `steps`-step run over `image_seq_len` image tokens.
    pub fn build(
        &self,
        steps: usize,
        image_seq_len: usize,
        sigmas: FlowSigmas,
    ) -> Result<FlowSchedule> {
        let mu = self.mu(image_seq_len);
        let n_train = self.config.num_train_timesteps as f64;
        let scheduler: Box<dyn Scheduler> = match sigmas {
            FlowSigmas::Scheduler => Box::new(FlowMatchEuler::new(&self.config, steps, mu)?),
            FlowSigmas::Pipeline => {
                let (time_shift_type, shift_mu) = match mu {
                    Some(mu) => (self.config.time_shift_type.clone(), mu),
                    None => ("exponential".to_string(), self.config.shift.ln()),
                };
                let config = SchedulerConfig {
                    num_train_timesteps: steps.max(2),
                    use_dynamic_shifting: true,
                    time_shift_type,
                    ..self.config.clone()
                };
                Box::new(FlowMatchEuler::new(&config, steps, Some(shift_mu))?)
            }
        };
        let timesteps = scheduler
            .sigmas()
            .unwrap_or_default()
            .iter()
            .take(steps)
            .map(|s| s * n_train)
            .collect();
        Ok(FlowSchedule {
            scheduler,
            timesteps,
            mu,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fresco_schedulers::schedule::{linspace, static_shift, time_shift};

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn pipeline_sigmas_with_dynamic_shift() -> Result<()> {
        let s = FlowSampler::new(SchedulerConfig {
            use_dynamic_shifting: true,
            shift: 3.0,
            ..SchedulerConfig::default()
        });
        let run = s.build(4, 1024, FlowSigmas::Pipeline)?;
        let mu = s.config().calculate_shift(1024);
        assert_eq!(run.mu, Some(mu));
        let mut want: Vec<f64> = linspace(1.0, 0.25, 4)
            .into_iter()
            .map(|x| time_shift(true, mu, x))
            .collect();
        let ts: Vec<f64> = want.iter().map(|x| x * 1000.0).collect();
        want.push(0.0);
        close(run.scheduler.sigmas().unwrap_or_default(), &want);
        close(&run.timesteps, &ts);
        Ok(())
    }

    #[test]
    fn pipeline_sigmas_with_fixed_shift() -> Result<()> {
        let s = FlowSampler::new(SchedulerConfig {
            shift: 3.0,
            ..SchedulerConfig::default()
        });
        let run = s.build(3, 64, FlowSigmas::Pipeline)?;
        assert_eq!(run.mu, None);
        let mut want: Vec<f64> = linspace(1.0, 1.0 / 3.0, 3)
            .into_iter()
            .map(|x| static_shift(3.0, x))
            .collect();
        want.push(0.0);
        close(run.scheduler.sigmas().unwrap_or_default(), &want);
        // A one-step run is a single jump from pure noise.
        let one = s.build(1, 64, FlowSigmas::Pipeline)?;
        close(one.scheduler.sigmas().unwrap_or_default(), &[1.0, 0.0]);
        Ok(())
    }

    /// A run's `flow_shift` replaces both the config's shift and its dynamic
    /// shifting, for either kind of sigmas.
    #[test]
    fn with_shift_overrides_dynamic_and_fixed_shift() -> Result<()> {
        let dynamic = FlowSampler::new(SchedulerConfig {
            use_dynamic_shifting: true,
            shift: 3.0,
            ..SchedulerConfig::default()
        });
        let fixed = FlowSampler::new(SchedulerConfig {
            shift: 3.0,
            ..SchedulerConfig::default()
        });
        let mut want: Vec<f64> = linspace(1.0, 0.25, 4)
            .into_iter()
            .map(|x| static_shift(1.5, x))
            .collect();
        want.push(0.0);
        for base in [&dynamic, &fixed] {
            let run = base.with_shift(1.5).build(4, 1024, FlowSigmas::Pipeline)?;
            assert_eq!(run.mu, None);
            close(run.scheduler.sigmas().unwrap_or_default(), &want);
        }
        let own = dynamic
            .with_shift(1.5)
            .build(4, 1024, FlowSigmas::Scheduler)?;
        let unshifted = fixed.build(4, 1024, FlowSigmas::Scheduler)?;
        assert_eq!(own.mu, None);
        assert_ne!(
            own.timesteps, unshifted.timesteps,
            "shift 1.5 vs 3 must differ"
        );
        Ok(())
    }
}
