//! End-to-end checks of the training tools on the tiny preset: overfitting,
//! save → load → generate, exact resume, and evaluation (library and binary).

#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::Device;
use fresco_dit::DitPipeline;
use fresco_pipeline::{GenerateParams, Pipeline};
use fresco_shapes::{Dataset, Framing, Shape, Sizing, Split};
use fresco_train::checkpoint::TrainState;
use fresco_train::data::CleanBatch;
use fresco_train::eval::write_grid;
use fresco_train::{EvalOptions, Preset, TrainOptions, Trainer, eval_prompts, evaluate};

fn opts(out: &Path, steps: u64) -> TrainOptions {
    let mut o = TrainOptions::new(out);
    o.steps = steps;
    o.batch = 4;
    o.lr = 3e-3;
    o.warmup = 2;
    o.seed = 11;
    o.image_size = 16;
    o.log_every = 0;
    o.checkpoint_every = 0;
    o
}

#[test]
fn a_few_steps_overfit_a_fixed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let steps = 100;
    let mut o = opts(dir.path(), steps);
    o.dataset_size = Some(4);
    o.caption_dropout = 0.0;
    o.time_sampling = fresco_train::TimeSampling::Uniform;
    let mut t = Trainer::new(o, Preset::Tiny.config(), &Device::Cpu).unwrap();
    let ds = Dataset::new(11, 16, Split::Train).unwrap();
    let fixed = CleanBatch::from_dataset(&ds, &[0, 1, 2, 3]).unwrap();
    let before = t.loss_on(&fixed, 5).unwrap();
    for _ in 0..steps {
        t.train_step().unwrap();
    }
    let after = t.loss_on(&fixed, 5).unwrap();
    eprintln!("fixed-batch loss {before:.4} -> {after:.4}");
    assert!(after < 0.5 * before, "loss {before} -> {after}");
}

#[test]
fn a_bad_logit_normal_scale_is_refused_with_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    for scale in [0.0, -1.0, f64::NAN] {
        let mut o = opts(dir.path(), 1);
        o.logit_normal = fresco_train::LogitNormalParams {
            location: 0.8,
            scale,
        };
        let err = Trainer::new(o, Preset::Tiny.config(), &Device::Cpu)
            .err()
            .unwrap_or_else(|| panic!("a scale of {scale} must be refused"));
        assert!(err.to_string().contains("scale > 0"), "{err}");
    }
}

#[test]
fn a_layout_words_percent_above_100_is_refused_with_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.layout_percent = 101;
    let err = Trainer::new(o, Preset::Tiny.config(), &Device::Cpu)
        .err()
        .expect("101 % must be refused");
    assert!(err.to_string().contains("0..=100"), "{err}");
}

