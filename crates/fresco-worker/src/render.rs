//! One task's images: parameters → pipeline → PNG bytes carrying their
//! generation parameters and the model's weights hash in text chunks, each
//! with its SHA-256 (taken here, on the sampling thread, before upload); a
//! batch the device has no memory for is rendered again one image at a
//! time.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use fresco_core::a1111;
use fresco_core::digest::{sha256_hex, short_model_hash};
use fresco_pipeline::{GenerateParams, GeneratedImage, ModelCache, Pipeline, Schedule, image_seed};
use fresco_proto::v1 as pb;
use tracing::warn;

use crate::failure::{AttemptFailure, is_out_of_memory};
use crate::metrics;
use crate::png::encode_png;

/// One encoded image.
#[derive(Debug, Clone)]
pub struct RenderedImage {
    pub index: u32,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub png: Vec<u8>,
    /// Lower-case hex SHA-256 of `png`.
    pub sha256: String,
}

/// A task's images, and the hash of the weights that made them.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub images: Vec<RenderedImage>,
    /// Lower-case hex SHA-256 of the model's weights (empty when the
    /// model cache hashes none).
    pub weights_sha256: String,
}

/// What the sampling thread shares with the heartbeat.
#[derive(Debug, Default)]
pub struct Progress {
    pub step: AtomicU32,
    pub cancel: AtomicBool,
}

pub fn params_of(task: &pb::Task) -> GenerateParams {
    GenerateParams {
        prompt: task.prompt.clone(),
        negative_prompt: task.negative_prompt.clone(),
        seed: task.seed,
        steps: task.steps,
        width: task.width,
        height: task.height,
        guidance: task.guidance,
        n: task.n,
        sampler: task.sampler.clone(),
        schedule: Schedule::from_proto(task.schedule.as_ref()),
    }
}

/// The text chunks every image carries, so a downloaded file explains
/// itself: the webui's `parameters` text (with `Model hash:`, the weights
/// hash's first ten hex digits, when it is known) and one chunk per value,
/// `model_sha256` the whole weights hash.
pub fn png_text(
    task: &pb::Task,
    image_seed: u64,
    weights_sha256: &str,
) -> Vec<(&'static str, String)> {
    let schedule = Schedule::from_proto(task.schedule.as_ref());
    let model_hash = (!weights_sha256.is_empty()).then(|| short_model_hash(weights_sha256));
    let summary = a1111::Parameters {
        prompt: &task.prompt,
        negative_prompt: &task.negative_prompt,
        steps: task.steps,
        sampler: &task.sampler,
        karras_sigmas: schedule.karras_sigmas,
        guidance: task.guidance,
        seed: image_seed,
        width: task.width,
        height: task.height,
        model_hash,
        model: &task.model,
    }
    .to_text();
    vec![
        ("parameters", summary),
        ("prompt", task.prompt.clone()),
        ("negative_prompt", task.negative_prompt.clone()),
        ("seed", image_seed.to_string()),
        ("task_seed", task.seed.to_string()),
        ("steps", task.steps.to_string()),
        ("guidance", task.guidance.to_string()),
        ("sampler", task.sampler.clone()),
        ("model", task.model.clone()),
        ("model_sha256", weights_sha256.to_owned()),
        ("width", task.width.to_string()),
        ("height", task.height.to_string()),
        ("schedule", schedule.to_json()),
        ("fresco_job", task.job_id.clone()),
        ("fresco_task", task.id.clone()),
    ]
}

/// Samples and encodes every image of `task`; runs on a blocking thread.
/// A batch the device has no memory for is rendered again one image at a
/// time (see [`generate`]).
pub fn render(
    cache: &ModelCache,
    task: &pb::Task,
    progress: &Arc<Progress>,
) -> Result<Rendered, AttemptFailure> {
    let fetched = cache.fetch(&task.model).map_err(AttemptFailure::Load)?;
    let weights_sha256 = fetched.weights_sha256;
    if let Some(took) = fetched.loaded_in {
        metrics::model_loaded(&task.model, took);
    }
    let pipeline = fetched.pipeline;
    let params = params_of(task);
    let mut steps = StepSpans::start();
    let started = Instant::now();
    let mut last_step = started;
    let mut on_step = |p: fresco_pipeline::Progress| {
        steps.done(p);
        let now = Instant::now();
        metrics::step(&task.model, now - last_step);
        last_step = now;
        progress.step.store(p.step, Ordering::Relaxed);
        if progress.cancel.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let images = generate(pipeline.as_ref(), &params, &mut on_step)?;
    metrics::sampled(&task.model, started.elapsed());
    let images = images
        .into_iter()
        .map(|image| {
            let text = png_text(task, image.seed, &weights_sha256);
            let png = encode_png(&image, &text).map_err(AttemptFailure::Encode)?;
            Ok(RenderedImage {
                index: image.index,
                seed: image.seed,
                width: image.width,
                height: image.height,
                sha256: sha256_hex(&png),
                png,
            })
        })
        .collect::<Result<_, AttemptFailure>>()?;
    Ok(Rendered {
        images,
        weights_sha256,
    })
}

/// One span per sampling step, each from the end of the step before to the
/// end of its own, as children of the current span (the attempt's
/// `sample` span): an exported trace shows every step.
struct StepSpans {
    current: Option<tracing::Span>,
}

impl StepSpans {
    fn start() -> Self {
        Self {
            current: Some(step_span(1)),
        }
    }

    /// Step `p.step` is done: its span ends, the next one's begins.
    fn done(&mut self, p: fresco_pipeline::Progress) {
        self.current = (p.step < p.total).then(|| step_span(p.step + 1));
    }
}

fn step_span(step: u32) -> tracing::Span {
    tracing::info_span!("step", otel.name = "sampling step", step)
}

/// The task's images as one batch; when the device runs out of memory for
/// a batch of several, one image at a time instead: image `k` alone, with
/// its image seed `image_seed(seed, k)` and `n = 1`, which the per-image
/// seed contract makes the same image `k` of the batch.
pub fn generate(
    pipeline: &dyn Pipeline,
    params: &GenerateParams,
    on_step: &mut dyn FnMut(fresco_pipeline::Progress) -> ControlFlow<()>,
) -> Result<Vec<GeneratedImage>, AttemptFailure> {
    match pipeline.generate(params, on_step) {
        Err(err) if params.n > 1 && is_out_of_memory(&err) => {
            warn!(images = params.n, error = %err, "out of memory for the batch; rendering one image at a time");
            (0..params.n)
                .map(|k| one_image(pipeline, params, k, on_step))
                .collect()
        }
        result => result.map_err(AttemptFailure::Generate),
    }
}

/// Image `k` of the task that `params` describe, rendered alone.
fn one_image(
    pipeline: &dyn Pipeline,
    params: &GenerateParams,
    k: u32,
    on_step: &mut dyn FnMut(fresco_pipeline::Progress) -> ControlFlow<()>,
) -> Result<GeneratedImage, AttemptFailure> {
    let alone = GenerateParams {
        seed: image_seed(params.seed, u64::from(k)),
        n: 1,
        ..params.clone()
    };
    let mut images = pipeline
        .generate(&alone, on_step)
        .map_err(AttemptFailure::Generate)?;
    match images.pop() {
        Some(image) if images.is_empty() => Ok(GeneratedImage { index: k, ..image }),
        _ => Err(AttemptFailure::Generate(fresco_pipeline::Error::Internal(
            format!(
                "asked for one image, the model returned {}",
                images.len() + 1
            ),
        ))),
    }
}
