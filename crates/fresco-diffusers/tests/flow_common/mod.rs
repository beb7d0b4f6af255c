//! Tiny SD3 and FLUX model folders for the flow-model tests: configs as diffusers writes
//! them and seeded random weights as safetensors, laid out as a diffusers folder in a
//! temporary directory, so the tests load them through the same code a user's folder
//! takes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::stable_diffusion::vae::{AutoEncoderKL, AutoEncoderKLConfig};
use candle_transformers::models::t5;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// CLIP-L stand-in: hidden 32, projection 32.
pub const CLIP_L: ClipDims = ClipDims {
    hidden: 32,
    intermediate: 37,
    projection: 32,
};
/// CLIP-G stand-in: hidden 48, projection 48.
pub const CLIP_G: ClipDims = ClipDims {
    hidden: 48,
    intermediate: 64,
    projection: 48,
};
/// Width of the tiny T5 (and of the transformers' joint attention).
pub const T5_WIDTH: usize = 96;
/// Latent channels of the tiny VAE.
pub const LATENT_CHANNELS: usize = 16;
/// Vocabulary of the tiny CLIPs (begin 998, end 999).
pub const CLIP_VOCAB: usize = 1000;
/// Vocabulary of the tiny T5 (pad 0, end 1).
pub const T5_VOCAB: usize = 128;

/// Widths of a tiny CLIP encoder.
#[derive(Debug, Clone, Copy)]
pub struct ClipDims {
    pub hidden: usize,
    pub intermediate: usize,
    pub projection: usize,
}

/// Writes `value` as pretty JSON to `path`, creating its folder.
pub fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, serde_json::to_string_pretty(value).expect("json")).expect("write");
}

/// Seeded values for `shape`: norm weights near 1, everything else `N(0, 0.2^2)`.
fn seeded(rng: &mut ChaCha8Rng, name: &str, shape: &[usize]) -> Tensor {
    let like = Tensor::zeros(shape, DType::F32, &Device::Cpu).expect("zeros");
    let noise = fresco_schedulers::randn_like(&like, rng).expect("randn");
    let is_norm_weight = name.ends_with(".weight") && name.contains("norm") && shape.len() == 1;
    if is_norm_weight {
        noise.affine(0.1, 1.0).expect("affine")
    } else {
        noise.affine(0.2, 0.0).expect("affine")
    }
}

/// The tensors a candle constructor asks for, filled with seeded values (in name order).
pub fn random_tensors(
    seed: u64,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<()>,
) -> HashMap<String, Tensor> {
    let vm = VarMap::new();
    build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).expect("build model");
    let data = vm.data().lock().expect("varmap");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    names
        .into_iter()
        .map(|name| {
            let dims = data[name].as_tensor().dims().to_vec();
            (name.clone(), seeded(&mut rng, name, &dims))
        })
        .collect()
}

/// Saves tensors as `path` (a safetensors file), creating its folder.
pub fn save(path: &Path, tensors: &HashMap<String, Tensor>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    candle_core::safetensors::save(tensors, path).expect("save safetensors");
}

/// A CLIP text encoder folder (transformers' names): `CLIPTextModelWithProjection`, or
/// `CLIPTextModel` when `dims.projection` is 0.
pub fn write_clip(dir: &Path, dims: ClipDims, seed: u64) {
    let mut config = json!({
            "architectures": ["CLIPTextModelWithProjection"],
            "bos_token_id": 998,
            "eos_token_id": 999,
            "pad_token_id": 999,
            "hidden_act": "gelu",
            "hidden_size": dims.hidden,
            "intermediate_size": dims.intermediate,
            "layer_norm_eps": 1e-5,
            "max_position_embeddings": 77,
            "model_type": "clip_text_model",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "projection_dim": dims.projection,
            "vocab_size": CLIP_VOCAB
    });
    if dims.projection == 0
        && let Some(c) = config.as_object_mut()
    {
        c.remove("projection_dim");
        c.insert("architectures".into(), json!(["CLIPTextModel"]));
    }
    write_json(&dir.join("config.json"), &config);
    let (h, i) = (dims.hidden, dims.intermediate);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "text_model.embeddings.token_embedding.weight".into(),
            vec![CLIP_VOCAB, h],
        ),
        (
            "text_model.embeddings.position_embedding.weight".into(),
            vec![77, h],
        ),
        ("text_model.final_layer_norm.weight".into(), vec![h]),
        ("text_model.final_layer_norm.bias".into(), vec![h]),
    ];
    if dims.projection > 0 {
        shapes.push(("text_projection.weight".into(), vec![dims.projection, h]));
    }
    for layer in 0..2 {
        let p = format!("text_model.encoder.layers.{layer}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            shapes.push((format!("{p}.self_attn.{proj}.weight"), vec![h, h]));
            shapes.push((format!("{p}.self_attn.{proj}.bias"), vec![h]));
        }
        for norm in ["layer_norm1", "layer_norm2"] {
            shapes.push((format!("{p}.{norm}.weight"), vec![h]));
            shapes.push((format!("{p}.{norm}.bias"), vec![h]));
        }
        shapes.push((format!("{p}.mlp.fc1.weight"), vec![i, h]));
        shapes.push((format!("{p}.mlp.fc1.bias"), vec![i]));
        shapes.push((format!("{p}.mlp.fc2.weight"), vec![h, i]));
        shapes.push((format!("{p}.mlp.fc2.bias"), vec![h]));
    }
    shapes.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tensors = shapes
        .into_iter()
        .map(|(name, shape)| {
            let t = seeded(&mut rng, &name, &shape);
            (name, t)
        })
        .collect();
    save(&dir.join("model.safetensors"), &tensors);
}

