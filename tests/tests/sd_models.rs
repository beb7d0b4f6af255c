//! A Stable Diffusion folder on a real farm: the diffusers-layout tiny-sd
//! folder (random weights, the one fresco-diffusers matches against diffusers) in a
//! worker's `--models-dir`, rendered through coordinator, queue, worker and
//! storage. Every task picks its sampler and schedule knobs, and the pixels
//! show that each reached the sampler: equal parameters give equal images
//! and a changed knob a changed image. (A sampler the model cannot run is
//! refused at submit: tests/capabilities.rs.)

use std::path::Path;
use std::time::Duration;

use fresco_e2e::models::tiny_sd_models_dir;
use fresco_e2e::{Farm, FarmOptions, decode_png, describe, stdout_json};

/// RGB8 pixels of a PNG file.
fn pixels(path: &Path) -> Vec<u8> {
    decode_png(&std::fs::read(path).expect("reading a PNG")).2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_diffusion_folder_renders_with_each_tasks_sampler_and_schedule() {
    let models = tiny_sd_models_dir(&[]);
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;
    let workers = stdout_json(&farm.cli(&["workers", "--json"]));
    assert!(
        workers[0]["models"]
            .as_array()
            .is_some_and(|m| m.contains(&serde_json::json!("tiny-sd"))),
        "{workers}"
    );

    let lines = [
        // 0 and 1: the same parameters.
        r#"{"prompt": "a red cat", "sampler": "ddim"}"#,
        r#"{"prompt": "a red cat", "sampler": "ddim"}"#,
        // 2: DDIM with eta 1 draws fresh noise every step.
        r#"{"prompt": "a red cat", "sampler": "ddim", "eta": 1.0}"#,
        // 3: trailing timestep spacing visits other timesteps.
        r#"{"prompt": "a red cat", "sampler": "ddim", "timestep_spacing": "trailing"}"#,
        // 4: another beta schedule.
        r#"{"prompt": "a red cat", "sampler": "ddim", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}"#,
        // 5 and 6: other samplers.
        r#"{"prompt": "a red cat", "sampler": "dpmpp_2m_karras"}"#,
        r#"{"prompt": "a blue dog", "sampler": "euler_a", "n": 2}"#,
    ];
    let prompts = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .expect("temp file");
    std::fs::write(prompts.path(), lines.join("\n")).expect("writing prompts");
    let job = farm.submit(&[
        "--model",
        "tiny-sd",
        "--prompts-file",
        &prompts.path().display().to_string(),
        "--steps",
        "4",
        "--width",
        "16",
        "--height",
        "16",
        "--seed",
        "7",
        "--guidance",
        "5",
        "--max-attempts",
        "1",
    ]);
    let status = farm.wait_finished(&job, Duration::from_secs(180)).await;
    assert_eq!(status["counts"]["succeeded"], 7, "{status}");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    assert_eq!(status["tasks"][2]["schedule"]["eta"], 1.0, "{status}");
    assert_eq!(
        status["tasks"][5]["schedule"],
        serde_json::json!({}),
        "{status}"
    );

    let out = tempfile::tempdir().expect("temp dir");
    let download = farm.cli(&["download", &job, "--out", &out.path().display().to_string()]);
    assert!(download.status.success(), "{}", describe(&download));
    let image = |task: usize, k: usize| pixels(&out.path().join(format!("task-{task:05}-{k}.png")));
    let first = image(0, 0);
    assert_eq!(first.len(), 16 * 16 * 3);
    assert_eq!(
        image(1, 0),
        first,
        "the same parameters give the same pixels"
    );
    for (task, knob) in [
        (2, "eta"),
        (3, "timestep_spacing"),
        (4, "beta schedule"),
        (5, "sampler"),
    ] {
        assert_ne!(
            image(task, 0),
            first,
            "task {task}: the {knob} reaches the sampler"
        );
    }
    assert_ne!(image(6, 0), image(6, 1), "the images of a batch differ");
}
