//! What a diffusers-layout folder accepts, read from its config files alone
//! (no weights): the family's samplers, knobs and negative-prompt rule from
//! [`Family::capabilities`], sides that are multiples of what the pipeline
//! checks (SD/SDXL: the VAE factor; SD3: VAE factor × transformer patch;
//! FLUX: VAE factor × its 2×2 packing), no side limit of their own, and at
//! most [`MAX_BATCH`] images a task. The pipelines keep their own checks.

use std::path::Path;

use fresco_pipeline::{Family, ModelCapabilities};

use crate::mmdit::Sd3TransformerConfig;
use crate::pipeline::MAX_BATCH;
use crate::serve::{to_farm_error, transformer_class};
use crate::vae::VaeConfig;

/// Pixels per latent along a side, from `dir/vae/config.json`.
fn vae_factor(dir: &Path) -> crate::Result<usize> {
    let vae = VaeConfig::from_file(&dir.join("vae/config.json"))?;
    Ok(1 << vae.downsamplings())
}

/// The capabilities of `model_id` of `family` whose sides are multiples of
/// `multiple`.
fn of_family(model_id: &str, family: Family, multiple: usize) -> ModelCapabilities {
    ModelCapabilities::of_family(
        model_id,
        family,
        u32::try_from(multiple).unwrap_or(u32::MAX),
        None,
        u32::try_from(MAX_BATCH).ok(),
    )
}

/// What the Stable Diffusion 1.x/2.x or SDXL folder `dir` accepts.
pub fn sd_capabilities(dir: &Path, model_id: &str) -> fresco_pipeline::Result<ModelCapabilities> {
    let family = Family::StableDiffusion;
    let factor = vae_factor(dir).map_err(|e| to_farm_error(model_id, e))?;
    let multiple = family.capabilities().sides.multiple(factor, 1);
    Ok(of_family(model_id, family, multiple))
}

/// What the SD3 or FLUX.1 folder `dir` accepts.
pub fn flow_capabilities(dir: &Path, model_id: &str) -> fresco_pipeline::Result<ModelCapabilities> {
    let read = || -> crate::Result<ModelCapabilities> {
        let factor = vae_factor(dir)?;
        Ok(match transformer_class(dir).as_deref() {
            Some("FluxTransformer2DModel") => {
                let multiple = Family::Flux.capabilities().sides.multiple(factor, 0);
                of_family(model_id, Family::Flux, multiple)
            }
            _ => {
                let transformer =
                    Sd3TransformerConfig::from_file(&dir.join("transformer/config.json"))?;
                let multiple = Family::Sd3
                    .capabilities()
                    .sides
                    .multiple(factor, transformer.patch_size);
                of_family(model_id, Family::Sd3, multiple)
            }
        })
    };
    read().map_err(|e| to_farm_error(model_id, e))
}
