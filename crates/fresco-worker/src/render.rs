//! One task's images: parameters → pipeline → PNG bytes carrying their
//! generation parameters in text chunks.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use fresco_pipeline::{GenerateParams, ModelCache, Schedule};
use fresco_proto::v1 as pb;

use crate::png::encode_png;

/// One encoded image.
#[derive(Debug, Clone)]
pub struct RenderedImage {
    pub index: u32,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub png: Vec<u8>,
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

/// The text chunks every image carries, so a downloaded file explains itself.
pub fn png_text(task: &pb::Task, image_seed: u64) -> Vec<(&'static str, String)> {
    let summary = format!(
        "{}\nNegative prompt: {}\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}",
        task.prompt,
        task.negative_prompt,
        task.steps,
        task.sampler,
        task.guidance,
        image_seed,
        task.width,
        task.height,
        task.model
    );
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
        ("width", task.width.to_string()),
        ("height", task.height.to_string()),
        (
            "schedule",
            Schedule::from_proto(task.schedule.as_ref()).to_json(),
        ),
        ("fresco_job", task.job_id.clone()),
        ("fresco_task", task.id.clone()),
    ]
}

/// Samples and encodes every image of `task`; runs on a blocking thread.
pub fn render(
    cache: &ModelCache,
    task: &pb::Task,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<RenderedImage>> {
    let pipeline = cache.get(&task.model)?;
    let params = params_of(task);
    let mut on_step = |p: fresco_pipeline::Progress| {
        progress.step.store(p.step, Ordering::Relaxed);
        if progress.cancel.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let images = pipeline.generate(&params, &mut on_step)?;
    images
        .into_iter()
        .map(|image| {
            let text = png_text(task, image.seed);
            let png = encode_png(&image, &text)?;
            Ok(RenderedImage {
                index: image.index,
                seed: image.seed,
                width: image.width,
                height: image.height,
                png,
            })
        })
        .collect()
}