/// A T5 encoder folder (`T5EncoderModel`, gated-GELU as T5 v1.1, transformers' names).
pub fn write_t5(dir: &Path, seed: u64) {
    let config = json!({
        "architectures": ["T5EncoderModel"],
        "d_ff": 64,
        "d_kv": 16,
        "d_model": T5_WIDTH,
        "dense_act_fn": "gelu_new",
        "dropout_rate": 0.1,
        "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu",
        "is_encoder_decoder": true,
        "layer_norm_epsilon": 1e-6,
        "model_type": "t5",
        "num_heads": 4,
        "num_layers": 2,
        "pad_token_id": 0,
        "relative_attention_max_distance": 16,
        "relative_attention_num_buckets": 8,
        "vocab_size": T5_VOCAB
    });
    write_json(&dir.join("config.json"), &config);
    let cfg = t5::Config {
        vocab_size: T5_VOCAB,
        d_model: T5_WIDTH,
        d_kv: 16,
        d_ff: 64,
        num_layers: 2,
        num_decoder_layers: None,
        num_heads: 4,
        relative_attention_num_buckets: 8,
        relative_attention_max_distance: 16,
        dropout_rate: 0.0,
        layer_norm_epsilon: 1e-6,
        initializer_factor: 1.0,
        feed_forward_proj: t5::ActivationWithOptionalGating {
            gated: true,
            activation: candle_nn::Activation::NewGelu,
        },
        tie_word_embeddings: true,
        is_decoder: false,
        is_encoder_decoder: true,
        use_cache: false,
        pad_token_id: 0,
        eos_token_id: 1,
        decoder_start_token_id: None,
    };
    let mut tensors = random_tensors(seed, |vb| t5::T5EncoderModel::load(vb, &cfg).map(|_| ()));
    // transformers stores the shared embedding as `shared.weight`.
    if let Some(t) = tensors.remove("encoder.embed_tokens.weight") {
        tensors.insert("shared.weight".into(), t);
    }
    save(&dir.join("model.safetensors"), &tensors);
}

/// A 16-channel `AutoencoderKL` folder (two levels: 2 pixels per latent) with
/// `scaling_factor` and `shift_factor`.
pub fn write_vae(dir: &Path, scaling: f64, shift: f64, seed: u64) {
    write_json(
        &dir.join("config.json"),
        &json!({
            "_class_name": "AutoencoderKL",
            "act_fn": "silu",
            "block_out_channels": [16, 16],
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": LATENT_CHANNELS,
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "sample_size": 16,
            "scaling_factor": scaling,
            "shift_factor": shift,
            "use_quant_conv": false,
            "use_post_quant_conv": false,
            "mid_block_add_attention": true,
            "latents_mean": null,
            "latents_std": null
        }),
    );
    let cfg = AutoEncoderKLConfig {
        block_out_channels: vec![16, 16],
        layers_per_block: 1,
        latent_channels: LATENT_CHANNELS,
        norm_num_groups: 8,
        use_quant_conv: false,
        use_post_quant_conv: false,
    };
    let tensors = random_tensors(seed, |vb| AutoEncoderKL::new(vb, 3, 3, cfg).map(|_| ()));
    save(&dir.join("diffusion_pytorch_model.safetensors"), &tensors);
}

