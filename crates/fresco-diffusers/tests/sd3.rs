//! SD3 on a tiny diffusers-layout folder with seeded random weights (written to a temporary
//! directory and loaded like a user's folder): output shapes, seeds, guidance, batch
//! independence, the T5-less context, the sampler's schedule and typed load errors.

mod flow_common;

use candle_core::{DType, Device, IndexOp};
use flow_common::{
    drop_tensor, edit_json, floats, max_abs_diff, reshape_tensor, scheduler_reference, write_json,
    write_sd3,
};
use fresco_diffusers::{Error, FlowParams, Prompt, Sd3Pipeline};
use fresco_schedulers::{SchedulerConfig, SchedulerKind, SetTimestepsOptions};

fn folder(with_t5: bool) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_sd3(tmp.path(), with_t5, 11);
    tmp
}

fn load(dir: &std::path::Path) -> Result<Sd3Pipeline, Error> {
    Sd3Pipeline::load(dir, &Device::Cpu, DType::F32)
}

fn params() -> FlowParams {
    let mut p = FlowParams::new(Prompt::Tokens(vec![998, 259, 646, 102, 347, 999]));
    p.t5_prompt = Some(Prompt::Tokens(vec![17, 42, 99, 1]));
    p.max_sequence_length = Some(8);
    p.steps = 3;
    p.guidance_scale = 4.0;
    p.seed = 5;
    p
}

#[test]
fn batch_shapes_and_native_size() {
    let tmp = folder(true);
    let pipe = load(tmp.path()).expect("load");
    assert_eq!(pipe.default_size(), (16, 16));
    let mut p = params();
    p.n = 2;
    p.width = Some(32);
    let images = pipe.generate_tensor(&p).expect("generate");
    assert_eq!(images.dims(), &[2, 3, 16, 32]);
    let rgb = pipe.generate(&p).expect("rgb");
    assert_eq!(rgb.len(), 2);
    assert_eq!((rgb[1].width, rgb[1].height, rgb[1].index), (32, 16, 1));
    assert_eq!(rgb[0].pixels.len(), 16 * 32 * 3);
}

#[test]
fn sd3_medium_layout_without_qk_norm_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    flow_common::write_sd3_with(tmp.path(), false, None, 12);
    let pipe = load(tmp.path()).expect("load");
    assert!(pipe.transformer().config().qk_norm.is_none());
    let images = pipe.generate_tensor(&params()).expect("generate");
    assert_eq!(images.dims(), &[1, 3, 16, 16]);
}

#[test]
fn same_seed_same_pixels_other_seed_differs() {
    let tmp = folder(true);
    let pipe = load(tmp.path()).expect("load");
    let p = params();
    let a = pipe.generate(&p).expect("first");
    let b = pipe.generate(&p).expect("second");
    assert_eq!(a, b);
    let mut other = params();
    other.seed = 6;
    let c = pipe.generate(&other).expect("other seed");
    assert_ne!(
        a[0].pixels, c[0].pixels,
        "another seed must change the image"
    );
}

#[test]
fn guidance_changes_the_output() {
    let tmp = folder(true);
    let pipe = load(tmp.path()).expect("load");
    let mut off = params();
    off.guidance_scale = 1.0;
    let on = params();
    let a = pipe.generate_tensor(&off).expect("no guidance");
    let b = pipe.generate_tensor(&on).expect("guidance");
    let d = max_abs_diff(&a, &b);
    println!("guidance 1 vs 4: max |Δ| = {d:.3e}");
    assert!(d > 1e-3, "CFG must change the image (max |Δ| = {d:.3e})");
    let mut neg = params();
    // The negative prompt goes to every encoder, T5 included: ids valid in both vocabularies.
    neg.negative = Some(Prompt::Tokens(vec![5, 77, 9, 1]));
    let c = pipe.generate_tensor(&neg).expect("negative prompt");
    assert!(
        max_abs_diff(&b, &c) > 1e-4,
        "the negative prompt must matter"
    );
}

#[test]
fn image_of_a_batch_regenerates_alone() {
    let tmp = folder(true);
    let pipe = load(tmp.path()).expect("load");
    let mut batch = params();
    batch.n = 3;
    let all = pipe.generate_tensor(&batch).expect("batch");
    let mut alone = params();
    alone.first_index = 1;
    let one = pipe.generate_tensor(&alone).expect("alone");
    let d = max_abs_diff(&all.i(1..2).expect("slice"), &one);
    println!("image 1 alone vs in a batch of 3: max |Δ| = {d:.3e}");
    assert!(d <= 1e-5, "max |Δ| = {d:.3e}");
    let all_rgb = pipe.generate(&batch).expect("batch rgb");
    let one_rgb = pipe.generate(&alone).expect("alone rgb");
    assert_eq!(one_rgb[0].index, 1);
    assert_eq!(one_rgb[0].pixels, all_rgb[1].pixels);
}

