//! Stray output objects are swept, through the real binaries and a real S3
//! server: a worker claims a task, uploads an image under its attempt's key
//! and is never heard of again; once its lease has expired a real worker
//! completes the task, and the sweeper deletes the stray object, so a
//! listing of the job's folder in the bucket ends with exactly the keys
//! Postgres records as outputs.

use std::time::Duration;

use bytes::Bytes;
use fresco_e2e::{Farm, FarmOptions, describe, wait_until};
use fresco_proto::v1 as pb;

const MODEL: &str = "tiny-random-dit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_workers_upload_is_swept_and_the_winners_outputs_stay() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        lease_seconds: 2,
        heartbeat_seconds: 1,
        sweep_interval_seconds: 1,
        ..FarmOptions::default()
    })
    .await;
    let out = farm.cli(&[
        "submit", "--model", MODEL, "--prompt", "swept", "--steps", "2", "--width", "32",
        "--height", "32", "--seed", "9",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // A worker that claims through the API, uploads, and vanishes.
    let mut workers = farm.worker_client().await;
    let worker_id = workers
        .register_worker(pb::RegisterWorkerRequest {
            name: "vanishing".into(),
            device: "cpu".into(),
            models: vec![MODEL.into()],
            ..Default::default()
        })
        .await
        .expect("RegisterWorker")
        .into_inner()
        .worker_id;
    let mut jobs = farm.job_client().await;
    let tasks = jobs
        .list_tasks(pb::ListTasksRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await
        .expect("ListTasks")
        .into_inner()
        .tasks;
    let task_id = tasks[0].id.clone();
    let claim = workers
        .claim_task(pb::ClaimTaskRequest {
            worker_id,
            task_id: task_id.clone(),
            ..Default::default()
        })
        .await
        .expect("ClaimTask")
        .into_inner();
    assert_eq!(claim.attempt, 1);
    let storage = farm.storage();
    let job_dir = format!("{}/{job_id}/", storage.prefix());
    let stray = format!("{job_dir}{task_id}/1/0.png");
    storage
        .put(&stray, Bytes::from_static(b"half an image"))
        .await
        .expect("uploading the stray object");
    assert!(storage.exists(&stray).await.expect("head"));

    // Its lease expires; a real worker finishes the task.
    farm.start_worker().await;
    let done = farm.wait_finished(&job_id, Duration::from_secs(60)).await;
    assert_eq!(done["counts"]["succeeded"], 1, "{done}\n{}", farm.logs());
    let pool = farm.db.pool().await;
    let recorded: Vec<String> = sqlx::query_scalar("SELECT key FROM outputs ORDER BY key")
        .fetch_all(&pool)
        .await
        .expect("the recorded outputs");
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].ends_with("/2/0.png"), "{recorded:?}");

    // The bucket, listed through S3, ends with exactly the recorded keys
    // and the job's manifest.
    farm.wait_manifests_written(&[&job_id]).await;
    let mut recorded = recorded;
    recorded.push(fresco_core::keys::manifest_key(
        storage.prefix(),
        job_id.parse().expect("a job id"),
    ));
    recorded.sort();
    let listing = || {
        let (storage, job_dir) = (storage.clone(), job_dir.clone());
        async move {
            let mut keys = storage.list(&job_dir).await.expect("listing the bucket");
            keys.sort();
            keys
        }
    };
    wait_until(
        "the stray object to be swept",
        Duration::from_secs(30),
        || async { listing().await == recorded },
    )
    .await;
    assert_eq!(listing().await, recorded);
    assert_eq!(farm.unswept_tasks().await, 0);
    let log = std::fs::read_to_string(farm.dir.path().join("coordinator.log"))
        .expect("the coordinator's log");
    assert!(
        log.lines()
            .any(|l| l.contains("stray output deleted") && l.contains(&stray)),
        "the deletion is logged with its key:\n{log}"
    );
}
