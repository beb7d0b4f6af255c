//! FLUX.1 (dev and schnell) on tiny diffusers-layout folders with seeded random weights
//! (written to a temporary directory and loaded like a user's folder): output shapes,
//! seeds, embedded guidance, batch independence, the sampler's schedule and typed load
//! errors.

mod flow_common;

use candle_core::{DType, Device, IndexOp};
use flow_common::{
    drop_tensor, edit_json, floats, max_abs_diff, scheduler_reference, write_flux, write_json,
};
use fresco_diffusers::flow::FlowSigmas;
use fresco_diffusers::{Error, FlowParams, FluxPipeline, Prompt};
use fresco_schedulers::schedule::{linspace, time_shift};
use fresco_schedulers::{SchedulerConfig, SchedulerKind, SetTimestepsOptions};

fn folder(dev: bool) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_flux(tmp.path(), dev, 21);
    tmp
}

fn load(dir: &std::path::Path) -> Result<FluxPipeline, Error> {
    FluxPipeline::load(dir, &Device::Cpu, DType::F32)
}

fn params() -> FlowParams {
    let mut p = FlowParams::new(Prompt::Tokens(vec![998, 259, 646, 102, 347, 999]));
    p.t5_prompt = Some(Prompt::Tokens(vec![17, 42, 99, 1]));
    p.max_sequence_length = Some(8);
    p.steps = 3;
    p.guidance_scale = 3.5;
    p.seed = 9;
    p.width = Some(16);
    p.height = Some(16);
    p
}

#[test]
fn batch_shapes() {
    for dev in [true, false] {
        let tmp = folder(dev);
        let pipe = load(tmp.path()).expect("load");
        assert_eq!(pipe.embeds_guidance(), dev);
        let mut p = params();
        p.n = 2;
        p.width = Some(32);
        let images = pipe.generate_tensor(&p).expect("generate");
        assert_eq!(images.dims(), &[2, 3, 16, 32]);
        let rgb = pipe.generate(&p).expect("rgb");
        assert_eq!(rgb.len(), 2);
        assert_eq!((rgb[1].width, rgb[1].height, rgb[1].index), (32, 16, 1));
    }
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
    other.seed = 10;
    let c = pipe.generate(&other).expect("other seed");
    assert_ne!(
        a[0].pixels, c[0].pixels,
        "another seed must change the image"
    );
}