#[test]
fn without_t5_the_t5_context_is_zeros() {
    let tmp = folder(false);
    let pipe = load(tmp.path()).expect("load");
    assert!(!pipe.has_t5());
    let p = params();
    let cond = pipe.encode_prompt(&p.prompt, &p.prompt, 8).expect("encode");
    // 77 CLIP rows (CLIP-L | CLIP-G | zero padding to the T5 width), then 77 zero rows.
    assert_eq!(cond.context.dims(), &[1, 154, flow_common::T5_WIDTH]);
    assert_eq!(cond.pooled.dims(), &[1, 80]);
    let abs_sum = |t: candle_core::Tensor| {
        t.abs()
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("sum")
    };
    assert_eq!(
        abs_sum(cond.context.i((.., 77.., ..)).expect("t5 part")),
        0.0
    );
    assert_eq!(
        abs_sum(cond.context.i((.., ..77, 80..)).expect("padding")),
        0.0
    );
    assert!(abs_sum(cond.context.i((.., ..77, ..80)).expect("clip part")) > 0.0);
    let images = pipe.generate_tensor(&p).expect("generate without T5");
    assert_eq!(images.dims(), &[1, 3, 16, 16]);

    let with_t5 = folder(true);
    let pipe = load(with_t5.path()).expect("load");
    let cond = pipe
        .encode_prompt(&p.prompt, &Prompt::Tokens(vec![5, 1]), 8)
        .expect("encode");
    assert_eq!(cond.context.dims(), &[1, 77 + 8, flow_common::T5_WIDTH]);
    assert!(abs_sum(cond.context.i((.., 77.., ..)).expect("t5 part")) > 0.0);
}

#[test]
fn sampler_schedule_is_the_reference_matched_one() {
    // flowmatch_sd3_28 is checked against diffusers in fresco-schedulers; the pipeline
    // must build exactly that sampler from the same scheduler_config.json.
    let reference = scheduler_reference("flowmatch_sd3_28");
    let tmp = folder(false);
    let mut config = reference["config"].clone();
    config["_class_name"] = "FlowMatchEulerDiscreteScheduler".into();
    write_json(&tmp.path().join("scheduler/scheduler_config.json"), &config);
    let pipe = load(tmp.path()).expect("load");
    let steps = reference["num_inference_steps"].as_u64().expect("steps") as usize;
    let run = pipe.schedule(steps, 16, 16, None).expect("schedule");
    assert_eq!(run.mu, None);

    let parsed: SchedulerConfig = serde_json::from_value(reference["config"].clone()).expect("cfg");
    let direct = fresco_schedulers::from_config(
        SchedulerKind::FlowEuler,
        &parsed,
        steps,
        SetTimestepsOptions::default(),
    )
    .expect("scheduler");
    assert_eq!(run.timesteps, direct.timesteps());
    assert_eq!(run.scheduler.sigmas(), direct.sigmas());
    for (got, want) in [
        (run.timesteps.clone(), floats(&reference["timesteps"])),
        (
            run.scheduler.sigmas().expect("sigmas").to_vec(),
            floats(&reference["sigmas"]),
        ),
    ] {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= (1e-4 * w.abs()).max(1e-5), "{g} vs {w}");
        }
    }
}

#[test]
fn missing_transformer_config_names_the_file() {
    let tmp = folder(false);
    let gone = tmp.path().join("transformer/config.json");
    std::fs::remove_file(&gone).expect("remove");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::MissingFile { path } if *path == gone),
        "{err:?}"
    );
}

#[test]
fn missing_encoder_weights_name_the_file() {
    let tmp = folder(true);
    let gone = tmp.path().join("text_encoder_3/model.safetensors");
    std::fs::remove_file(&gone).expect("remove");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::MissingFile { path } if *path == gone),
        "{err:?}"
    );
}

#[test]
fn missing_transformer_tensor_names_tensor_and_shape() {
    let tmp = folder(false);
    let file = tmp
        .path()
        .join("transformer/diffusion_pytorch_model.safetensors");
    drop_tensor(&file, "transformer_blocks.1.attn.add_k_proj.weight");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::MissingTensor {
            path,
            name,
            expected,
        } => {
            assert_eq!(path, &file);
            assert_eq!(name, "transformer_blocks.1.attn.add_k_proj.weight");
            assert_eq!(expected, &[32, 32]);
        }
        other => panic!("expected a missing tensor error, got {other:?}"),
    }
}

#[test]
fn mismatched_tensor_names_tensor_and_shapes() {
    let tmp = folder(false);
    let file = tmp
        .path()
        .join("transformer/diffusion_pytorch_model.safetensors");
    reshape_tensor(&file, "pos_embed.pos_embed", &[1, 49, 32]);
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::TensorShape {
            path,
            name,
            expected,
            actual,
        } => {
            assert_eq!(path, &file);
            assert_eq!(name, "pos_embed.pos_embed");
            assert_eq!(expected, &[1, 64, 32]);
            assert_eq!(actual, &[1, 49, 32]);
        }
        other => panic!("expected a tensor shape error, got {other:?}"),
    }
}

