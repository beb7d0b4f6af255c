//! Every entry of `tests/data/tiny-sd/expected.json` (computed by diffusers from the same
//! files) reproduced by fresco-diffusers within the reference tolerances.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{IMAGE_TOL, MODEL_TOL, check, expected, ids, tensor, tiny_sd};
use fresco_diffusers::clip::ClipTextModel;
use fresco_diffusers::unet::{Unet, UnetBackend, UnetConditioning};
use fresco_diffusers::vae::Vae;
use fresco_diffusers::{GenerateParams, Prompt, SchedulerKind, SdPipeline};

#[test]
fn clip_last_hidden_state_matches_diffusers() {
    let e = expected();
    let clip = ClipTextModel::load(&tiny_sd().join("text_encoder"), DType::F32, &Device::Cpu)
        .expect("load text encoder");
    for which in ["cond", "uncond"] {
        let ids = ids(&e["clip"][format!("{which}_input_ids")]);
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("ids");
        let out = clip.forward(&input).expect("clip forward");
        let want = tensor(&e["clip"][format!("{which}_last_hidden_state")]);
        check(
            &format!("clip {which}"),
            &out.last_hidden_state,
            &want,
            MODEL_TOL,
        );
    }
}

#[test]
fn unet_noise_prediction_matches_diffusers() {
    for backend in [UnetBackend::Native, UnetBackend::Candle] {
        unet_matches(backend);
    }
}

fn unet_matches(backend: UnetBackend) {
    let e = expected();
    let unet = Unet::load_with(&tiny_sd().join("unet"), DType::F32, &Device::Cpu, backend)
        .expect("load unet");
    let latents = tensor(&e["unet"]["latents"]);
    let context = Tensor::cat(
        &[
            tensor(&e["clip"]["uncond_last_hidden_state"]),
            tensor(&e["clip"]["cond_last_hidden_state"]),
        ],
        0,
    )
    .expect("context");
    let t = e["unet"]["timestep"].as_f64().expect("timestep");
    let cond = UnetConditioning {
        encoder_hidden_states: &context,
        text_time: None,
    };
    let got = unet.forward(&latents, t, &cond).expect("unet forward");
    check(
        &format!("unet noise_pred ({backend:?} backend)"),
        &got,
        &tensor(&e["unet"]["noise_pred"]),
        MODEL_TOL,
    );
}

#[test]
fn vae_decode_matches_diffusers() {
    let e = expected();
    let vae = Vae::load(&tiny_sd().join("vae"), DType::F32, &Device::Cpu).expect("load vae");
    assert_eq!(
        vae.config().scaling_factor,
        e["vae_decode"]["scaling_factor"]
            .as_f64()
            .expect("scaling factor")
    );
    let got = vae
        .decode(&tensor(&e["vae_decode"]["latents"]))
        .expect("decode");
    check(
        "vae decode",
        &got,
        &tensor(&e["vae_decode"]["image"]),
        MODEL_TOL,
    );
}

fn pipeline_run(index: usize, kind: SchedulerKind) {
    for backend in [UnetBackend::Native, UnetBackend::Candle] {
        pipeline_run_on(index, kind, backend);
    }
}

fn pipeline_run_on(index: usize, kind: SchedulerKind, backend: UnetBackend) {
    let e = expected();
    let run = &e["pipeline"][index];
    let pipe =
        SdPipeline::load_with(tiny_sd(), &Device::Cpu, DType::F32, backend).expect("load pipeline");
    let mut params = GenerateParams::new(Prompt::Tokens(ids(&e["clip"]["cond_input_ids"])));
    params.negative = Some(Prompt::Tokens(ids(&e["clip"]["uncond_input_ids"])));
    params.guidance_scale = run["guidance_scale"].as_f64().expect("guidance");
    params.steps = run["steps"].as_u64().expect("steps") as usize;
    params.sampler = Some(kind);
    params.width = Some(run["width"].as_u64().expect("width") as usize);
    params.height = Some(run["height"].as_u64().expect("height") as usize);
    params.init_latents = Some(tensor(&run["init_latents"]));
    let images = pipe.generate_tensor(&params).expect("generate");
    let hwc = images
        .squeeze(0)
        .and_then(|t| t.permute((1, 2, 0)))
        .expect("hwc");
    let what = format!(
        "pipeline[{index}] {} {} steps at guidance {} ({backend:?} backend)",
        kind, params.steps, params.guidance_scale
    );
    check(&what, &hwc, &tensor(&run["image_hwc_0_1"]), IMAGE_TOL);
}

#[test]
fn pipeline_ddim_matches_diffusers() {
    let e = expected();
    assert!(
        e["pipeline"][0]["scheduler"]
            .as_str()
            .is_some_and(|s| s.starts_with("DDIM"))
    );
    pipeline_run(0, SchedulerKind::Ddim);
}

#[test]
fn pipeline_euler_matches_diffusers() {
    let e = expected();
    assert!(
        e["pipeline"][1]["scheduler"]
            .as_str()
            .is_some_and(|s| s.starts_with("Euler"))
    );
    pipeline_run(1, SchedulerKind::Euler);
}

#[test]
fn folder_scheduler_config_is_read() {
    let pipe = SdPipeline::load(tiny_sd(), &Device::Cpu, DType::F32).expect("load pipeline");
    let s = pipe.scheduler();
    assert_eq!(s.default_kind, Some(SchedulerKind::Ddim));
    assert_eq!(s.config.beta_schedule, "scaled_linear");
    assert_eq!(s.config.steps_offset, 1);
    assert!(!s.config.set_alpha_to_one);
    assert_eq!(pipe.default_size(), (16, 16));
}
