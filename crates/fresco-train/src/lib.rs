//! `fresco-train`: training and evaluation tools for fresco's built-in
//! `fresco-shapes` model — the DiT of `fresco-dit` trained with flow
//! matching on the procedural captioned shapes of `fresco-shapes`.
//!
//! * [`Trainer`] — the training loop (AdamW, warmup + cosine, caption dropout,
//!   checkpoints with exact resume, optional weight [`ema`]); binary `fresco-train`.
//! * [`Preset`] — the `tiny` and `small` architectures with the shapes vocabulary.
//! * [`eval`] — sampling a fixed prompt set (seen + held-out combinations), scoring
//!   it with `fresco_shapes::Evaluator`, labelled grids; binary `fresco-eval`.

pub mod checkpoint;
pub mod data;
pub mod ema;
pub mod error;
pub mod eval;
mod font;
pub mod optim;
pub mod presets;
pub mod probe;
pub mod schedule;
pub mod sensitivity;
pub mod trainer;

pub use error::{Error, Result};
pub use eval::{
    EvalOptions, EvalOutput, EvalPrompt, PromptScore, eval_prompts, evaluate, per_prompt_table,
};
pub use optim::{AdamW, AdamWConfig};
pub use presets::Preset;
pub use probe::{ProbeOptions, clean_image_probe, contrast_table, write_probe_grid};
pub use schedule::{LogitNormalParams, TimeSampling};
pub use sensitivity::{SensitivityOptions, caption_sensitivity, sensitivity_table};
pub use trainer::{MODEL_ID, StepStats, TrainOptions, TrainSummary, Trainer};
