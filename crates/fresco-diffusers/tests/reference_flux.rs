//! Every entry of `tests/data/tiny-flux/expected.json` (FLUX.1-dev: guidance embedding,
//! dynamic shift) and `tests/data/tiny-flux-schnell/expected.json` (no guidance embedding,
//! fixed shift), computed by diffusers from the same files, reproduced by fresco-diffusers'
//! FLUX pipeline loaded from the folder as a user's folder is: the text embeddings, one
//! transformer call on packed latents, VAE decoding, and a whole run from the given
//! initial latents.

mod common;

use candle_core::{DType, Device};
use common::{IMAGE_TOL, MODEL_TOL, check, data, expected_in, ids, tensor};
use fresco_diffusers::flux::{image_ids, unpack_latents};
use fresco_diffusers::flux_model::FluxConditioning;
use fresco_diffusers::{FlowParams, FluxPipeline, Prompt};
use serde_json::Value;

/// The folder `tests/data/{name}` through [`FluxPipeline::load`], and its `expected.json`.
fn load(name: &str) -> (FluxPipeline, Value) {
    let dir = data(name);
    let pipe = FluxPipeline::load(&dir, &Device::Cpu, DType::F32).expect("load pipeline");
    (pipe, expected_in(&dir))
}

fn tokens(v: &Value) -> Prompt {
    Prompt::Tokens(ids(v))
}

/// CLIP's pooled output and T5's last state, as the pipeline assembles them.
fn text_matches(name: &str) {
    let (pipe, e) = load(name);
    let t = &e["text"];
    let t5_len = ids(&t["t5_ids"]).len();
    let embeds = pipe
        .encode_prompt(&tokens(&t["clip_ids"]), &tokens(&t["t5_ids"]), t5_len)
        .expect("encode");
    check(
        &format!("{name} pooled_prompt_embeds"),
        &embeds.pooled,
        &tensor(&t["pooled_prompt_embeds"]),
        MODEL_TOL,
    );
    check(
        &format!("{name} prompt_embeds"),
        &embeds.context,
        &tensor(&t["prompt_embeds"]),
        MODEL_TOL,
    );
}

/// The position ids of `expected.json` (`[seq][3]`).
fn position_ids(v: &Value) -> Vec<[f64; 3]> {
    v.as_array()
        .expect("ids array")
        .iter()
        .map(|row| {
            let r = row.as_array().expect("id row");
            [0, 1, 2].map(|i| r[i].as_f64().expect("id"))
        })
        .collect()
}

/// One transformer call on packed latents at sigma 0.6 (and guidance 3.5 for dev).
fn transformer_matches(name: &str) {
    let (pipe, e) = load(name);
    let t = &e["transformer"];
    let img_ids = position_ids(&t["img_ids"]);
    let whole = |ids: &[[f64; 3]]| -> Vec<[i64; 3]> {
        ids.iter().map(|r| r.map(|x| x.round() as i64)).collect()
    };
    assert_eq!(
        whole(&img_ids),
        whole(&image_ids(8, 8)),
        "{name}: fresco's position ids for 8x8 latents"
    );
    let context = tensor(&e["text"]["prompt_embeds"]);
    let pooled = tensor(&e["text"]["pooled_prompt_embeds"]);
    let cond = FluxConditioning {
        context: &context,
        pooled: &pooled,
        // diffusers' transformer takes sigma and multiplies by 1000; fresco's takes t.
        timestep: t["timestep"].as_f64().expect("timestep") * 1000.0,
        guidance: t["guidance"].as_f64(),
    };
    assert_eq!(cond.guidance.is_some(), pipe.embeds_guidance());
    let got = pipe
        .transformer()
        .forward(&tensor(&t["hidden_states_packed"]), &img_ids, &cond)
        .expect("transformer forward");
    check(
        &format!("{name} transformer"),
        &got,
        &tensor(&t["output"]),
        MODEL_TOL,
    );
}

/// `vae.decode(latents / scaling_factor + shift_factor)`.
fn vae_matches(name: &str) {
    let (pipe, e) = load(name);
    let got = pipe
        .vae()
        .decode(&tensor(&e["vae_decode"]["latents"]))
        .expect("decode");
    check(
        &format!("{name} vae decode"),
        &got,
        &tensor(&e["vae_decode"]["image"]),
        MODEL_TOL,
    );
}

/// The whole run with the folder's scheduler from the given (packed) initial latents.
fn pipeline_matches(name: &str) {
    let (pipe, e) = load(name);
    let run = &e["pipeline"];
    let width = run["width"].as_u64().expect("width") as usize;
    let height = run["height"].as_u64().expect("height") as usize;
    let f = pipe.vae_scale_factor();
    let mut params = FlowParams::new(tokens(&e["text"]["clip_ids"]));
    params.t5_prompt = Some(tokens(&e["text"]["t5_ids"]));
    params.max_sequence_length = Some(ids(&e["text"]["t5_ids"]).len());
    params.guidance_scale = run["guidance_scale"].as_f64().expect("guidance");
    params.steps = run["steps"].as_u64().expect("steps") as usize;
    params.width = Some(width);
    params.height = Some(height);
    params.init_latents = Some(
        unpack_latents(&tensor(&run["init_latents_packed"]), height / f, width / f)
            .expect("unpack"),
    );
    let images = pipe.generate_tensor(&params).expect("generate");
    let hwc = images
        .squeeze(0)
        .and_then(|t| t.permute((1, 2, 0)))
        .expect("hwc");
    check(
        &format!(
            "{name} pipeline {} steps at guidance {}",
            params.steps, params.guidance_scale
        ),
        &hwc,
        &tensor(&run["image_hwc_0_1"]),
        IMAGE_TOL,
    );
}

#[test]
fn flux_dev_text_matches_diffusers() {
    text_matches("tiny-flux");
}

#[test]
fn flux_dev_transformer_matches_diffusers() {
    transformer_matches("tiny-flux");
}

#[test]
fn flux_dev_vae_decode_matches_diffusers() {
    vae_matches("tiny-flux");
}

#[test]
fn flux_dev_pipeline_matches_diffusers() {
    pipeline_matches("tiny-flux");
}

#[test]
fn flux_schnell_text_matches_diffusers() {
    text_matches("tiny-flux-schnell");
}

#[test]
fn flux_schnell_transformer_matches_diffusers() {
    transformer_matches("tiny-flux-schnell");
}

#[test]
fn flux_schnell_vae_decode_matches_diffusers() {
    vae_matches("tiny-flux-schnell");
}

#[test]
fn flux_schnell_pipeline_matches_diffusers() {
    pipeline_matches("tiny-flux-schnell");
}