#[test]
fn unsupported_config_names_the_field() {
    let tmp = folder(false);
    let file = tmp.path().join("transformer/config.json");
    // MMDiT-X's second attention in a block the model does not have.
    edit_json(&file, |c| {
        c.insert("dual_attention_layers".into(), serde_json::json!([0, 5]));
    });
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::Unsupported { path, field, .. }
            if *path == file && field == "dual_attention_layers"),
        "{err:?}"
    );
}

#[test]
fn bad_parameters_are_rejected() {
    let tmp = folder(false);
    let pipe = load(tmp.path()).expect("load");
    let mut p = params();
    p.width = Some(18);
    assert!(matches!(
        pipe.generate(&p),
        Err(Error::InvalidParams { field: "width", .. })
    ));
    let mut p = params();
    p.n = 0;
    assert!(matches!(
        pipe.generate(&p),
        Err(Error::InvalidParams { field: "n", .. })
    ));
    let mut p = params();
    p.prompt = Prompt::Text("a fox".into());
    assert!(matches!(pipe.generate(&p), Err(Error::NoTokenizer { .. })));
}

#[test]
fn missing_text_projection_names_file_and_tensor() {
    let tmp = folder(false);
    let file = tmp.path().join("text_encoder_2/model.safetensors");
    drop_tensor(&file, "text_projection.weight");
    let pipe = load(tmp.path()).expect("load (the projection is optional for CLIP)");
    let err = pipe.generate(&params()).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::MissingTensor {
            path,
            name,
            expected,
        } => {
            assert_eq!(path, &file);
            assert_eq!(name, "text_projection.weight");
            assert_eq!(expected, &[48, 48]);
        }
        other => panic!("expected a missing tensor error, got {other:?}"),
    }
}

#[test]
fn progress_cancellation_and_flow_shift() {
    let tmp = folder(true);
    let pipe = load(tmp.path()).expect("load");
    flow_common::check_progress_cancel_and_flow_shift(
        &|p, on_step| pipe.generate_tensor_with(p, on_step),
        params(),
    );
}

/// SD3.5 medium's MMDiT-X: a dual-attention block whose second attention outputs
/// zero is exactly the plain block built from the first six of its nine `norm1`
/// vectors (diffusers' chunk order), and a live second attention changes the output.
#[test]
fn dual_attention_block_reduces_to_the_plain_block() {
    use candle_core::Tensor;
    use fresco_diffusers::mmdit::{Sd3Transformer, Sd3TransformerConfig};

    let config = |dual: &[usize]| -> Sd3TransformerConfig {
        serde_json::from_value(flow_common::sd3_transformer_config(Some("rms_norm"), dual))
            .expect("config")
    };
    let dual_cfg = config(&[0]);
    let dual_tensors = flow_common::random_tensors(31, |vb| {
        Sd3Transformer::new(dual_cfg.clone(), vb).map(|_| ())
    });
    assert!(dual_tensors.contains_key("transformer_blocks.0.attn2.to_q.weight"));
    assert!(!dual_tensors.contains_key("transformer_blocks.1.attn2.to_q.weight"));
    let dim = dual_cfg.inner_dim();
    let build = |cfg: Sd3TransformerConfig, tensors: std::collections::HashMap<String, Tensor>| {
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        Sd3Transformer::new(cfg, vb).expect("build")
    };
    // The plain model: block 0 without attn2 and with norm1's first six vectors.
    let mut plain_tensors = dual_tensors.clone();
    plain_tensors.retain(|name, _| !name.contains(".attn2."));
    for part in ["weight", "bias"] {
        let name = format!("transformer_blocks.0.norm1.linear.{part}");
        let sliced = dual_tensors[&name].narrow(0, 0, 6 * dim).expect("slice");
        plain_tensors.insert(name, sliced);
    }
    let mut silent = dual_tensors.clone();
    for part in ["weight", "bias"] {
        let name = format!("transformer_blocks.0.attn2.to_out.0.{part}");
        let zeros = silent[&name].zeros_like().expect("zeros");
        silent.insert(name, zeros);
    }

    let noise = |seed: u64, dims: &[usize]| {
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.37 + seed as f32).sin())
            .collect();
        Tensor::from_vec(values, dims, &Device::Cpu).expect("tensor")
    };
    let x = noise(1, &[1, 16, 8, 8]);
    let context = noise(2, &[1, 5, flow_common::T5_WIDTH]);
    let pooled = noise(
        3,
        &[
            1,
            flow_common::CLIP_L.projection + flow_common::CLIP_G.projection,
        ],
    );
    let run = |model: &Sd3Transformer| {
        model
            .forward(&x, 700.0, &context, &pooled)
            .expect("forward")
    };

    let plain = run(&build(config(&[]), plain_tensors));
    let silent = run(&build(dual_cfg.clone(), silent));
    let live = run(&build(dual_cfg, dual_tensors));
    assert!(
        max_abs_diff(&plain, &silent) < 1e-5,
        "{}",
        max_abs_diff(&plain, &silent)
    );
    assert!(
        max_abs_diff(&plain, &live) > 1e-4,
        "the second attention must matter"
    );
}
