//! The sampler of a run: reads `scheduler/scheduler_config.json` into fresco-schedulers'
//! [`SchedulerConfig`] (betas, `beta_schedule` including `squaredcos_cap_v2`, prediction
//! type, timestep spacing, `steps_offset`, `set_alpha_to_one`, Karras sigmas, clipping...)
//! and builds the scheduler the run asks for. Users pick the sampler per task:
//!
//! - the sampler the folder's `_class_name` names gets the whole config;
//! - any other sampler gets the fields that describe the *model* (training steps, betas,
//!   prediction type, zero-SNR rescaling, sample clipping, flow shift) and keeps its own
//!   defaults for the fields that describe a *sampler* (timestep spacing, `steps_offset`,
//!   `set_alpha_to_one`, Karras sigmas, solver options), as when diffusers builds that
//!   scheduler class with the model's betas.

use std::path::Path;

use fresco_pipeline::Schedule;
use fresco_schedulers::{Scheduler, SchedulerConfig, SchedulerKind, SetTimestepsOptions};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::files::read_text;

/// The folder's scheduler config and the sampler it names.
#[derive(Debug, Clone)]
pub struct SchedulerSetup {
    /// The parsed `scheduler_config.json`.
    pub config: SchedulerConfig,
    /// The sampler matching the folder's `_class_name`, when fresco has one.
    pub default_kind: Option<SchedulerKind>,
}

#[derive(Deserialize)]
struct ClassName {
    #[serde(rename = "_class_name", default)]
    class_name: Option<String>,
}

impl SchedulerSetup {
    /// Reads `scheduler_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        let config = SchedulerConfig::from_json_str(&text).map_err(|e| match e {
            fresco_schedulers::Error::Json(source) => Error::Json {
                path: path.to_path_buf(),
                source,
            },
            other => Error::Scheduler(other),
        })?;
        let class: ClassName = fresco_schedulers::config::python_json_to_value(&text)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or(ClassName { class_name: None });
        let default_kind = class.class_name.as_deref().and_then(kind_of_class);
        Ok(Self {
            config,
            default_kind,
        })
    }

    /// The config a `kind` sampler runs with (see the module docs).
    pub fn config_for(&self, kind: SchedulerKind) -> SchedulerConfig {
        if self.default_kind == Some(kind) {
            return self.config.clone();
        }
        let c = &self.config;
        SchedulerConfig {
            num_train_timesteps: c.num_train_timesteps,
            beta_start: c.beta_start,
            beta_end: c.beta_end,
            beta_schedule: c.beta_schedule.clone(),
            trained_betas: c.trained_betas.clone(),
            prediction_type: c.prediction_type.clone(),
            rescale_betas_zero_snr: c.rescale_betas_zero_snr,
            clip_sample: c.clip_sample,
            clip_sample_range: c.clip_sample_range,
            thresholding: c.thresholding,
            shift: c.shift,
            use_dynamic_shifting: c.use_dynamic_shifting,
            base_shift: c.base_shift,
            max_shift: c.max_shift,
            base_image_seq_len: c.base_image_seq_len,
            max_image_seq_len: c.max_image_seq_len,
            time_shift_type: c.time_shift_type.clone(),
            shift_terminal: c.shift_terminal,
            ..SchedulerConfig::default()
        }
    }

    /// A `kind` scheduler with its timesteps set for `steps` (`eta` is DDIM's; other
    /// samplers ignore it).
    pub fn build(&self, kind: SchedulerKind, steps: usize, eta: f64) -> Result<Box<dyn Scheduler>> {
        self.build_with(kind, steps, eta, &Schedule::default())
    }

    /// [`Self::build`] with a run's schedule knobs applied over [`Self::config_for`].
    pub fn build_with(
        &self,
        kind: SchedulerKind,
        steps: usize,
        eta: f64,
        knobs: &Schedule,
    ) -> Result<Box<dyn Scheduler>> {
        Ok(fresco_schedulers::from_config(
            kind,
            &with_knobs(self.config_for(kind), knobs),
            steps,
            SetTimestepsOptions { mu: None, eta },
        )?)
    }
}

/// `config` with every knob the run sets replaced.
pub fn with_knobs(mut config: SchedulerConfig, knobs: &Schedule) -> SchedulerConfig {
    if let Some(n) = knobs.num_train_timesteps {
        config.num_train_timesteps = n as usize;
    }
    if let Some(v) = knobs.beta_start {
        config.beta_start = v;
    }
    if let Some(v) = knobs.beta_end {
        config.beta_end = v;
    }
    if let Some(v) = &knobs.beta_schedule {
        config.beta_schedule = v.clone();
        // Explicit betas would win over the named schedule.
        config.trained_betas = None;
    }
    if let Some(v) = &knobs.prediction_type {
        config.prediction_type = v.clone();
    }
    if let Some(v) = &knobs.timestep_spacing {
        config.timestep_spacing = Some(v.clone());
    }
    if let Some(v) = knobs.karras_sigmas {
        config.use_karras_sigmas = v;
    }
    if let Some(v) = knobs.flow_shift {
        config.shift = v;
    }
    config
}