/// End to end through the real training step and the real pipeline: a model
/// trained on a single image must, when sampled with that image's caption, draw
/// (roughly) that image. Catches a disagreement between the training path/target
/// and the direction or sign of `generate`'s integration. (With one image the model
/// can read `t` off `x_t`, so a time-scaling mismatch barely shows here: that is
/// `trainable::tests::training_forward_equals_sampling_forward_on_the_same_weights`.)
#[test]
fn a_model_trained_on_one_image_samples_that_image() {
    let dir = tempfile::tempdir().unwrap();
    let steps = 200;
    let mut o = opts(dir.path(), steps);
    o.dataset_size = Some(1);
    o.batch = 8;
    o.time_sampling = fresco_train::TimeSampling::Uniform;
    let mut t = Trainer::new(o, Preset::Tiny.config(), &Device::Cpu).unwrap();
    let sample = Dataset::new(11, 16, Split::Train)
        .unwrap()
        .sample(0)
        .unwrap();
    let params = |guidance: f32| GenerateParams {
        prompt: sample.caption.clone(),
        negative_prompt: String::new(),
        seed: 5,
        steps: 20,
        width: 16,
        height: 16,
        guidance,
        n: 2,
        sampler: "euler".into(),
        schedule: Default::default(),
    };
    let generate = |t: &Trainer, guidance| {
        t.pipeline()
            .generate(&params(guidance), &mut |_| ControlFlow::Continue(()))
            .unwrap()
    };
    let before = generate(&t, 1.0);
    for _ in 0..steps {
        t.train_step().unwrap();
    }
    for guidance in [1.0, 3.0] {
        let after = generate(&t, guidance);
        for (b, a) in before.iter().zip(&after) {
            let (db, da) = (
                mean_abs_diff(&b.rgb, &sample.rgb),
                mean_abs_diff(&a.rgb, &sample.rgb),
            );
            eprintln!("guidance {guidance}: |sample - image| {db:.1} -> {da:.1} (of 255)");
            // Measured: ~115 → ~30 (and ~17 after 600 steps). Integrating in the
            // wrong direction or with the wrong sign gives ~150.
            assert!(da < 0.5 * db, "{db} -> {da}");
        }
    }
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn trained_model_saves_loads_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fresco-shapes");
    let mut o = opts(&out, 3);
    o.checkpoint_every = 2;
    o.log_every = 1;
    let mut t = Trainer::new(o, Preset::Tiny.config(), &Device::Cpu).unwrap();
    let summary = t.run().unwrap();
    assert_eq!(summary.steps, 3);
    assert!(out.join("training.json").is_file());
    assert!(out.join("checkpoint/state.json").is_file());
    let p = DitPipeline::from_dir(&out, &Device::Cpu).unwrap();
    assert_eq!(p.model_id(), "fresco-shapes");
    assert_eq!(
        p.config().text.vocab.len(),
        fresco_shapes::vocabulary().len()
    );
    let params = GenerateParams {
        prompt: "a red circle on a white background".into(),
        negative_prompt: String::new(),
        seed: 1,
        steps: 3,
        width: 16,
        height: 16,
        guidance: 3.0,
        n: 2,
        sampler: "euler".into(),
        schedule: Default::default(),
    };
    let images = p
        .generate(&params, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].rgb.len(), 16 * 16 * 3);
    // The weights on disk are the trained ones, not the initial ones.
    let init = DitPipeline::random(
        "x",
        Preset::Tiny.config(),
        fresco_train::trainer::init_seed(11),
        &Device::Cpu,
    )
    .unwrap();
    let a = init
        .generate(&params, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_ne!(a[0].rgb, images[0].rgb);
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let map = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = map
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn resume_continues_at_the_saved_step_and_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    Trainer::new(opts(&whole, 6), Preset::Tiny.config(), &Device::Cpu)
        .unwrap()
        .run()
        .unwrap();

    let split = dir.path().join("split");
    let ckpt = dir.path().join("ckpt");
    let mut first = Trainer::new(opts(&split, 6), Preset::Tiny.config(), &Device::Cpu).unwrap();
    for _ in 0..3 {
        first.train_step().unwrap();
    }
    first.save_checkpoint(&ckpt).unwrap();
    drop(first);
    let mut bad = opts(&split, 6);
    bad.seed = 12;
    assert!(Trainer::resume(bad, &ckpt, &Device::Cpu).is_err());
    let mut second = Trainer::resume(opts(&split, 6), &ckpt, &Device::Cpu).unwrap();
    assert_eq!(second.step(), 3);
    second.run().unwrap();
    assert_eq!(second.step(), 6);
    assert_eq!(weights(&whole), weights(&split));
}

