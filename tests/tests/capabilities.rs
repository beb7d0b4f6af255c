//! What no worker can run is refused at submit, on a real farm: `fresco
//! submit` asking the default model for sides or a sampler it cannot draw
//! exits 2 naming the task's field, the model, its limit and the value, and
//! stores nothing; a real worker serving model folders registers what each
//! accepts (read from the folder's configs), and the coordinator then
//! refuses beyond it and renders within it.

use std::time::Duration;

use candle_core::Device;
use fresco_dit::{DitConfig, DitPipeline};
use fresco_e2e::models::tiny_sd_models_dir;
use fresco_e2e::{Farm, FarmOptions, describe};

/// Asserts `fresco` exited 2 with `message` as its error line on stderr.
fn refused_with(out: &std::process::Output, message: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|line| line == format!("error: {message}")),
        "stderr should say {message:?}: {}",
        describe(out)
    );
}

async fn stored_jobs(farm: &Farm) -> i64 {
    let pool = farm.db.pool().await;
    sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .expect("counting jobs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_model_refuses_at_submit_what_it_cannot_draw() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let prompt = ["submit", "--prompt", "a red circle"];
    let oversize = farm.cli(&[&prompt[..], &["--width", "512", "--height", "512"]].concat());
    refused_with(
        &oversize,
        "tasks[0].width: fresco-shapes draws at most 64 (got 512)",
    );
    let ddim = farm.cli(&[&prompt[..], &["--sampler", "ddim"]].concat());
    refused_with(
        &ddim,
        "tasks[0].sampler: fresco-shapes runs euler, heun (got ddim)",
    );
    assert_eq!(stored_jobs(&farm).await, 0, "nothing is stored");

    // Within its limits the same submission is accepted.
    farm.submit(&[&prompt[1..], &["--width", "64", "--sampler", "heun"]].concat());
    assert_eq!(stored_jobs(&farm).await, 1);
}

/// A models directory holding the tiny SD folder (with the harness's
/// letter-by-letter CLIP tokenizer) and a DiT folder whose config caps a
/// side at 32.
fn models_dir() -> tempfile::TempDir {
    let dir = tiny_sd_models_dir(&[]);
    let small = DitConfig {
        max_side: 32,
        ..DitConfig::tiny()
    };
    DitPipeline::random("small-dit", small, 5, &Device::Cpu)
        .expect("a DiT")
        .save(dir.path().join("small-dit"))
        .expect("saving the DiT folder");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_folder_capabilities_are_enforced_at_submit() {
    let models = models_dir();
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;

    // What the worker registered, read from the database.
    let pool = farm.db.pool().await;
    let registered: serde_json::Value = sqlx::query_scalar("SELECT capabilities FROM workers")
        .fetch_one(&pool)
        .await
        .expect("the worker's capabilities");
    let sd = &registered["tiny-sd"];
    assert_eq!(sd["family"], "stable-diffusion", "{registered}");
    assert_eq!(sd["side_multiple"], 2, "tiny-sd's VAE halves once: {sd}");
    assert_eq!(sd["max_side"], serde_json::Value::Null, "{sd}");
    assert_eq!(registered["small-dit"]["max_side"], 32, "{registered}");
    assert_eq!(registered["fresco-shapes"]["max_side"], 64, "{registered}");

    let flow = farm.cli(&[
        "submit",
        "--model",
        "tiny-sd",
        "--prompt",
        "a red cat",
        "--sampler",
        "flow_euler",
    ]);
    refused_with(
        &flow,
        "tasks[0].sampler: tiny-sd runs ddim, ddpm, euler, euler_a, heun, dpmpp_2m, \
         dpmpp_2m_karras, unipc (got flow_euler)",
    );
    let wide = farm.cli(&[
        "submit",
        "--model",
        "small-dit",
        "--prompt",
        "a red circle",
        "--width",
        "64",
        "--height",
        "32",
    ]);
    refused_with(&wide, "tasks[0].width: small-dit draws at most 32 (got 64)");
    assert_eq!(stored_jobs(&farm).await, 0, "nothing is stored");

    // Within what the worker reported, both models render.
    let sd_job = farm.submit(&[
        "--model",
        "tiny-sd",
        "--prompt",
        "a red cat",
        "--sampler",
        "ddim",
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
    ]);
    let dit_job = farm.submit(&[
        "--model",
        "small-dit",
        "--prompt",
        "a red circle",
        "--steps",
        "2",
        "--width",
        "32",
        "--height",
        "32",
    ]);
    for job in [sd_job, dit_job] {
        let status = farm.wait_finished(&job, Duration::from_secs(120)).await;
        assert_eq!(
            status["counts"]["succeeded"],
            1,
            "{status}\n{}",
            farm.logs()
        );
    }
}