/// The fresco sampler for a diffusers scheduler class name.
pub fn kind_of_class(class_name: &str) -> Option<SchedulerKind> {
    Some(match class_name {
        "DDIMScheduler" => SchedulerKind::Ddim,
        "DDPMScheduler" => SchedulerKind::Ddpm,
        "EulerDiscreteScheduler" => SchedulerKind::Euler,
        "EulerAncestralDiscreteScheduler" => SchedulerKind::EulerAncestral,
        "HeunDiscreteScheduler" => SchedulerKind::Heun,
        "DPMSolverMultistepScheduler" => SchedulerKind::DpmPp2m,
        "UniPCMultistepScheduler" => SchedulerKind::UniPc,
        "FlowMatchEulerDiscreteScheduler" => SchedulerKind::FlowEuler,
        // PNDM (the SD 1.x default) has no fresco implementation; DDIM over the same
        // betas is the usual stand-in.
        "PNDMScheduler" => SchedulerKind::Ddim,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(class: &str) -> SchedulerSetup {
        let config = SchedulerConfig {
            beta_schedule: "squaredcos_cap_v2".into(),
            prediction_type: "v_prediction".into(),
            timestep_spacing: Some("leading".into()),
            steps_offset: 1,
            set_alpha_to_one: false,
            clip_sample: Some(false),
            ..SchedulerConfig::default()
        };
        SchedulerSetup {
            config,
            default_kind: kind_of_class(class),
        }
    }

    #[test]
    fn own_sampler_gets_the_whole_config() {
        let s = setup("DDIMScheduler");
        assert_eq!(s.config_for(SchedulerKind::Ddim), s.config);
    }

    #[test]
    fn other_samplers_keep_model_fields_only() {
        let s = setup("DDIMScheduler");
        let c = s.config_for(SchedulerKind::Euler);
        assert_eq!(c.beta_schedule, "squaredcos_cap_v2");
        assert_eq!(c.prediction_type, "v_prediction");
        assert_eq!(c.clip_sample, Some(false));
        assert_eq!(c.timestep_spacing, None);
        assert_eq!(c.steps_offset, 0);
        assert!(c.set_alpha_to_one);
    }

    #[test]
    fn a_runs_knobs_replace_the_folders_values() {
        let s = setup("DDIMScheduler");
        let knobs = Schedule {
            num_train_timesteps: Some(500),
            beta_start: Some(0.001),
            beta_end: Some(0.02),
            beta_schedule: Some("linear".into()),
            prediction_type: Some("epsilon".into()),
            timestep_spacing: Some("trailing".into()),
            karras_sigmas: Some(true),
            flow_shift: Some(3.0),
            eta: Some(0.5),
        };
        let c = with_knobs(s.config_for(SchedulerKind::Ddim), &knobs);
        assert_eq!(c.num_train_timesteps, 500);
        assert_eq!((c.beta_start, c.beta_end), (0.001, 0.02));
        assert_eq!(c.beta_schedule, "linear");
        assert_eq!(c.prediction_type, "epsilon");
        assert_eq!(c.timestep_spacing.as_deref(), Some("trailing"));
        assert!(c.use_karras_sigmas);
        assert_eq!(c.shift, 3.0);
        // Untouched knobs keep the folder's values.
        let c = with_knobs(s.config_for(SchedulerKind::Ddim), &Schedule::default());
        assert_eq!(c, s.config);
        // Trailing spacing changes the timesteps DDIM visits.
        let plain = s.build(SchedulerKind::Ddim, 10, 0.0).unwrap();
        let trailing = s
            .build_with(
                SchedulerKind::Ddim,
                10,
                0.0,
                &Schedule {
                    timestep_spacing: Some("trailing".into()),
                    ..Schedule::default()
                },
            )
            .unwrap();
        assert_ne!(plain.timesteps(), trailing.timesteps());
    }

    #[test]
    fn class_names_map_to_samplers() {
        assert_eq!(
            kind_of_class("EulerDiscreteScheduler"),
            Some(SchedulerKind::Euler)
        );
        assert_eq!(kind_of_class("PNDMScheduler"), Some(SchedulerKind::Ddim));
        assert_eq!(kind_of_class("LMSDiscreteScheduler"), None);
    }
}
