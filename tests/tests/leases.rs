//! Leases through the real binaries: a SIGKILLed worker's task is finished
//! by another worker after its lease expires; a cancelled running task
//! stops and records nothing, and its worker keeps serving.

use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, describe};
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_task_is_finished_by_another_worker() {
    let mut farm = Farm::start(FarmOptions {
        workers: 1,
        lease_seconds: 3,
        heartbeat_seconds: 1,
        ..FarmOptions::default()
    })
    .await;
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompt",
        "survives a crash",
        "--steps",
        "60",
        "--width",
        "128",
        "--height",
        "128",
        "--seed",
        "5",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    farm.wait_for_running_task().await;
    farm.workers[0].signal("KILL");
    farm.workers[0].wait_exit(Duration::from_secs(10));
    farm.start_worker().await;

    let out = farm.cli(&["watch", &job_id]);
    assert!(out.status.success(), "{}\n{}", describe(&out), farm.logs());
    let pool = farm.db.pool().await;
    let row = sqlx::query("SELECT state, attempt, errors::TEXT AS errors FROM tasks")
        .fetch_one(&pool)
        .await
        .expect("the task");
    assert_eq!(row.get::<String, _>("state"), "succeeded");
    assert_eq!(row.get::<i32, _>("attempt"), 2, "the second attempt won");
    assert!(row.get::<String, _>("errors").contains("lease expired"));
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM outputs")
        .fetch_all(&pool)
        .await
        .expect("outputs");
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].ends_with("/2/0.png"),
        "outputs come from the winning attempt: {keys:?}"
    );
    assert!(farm.storage().exists(&keys[0]).await.expect("head"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_running_task_stops_and_its_worker_keeps_serving() {
    let farm = Farm::start(FarmOptions {
        workers: 1,
        heartbeat_seconds: 1,
        ..FarmOptions::default()
    })
    .await;
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompt",
        "never finished",
        "--steps",
        "200",
        "--width",
        "256",
        "--height",
        "256",
        "-n",
        "2",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    farm.wait_for_running_task().await;
    let out = farm.cli(&["cancel", &job_id]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cancelled 1"),
        "{}",
        describe(&out)
    );

    // The worker hears it in its next heartbeat and takes the next task.
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompt",
        "next",
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
        "--wait",
    ]);
    assert!(out.status.success(), "{}\n{}", describe(&out), farm.logs());
    let pool = farm.db.pool().await;
    let outputs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outputs o JOIN tasks t ON t.id = o.task_id WHERE t.job_id = $1::UUID",
    )
    .bind(&job_id)
    .fetch_one(&pool)
    .await
    .expect("outputs");
    assert_eq!(outputs, 0, "nothing is recorded for a cancelled task");
    let out = farm.cli(&["status", &job_id, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(status["counts"]["cancelled"], 1);
    assert!(farm.logs().contains("lease lost"), "{}", farm.logs());
}
