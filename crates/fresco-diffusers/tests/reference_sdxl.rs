//! Every entry of `tests/data/tiny-sdxl/expected.json` (computed by diffusers from the
//! same files) reproduced by fresco-diffusers within the reference tolerances.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{IMAGE_TOL, MODEL_TOL, check, expected_in, ids, tensor, tiny_sdxl};
use fresco_diffusers::unet::{TextTime, Unet, UnetConditioning};
use fresco_diffusers::{GenerateParams, Prompt, SchedulerKind, SdPipeline};

#[test]
fn sdxl_text_conditioning_matches_diffusers() {
    let e = expected_in(&tiny_sdxl());
    let pipe = SdPipeline::load(tiny_sdxl(), &Device::Cpu, DType::F32).expect("load pipeline");
    for which in ["cond", "uncond"] {
        let prompt = Prompt::Tokens(ids(&e["text"][format!("{which}_input_ids")]));
        let (states, pooled) = pipe.encode_prompt(&prompt).expect("encode");
        check(
            &format!("sdxl text {which} prompt_embeds"),
            &states,
            &tensor(&e["text"][format!("{which}_prompt_embeds")]),
            MODEL_TOL,
        );
        check(
            &format!("sdxl text {which} pooled"),
            &pooled.expect("pooled"),
            &tensor(&e["text"][format!("{which}_pooled")]),
            MODEL_TOL,
        );
    }
}

#[test]
fn sdxl_unet_noise_prediction_matches_diffusers() {
    let e = expected_in(&tiny_sdxl());
    let unet = Unet::load(&tiny_sdxl().join("unet"), DType::F32, &Device::Cpu).expect("unet");
    let context = Tensor::cat(
        &[
            tensor(&e["text"]["uncond_prompt_embeds"]),
            tensor(&e["text"]["cond_prompt_embeds"]),
        ],
        0,
    )
    .expect("context");
    let pooled = Tensor::cat(
        &[
            tensor(&e["text"]["uncond_pooled"]),
            tensor(&e["text"]["cond_pooled"]),
        ],
        0,
    )
    .expect("pooled");
    let time_ids = tensor(&e["unet"]["time_ids"]);
    let cond = UnetConditioning {
        encoder_hidden_states: &context,
        text_time: Some(TextTime {
            text_embeds: &pooled,
            time_ids: &time_ids,
        }),
    };
    let t = e["unet"]["timestep"].as_f64().expect("timestep");
    let got = unet
        .forward(&tensor(&e["unet"]["latents"]), t, &cond)
        .expect("unet forward");
    check(
        "sdxl unet noise_pred",
        &got,
        &tensor(&e["unet"]["noise_pred"]),
        MODEL_TOL,
    );
}

#[test]
fn sdxl_pipeline_euler_matches_diffusers() {
    let e = expected_in(&tiny_sdxl());
    let run = &e["pipeline"][0];
    assert!(
        run["scheduler"]
            .as_str()
            .is_some_and(|s| s.starts_with("Euler"))
    );
    let pipe = SdPipeline::load(tiny_sdxl(), &Device::Cpu, DType::F32).expect("load pipeline");
    assert_eq!(pipe.scheduler().default_kind, Some(SchedulerKind::Euler));
    let mut params = GenerateParams::new(Prompt::Tokens(ids(&e["text"]["cond_input_ids"])));
    params.negative = Some(Prompt::Tokens(ids(&e["text"]["uncond_input_ids"])));
    params.guidance_scale = run["guidance_scale"].as_f64().expect("guidance");
    params.steps = run["steps"].as_u64().expect("steps") as usize;
    params.sampler = Some(SchedulerKind::Euler);
    params.width = Some(run["width"].as_u64().expect("width") as usize);
    params.height = Some(run["height"].as_u64().expect("height") as usize);
    params.init_latents = Some(tensor(&run["init_latents"]));
    let images = pipe.generate_tensor(&params).expect("generate");
    let hwc = images
        .squeeze(0)
        .and_then(|t| t.permute((1, 2, 0)))
        .expect("hwc");
    check(
        "sdxl pipeline euler 8 steps at guidance 5",
        &hwc,
        &tensor(&run["image_hwc_0_1"]),
        IMAGE_TOL,
    );
}
