//! The worker-facing types: generation parameters, results, progress, the
//! [`Pipeline`] trait every model implements, and the one guidance rule
//! ([`guidance_enabled`]) every family follows.

use std::ops::ControlFlow;

pub use fresco_core::capabilities::{Capabilities, Family, Knobs};
pub use fresco_core::params::Schedule;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What to render. Validation of ranges happens upstream; pipelines still reject
/// what they cannot do with an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateParams {
    /// Caption to render.
    pub prompt: String,
    /// Caption to steer away from; replaces the empty unconditional caption of
    /// classifier-free guidance when non-empty.
    pub negative_prompt: String,
    /// Task seed; image `k` draws its noise only from its image seed
    /// [`image_seed`](crate::image_seed)`(seed, k)` `= seed + k`, so a task with
    /// that seed and `n = 1` renders the same image.
    pub seed: u64,
    /// Sampler steps (> 0).
    pub steps: u32,
    /// Image width in pixels (a multiple of the model's patch size).
    pub width: u32,
    /// Image height in pixels (a multiple of the model's patch size).
    pub height: u32,
    /// Guidance scale. For classifier-free guidance, on above 1.0
    /// ([`guidance_enabled`]); at 1.0 or below only the conditional pass runs.
    pub guidance: f32,
    /// Number of images (> 0), generated as one batch.
    pub n: u32,
    /// Sampler name, one of [`Pipeline::samplers`].
    pub sampler: String,
    /// Schedule knobs overriding the model's own (none set: the model's).
    #[serde(default)]
    pub schedule: Schedule,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            seed: 0,
            steps: 8,
            width: 64,
            height: 64,
            guidance: 4.0,
            n: 1,
            sampler: "euler".into(),
            schedule: Schedule::default(),
        }
    }
}

impl GenerateParams {
    /// Whether classifier-free guidance runs for this task ([`guidance_enabled`]).
    pub fn guided(&self) -> bool {
        guidance_enabled(f64::from(self.guidance))
    }

    /// Checks the task's schedule knobs against what `family` reads (see
    /// [`Knobs`]) for the model `model_id`: a knob it does not read is an
    /// [`Error::InvalidParams`] naming what was given.
    pub fn check_knobs(&self, family: Family, model_id: &str) -> Result<()> {
        match family.capabilities().knobs {
            Knobs::BetaSchedule => Ok(()),
            Knobs::FlowShiftOnly if Knobs::FlowShiftOnly.allow(&self.schedule) => Ok(()),
            Knobs::FlowShiftOnly => Err(Error::InvalidParams(format!(
                "model {model_id} is a flow-matching model: of the schedule knobs it reads \
                 only flow_shift (got {})",
                self.schedule.to_json()
            ))),
        }
    }
}

/// The guidance rule of every family with classifier-free guidance (as in
/// diffusers): guidance runs when `scale` is above 1. At 1 or below the model
/// runs on the prompt alone, and the negative prompt is not used.
pub fn guidance_enabled(scale: f64) -> bool {
    scale > 1.0
}

/// One rendered image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedImage {
    /// Position of the image in its task (0-based).
    pub index: u32,
    /// Its image seed, [`image_seed`](crate::image_seed)`(task seed, index)`:
    /// all its noise was drawn from it, and a task with this seed and `n = 1`
    /// renders this image again.
    pub seed: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGB8, row-major, `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

/// Reported after each sampler step; return `ControlFlow::Break(())` from the
/// callback to cancel (the pipeline then returns [`Error::Cancelled`](crate::Error::Cancelled)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps completed so far (1-based).
    pub step: u32,
    /// Total steps.
    pub total: u32,
}

/// A loaded text-to-image model.
pub trait Pipeline: Send + Sync {
    /// The id this pipeline was loaded under.
    fn model_id(&self) -> &str;
    /// Sampler names accepted in [`GenerateParams::sampler`]: its family's
    /// ([`Capabilities::samplers`]).
    fn samplers(&self) -> &'static [&'static str];
    /// Approximate bytes of weights held.
    fn memory_bytes(&self) -> u64;
    /// Renders `params.n` images, calling `on_step` after every sampler step.
    fn generate(
        &self,
        params: &GenerateParams,
        on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Vec<GeneratedImage>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidance_runs_above_one_only() {
        assert!(!guidance_enabled(0.0));
        assert!(!guidance_enabled(0.5));
        assert!(!guidance_enabled(1.0));
        assert!(guidance_enabled(1.01));
        assert!(guidance_enabled(7.5));
        assert!(!guidance_enabled(f64::NAN));
    }

    #[test]
    fn flow_families_refuse_beta_knobs() {
        let mut p = GenerateParams::default();
        p.schedule.flow_shift = Some(2.0);
        p.check_knobs(Family::Dit, "m").expect("flow_shift alone");
        p.schedule.eta = Some(0.5);
        let err = p.check_knobs(Family::Flux, "m").expect_err("eta");
        assert!(err.to_string().contains("only flow_shift"), "{err}");
        p.check_knobs(Family::StableDiffusion, "m")
            .expect("SD reads every knob");
    }
}
