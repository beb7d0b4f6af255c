//! A flow-matching folder served the way a worker serves it ([`FlowModel`] behind
//! fresco's `Pipeline` trait): text prompts, one progress report per step, a
//! cancel between steps, the `flow_shift` knob read and the other schedule knobs
//! refused by name.

mod flow_common;

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::{DType, Device};
use fresco_diffusers::serve::FlowModel;
use fresco_pipeline::{Error, GenerateParams, Pipeline, Progress, Schedule};

/// CLIP's `vocab.json` with no merges: words are spelled letter by letter.
fn write_letter_tokenizer(dir: &Path) {
    std::fs::create_dir_all(dir).expect("tokenizer dir");
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|startoftext|>".into(), 998.into());
    vocab.insert("<|endoftext|>".into(), 999.into());
    for (id, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), (id + 100).into());
        vocab.insert(format!("{c}</w>"), (id + 200).into());
    }
    std::fs::write(
        dir.join("vocab.json"),
        serde_json::Value::Object(vocab).to_string(),
    )
    .expect("vocab");
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\n").expect("merges");
}

/// A tiny SD3 folder (no T5) with both CLIP tokenizers, served as `model_id`.
fn served_sd3() -> (tempfile::TempDir, FlowModel) {
    let tmp = tempfile::tempdir().expect("tempdir");
    flow_common::write_sd3(tmp.path(), false, 21);
    write_letter_tokenizer(&tmp.path().join("tokenizer"));
    write_letter_tokenizer(&tmp.path().join("tokenizer_2"));
    let model =
        FlowModel::load(tmp.path(), "tiny-sd3", &Device::Cpu, DType::F32).expect("load the folder");
    (tmp, model)
}

fn params() -> GenerateParams {
    GenerateParams {
        prompt: "a red fox".into(),
        seed: 3,
        steps: 4,
        width: 16,
        height: 16,
        guidance: 3.0,
        sampler: "flow_euler".into(),
        ..GenerateParams::default()
    }
}

fn run(
    model: &FlowModel,
    params: &GenerateParams,
) -> (
    Result<Vec<fresco_pipeline::GeneratedImage>, Error>,
    Vec<Progress>,
) {
    let mut seen = Vec::new();
    let result = model.generate(params, &mut |p| {
        seen.push(p);
        ControlFlow::Continue(())
    });
    (result, seen)
}

#[test]
fn reports_every_step_and_stops_when_cancelled() {
    let (_tmp, model) = served_sd3();
    let (images, seen) = run(&model, &params());
    let images = images.expect("generate");
    assert_eq!(images.len(), 1);
    assert_eq!((images[0].width, images[0].height), (16, 16));
    let want: Vec<Progress> = (1..=4).map(|step| Progress { step, total: 4 }).collect();
    assert_eq!(seen, want);

    let mut calls = 0;
    let cancelled = model.generate(&params(), &mut |p| {
        calls += 1;
        if p.step == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(matches!(cancelled, Err(Error::Cancelled)), "{cancelled:?}");
    assert_eq!(calls, 2);
}

#[test]
fn flow_shift_is_read_and_other_knobs_are_refused() {
    let (_tmp, model) = served_sd3();
    let (plain, _) = run(&model, &params());
    let plain = plain.expect("generate");
    let shifted = |shift: f64| GenerateParams {
        schedule: Schedule {
            flow_shift: Some(shift),
            ..Schedule::default()
        },
        ..params()
    };
    let (a, _) = run(&model, &shifted(0.5));
    let (b, _) = run(&model, &shifted(0.5));
    let (a, b) = (a.expect("shift 0.5"), b.expect("shift 0.5 again"));
    assert_eq!(a, b, "same knobs, same pixels");
    assert_ne!(
        a[0].rgb, plain[0].rgb,
        "flow_shift 0.5 must change the pixels"
    );

    let beta_knob = GenerateParams {
        schedule: Schedule {
            eta: Some(0.5),
            ..Schedule::default()
        },
        ..params()
    };
    match run(&model, &beta_knob).0 {
        Err(Error::InvalidParams(msg)) => {
            assert!(msg.contains("flow_shift") && msg.contains("eta"), "{msg}");
        }
        other => panic!("eta must be refused, got {other:?}"),
    }
    let unknown_sampler = GenerateParams {
        sampler: "ddim".into(),
        ..params()
    };
    assert!(matches!(
        run(&model, &unknown_sampler).0,
        Err(Error::UnknownSampler { .. })
    ));
}
