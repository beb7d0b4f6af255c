//! Worker health on a real farm: a worker that fails attempt after attempt
//! is quarantined, shows so in `fresco workers`, and claims nothing more;
//! the tasks it could not run are finished by a healthy worker.

use candle_core::Device;
use fresco_dit::{DitConfig, DitPipeline};
use fresco_e2e::{Farm, FarmOptions, describe, stdout_json, wait_until};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_failing_in_a_row_is_quarantined_and_others_finish_its_work() {
    // The same model id in two folders: broken in one, sound in the other.
    let broken = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(broken.path().join("flaky")).expect("mkdir");
    std::fs::write(broken.path().join("flaky/config.json"), "{ not json").expect("write");
    std::fs::write(broken.path().join("flaky/model.safetensors"), "no weights").expect("write");
    let sound = tempfile::tempdir().expect("temp dir");
    DitPipeline::random("flaky", DitConfig::tiny(), 7, &Device::Cpu)
        .expect("a random model")
        .save(sound.path().join("flaky"))
        .expect("saving the model folder");
    let dir_args =
        |dir: &tempfile::TempDir| vec!["--models-dir".to_owned(), dir.path().display().to_string()];

    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        coordinator_args: vec!["--quarantine-after".into(), "3".into()],
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&dir_args(&broken)).await;
    let out = farm.cli(&[
        "submit",
        "--model",
        "flaky",
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
        "--max-attempts",
        "1",
        "-p",
        "a",
        "-p",
        "b",
        "-p",
        "c",
        "-p",
        "d",
        "-p",
        "e",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let listing = || stdout_json(&farm.cli(&["workers", "--json"]));
    wait_until(
        "the broken worker to be quarantined",
        Duration::from_secs(60),
        || async { listing()[0]["quarantined_at"].is_number() },
    )
    .await;
    let broken_worker = listing()[0].clone();
    assert_eq!(broken_worker["consecutive_failures"], 3, "{broken_worker}");
    let text = farm.cli(&["workers"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("QUARANTINED after 3 failures"),
        "{}",
        describe(&text)
    );
    // It claims nothing more: it pops one of the two tasks left, its claim
    // is refused, and both wait for a healthy worker.
    let worker_log = farm.dir.path().join("worker-0.log");
    wait_until(
        "the quarantined worker's claim to be refused",
        Duration::from_secs(30),
        || async {
            std::fs::read_to_string(&worker_log)
                .is_ok_and(|log| log.contains("claim refused to this worker"))
        },
    )
    .await;
    let status = farm.status(&job);
    assert_eq!(
        (
            status["counts"]["failed"].as_u64(),
            status["counts"]["queued"].as_u64()
        ),
        (Some(3), Some(2)),
        "{status}\n{}",
        farm.logs()
    );

    farm.start_worker_with(&dir_args(&sound)).await;
    wait_until(
        "the healthy worker to finish the job",
        Duration::from_secs(60),
        || async { farm.status(&job)["finished"] == true },
    )
    .await;
    let status = farm.status(&job);
    assert_eq!(status["counts"]["succeeded"], 2, "{status}");
    assert_eq!(status["counts"]["failed"], 3, "{status}");
    let quarantined_id = broken_worker["worker_id"].as_str().expect("an id");
    for task in status["tasks"].as_array().expect("tasks") {
        if task["state"] == "succeeded" {
            assert_ne!(task["worker"], quarantined_id, "{task}");
        }
    }
}