/// A `FlowMatchEulerDiscreteScheduler` config: diffusers' defaults overridden by `fields`.
pub fn write_scheduler(dir: &Path, fields: Value) {
    let mut config = json!({
        "_class_name": "FlowMatchEulerDiscreteScheduler",
        "num_train_timesteps": 1000,
        "shift": 1.0,
        "use_dynamic_shifting": false,
        "base_shift": 0.5,
        "max_shift": 1.15,
        "base_image_seq_len": 256,
        "max_image_seq_len": 4096
    });
    if let (Some(into), Value::Object(from)) = (config.as_object_mut(), fields) {
        into.extend(from);
    }
    write_json(&dir.join("scheduler_config.json"), &config);
}

/// The `config` of a fresco-schedulers reference trajectory (tests/data of that crate).
pub fn scheduler_reference(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fresco-schedulers/tests/data")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("reference file");
    serde_json::from_str(&text).expect("reference parses")
}

/// A JSON array of numbers.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Largest |a - b| over all elements (shapes must agree).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("flatten")
        .max(0)
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar")
}

/// Removes tensor `name` from the safetensors file `path`.
pub fn drop_tensor(path: &Path, name: &str) {
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu).expect("load");
    tensors.remove(name).expect("tensor present");
    candle_core::safetensors::save(&tensors, path).expect("save");
}

/// Replaces tensor `name` in `path` with zeros of `shape`.
pub fn reshape_tensor(path: &Path, name: &str, shape: &[usize]) {
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu).expect("load");
    tensors.insert(
        name.into(),
        Tensor::zeros(shape, DType::F32, &Device::Cpu).expect("zeros"),
    );
    candle_core::safetensors::save(&tensors, path).expect("save");
}

/// Rewrites the JSON file `path` with `edit` applied.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let text = std::fs::read_to_string(path).expect("read");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    edit(value.as_object_mut().expect("object"));
    write_json(path, &value);
}

/// The tiny SD3 folder: CLIP-L, CLIP-G, optional T5, a 2-block MMDiT (2 heads of 16,
/// RMS q/k norms as SD3.5), the VAE and a fixed-shift (3.0) scheduler.
pub fn write_sd3(root: &Path, with_t5: bool, seed: u64) {
    write_sd3_with(root, with_t5, Some("rms_norm"), seed);
}

/// The tiny SD3 transformer's `config.json`: 2 joint blocks of 2 heads of 16, with
/// `qk_norm` given (`None`: SD3 medium's layout) and MMDiT-X's second attention in
/// the `dual` blocks.
pub fn sd3_transformer_config(qk_norm: Option<&str>, dual: &[usize]) -> Value {
    json!({
        "_class_name": "SD3Transformer2DModel",
        "sample_size": 8,
        "patch_size": 2,
        "in_channels": LATENT_CHANNELS,
        "out_channels": LATENT_CHANNELS,
        "num_layers": 2,
        "attention_head_dim": 16,
        "num_attention_heads": 2,
        "joint_attention_dim": T5_WIDTH,
        "caption_projection_dim": 32,
        "pooled_projection_dim": CLIP_L.projection + CLIP_G.projection,
        "pos_embed_max_size": 8,
        "dual_attention_layers": dual,
        "qk_norm": qk_norm
    })
}

/// As [`write_sd3`] with the transformer's `qk_norm` given (`None`: SD3 medium's layout).
pub fn write_sd3_with(root: &Path, with_t5: bool, qk_norm: Option<&str>, seed: u64) {
    write_clip(&root.join("text_encoder"), CLIP_L, seed);
    write_clip(&root.join("text_encoder_2"), CLIP_G, seed + 1);
    if with_t5 {
        write_t5(&root.join("text_encoder_3"), seed + 2);
    }
    let config = sd3_transformer_config(qk_norm, &[]);
    let dir = root.join("transformer");
    write_json(&dir.join("config.json"), &config);
    let parsed: fresco_diffusers::mmdit::Sd3TransformerConfig =
        serde_json::from_value(config).expect("config");
    let tensors = random_tensors(seed + 3, |vb| {
        fresco_diffusers::mmdit::Sd3Transformer::new(parsed, vb).map(|_| ())
    });
    save(&dir.join("diffusion_pytorch_model.safetensors"), &tensors);
    write_vae(&root.join("vae"), 1.5305, 0.0609, seed + 4);
    write_scheduler(&root.join("scheduler"), json!({ "shift": 3.0 }));
}

