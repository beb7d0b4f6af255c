//! Which models a worker serves: its model registry (every family wired into
//! the model contract's registry, in one place for the daemon and `fresco
//! dev`), and the models asked for, checked against what that registry can
//! load, or everything it holds.

use std::path::PathBuf;

use anyhow::bail;
use candle_core::DType;
use fresco_pipeline::ModelRegistry;

/// The registry of every model family a worker serves: fresco's DiT (its
/// built-in models and folders, tried first), the built-in `noop` model,
/// then diffusers-layout Stable
/// Diffusion 1.x/2.x and SDXL folders and SD3/FLUX folders, whose weights
/// are held as `dtype`. Folders are looked for in `models_dir` and in the
/// Hugging Face hub cache `hf_cache`; either that is given must be a
/// directory.
pub fn model_registry(
    models_dir: Option<PathBuf>,
    hf_cache: Option<PathBuf>,
    dtype: DType,
) -> anyhow::Result<ModelRegistry> {
    for (flag, dir) in [("--models-dir", &models_dir), ("--hf-cache", &hf_cache)] {
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            bail!("{flag} {}: not a directory", dir.display());
        }
    }
    let registry = ModelRegistry::new(models_dir).with_hf_cache(hf_cache);
    let registry = fresco_pipeline::noop::register(fresco_dit::register(registry));
    Ok(registry
        .with_kind(fresco_diffusers::serve::folder_kind(dtype))
        .with_kind(fresco_diffusers::serve::flow_folder_kind(dtype)))
}

/// The models to serve: `requested`, or every model of `registry` when
/// none is requested. Fails naming the model that cannot be served, or the
/// model folder whose name cannot be a model id.
pub fn served_models(
    registry: &ModelRegistry,
    requested: &[String],
) -> anyhow::Result<Vec<String>> {
    let available = registry.available()?;
    for model in &available {
        if let Err(err) = fresco_core::validate::model_id(model) {
            bail!(
                "--models-dir: folder {model:?} cannot be a model id: {}",
                err.rule
            );
        }
    }
    if requested.is_empty() {
        return Ok(available);
    }
    for model in requested {
        if !available.contains(model) {
            bail!(
                "--models: unknown model {model:?}; this worker can serve {}",
                available.join(", ")
            );
        }
    }
    Ok(requested.to_vec())
}

#[cfg(test)]
mod tests {
    use fresco_core::capabilities::{BUILTIN_MODELS, NOOP};

    use super::*;

    #[test]
    fn every_worker_serves_every_builtin_model_noop_among_them() {
        let registry = model_registry(None, None, DType::F32).unwrap();
        assert_eq!(served_models(&registry, &[]).unwrap(), BUILTIN_MODELS);
        assert_eq!(
            served_models(&registry, &[NOOP.to_owned()]).unwrap(),
            [NOOP]
        );
        let noop = registry
            .load(NOOP, &candle_core::Device::Cpu)
            .expect("noop loads");
        assert_eq!(noop.model_id(), NOOP);
    }

    /// A noop task through the worker's own render path: blank PNGs of the
    /// asked size, one per image, with the text chunks every model writes.
    #[test]
    fn a_noop_task_renders_blank_pngs_with_the_usual_text_chunks() {
        use std::collections::HashMap;
        use std::sync::Arc;

        use fresco_pipeline::{ModelCache, image_seed};
        use fresco_proto::v1 as pb;

        let registry = model_registry(None, None, DType::F32).unwrap();
        let hashing = registry.clone();
        let cache = ModelCache::with_loader(
            1 << 20,
            candle_core::Device::Cpu,
            Box::new(move |model, device| registry.load(model, device)),
        )
        .with_weights_hasher(Box::new(move |model| hashing.weights_sha256(model)));
        let task = pb::Task {
            id: "task-1".into(),
            job_id: "job-1".into(),
            model: NOOP.into(),
            prompt: "a blank page".into(),
            seed: 7,
            steps: 4,
            width: 40,
            height: 24,
            guidance: 5.0,
            n: 2,
            sampler: "unipc".into(),
            ..Default::default()
        };
        let progress = Arc::new(crate::render::Progress::default());
        let rendered = crate::render::render(&cache, &task, &progress).unwrap();
        assert_eq!(progress.step.load(std::sync::atomic::Ordering::Relaxed), 4);
        assert_eq!(rendered.images.len(), 2);
        for (k, image) in rendered.images.iter().enumerate() {
            let (width, height, text) = crate::png::read_png_text(&image.png).unwrap();
            assert_eq!((width, height), (40, 24));
            let text: HashMap<String, String> = text.into_iter().collect();
            assert_eq!(text["model"], NOOP);
            assert_eq!(text["sampler"], "unipc");
            assert_eq!(text["seed"], image_seed(7, k as u64).to_string());
            assert_eq!(text["model_sha256"], rendered.weights_sha256);
            assert_eq!(text["fresco_task"], "task-1");
            let decoder = png::Decoder::new(std::io::Cursor::new(&image.png));
            let mut reader = decoder.read_info().unwrap();
            let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
            reader.next_frame(&mut pixels).unwrap();
            assert!(pixels.iter().all(|&b| b == fresco_pipeline::noop::BLANK));
        }
    }
}
