//! Model variants that differ from the reference folder only in their scheduler
//! config: a v-prediction folder (SD 2.x 768-v style) and a Turbo-style folder
//! (Euler ancestral, trailing spacing, one step, no guidance), run through the
//! same loading path as a user's folder.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{expected, ids, max_abs_diff, tiny_sd, tiny_sd_copy};
use fresco_diffusers::{GenerateParams, Prompt, SchedulerKind, SdPipeline};
use fresco_pipeline::Schedule;

/// A copy of the tiny-sd folder whose scheduler config is edited by `edit`.
fn variant(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> tempfile::TempDir {
    let tmp = tiny_sd_copy();
    let path = tmp.path().join("scheduler/scheduler_config.json");
    let text = std::fs::read_to_string(&path).expect("scheduler config");
    let mut config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("json");
    edit(&mut config);
    std::fs::write(&path, serde_json::Value::Object(config).to_string()).expect("write");
    tmp
}

fn load(dir: &Path) -> SdPipeline {
    SdPipeline::load(dir, &Device::Cpu, DType::F32).expect("load the folder")
}

fn params(sampler: Option<SchedulerKind>, steps: usize, guidance: f64) -> GenerateParams {
    let e = expected();
    let mut p = GenerateParams::new(Prompt::Tokens(ids(&e["clip"]["cond_input_ids"])));
    p.negative = Some(Prompt::Tokens(ids(&e["clip"]["uncond_input_ids"])));
    p.steps = steps;
    p.guidance_scale = guidance;
    p.sampler = sampler;
    p.seed = 7;
    p
}

fn render(pipe: &SdPipeline, p: &GenerateParams) -> Tensor {
    pipe.generate_tensor(p).expect("generate")
}

#[test]
fn v_prediction_folder_equals_the_knob_and_differs_from_epsilon() {
    let v_folder = variant(|c| {
        c.insert("prediction_type".into(), "v_prediction".into());
    });
    let v_pipe = load(v_folder.path());
    assert_eq!(v_pipe.scheduler().config.prediction_type, "v_prediction");
    let eps_pipe = load(&tiny_sd());
    for kind in [
        SchedulerKind::Ddim,
        SchedulerKind::Euler,
        SchedulerKind::DpmPp2m,
    ] {
        let p = params(Some(kind), 4, 5.0);
        let from_folder = render(&v_pipe, &p);
        let mut knob = p.clone();
        knob.schedule = Schedule {
            prediction_type: Some("v_prediction".into()),
            ..Schedule::default()
        };
        let from_knob = render(&eps_pipe, &knob);
        assert_eq!(max_abs_diff(&from_folder, &from_knob), 0.0, "{kind}");
        let epsilon = render(&eps_pipe, &p);
        assert!(
            max_abs_diff(&from_folder, &epsilon) > 1e-3,
            "{kind}: v-prediction must change the image"
        );
    }
}

#[test]
fn turbo_style_folder_runs_one_step_without_guidance() {
    let turbo = variant(|c| {
        c.insert(
            "_class_name".into(),
            "EulerAncestralDiscreteScheduler".into(),
        );
        c.insert("timestep_spacing".into(), "trailing".into());
    });
    let pipe = load(turbo.path());
    assert_eq!(
        pipe.scheduler().default_kind,
        Some(SchedulerKind::EulerAncestral)
    );
    assert_eq!(
        pipe.scheduler().config.timestep_spacing.as_deref(),
        Some("trailing")
    );
    // The folder's sampler by default; guidance 0 means no classifier-free
    // guidance (the conditional prediction alone), as at guidance 1.
    let zero = params(None, 1, 0.0);
    let a = render(&pipe, &zero);
    let b = render(&pipe, &zero);
    assert_eq!(max_abs_diff(&a, &b), 0.0, "same seed, same pixels");
    let one = render(&pipe, &params(None, 1, 1.0));
    assert_eq!(
        max_abs_diff(&a, &one),
        0.0,
        "guidance 0 and 1 both skip guidance"
    );
    let explicit = render(&pipe, &params(Some(SchedulerKind::EulerAncestral), 1, 0.0));
    assert_eq!(
        max_abs_diff(&a, &explicit),
        0.0,
        "the folder names Euler ancestral"
    );
    let leading = render(
        &load(&tiny_sd()),
        &params(Some(SchedulerKind::EulerAncestral), 1, 0.0),
    );
    assert!(
        max_abs_diff(&a, &leading) > 1e-3,
        "trailing spacing starts from the last training timestep, leading does not"
    );
}
