//! Each failure has its defined outcome, on a real farm:
//! - S3 away for longer than an upload's retries: the attempt fails with
//!   the storage error, and the task succeeds once S3 is back;
//! - Postgres away: clients get UNAVAILABLE fast, a worker that finishes
//!   meanwhile holds its result and reports it once Postgres is back (the
//!   first attempt wins, nothing runs twice);
//! - the coordinator restarted under a running task: the worker keeps its
//!   lease and the first attempt succeeds;
//! - a submission sent while the coordinator is down: the CLI keeps trying
//!   under one request id, and the job is stored once.

use std::time::{Duration, Instant};

use fresco_e2e::{Farm, FarmOptions, TcpProxy, describe, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_fails_attempts_with_the_storage_error_until_s3_is_back() {
    let s3 = std::env::var("FRESCO_TEST_S3_ENDPOINT")
        .expect("FRESCO_TEST_S3_ENDPOINT: run the tests with scripts/test.sh");
    let proxy = TcpProxy::start(s3.trim_start_matches("http://").trim_end_matches('/')).await;
    proxy.set_down(true);
    let farm = Farm::start(FarmOptions {
        workers: 1,
        env: vec![(
            "AWS_ENDPOINT_URL".into(),
            format!("http://127.0.0.1:{}", proxy.port),
        )],
        ..FarmOptions::default()
    })
    .await;
    let job = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--seed",
        "3",
        "-p",
        "a",
        "--steps",
        "2",
        "--max-attempts",
        "20",
    ]);
    wait_until(
        "an attempt to fail on storage",
        Duration::from_secs(60),
        || async {
            let status = farm.status(&job);
            status["tasks"][0]["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        },
    )
    .await;
    proxy.set_down(false);
    let done = farm.wait_finished(&job, Duration::from_secs(60)).await;
    let task = &done["tasks"][0];
    assert_eq!(task["state"], "succeeded", "{done}\n{}", farm.logs());
    let first = task["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        first.starts_with("storage: "),
        "the storage error is kept: {task}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_unavailable_and_a_finished_result_waits_for_it() {
    let farm = Farm::start(FarmOptions {
        workers: 1,
        lease_seconds: 60,
        heartbeat_seconds: 1,
        proxy_database: true,
        ..FarmOptions::default()
    })
    .await;
    let proxy = farm.db_proxy.as_ref().expect("a database proxy");
    let job = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--seed",
        "3",
        "-p",
        "a",
        "--steps",
        "60",
        "--width",
        "128",
        "--height",
        "128",
    ]);
    farm.wait_for_running_task().await;
    proxy.set_down(true);

    let asked = Instant::now();
    let out = farm.cli(&["status", &job]);
    let took = asked.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unavailable"),
        "{}",
        describe(&out)
    );
    assert!(
        took < Duration::from_secs(15),
        "the client is told at once, not left hanging ({took:?})"
    );

    // The task finishes while Postgres is away: its report keeps failing.
    wait_until("the report to fail", Duration::from_secs(60), || async {
        farm.logs().contains("coordinator call failed; retrying")
    })
    .await;
    proxy.set_down(false);
    let done = farm.wait_finished(&job, Duration::from_secs(90)).await;
    let task = &done["tasks"][0];
    assert_eq!(task["state"], "succeeded", "{done}\n{}", farm.logs());
    assert_eq!(task["attempt"], 1, "the held result was reported: {task}");
    assert_eq!(task["errors"], serde_json::json!([]), "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_restart_leaves_running_tasks_their_leases() {
    let mut farm = Farm::start(FarmOptions {
        workers: 1,
        lease_seconds: 30,
        heartbeat_seconds: 1,
        ..FarmOptions::default()
    })
    .await;
    let job = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--seed",
        "3",
        "-p",
        "a",
        "--steps",
        "120",
        "--width",
        "128",
        "--height",
        "128",
    ]);
    farm.wait_for_running_task().await;
    farm.kill_coordinator();
    tokio::time::sleep(Duration::from_secs(1)).await;
    farm.start_coordinator().await;
    let done = farm.wait_finished(&job, Duration::from_secs(90)).await;
    let task = &done["tasks"][0];
    assert_eq!(task["state"], "succeeded", "{done}\n{}", farm.logs());
    assert_eq!(task["attempt"], 1, "the lease survived the restart: {task}");
    assert_eq!(task["errors"], serde_json::json!([]), "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_during_a_coordinator_outage_is_stored_once() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    farm.kill_coordinator();
    let cli = farm
        .cli_command(&farm.admin_key)
        .args(["submit", "--model", "tiny-random-dit", "-p", "a", "-p", "b"])
        .args(["--request-id", "outage-1", "--retry-seconds", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting fresco submit");
    tokio::time::sleep(Duration::from_secs(2)).await;
    farm.start_coordinator().await;
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output())
        .await
        .expect("join")
        .expect("fresco submit");
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trying again (request id outage-1)"),
        "{stderr}"
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // Sent again with the same id: the same job, and the CLI says so.
    let again = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "-p",
        "a",
        "-p",
        "b",
        "--request-id",
        "outage-1",
    ]);
    assert!(again.status.success(), "{}", describe(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), job);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already stored"),
        "{}",
        describe(&again)
    );
    let pool = farm.db.pool().await;
    let (jobs, tasks): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM tasks)")
            .fetch_one(&pool)
            .await
            .expect("counting rows");
    assert_eq!((jobs, tasks), (1, 2), "stored once, whole");
}