/// A checkpoint records its dataset options; resuming it with other ones is
/// refused, naming each differing option with both values, and a checkpoint
/// written before the options were recorded still resumes.
#[test]
fn resume_refuses_dataset_options_that_differ_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let ckpt = dir.path().join("ckpt");
    let canonical = |out: &Path| {
        let mut o = opts(out, 4);
        o.framing = Framing::CentreUnlessNamed;
        o.sizing = Sizing::LargeUnlessNamed;
        o.layout_percent = 0;
        o.shape_weights = vec![(Shape::Star, 3)];
        o
    };
    let mut first = Trainer::new(canonical(&run), Preset::Tiny.config(), &Device::Cpu).unwrap();
    first.train_step().unwrap();
    first.save_checkpoint(&ckpt).unwrap();
    drop(first);
    let state = TrainState::load(&ckpt).unwrap();
    let recipe = state
        .data
        .clone()
        .expect("the checkpoint records its dataset");
    assert_eq!(recipe.layout_percent, 0);
    assert_eq!(recipe.framing, Framing::CentreUnlessNamed);
    assert_eq!(recipe.shape_weights.get(&Shape::Star), Some(&3));
    assert_eq!(
        recipe.shape_weights.len(),
        1,
        "weight-1 shapes are left out"
    );

    let refusal = |options| {
        Trainer::resume(options, &ckpt, &Device::Cpu)
            .err()
            .expect("other dataset options must be refused")
            .to_string()
    };
    let mut other = canonical(&run);
    other.layout_percent = 25;
    other.shape_weights = vec![(Shape::Star, 2)];
    let err = refusal(other);
    assert!(
        err.contains("--layout-words-percent (checkpoint 0, given 25)"),
        "{err}"
    );
    assert!(
        err.contains("--shape-weight (checkpoint star=3, given star=2)"),
        "{err}"
    );
    assert!(!err.contains("--unnamed-position"), "{err}");
    let mut anywhere = canonical(&run);
    anywhere.framing = Framing::Anywhere;
    let err = refusal(anywhere);
    assert!(
        err.contains("--unnamed-position (checkpoint centre, given anywhere)"),
        "{err}"
    );
    // The noise options may change, as the schedule may.
    let mut noise = canonical(&run);
    noise.time_sampling = fresco_train::TimeSampling::Uniform;
    noise.caption_dropout = 0.2;
    noise.outline_weight = 8.0;
    let resumed = Trainer::resume(noise, &ckpt, &Device::Cpu).unwrap();
    assert_eq!(resumed.step(), 1);

    TrainState {
        data: None,
        ..state
    }
    .save(&ckpt)
    .unwrap();
    let mut unrecorded = canonical(&run);
    unrecorded.layout_percent = 25;
    let resumed = Trainer::resume(unrecorded, &ckpt, &Device::Cpu).unwrap();
    assert_eq!(resumed.step(), 1, "an older checkpoint resumes unchecked");
}

/// `Trainer::from_model` starts a new run from a saved model folder: its
/// architecture and weights, step 0; and a folder without weights is an error.
#[test]
fn a_run_can_start_from_a_saved_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Preset::Tiny.config();
    config.refiner_channels = 4;
    let saved = dir.path().join("saved");
    Trainer::new(opts(&saved, 3), config.clone(), &Device::Cpu)
        .unwrap()
        .run()
        .unwrap();

    let next = dir.path().join("next");
    let mut o = opts(&next, 2);
    o.seed = 99;
    let mut warm = Trainer::from_model(o.clone(), &saved, &Device::Cpu).unwrap();
    assert_eq!(warm.step(), 0);
    assert_eq!(warm.pipeline().config(), &config);
    let start = dir.path().join("start");
    warm.pipeline().save(&start).unwrap();
    assert_eq!(weights(&start), weights(&saved), "the folder's weights");
    warm.run().unwrap();
    assert_ne!(weights(&next), weights(&saved), "and training moves them");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(saved.join("config.json"), empty.join("config.json")).unwrap();
    let err = Trainer::from_model(o, &empty, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

/// With weight EMA (and the x0 head) the saved model is the average, not the raw
/// weights, and a resumed run continues the average exactly.
#[test]
fn ema_model_is_saved_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ema_opts = |out: &Path| {
        let mut o = opts(out, 6);
        o.ema_decay = Some(0.9);
        o
    };
    let mut config = Preset::Tiny.config();
    config.prediction = fresco_dit::Prediction::X0;
    let whole = dir.path().join("whole");
    let mut t = Trainer::new(ema_opts(&whole), config.clone(), &Device::Cpu).unwrap();
    t.run().unwrap();
    let raw = dir.path().join("raw");
    t.pipeline().save(&raw).unwrap();
    assert_ne!(weights(&whole), weights(&raw), "the EMA model is saved");
    assert!(whole.join("checkpoint").join("ema.safetensors").is_file());
    let loaded = DitPipeline::from_dir(&whole, &Device::Cpu).unwrap();
    assert_eq!(loaded.config().prediction, fresco_dit::Prediction::X0);

    let split = dir.path().join("split");
    let ckpt = dir.path().join("ckpt");
    let mut first = Trainer::new(ema_opts(&split), config, &Device::Cpu).unwrap();
    for _ in 0..3 {
        first.train_step().unwrap();
    }
    first.save_checkpoint(&ckpt).unwrap();
    drop(first);
    let mut second = Trainer::resume(ema_opts(&split), &ckpt, &Device::Cpu).unwrap();
    second.run().unwrap();
    assert_eq!(weights(&whole), weights(&split));
}

