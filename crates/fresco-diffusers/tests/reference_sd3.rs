//! Every entry of `tests/data/tiny-sd3/expected.json` (SD3: no q/k norm) and
//! `tests/data/tiny-sd35/expected.json` (SD3.5: RMS q/k norm and a dual-attention block),
//! computed by diffusers from the same files, reproduced by fresco-diffusers' SD3 pipeline
//! loaded from the folder as a user's folder is: every text encoder and the assembled
//! embeddings (cond and uncond), one transformer call, VAE decoding, and a whole guided
//! run from the given initial latents.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{IMAGE_TOL, MODEL_TOL, check, data, expected_in, ids, tensor};
use fresco_diffusers::clip_prompt::ClipPromptEncoder;
use fresco_diffusers::{FlowParams, Prompt, Sd3Pipeline};
use serde_json::Value;

/// The folder `tests/data/{name}` through [`Sd3Pipeline::load`], and its `expected.json`.
fn load(name: &str) -> (Sd3Pipeline, Value) {
    let dir = data(name);
    let pipe = Sd3Pipeline::load(&dir, &Device::Cpu, DType::F32).expect("load pipeline");
    (pipe, expected_in(&dir))
}

fn tokens(v: &Value) -> Prompt {
    Prompt::Tokens(ids(v))
}

/// Each CLIP's penultimate states and projected embeddings, T5's last state, and the
/// assembled `prompt_embeds` / `pooled_prompt_embeds` for `which` (`cond` or `uncond`).
fn text_matches(name: &str, which: &str) {
    let (pipe, e) = load(name);
    let w = &e[which];
    for (encoder, key) in pipe.clip_encoders().into_iter().zip(["clip_l", "clip_g"]) {
        let out = encoder
            .encode(&tokens(&w[format!("{key}_ids")]), &Device::Cpu)
            .expect("clip forward");
        check(
            &format!("{name} {which} {key} penultimate"),
            &ClipPromptEncoder::penultimate(&out).expect("penultimate"),
            &tensor(&w[format!("{key}_penultimate")]),
            MODEL_TOL,
        );
        check(
            &format!("{name} {which} {key} text_embeds"),
            &out.text_embeds.expect("projected"),
            &tensor(&w[format!("{key}_text_embeds")]),
            MODEL_TOL,
        );
    }
    let t5_len = ids(&w["t5_ids"]).len();
    let t5 = pipe
        .t5()
        .expect("the folder has a T5")
        .encode(&tokens(&w["t5_ids"]), t5_len)
        .expect("t5 forward");
    check(
        &format!("{name} {which} t5 last_hidden_state"),
        &t5,
        &tensor(&w["t5_last_hidden_state"]),
        MODEL_TOL,
    );
    let embeds = pipe
        .encode_with(
            [&tokens(&w["clip_l_ids"]), &tokens(&w["clip_g_ids"])],
            &tokens(&w["t5_ids"]),
            t5_len,
        )
        .expect("encode");
    check(
        &format!("{name} {which} prompt_embeds"),
        &embeds.context,
        &tensor(&w["prompt_embeds"]),
        MODEL_TOL,
    );
    check(
        &format!("{name} {which} pooled_prompt_embeds"),
        &embeds.pooled,
        &tensor(&w["pooled_prompt_embeds"]),
        MODEL_TOL,
    );
}

/// One transformer call on a batch of two (uncond, cond).
fn transformer_matches(name: &str) {
    let (pipe, e) = load(name);
    let t = &e["transformer"];
    let cat = |key: &str| {
        Tensor::cat(&[tensor(&e["uncond"][key]), tensor(&e["cond"][key])], 0).expect("cat")
    };
    let got = pipe
        .transformer()
        .forward(
            &tensor(&t["latents"]),
            t["timestep"].as_f64().expect("timestep"),
            &cat("prompt_embeds"),
            &cat("pooled_prompt_embeds"),
        )
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

/// The whole guided run: the cond ids per encoder, the default (empty) negative prompt,
/// the folder's scheduler, from the given initial latents.
fn pipeline_matches(name: &str) {
    let (pipe, e) = load(name);
    let run = &e["pipeline"];
    let t5_len = ids(&e["cond"]["t5_ids"]).len();
    // diffusers' uncond ids are the empty prompt fresco encodes by default.
    let [clip_l, clip_g] = pipe.clip_encoders();
    for (encoder, key) in [(clip_l, "clip_l_ids"), (clip_g, "clip_g_ids")] {
        let empty = encoder
            .token_ids(&encoder.empty_prompt())
            .expect("empty ids");
        assert_eq!(empty, ids(&e["uncond"][key]), "{name} uncond {key}");
    }
    let t5 = pipe.t5().expect("the folder has a T5");
    let empty_t5 = t5.token_ids(&t5.empty_prompt(), t5_len).expect("t5 ids");
    assert_eq!(
        empty_t5,
        ids(&e["uncond"]["t5_ids"]),
        "{name} uncond t5_ids"
    );

    let mut params = FlowParams::new(tokens(&e["cond"]["clip_l_ids"]));
    params.prompt_2 = Some(tokens(&e["cond"]["clip_g_ids"]));
    params.t5_prompt = Some(tokens(&e["cond"]["t5_ids"]));
    params.max_sequence_length = Some(t5_len);
    params.guidance_scale = run["guidance_scale"].as_f64().expect("guidance");
    params.steps = run["steps"].as_u64().expect("steps") as usize;
    params.width = Some(run["width"].as_u64().expect("width") as usize);
    params.height = Some(run["height"].as_u64().expect("height") as usize);
    params.init_latents = Some(tensor(&run["init_latents"]));
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
fn sd3_text_cond_matches_diffusers() {
    text_matches("tiny-sd3", "cond");
}

#[test]
fn sd3_text_uncond_matches_diffusers() {
    text_matches("tiny-sd3", "uncond");
}

#[test]
fn sd3_transformer_matches_diffusers() {
    transformer_matches("tiny-sd3");
}

#[test]
fn sd3_vae_decode_matches_diffusers() {
    vae_matches("tiny-sd3");
}

#[test]
fn sd3_pipeline_matches_diffusers() {
    pipeline_matches("tiny-sd3");
}

#[test]
fn sd35_text_cond_matches_diffusers() {
    text_matches("tiny-sd35", "cond");
}

#[test]
fn sd35_text_uncond_matches_diffusers() {
    text_matches("tiny-sd35", "uncond");
}

#[test]
fn sd35_transformer_matches_diffusers() {
    transformer_matches("tiny-sd35");
}

#[test]
fn sd35_vae_decode_matches_diffusers() {
    vae_matches("tiny-sd35");
}

#[test]
fn sd35_pipeline_matches_diffusers() {
    pipeline_matches("tiny-sd35");
}
