//! Job control through the real CLI on a real farm: a paused job's tasks
//! wait while a worker renders a later job, one cancelled task stays cancelled, the
//! rest finish after a resume; a failed task queued again by `fresco retry`
//! runs again with its history kept; `fresco workers` shows who runs what.

use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, describe, stdout_json, unreported_dit_models, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_cancel_one_task_and_resume() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let job = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--steps",
        "4",
        "-p",
        "one",
        "-p",
        "two",
        "-p",
        "three",
        "-p",
        "four",
    ]);
    let paused = farm.cli(&["pause", &job]);
    assert!(paused.status.success(), "{}", describe(&paused));
    assert!(
        String::from_utf8_lossy(&paused.stdout).contains("(paused)"),
        "{}",
        describe(&paused)
    );
    let status = farm.status(&job);
    assert_eq!(status["paused"], true);
    let first_task = status["tasks"][0]["task_id"]
        .as_str()
        .expect("a task id")
        .to_owned();
    let cancelled = farm.cli(&["cancel", "--task", &first_task]);
    assert!(cancelled.status.success(), "{}", describe(&cancelled));
    assert!(String::from_utf8_lossy(&cancelled.stdout).contains("cancelled"));

    // A worker arrives and renders a job submitted after the paused one,
    // of the same model: it was free to take work, and the paused job's
    // tasks stayed queued all the while.
    farm.start_worker().await;
    let later = farm.submit(&["--model", "tiny-random-dit", "--steps", "2", "-p", "later"]);
    let later = farm.wait_finished(&later, Duration::from_secs(90)).await;
    assert_eq!(later["counts"]["succeeded"], 1, "{later}");
    let status = farm.status(&job);
    assert_eq!(
        (
            status["counts"]["queued"].as_u64(),
            status["counts"]["cancelled"].as_u64()
        ),
        (Some(3), Some(1)),
        "nothing ran while paused: {status}\n{}",
        farm.logs()
    );

    let resumed = farm.cli(&["resume", &job]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let done = farm.wait_finished(&job, Duration::from_secs(90)).await;
    assert_eq!(done["counts"]["succeeded"], 3, "{done}");
    assert_eq!(done["counts"]["cancelled"], 1, "{done}");
    let first = &done["tasks"][0];
    assert_eq!(first["state"], "cancelled");
    assert_eq!(first["outputs"], serde_json::json!([]), "{first}");

    // A finished task cannot be cancelled; an unknown one is not found.
    let again = farm.cli(&["cancel", "--task", &first_task]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    let unknown = farm.cli(&["cancel", "--task", "0190f1c2-7b1e-7000-8000-000000000000"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_runs_failed_tasks_again_and_keeps_their_history() {
    // The coordinator accepts `narrow-dit` before any worker has said what
    // it draws (at most 512 pixels a side): the second task is stored, then
    // fails on the worker, every time.
    let models = unreported_dit_models("narrow-dit");
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        coordinator_args: vec!["--models".into(), "narrow-dit".into()],
        ..FarmOptions::default()
    })
    .await;
    let file = farm.dir.path().join("mixed.jsonl");
    std::fs::write(
        &file,
        "{\"prompt\": \"fits\"}\n{\"prompt\": \"too wide\", \"width\": 1024}\n",
    )
    .expect("write");
    let job = farm.submit(&[
        "--model",
        "narrow-dit",
        "--steps",
        "4",
        "--max-attempts",
        "1",
        "--prompts-file",
        file.to_str().expect("utf-8"),
    ]);
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;
    let done = farm.wait_finished(&job, Duration::from_secs(90)).await;
    assert_eq!(
        (
            done["counts"]["succeeded"].as_u64(),
            done["counts"]["failed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{done}"
    );

    let retried = farm.cli(&["retry", &job]);
    assert!(retried.status.success(), "{}", describe(&retried));
    let done = farm.wait_finished(&job, Duration::from_secs(90)).await;
    let failed = &done["tasks"][1];
    assert_eq!(failed["state"], "failed", "{done}");
    assert_eq!(failed["attempt"], 2, "it ran again: {failed}");
    let errors = failed["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "both attempts' errors are kept: {failed}");
    assert_eq!(done["tasks"][0]["state"], "succeeded");
    assert_eq!(
        done["tasks"][0]["attempt"], 1,
        "the succeeded task did not run again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_lists_each_worker_with_its_models_and_running_task() {
    let farm = Farm::start(FarmOptions::default()).await;
    // A first job loads the model on the workers that run it.
    let warm = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--steps",
        "4",
        "-p",
        "warm up one",
        "-p",
        "warm up two",
    ]);
    farm.wait_finished(&warm, Duration::from_secs(90)).await;
    // Then slow tasks (per-task parameters override the job's --steps 4).
    let file = farm.dir.path().join("slow.jsonl");
    std::fs::write(
        &file,
        (0..4)
            .map(|i| format!("{{\"prompt\": \"slow {i}\", \"steps\": 200, \"width\": 256, \"height\": 256}}\n"))
            .collect::<String>(),
    )
    .expect("write");
    let slow = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--steps",
        "4",
        "--prompts-file",
        file.to_str().expect("utf-8"),
    ]);
    let listing = || stdout_json(&farm.cli(&["workers", "--json"]));
    wait_until(
        "both workers to run a task",
        Duration::from_secs(60),
        || async {
            listing().as_array().is_some_and(|ws| {
                ws.iter()
                    .filter(|w| w["running_tasks"] != serde_json::json!([]))
                    .count()
                    == 2
            })
        },
    )
    .await;
    let workers = listing();
    let workers = workers.as_array().expect("a JSON array");
    assert_eq!(workers.len(), 2, "{workers:?}");
    let status = farm.status(&slow);
    let slow_tasks: Vec<&str> = status["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    let mut names = Vec::new();
    for w in workers {
        names.push(w["name"].as_str().unwrap_or_default().to_owned());
        assert!(
            w["models"]
                .as_array()
                .is_some_and(|m| m.contains(&serde_json::json!("tiny-random-dit"))),
            "{w}"
        );
        let running = w["running_tasks"].as_array().expect("running tasks");
        assert_eq!(running.len(), 1, "one task at a time: {w}");
        assert!(
            slow_tasks.contains(&running[0].as_str().unwrap_or_default()),
            "{w}"
        );
    }
    names.sort();
    assert_eq!(names, ["worker-0", "worker-1"]);
    assert!(
        workers
            .iter()
            .any(|w| w["loaded_models"] == serde_json::json!(["tiny-random-dit"])),
        "a worker that ran the first job says it holds the model: {workers:?}"
    );
    let text = farm.cli(&["workers"]);
    assert!(text.status.success(), "{}", describe(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("tiny-random-dit*"),
        "loaded models are marked: {}",
        describe(&text)
    );
    let cancelled = farm.cli(&["cancel", &slow]);
    assert!(cancelled.status.success(), "{}", describe(&cancelled));
}