#[test]
fn eval_runs_end_to_end_on_a_tiny_random_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Preset::Tiny.config();
    config.adaln_zero = false;
    let p = DitPipeline::random("tiny", config, 3, &Device::Cpu).unwrap();
    let opts = EvalOptions {
        k: 2,
        steps: 2,
        guidance: 4.0,
        seed: 1,
        size: 16,
        sampler: "euler".into(),
    };
    let prompts = eval_prompts();
    let out = evaluate(&p, &prompts[..3], &opts).unwrap();
    assert_eq!(out.report.overall().images, 6);
    let table = out.report.to_string();
    assert!(
        table.contains("| seen |") && table.contains("| held-out |"),
        "{table}"
    );
    let grid = dir.path().join("grid.png");
    write_grid(&out, &grid, 2).unwrap();
    assert!(std::fs::metadata(&grid).unwrap().len() > 100);

    // The binary, on a saved model.
    let model = dir.path().join("model");
    p.save(&model).unwrap();
    let grid2 = dir.path().join("grid2.png");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fresco-eval"))
        .args(["--k", "2", "--steps", "1", "--size", "16", "--grid"])
        .arg(&grid2)
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("| overall | 40 |"), "{stdout}");
    assert!(grid2.is_file());
}

/// Runs `binary` with `args` and returns its stderr, asserting that it failed.
fn failing_run(binary: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(binary)
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{binary} {args:?} succeeded");
    stderr
}

#[test]
fn both_binaries_refuse_a_device_they_cannot_use_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let train = env!("CARGO_BIN_EXE_fresco-train");
    let eval = env!("CARGO_BIN_EXE_fresco-eval");
    let err = failing_run(train, &["--out", out, "--device", "gpu"]);
    assert!(err.contains("`gpu`: expected cpu, cuda or cuda:N"), "{err}");
    let err = failing_run(eval, &["--model", out, "--device", "cuda:one"]);
    assert!(err.contains("`cuda:one`: expected cuda or cuda:N"), "{err}");
    if cfg!(not(feature = "cuda")) {
        for (binary, folder_flag) in [(train, "--out"), (eval, "--model")] {
            let err = failing_run(binary, &[folder_flag, out, "--device", "cuda"]);
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
    assert!(
        !dir.path().join("run").exists(),
        "a refused run must not write its output folder"
    );
}

#[test]
fn fresco_train_refuses_a_malformed_shape_weight_and_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let train = env!("CARGO_BIN_EXE_fresco-train");
    for (weight, rule) in [
        (
            "blob=3",
            "unknown shape \"blob\" (expected one of circle, square",
        ),
        ("star=0", "must be a whole number in 1..=16"),
        ("star=17", "must be a whole number in 1..=16"),
        ("star", "expected SHAPE=N"),
    ] {
        let err = failing_run(train, &["--out", out, "--shape-weight", weight]);
        assert!(err.contains(rule), "--shape-weight {weight}: {err}");
    }
    assert!(!dir.path().join("run").exists());
}

/// Trainer options reach the dataset: a weighted run is refused at build time
/// when a weight breaks the dataset's rule, even when set through the library.
#[test]
fn a_shape_weight_outside_the_datasets_range_is_refused_by_the_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.shape_weights = vec![(fresco_shapes::Shape::Star, 0)];
    let err = Trainer::new(o, Preset::Tiny.config(), &Device::Cpu)
        .err()
        .expect("weight 0 must be refused");
    assert!(err.to_string().contains("star=0"), "{err}");
}
