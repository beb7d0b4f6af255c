//! Which models a worker serves: its model registry (every family wired into
//! the model contract's registry, in one place for the daemon and `fresco
//! dev`), and the models asked for, checked against what that registry can
//! load, or everything it holds.

use std::path::PathBuf;

use anyhow::bail;
use candle_core::DType;
use fresco_pipeline::ModelRegistry;

/// The registry of every model family a worker serves: fresco's DiT (its
/// built-in models and folders, tried first), then diffusers-layout Stable
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
    Ok(fresco_dit::register(registry)
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
