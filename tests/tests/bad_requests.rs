//! A bad request cannot hurt the farm, told as a new user would meet it, on
//! a real farm and on `fresco dev`, each with one worker:
//! - a submission too large for the default model, one with a sampler it
//!   cannot run, and a sweep with a size it cannot draw, are refused at
//!   submit naming the rule (the sweep's by its axis value), and nothing is
//!   stored;
//! - prompts only the worker can find unusable (a word the tiny SD folder's
//!   tokenizer knows and its text encoder cannot embed), more of them than
//!   the failures in a row that quarantine a worker, each fail their task
//!   after one attempt, as the request's fault;
//! - the worker is not quarantined, and renders the next job.

use std::process::Output;
use std::time::Duration;

use fresco_e2e::models::tiny_sd_models_dir;
use fresco_e2e::{Farm, FarmOptions, Proc, binary, describe, free_port, stdout_json, wait_until};

/// More than the coordinator's default `--quarantine-after` (5).
const BAD_PROMPTS: usize = 6;

/// The whole stderr of the oversized submission.
const TOO_LARGE: &str = "error: tasks[0].width: fresco-shapes draws at most 64 (got 512)";
/// The whole stderr of the submission with a sampler the model cannot run.
const WRONG_SAMPLER: &str = "error: tasks[0].sampler: fresco-shapes runs euler, heun (got ddim)";

/// The whole stderr of the sweep with one size the model cannot draw.
const SWEEP_TOO_LARGE: &str =
    "error: sweep.sizes[1].width: fresco-shapes draws at most 64 (got 512)";

/// Where the CLI calls, and the key it calls with (none on `fresco dev`).
struct Target {
    endpoint: String,
    key: Option<String>,
}

fn cli(target: &Target, args: &[&str]) -> Output {
    let mut command = binary("fresco");
    command.args(["--coordinator", &target.endpoint]);
    if let Some(key) = &target.key {
        command.args(["--api-key", key]);
    }
    command.args(args).output().expect("running fresco")
}

fn refused(target: &Target, args: &[&str], expected: &str) {
    let out = cli(target, args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        expected,
        "{}",
        describe(&out)
    );
}

fn submitted(out: &Output) -> String {
    assert!(out.status.success(), "{}", describe(out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn finished(target: &Target, job: &str) -> serde_json::Value {
    wait_until("the job to finish", Duration::from_secs(120), || async {
        let out = cli(target, &["status", "--json", job]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|status| status["finished"] == true)
    })
    .await;
    stdout_json(&cli(target, &["status", "--json", "--tasks", "all", job]))
}

/// The three refusals at submit.
fn submit_refuses_what_the_model_cannot_run(target: &Target) {
    refused(
        target,
        &[
            "submit",
            "--prompt",
            "a red circle",
            "--width",
            "512",
            "--height",
            "512",
        ],
        TOO_LARGE,
    );
    refused(
        target,
        &["submit", "--prompt", "a red circle", "--sampler", "ddim"],
        WRONG_SAMPLER,
    );
    refused(
        target,
        &[
            "submit",
            "--prompt",
            "a red circle",
            "--seeds",
            "1-2",
            "--size",
            "32x32,512x512",
        ],
        SWEEP_TOO_LARGE,
    );
}

/// Bad prompts fail alone; the worker stays in service and renders the
/// next job. Returns the bad job's id.
async fn request_faults_fail_alone(target: &Target) -> String {
    let mut args = vec![
        "submit", "--model", "tiny-sd", "--steps", "2", "--width", "16", "--height", "16",
    ];
    for _ in 0..BAD_PROMPTS {
        args.extend(["-p", "a q"]);
    }
    let bad = submitted(&cli(target, &args));
    let status = finished(target, &bad).await;
    assert_eq!(status["counts"]["failed"], BAD_PROMPTS, "{status}");
    for task in status["tasks"].as_array().expect("tasks") {
        let errors = task["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "one attempt, no retry: {task}");
        assert_eq!(errors[0]["kind"], "request", "{task}");
        let message = errors[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("token id 5016 outside the vocabulary of 1000"),
            "the failure says what is wrong with the prompt: {message}"
        );
    }

    let workers = stdout_json(&cli(target, &["workers", "--json"]));
    let worker = &workers[0];
    assert_eq!(worker["consecutive_failures"], 0, "{worker}");
    assert!(worker["quarantined_at"].is_null(), "{worker}");

    let next = submitted(&cli(
        target,
        &["submit", "--prompt", "a red circle", "--steps", "2"],
    ));
    let status = finished(target, &next).await;
    assert_eq!(status["counts"]["succeeded"], 1, "{status}");
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_farm_bad_requests_are_refused_or_fail_alone_and_the_worker_renders_on() {
    let models = tiny_sd_models_dir(&['q']);
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;

    let target = Target {
        endpoint: farm.endpoint.clone(),
        key: Some(farm.admin_key.clone()),
    };
    let before = farm.snapshot().await;
    submit_refuses_what_the_model_cannot_run(&target);
    assert_eq!(
        farm.snapshot().await,
        before,
        "a refused submission stores nothing"
    );

    request_faults_fail_alone(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fresco_dev_bad_requests_are_refused_or_fail_alone_and_the_worker_renders_on() {
    let models = tiny_sd_models_dir(&['q']);
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let listen = endpoint.trim_start_matches("http://").to_owned();
    let _dev = Proc::spawn(
        "fresco dev",
        binary("fresco")
            .args(["dev", "--workers", "1", "--listen", &listen, "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--models-dir")
            .arg(models.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let target = Target {
        endpoint: endpoint.clone(),
        key: None,
    };
    wait_until(
        "fresco dev to list its worker",
        Duration::from_secs(60),
        || async {
            let out = cli(&target, &["workers", "--json"]);
            out.status.success()
                && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|w| w.as_array().is_some_and(|w| !w.is_empty()))
        },
    )
    .await;

    submit_refuses_what_the_model_cannot_run(&target);
    let jobs = stdout_json(&cli(&target, &["list", "--json"]));
    assert_eq!(
        jobs,
        serde_json::json!([]),
        "a refused submission stores nothing"
    );

    request_faults_fail_alone(&target).await;
}
