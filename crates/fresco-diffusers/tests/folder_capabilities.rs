//! What a worker reports for a diffusers-layout folder without loading it:
//! the capabilities the folder kinds read from the tiny SD, SDXL, SD3 and
//! FLUX folders' config files, and that garbage weights do not change them.

mod common;
mod flow_common;

use candle_core::DType;
use fresco_diffusers::pipeline::MAX_BATCH;
use fresco_diffusers::serve::{flow_folder_kind, folder_kind};
use fresco_pipeline::{Family, ModelCapabilities, ModelRegistry};

/// A registry of both diffusers folder kinds over `models_dir`.
fn registry(models_dir: &std::path::Path) -> ModelRegistry {
    ModelRegistry::new(Some(models_dir.to_path_buf()))
        .with_kind(folder_kind(DType::F32))
        .with_kind(flow_folder_kind(DType::F32))
}

fn expected(model: &str, family: Family, multiple: u32) -> ModelCapabilities {
    ModelCapabilities::of_family(model, family, multiple, None, Some(MAX_BATCH as u32))
}

#[test]
fn stable_diffusion_folders_draw_multiples_of_their_vae_factor() {
    let models = tempfile::tempdir().expect("tempdir");
    let sd = common::tiny_sd_copy();
    std::fs::rename(sd.path(), models.path().join("tiny-sd")).expect("move");
    let registry = registry(models.path());
    let caps = registry.capabilities("tiny-sd").expect("read");
    // tiny-sd's VAE halves the image once: block_out_channels [32, 64].
    assert_eq!(caps, expected("tiny-sd", Family::StableDiffusion, 2));
    assert!(caps.beta_schedule_knobs && caps.negative_prompt);
    assert!(caps.samplers.iter().any(|s| s == "ddim"));
    assert!(!caps.samplers.iter().any(|s| s == "flow_euler"));

    // Only configs are read: unreadable weights change nothing.
    let unet = models
        .path()
        .join("tiny-sd/unet/diffusion_pytorch_model.safetensors");
    std::fs::write(&unet, b"not weights").expect("overwrite");
    assert_eq!(registry.capabilities("tiny-sd").expect("read"), caps);

    // A VAE config the pipeline would refuse is an error, not a guess.
    std::fs::write(models.path().join("tiny-sd/vae/config.json"), "{}").expect("overwrite");
    assert!(registry.capabilities("tiny-sd").is_err());
}

#[test]
fn an_sdxl_folder_reads_as_stable_diffusion() {
    let registry = registry(common::tiny_sdxl().parent().expect("data dir"));
    assert_eq!(
        registry.capabilities("tiny-sdxl").expect("read"),
        expected("tiny-sdxl", Family::StableDiffusion, 2)
    );
}

#[test]
fn an_sd3_folder_draws_multiples_of_vae_factor_times_patch() {
    let models = tempfile::tempdir().expect("tempdir");
    flow_common::write_sd3(&models.path().join("tiny-sd3"), false, 5);
    let caps = registry(models.path())
        .capabilities("tiny-sd3")
        .expect("read");
    // VAE factor 2 (block_out_channels [16, 16]) × patch_size 2.
    assert_eq!(caps, expected("tiny-sd3", Family::Sd3, 4));
    assert_eq!(caps.samplers, ["flow_euler"]);
    assert!(!caps.beta_schedule_knobs && caps.negative_prompt);
}

#[test]
fn a_flux_folder_draws_multiples_of_its_packed_latents_and_refuses_negative_prompts() {
    let models = tempfile::tempdir().expect("tempdir");
    flow_common::write_flux(&models.path().join("tiny-flux"), false, 5);
    let caps = registry(models.path())
        .capabilities("tiny-flux")
        .expect("read");
    // VAE factor 2 × FLUX's 2×2 packing (16 for FLUX.1's VAE factor 8).
    assert_eq!(caps, expected("tiny-flux", Family::Flux, 4));
    assert!(!caps.beta_schedule_knobs);
    assert!(!caps.negative_prompt, "FLUX ignores a negative prompt");
}