#[test]
fn dev_guidance_value_changes_the_output_schnell_ignores_it() {
    let tmp = folder(true);
    let pipe = load(tmp.path()).expect("load");
    let mut low = params();
    low.guidance_scale = 1.0;
    let a = pipe.generate_tensor(&low).expect("guidance 1");
    let b = pipe.generate_tensor(&params()).expect("guidance 3.5");
    let d = max_abs_diff(&a, &b);
    println!("FLUX-dev guidance 1 vs 3.5: max |Δ| = {d:.3e}");
    assert!(
        d > 1e-4,
        "embedded guidance must change the image (max |Δ| = {d:.3e})"
    );

    let tmp = folder(false);
    let pipe = load(tmp.path()).expect("load");
    let a = pipe.generate_tensor(&low).expect("guidance 1");
    let b = pipe.generate_tensor(&params()).expect("guidance 3.5");
    assert_eq!(
        max_abs_diff(&a, &b),
        0.0,
        "schnell has no guidance embedding"
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
    alone.first_index = 2;
    let one = pipe.generate_tensor(&alone).expect("alone");
    let d = max_abs_diff(&all.i(2..3).expect("slice"), &one);
    println!("image 2 alone vs in a batch of 3: max |Δ| = {d:.3e}");
    assert!(d <= 1e-5, "max |Δ| = {d:.3e}");
    let all_rgb = pipe.generate(&batch).expect("batch rgb");
    let one_rgb = pipe.generate(&alone).expect("alone rgb");
    assert_eq!(one_rgb[0].index, 2);
    assert_eq!(one_rgb[0].pixels, all_rgb[2].pixels);
}

#[test]
fn dev_schedule_uses_mu_of_the_token_count() {
    // flowmatch_flux_dynamic_20 (checked against diffusers in fresco-schedulers) is the
    // FLUX-dev scheduler config at mu = 1.15, i.e. 4096 image tokens.
    let reference = scheduler_reference("flowmatch_flux_dynamic_20");
    let tmp = folder(true);
    let mut config = reference["config"].clone();
    config["_class_name"] = "FlowMatchEulerDiscreteScheduler".into();
    write_json(&tmp.path().join("scheduler/scheduler_config.json"), &config);
    let pipe = load(tmp.path()).expect("load");
    let steps = reference["num_inference_steps"].as_u64().expect("steps") as usize;
    let want_mu = reference["set_timesteps_kwargs"]["mu"]
        .as_f64()
        .expect("mu");

    // 256 x 256 pixels = 128 x 128 latents (2 px each) = 64 x 64 packed tokens.
    assert_eq!(pipe.image_seq_len(256, 256), 4096);
    let mu = pipe.sampler().mu(4096).expect("dynamic");
    assert!((mu - want_mu).abs() < 1e-12, "mu {mu} vs {want_mu}");

    // With the scheduler's own sigmas and this mu, the sampler is the reference one.
    let own = pipe
        .sampler()
        .build(steps, 4096, FlowSigmas::Scheduler)
        .expect("schedule");
    let parsed: SchedulerConfig = serde_json::from_value(reference["config"].clone()).expect("cfg");
    let direct = fresco_schedulers::from_config(
        SchedulerKind::FlowEuler,
        &parsed,
        steps,
        SetTimestepsOptions {
            mu: Some(want_mu),
            eta: 0.0,
        },
    )
    .expect("scheduler");
    assert_eq!(own.timesteps, direct.timesteps());
    assert_eq!(own.scheduler.sigmas(), direct.sigmas());
    for (g, w) in own.timesteps.iter().zip(floats(&reference["timesteps"])) {
        assert!((g - w).abs() <= (1e-4 * w.abs()).max(1e-5), "{g} vs {w}");
    }

    // The pipeline passes FluxPipeline's sigmas, linspace(1, 1/steps), shifted by mu.
    let run = pipe
        .schedule(steps, 256, 256, None)
        .expect("pipeline schedule");
    assert_eq!(run.mu, Some(mu));
    let mut want: Vec<f64> = linspace(1.0, 1.0 / steps as f64, steps)
        .into_iter()
        .map(|s| time_shift(true, mu, s))
        .collect();
    for (g, w) in run.timesteps.iter().zip(&want) {
        assert!((g - w * 1000.0).abs() < 1e-9, "{g} vs {}", w * 1000.0);
    }
    want.push(0.0);
    let sigmas = run.scheduler.sigmas().expect("sigmas");
    assert_eq!(sigmas.len(), want.len());
    for (g, w) in sigmas.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
}

#[test]
fn schnell_schedule_is_unshifted() {
    let tmp = folder(false);
    let pipe = load(tmp.path()).expect("load");
    let run = pipe.schedule(4, 16, 16, None).expect("schedule");
    assert_eq!(run.mu, None);
    let sigmas = run.scheduler.sigmas().expect("sigmas");
    for (g, w) in sigmas.iter().zip([1.0, 0.75, 0.5, 0.25, 0.0]) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    assert!((run.timesteps[1] - 750.0).abs() < 1e-9);
}

#[test]
fn missing_t5_weights_name_the_file() {
    let tmp = folder(false);
    let gone = tmp.path().join("text_encoder_2/model.safetensors");
    std::fs::remove_file(&gone).expect("remove");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::MissingFile { path } if *path == gone),
        "{err:?}"
    );
}

#[test]
fn missing_guidance_embedder_names_tensor_and_shape() {
    let tmp = folder(true);
    let file = tmp
        .path()
        .join("transformer/diffusion_pytorch_model.safetensors");
    drop_tensor(&file, "time_text_embed.guidance_embedder.linear_1.weight");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::MissingTensor {
            path,
            name,
            expected,
        } => {
            assert_eq!(path, &file);
            assert_eq!(name, "time_text_embed.guidance_embedder.linear_1.weight");
            assert_eq!(expected, &[32, 256]);
        }
        other => panic!("expected a missing tensor error, got {other:?}"),
    }
}

#[test]
fn missing_t5_tensor_names_tensor() {
    let tmp = folder(false);
    let file = tmp.path().join("text_encoder_2/model.safetensors");
    drop_tensor(&file, "encoder.block.1.layer.1.DenseReluDense.wo.weight");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::MissingTensor {
            path,
            name,
            expected,
        } => {
            assert_eq!(path, &file);
            assert_eq!(name, "encoder.block.1.layer.1.DenseReluDense.wo.weight");
            assert_eq!(expected, &[flow_common::T5_WIDTH, 64]);
        }
        other => panic!("expected a missing tensor error, got {other:?}"),
    }
}

#[test]
fn unsupported_config_names_the_field() {
    let tmp = folder(false);
    let file = tmp.path().join("transformer/config.json");
    edit_json(&file, |c| {
        c.insert("axes_dims_rope".into(), serde_json::json!([4, 4, 4]));
    });
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::Unsupported { path, field, .. }
            if *path == file && field == "axes_dims_rope"),
        "{err:?}"
    );
}

#[test]
fn sizes_must_be_multiples_of_the_packed_patch() {
    let tmp = folder(false);
    let pipe = load(tmp.path()).expect("load");
    let mut p = params();
    p.height = Some(18);
    assert!(matches!(
        pipe.generate(&p),
        Err(Error::InvalidParams {
            field: "height",
            ..
        })
    ));
    let mut p = params();
    p.t5_prompt = Some(Prompt::Tokens(vec![500, 1]));
    assert!(matches!(
        pipe.generate(&p),
        Err(Error::InvalidParams {
            field: "t5_prompt",
            ..
        })
    ));
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
