//! Quarantine is recoverable, on a real farm: a worker whose model cannot
//! load (a corrupt weights file: the worker's fault, not the request's) is
//! quarantined after `--quarantine-after` failures and `fresco workers`
//! says why; once the folder is repaired, the cool-down puts it on
//! probation, it takes a probe task, succeeds, and is back in service for
//! the jobs after it, without a restart. An operator's `fresco workers
//! release` does the same before the cool-down ends.

use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, describe, stdout_json, wait_until};

use fresco_e2e::models::DIT_WEIGHTS as WEIGHTS;

/// Submits `prompts` tasks of the model `mended` with one attempt each;
/// returns the job id.
fn submit(farm: &Farm, prompts: usize) -> String {
    let mut args = vec![
        "--model",
        "mended",
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
        "--max-attempts",
        "1",
    ];
    let names: Vec<String> = (0..prompts).map(|i| format!("shape {i}")).collect();
    for name in &names {
        args.extend(["-p", name.as_str()]);
    }
    farm.submit(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_worker_is_released_after_its_cooldown_probes_and_serves_again() {
    let models = tempfile::tempdir().expect("temp dir");
    let folder = models.path().join("mended");
    let sound_weights = fresco_e2e::models::corrupt_dit_folder(&folder, "mended");
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        coordinator_args: vec![
            "--quarantine-after".into(),
            "3".into(),
            "--quarantine-cooldown-seconds".into(),
            "3".into(),
        ],
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;
    let listing = || stdout_json(&farm.cli(&["workers", "--json"]))[0].clone();

    // Three tasks whose model cannot load: three worker failures.
    let broken_job = submit(&farm, 3);
    wait_until(
        "the worker to be quarantined",
        Duration::from_secs(60),
        || async { listing()["quarantined_at"].is_number() },
    )
    .await;
    let quarantined = listing();
    assert_eq!(quarantined["consecutive_failures"], 3, "{quarantined}");
    assert_eq!(quarantined["probation"], false, "{quarantined}");
    let why = quarantined["recent_errors"]
        .as_array()
        .expect("recent errors");
    assert_eq!(why.len(), 3, "{quarantined}");
    for error in why {
        assert_eq!(error["kind"], "worker", "{error}");
        let message = error["message"].as_str().expect("a message");
        assert!(message.contains("loading the model"), "{message}");
    }
    let text = farm.cli(&["workers"]);
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert!(
        text_out.contains("QUARANTINED after 3 failures"),
        "{}",
        describe(&text)
    );
    assert!(
        text_out.contains("(worker): loading the model"),
        "{}",
        describe(&text)
    );
    let status = farm.status(&broken_job);
    assert_eq!(status["counts"]["failed"], 3, "{status}");
    let task_error = &status["tasks"][0]["errors"][0];
    assert_eq!(task_error["kind"], "worker", "{status}");

    // Repaired; the cool-down (3 s) puts the worker on probation.
    std::fs::write(folder.join(WEIGHTS), &sound_weights).expect("repairing the weights");
    wait_until(
        "the cool-down to put the worker on probation",
        Duration::from_secs(30),
        || async { listing()["probation"] == true },
    )
    .await;
    let on_probation = listing();
    assert!(on_probation["quarantined_at"].is_null(), "{on_probation}");
    assert_eq!(
        on_probation["recent_errors"].as_array().map(Vec::len),
        Some(3),
        "why it was quarantined stays visible: {on_probation}"
    );
    let text = farm.cli(&["workers"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("PROBATION"),
        "{}",
        describe(&text)
    );

    // Its probe succeeds, and the same process renders the rest.
    let probe_job = submit(&farm, 3);
    let status = farm
        .wait_finished(&probe_job, Duration::from_secs(60))
        .await;
    assert_eq!(
        status["counts"]["succeeded"],
        3,
        "{status}\n{}",
        farm.logs()
    );
    let back = listing();
    assert_eq!(back["probation"], false, "{back}");
    assert!(back["quarantined_at"].is_null(), "{back}");
    assert_eq!(back["consecutive_failures"], 0, "{back}");
    let worker_id = back["worker_id"].as_str().expect("an id").to_owned();
    for task in status["tasks"].as_array().expect("tasks") {
        assert_eq!(task["worker"], worker_id.as_str(), "{task}");
    }
    let later = submit(&farm, 2);
    let status = farm.wait_finished(&later, Duration::from_secs(60)).await;
    assert_eq!(status["counts"]["succeeded"], 2, "{status}");
    assert_eq!(farm.workers.len(), 1, "never restarted");
    assert!(
        farm.workers[0]
            .child
            .try_wait()
            .expect("try_wait")
            .is_none(),
        "the worker process still runs"
    );

    // `fresco workers release`: a bad id is the caller's error (exit 2); a
    // worker in service is not quarantined (exit 1).
    let bad = farm.cli(&["workers", "release", "nope"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("worker_id"),
        "{}",
        describe(&bad)
    );
    let healthy = farm.cli(&["workers", "release", &worker_id]);
    assert_eq!(healthy.status.code(), Some(1), "{}", describe(&healthy));
    assert!(
        String::from_utf8_lossy(&healthy.stderr).contains("not quarantined"),
        "{}",
        describe(&healthy)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_releases_a_quarantined_worker_before_its_cooldown() {
    let models = tempfile::tempdir().expect("temp dir");
    let folder = models.path().join("mended");
    let sound_weights = fresco_e2e::models::corrupt_dit_folder(&folder, "mended");
    // The default cool-down (five minutes) outlasts the test: only the
    // operator releases the worker.
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        coordinator_args: vec!["--quarantine-after".into(), "1".into()],
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;
    let listing = || stdout_json(&farm.cli(&["workers", "--json"]))[0].clone();
    submit(&farm, 1);
    wait_until(
        "the worker to be quarantined",
        Duration::from_secs(60),
        || async { listing()["quarantined_at"].is_number() },
    )
    .await;
    let worker_id = listing()["worker_id"].as_str().expect("an id").to_owned();

    std::fs::write(folder.join(WEIGHTS), &sound_weights).expect("repairing the weights");
    let released = farm.cli(&["workers", "release", &worker_id, "--json"]);
    let released = stdout_json(&released);
    assert_eq!(released["worker_id"], worker_id.as_str(), "{released}");
    assert_eq!(released["probation"], true, "{released}");
    assert!(released["quarantined_at"].is_null(), "{released}");
    assert_eq!(listing()["probation"], true);
    let again = farm.cli(&["workers", "release", &worker_id]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));

    let job = submit(&farm, 2);
    let status = farm.wait_finished(&job, Duration::from_secs(60)).await;
    assert_eq!(
        status["counts"]["succeeded"],
        2,
        "{status}\n{}",
        farm.logs()
    );
    let back = listing();
    assert_eq!(back["probation"], false, "{back}");
    assert_eq!(back["consecutive_failures"], 0, "{back}");
}
