//! The parameters of a job and its tasks, their defaults and their limits.

use serde::{Deserialize, Serialize};

pub use crate::capabilities::{BUILTIN_MODELS, DEFAULT_MODEL};
use crate::ids::TaskId;
pub use crate::schedule::Schedule;

/// The image size, steps and guidance a task of `model` gets when neither the
/// task nor its job sets them: the settings a model was trained and measured
/// at where fresco knows them, else fresco's general [`defaults`].
pub fn model_defaults(model: &str) -> ModelDefaults {
    match model {
        DEFAULT_MODEL => ModelDefaults {
            width: 32,
            height: 32,
            steps: defaults::STEPS,
            guidance: defaults::GUIDANCE,
        },
        _ => ModelDefaults {
            width: defaults::WIDTH,
            height: defaults::HEIGHT,
            steps: defaults::STEPS,
            guidance: defaults::GUIDANCE,
        },
    }
}

/// Per-model defaults, see [`model_defaults`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelDefaults {
    pub width: u32,
    pub height: u32,
    pub steps: u32,
    pub guidance: f32,
}

/// Defaults for fields a submission leaves unset.
pub mod defaults {
    pub const STEPS: u32 = 20;
    pub const WIDTH: u32 = 64;
    pub const HEIGHT: u32 = 64;
    pub const GUIDANCE: f32 = 4.0;
    pub const N: u32 = 1;
    pub const SAMPLER: &str = "euler";
    pub const MAX_ATTEMPTS: u32 = 3;
}

/// The bounds every request is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_prompt_chars: usize,
    pub max_steps: u32,
    pub max_n: u32,
    pub max_side: u32,
    pub side_multiple: u32,
    pub max_guidance: f32,
    pub max_tasks: usize,
    pub max_attempts: u32,
    pub max_name_chars: usize,
    pub max_priority: i32,
    /// The longest deadline a job may set, in seconds.
    pub max_deadline_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_prompt_chars: 2000,
            max_steps: 200,
            max_n: 16,
            max_side: 2048,
            side_multiple: 8,
            max_guidance: 50.0,
            max_tasks: 1_000_000,
            max_attempts: 20,
            max_name_chars: 200,
            max_priority: 1000,
            max_deadline_seconds: 30 * 24 * 3600,
        }
    }
}

/// One task's fully resolved parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub prompt: String,
    pub negative_prompt: String,
    pub seed: u64,
    pub steps: u32,
    pub width: u32,
    pub height: u32,
    pub guidance: f32,
    pub n: u32,
    pub sampler: String,
    /// Sampler schedule overrides (none set: the model's own schedule).
    #[serde(default)]
    pub schedule: Schedule,
}

/// A checked submission: ready to be stored as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The client's idempotency key, if it gave one.
    pub request_id: Option<String>,
    pub name: String,
    pub owner: String,
    /// The tenant the job belongs to: that of the key that submitted it.
    pub tenant: String,
    pub model: String,
    pub priority: i32,
    pub max_attempts: u32,
    pub tasks: Vec<TaskSpec>,
    /// How long after submission its tasks may stay queued (none: no
    /// deadline).
    pub deadline: Option<std::time::Duration>,
    /// The W3C trace context of the submission (empty: not traced); every
    /// attempt of its tasks joins that trace.
    pub traceparent: String,
    /// The axes its tasks were expanded from, when it is a sweep: task `i`
    /// lies at `sweep.coordinates(i)`.
    pub sweep: Option<crate::sweep::Sweep>,
    /// Free-form labels, checked by [`crate::labels::check_labels`].
    pub labels: crate::labels::Labels,
}

/// A task as dispatch sees it: which queue, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedTask {
    pub id: TaskId,
    pub model: String,
    /// Its job's tenant: within a model's queue, tenants share the workers
    /// by weight.
    pub tenant: String,
    pub priority: i32,
    /// Submission order, increasing across all tasks.
    pub seq: i64,
}

/// The image seed of image `index` of a task whose seed is `task_seed`:
/// `task_seed + index`, wrapping at 2^64. Every model family draws image
/// `index`'s noise from this seed alone, so this seed with `n = 1` renders
/// that image again; workers write it into the image's PNG.
pub fn image_seed(task_seed: u64, index: u64) -> u64 {
    task_seed.wrapping_add(index)
}
