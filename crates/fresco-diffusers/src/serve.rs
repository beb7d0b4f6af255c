//! Serving diffusers-layout folders on a fresco worker: an [`SdPipeline`]
//! (SD 1.x/2.x, SDXL) or a flow-matching [`Sd3Pipeline`] / [`FluxPipeline`]
//! behind fresco's [`Pipeline`] interface (task parameters in, RGB8 images
//! and progress out), and the [`FolderKind`]s that let a worker's model
//! registry recognise and load such folders and read what they accept.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};
use fresco_pipeline::{Family, FolderKind, GeneratedImage, Pipeline, Progress, image_seed};
use fresco_schedulers::SchedulerKind;

use crate::error::Error;
use crate::flow_params::FlowParams;
use crate::flux::FluxPipeline;
use crate::folder_capabilities::{flow_capabilities, sd_capabilities};
use crate::image::RgbImage;
use crate::pipeline::{GenerateParams, Prompt, SdPipeline};
use crate::sd3::Sd3Pipeline;

/// Whether `dir` is a diffusers-layout Stable Diffusion folder.
pub fn is_sd_folder(dir: &Path) -> bool {
    [
        "unet/config.json",
        "vae/config.json",
        "text_encoder/config.json",
    ]
    .iter()
    .all(|f| dir.join(f).is_file())
}

/// The registry entry for Stable Diffusion folders, loaded in `dtype`; their
/// capabilities are read from their configs ([`sd_capabilities`]).
pub fn folder_kind(dtype: DType) -> FolderKind {
    FolderKind::new(
        "stable-diffusion",
        is_sd_folder,
        move |dir: &Path, model_id: &str, device: &Device| {
            let model = SdModel::load(dir, model_id, device, dtype)?;
            Ok(Arc::new(model) as Arc<dyn Pipeline>)
        },
    )
    .with_capabilities(sd_capabilities)
}

/// A loaded Stable Diffusion folder serving tasks.
#[derive(Debug)]
pub struct SdModel {
    model_id: String,
    pipeline: SdPipeline,
    bytes: u64,
}

impl SdModel {
    /// Loads the folder `dir` under `model_id`.
    pub fn load(
        dir: &Path,
        model_id: &str,
        device: &Device,
        dtype: DType,
    ) -> fresco_pipeline::Result<Self> {
        let pipeline =
            SdPipeline::load(dir, device, dtype).map_err(|e| to_farm_error(model_id, e))?;
        Ok(Self {
            model_id: model_id.to_owned(),
            pipeline,
            bytes: weight_bytes(dir),
        })
    }

    /// The loaded pipeline.
    pub fn pipeline(&self) -> &SdPipeline {
        &self.pipeline
    }
}

impl Pipeline for SdModel {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn samplers(&self) -> &'static [&'static str] {
        Family::StableDiffusion.capabilities().samplers
    }

    fn memory_bytes(&self) -> u64 {
        self.bytes
    }

    fn generate(
        &self,
        params: &fresco_pipeline::GenerateParams,
        on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> fresco_pipeline::Result<Vec<GeneratedImage>> {
        let sampler = sampler_kind(&params.sampler)?;
        params.check_knobs(Family::StableDiffusion, &self.model_id)?;
        let run = GenerateParams {
            negative: (!params.negative_prompt.is_empty())
                .then(|| Prompt::Text(params.negative_prompt.clone())),
            guidance_scale: f64::from(params.guidance),
            steps: params.steps as usize,
            sampler: Some(sampler),
            schedule: params.schedule.clone(),
            seed: params.seed,
            width: Some(params.width as usize),
            height: Some(params.height as usize),
            n: params.n as usize,
            ..GenerateParams::new(Prompt::Text(params.prompt.clone()))
        };
        let mut report = progress_reporter(on_step);
        let images = self
            .pipeline
            .generate_with(&run, &mut report)
            .map_err(|e| to_farm_error(&self.model_id, e))?;
        farm_images(images, params.seed)
    }
}

