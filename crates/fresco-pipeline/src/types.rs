//! The worker-facing types: generation parameters, results, progress and the
//! [`Pipeline`] trait every model implements.

use std::ops::ControlFlow;

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
    /// Task seed; image `k` uses [`derive_image_seed`](crate::derive_image_seed)`(seed, k)`.
    pub seed: u64,
    /// Sampler steps (> 0).
    pub steps: u32,
    /// Image width in pixels (a multiple of the model's patch size).
    pub width: u32,
    /// Image height in pixels (a multiple of the model's patch size).
    pub height: u32,
    /// Classifier-free guidance scale; 1.0 disables guidance (conditional only).
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
    /// The task's `flow_shift` knob, for a flow-matching model (`model_id`): the
    /// other schedule knobs describe beta-schedule samplers, so any of them set
    /// is an [`Error::InvalidParams`] naming what was given.
    pub fn flow_shift_only(&self, model_id: &str) -> Result<Option<f64>> {
        let flow_only = Schedule {
            flow_shift: self.schedule.flow_shift,
            ..Schedule::default()
        };
        if self.schedule != flow_only {
            return Err(Error::InvalidParams(format!(
                "model {model_id} is a flow-matching model: of the schedule knobs it reads \
                 only flow_shift (got {})",
                self.schedule.to_json()
            )));
        }
        Ok(self.schedule.flow_shift)
    }
}

/// One rendered image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedImage {
    /// Position of the image in its task (0-based).
    pub index: u32,
    /// The per-image seed its noise was drawn from.
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
    /// Sampler names accepted in [`GenerateParams::sampler`].
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