/// The tiny FLUX folder: CLIP-L without projection, T5, a transformer with one double and
/// two single blocks (2 heads of 16, rotary axes 4+6+6), the VAE, and the scheduler of
/// FLUX-dev (`guidance_embeds`, dynamic shift) or FLUX-schnell (no guidance, shift 1).
pub fn write_flux(root: &Path, dev: bool, seed: u64) {
    let clip = ClipDims {
        projection: 0,
        ..CLIP_L
    };
    write_clip(&root.join("text_encoder"), clip, seed);
    write_t5(&root.join("text_encoder_2"), seed + 1);
    let config = json!({
        "_class_name": "FluxTransformer2DModel",
        "patch_size": 1,
        "in_channels": 4 * LATENT_CHANNELS,
        "out_channels": null,
        "num_layers": 1,
        "num_single_layers": 2,
        "attention_head_dim": 16,
        "num_attention_heads": 2,
        "joint_attention_dim": T5_WIDTH,
        "pooled_projection_dim": CLIP_L.hidden,
        "guidance_embeds": dev,
        "axes_dims_rope": [4, 6, 6]
    });
    let dir = root.join("transformer");
    write_json(&dir.join("config.json"), &config);
    let parsed: fresco_diffusers::flux_model::FluxTransformerConfig =
        serde_json::from_value(config).expect("config");
    let tensors = random_tensors(seed + 2, |vb| {
        fresco_diffusers::flux_model::FluxTransformer::new(parsed, vb).map(|_| ())
    });
    save(&dir.join("diffusion_pytorch_model.safetensors"), &tensors);
    write_vae(&root.join("vae"), 0.3611, 0.1159, seed + 3);
    let scheduler = if dev {
        json!({ "shift": 3.0, "use_dynamic_shifting": true })
    } else {
        json!({ "shift": 1.0, "use_dynamic_shifting": false })
    };
    write_scheduler(&root.join("scheduler"), scheduler);
}

/// A pipeline's `generate_tensor_with`, as a closure.
pub type GenerateWith<'a> = dyn Fn(
        &fresco_diffusers::FlowParams,
        &mut dyn FnMut(usize, usize) -> std::ops::ControlFlow<()>,
    ) -> Result<Tensor, fresco_diffusers::Error>
    + 'a;

/// What every flow pipeline owes a worker, checked on `params` (3 steps or more):
/// one progress report per step, counting up to the step count; a `Break` stops
/// the run with `Cancelled` right there; a `flow_shift` changes the pixels, the
/// same shift twice gives the same pixels, and a non-positive one is refused.
pub fn check_progress_cancel_and_flow_shift(
    generate: &GenerateWith,
    params: fresco_diffusers::FlowParams,
) {
    use std::ops::ControlFlow;
    let steps = params.steps;
    assert!(steps >= 3, "the check needs at least 3 steps");
    let mut seen = Vec::new();
    let base = generate(&params, &mut |done, total| {
        seen.push((done, total));
        ControlFlow::Continue(())
    })
    .expect("generate");
    let want: Vec<(usize, usize)> = (1..=steps).map(|k| (k, steps)).collect();
    assert_eq!(seen, want, "one report per step");

    let mut calls = 0;
    let cancelled = generate(&params, &mut |done, _| {
        calls += 1;
        if done == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(
        matches!(cancelled, Err(fresco_diffusers::Error::Cancelled)),
        "{cancelled:?}"
    );
    assert_eq!(calls, 2, "sampling stops at the step that asked");

    let shifted = |shift: f64| {
        let mut p = params.clone();
        p.flow_shift = Some(shift);
        generate(&p, &mut |_, _| ControlFlow::Continue(()))
    };
    let a = shifted(0.5).expect("shift 0.5");
    let b = shifted(0.5).expect("shift 0.5 again");
    assert_eq!(max_abs_diff(&a, &b), 0.0, "same shift, same pixels");
    assert!(
        max_abs_diff(&a, &base) > 1e-4,
        "a shift of 0.5 must change the pixels"
    );
    for bad in [0.0, -1.0, f64::NAN] {
        assert!(
            matches!(
                shifted(bad),
                Err(fresco_diffusers::Error::InvalidParams {
                    field: "flow_shift",
                    ..
                })
            ),
            "flow_shift {bad} must be refused"
        );
    }
}