/// The diffusers class of a folder's `transformer/config.json`, if any.
pub(crate) fn transformer_class(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("transformer/config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["_class_name"].as_str().map(str::to_owned)
}

/// Whether `dir` is a diffusers-layout SD3 or FLUX.1 folder.
pub fn is_flow_folder(dir: &Path) -> bool {
    matches!(
        transformer_class(dir).as_deref(),
        Some("SD3Transformer2DModel" | "FluxTransformer2DModel")
    )
}

/// The registry entry for SD3 and FLUX.1 folders, loaded in `dtype`; their
/// capabilities are read from their configs ([`flow_capabilities`]).
pub fn flow_folder_kind(dtype: DType) -> FolderKind {
    FolderKind::new(
        "flow-matching",
        is_flow_folder,
        move |dir: &Path, model_id: &str, device: &Device| {
            let model = FlowModel::load(dir, model_id, device, dtype)?;
            Ok(Arc::new(model) as Arc<dyn Pipeline>)
        },
    )
    .with_capabilities(flow_capabilities)
}

/// A loaded SD3 or FLUX.1 folder serving tasks. Its pipelines report progress
/// after every step (so a cancelled task stops between steps) and read the
/// schedule knob `flow_shift`.
#[derive(Debug)]
pub struct FlowModel {
    model_id: String,
    pipeline: FlowPipeline,
    bytes: u64,
}

#[derive(Debug)]
enum FlowPipeline {
    Sd3(Box<Sd3Pipeline>),
    Flux(Box<FluxPipeline>),
}

impl FlowPipeline {
    fn family(&self) -> Family {
        match self {
            Self::Sd3(_) => Family::Sd3,
            Self::Flux(_) => Family::Flux,
        }
    }
}

impl FlowModel {
    /// Loads the SD3 or FLUX.1 folder `dir` under `model_id`.
    pub fn load(
        dir: &Path,
        model_id: &str,
        device: &Device,
        dtype: DType,
    ) -> fresco_pipeline::Result<Self> {
        let farm = |e| to_farm_error(model_id, e);
        let pipeline = match transformer_class(dir).as_deref() {
            Some("FluxTransformer2DModel") => FlowPipeline::Flux(Box::new(
                FluxPipeline::load(dir, device, dtype).map_err(farm)?,
            )),
            _ => FlowPipeline::Sd3(Box::new(
                Sd3Pipeline::load(dir, device, dtype).map_err(farm)?,
            )),
        };
        Ok(Self {
            model_id: model_id.to_owned(),
            pipeline,
            bytes: weight_bytes(dir),
        })
    }
}

impl Pipeline for FlowModel {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn samplers(&self) -> &'static [&'static str] {
        self.pipeline.family().capabilities().samplers
    }

    fn memory_bytes(&self) -> u64 {
        self.bytes
    }

    fn generate(
        &self,
        params: &fresco_pipeline::GenerateParams,
        on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> fresco_pipeline::Result<Vec<GeneratedImage>> {
        let family = self.pipeline.family();
        let accepts = family.capabilities();
        if !accepts.runs(&params.sampler) {
            return Err(fresco_pipeline::Error::UnknownSampler {
                sampler: params.sampler.clone(),
                supported: accepts.samplers.join(", "),
            });
        }
        params.check_knobs(family, &self.model_id)?;
        let run = FlowParams {
            negative: (accepts.negative_prompt && !params.negative_prompt.is_empty())
                .then(|| Prompt::Text(params.negative_prompt.clone())),
            guidance_scale: f64::from(params.guidance),
            steps: params.steps as usize,
            seed: params.seed,
            width: Some(params.width as usize),
            height: Some(params.height as usize),
            n: params.n as usize,
            flow_shift: params.schedule.flow_shift,
            ..FlowParams::new(Prompt::Text(params.prompt.clone()))
        };
        let mut report = progress_reporter(on_step);
        let images = match &self.pipeline {
            FlowPipeline::Sd3(p) => p.generate_with(&run, &mut report),
            FlowPipeline::Flux(p) => p.generate_with(&run, &mut report),
        }
        .map_err(|e| to_farm_error(&self.model_id, e))?;
        farm_images(images, params.seed)
    }
}

/// fresco-diffusers' `(done, total)` step callback over the farm's [`Progress`] one.
fn progress_reporter(
    on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> impl FnMut(usize, usize) -> ControlFlow<()> + '_ {
    |done: usize, total: usize| {
        on_step(Progress {
            step: u32::try_from(done).unwrap_or(u32::MAX),
            total: u32::try_from(total).unwrap_or(u32::MAX),
        })
    }
}

/// fresco-diffusers' images as the farm's, each reporting its image seed
/// ([`image_seed`] of the task seed `seed` and its index), the only seed its noise
/// was drawn from.
fn farm_images(images: Vec<RgbImage>, seed: u64) -> fresco_pipeline::Result<Vec<GeneratedImage>> {
    let dim = |v: usize| {
        u32::try_from(v)
            .map_err(|_| fresco_pipeline::Error::Internal(format!("image side {v} too large")))
    };
    images
        .into_iter()
        .map(|img| {
            Ok(GeneratedImage {
                index: u32::try_from(img.index).map_err(|_| {
                    fresco_pipeline::Error::Internal("image index too large".into())
                })?,
                seed: image_seed(seed, img.index),
                width: dim(img.width)?,
                height: dim(img.height)?,
                rgb: img.pixels,
            })
        })
        .collect()
}

/// The sampler a task names, if a Stable Diffusion folder runs it.
fn sampler_kind(name: &str) -> fresco_pipeline::Result<SchedulerKind> {
    let accepts = Family::StableDiffusion.capabilities();
    match fresco_schedulers::by_name(name) {
        Some(kind) if accepts.runs(name) => Ok(kind),
        _ => Err(fresco_pipeline::Error::UnknownSampler {
            sampler: name.to_owned(),
            supported: accepts.samplers.join(", "),
        }),
    }
}

/// fresco-diffusers' error as the farm's: cancellation and bad parameters keep
/// their meaning, everything else names the model.
pub(crate) fn to_farm_error(model_id: &str, e: Error) -> fresco_pipeline::Error {
    match e {
        Error::Cancelled => fresco_pipeline::Error::Cancelled,
        Error::InvalidParams { field, rule } => {
            fresco_pipeline::Error::InvalidParams(format!("{field}: {rule}"))
        }
        other => fresco_pipeline::Error::Model {
            model: model_id.to_owned(),
            source: Box::new(other),
        },
    }
}

/// Bytes of the folder's weight files (what the model holds in memory, near enough).
fn weight_bytes(dir: &Path) -> u64 {
    [
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
        "unet",
        "transformer",
        "vae",
    ]
    .iter()
    .filter_map(|part| std::fs::read_dir(dir.join(part)).ok())
    .flatten()
    .filter_map(|entry| entry.ok())
    .filter(|entry| {
        entry
            .path()
            .extension()
            .is_some_and(|ext| ext == "safetensors")
    })
    .filter_map(|entry| entry.metadata().ok())
    .map(|meta| meta.len())
    .sum()
}
