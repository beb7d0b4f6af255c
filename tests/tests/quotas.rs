//! Tenant quotas on a real farm, set with the real `fresco-coordinator
//! tenants set` and read back with `fresco usage` and raw Postgres:
//! - a submission past the queued-task limit is refused whole
//!   (RESOURCE_EXHAUSTED naming the limit and the use) and stores nothing;
//! - a tenant limited to one running task never runs two at once, while
//!   the farm's workers would;
//! - device time is what the workers measured, counted once per attempt;
//! - once a tenant has spent its device-seconds for the day, its claims are
//!   held back (its queued tasks wait) and its submissions are refused,
//!   until an operator raises the limit.

use std::time::Duration;

use fresco_e2e::{FAST_SHAPES, Farm, FarmOptions, describe, stdout_json, wait_until};
use fresco_proto::v1 as pb;
use sqlx::PgPool;

/// Writes `count` prompts to a file and returns the `fresco submit`
/// arguments for them.
fn submit_args(farm: &Farm, name: &str, count: usize) -> Vec<String> {
    let file = farm.dir.path().join(format!("{name}.txt"));
    let prompts: Vec<String> = (0..count)
        .map(|i| format!("a blue square number {i}"))
        .collect();
    std::fs::write(&file, prompts.join("\n")).expect("writing the prompts file");
    let mut args = vec![
        "submit".to_owned(),
        "--prompts-file".to_owned(),
        file.display().to_string(),
    ];
    args.extend(FAST_SHAPES.iter().map(|a| (*a).to_owned()));
    args
}

/// Submits `count` prompts with `key`; returns the job id.
fn submit_as(farm: &Farm, key: &str, name: &str, count: usize) -> String {
    let args = submit_args(farm, name, count);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = farm.cli_as(key, &args);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A submission of `count` tasks through the API, as `fresco submit` sends
/// it.
fn request(count: usize) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        model: "fresco-shapes".into(),
        defaults: Some(pb::TaskParams {
            steps: Some(2),
            width: Some(16),
            height: Some(16),
            ..Default::default()
        }),
        tasks: (0..count)
            .map(|i| pb::TaskParams {
                prompt: Some(format!("a green triangle number {i}")),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

async fn count(pool: &PgPool, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn tasks_in(pool: &PgPool, job: &str, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasks WHERE job_id = $1::UUID AND state = $2")
        .bind(job)
        .bind(state)
        .fetch_one(pool)
        .await
        .expect("counting tasks")
}

/// `fresco usage --json` with `key`.
fn usage(farm: &Farm, key: &str) -> serde_json::Value {
    stdout_json(&farm.cli_as(key, &["usage", "--json"]))
}

/// The device time and attempts Postgres holds for `tenant`, all days.
async fn recorded_usage(pool: &PgPool, tenant: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(device_ms), 0)::BIGINT, coalesce(sum(attempts), 0)::BIGINT
         FROM tenant_usage WHERE tenant = $1",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await
    .expect("reading tenant_usage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_past_the_queued_limit_is_refused_whole() {
    // No workers: what is queued stays queued.
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let set = farm.tenants(&["set", "acme", "--max-queued-tasks", "4"]);
    assert_eq!(
        set.trim_end(),
        "tenant acme: weight 1, max queued tasks 4, max running tasks none, max device-seconds per day none"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&farm.tenants(&["list", "--json"])).expect("tenants list --json");
    assert_eq!(listed[0]["tenant"], "acme");
    assert_eq!(listed[0]["max_queued_tasks"], 4);
    let key = farm.client_key("acme", "submitter");
    submit_as(&farm, &key, "first", 3);

    let before = farm.snapshot().await;
    let mut client = farm.job_client_as(&key).await;
    let refused = client
        .submit_job(request(2))
        .await
        .expect_err("past the limit");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    let expected = "tenant \"acme\" may have at most 4 queued tasks (max_queued_tasks); it has 3 queued and this job adds 2";
    assert_eq!(refused.message(), expected);
    assert_eq!(
        farm.snapshot().await,
        before,
        "the refused job stored nothing"
    );

    let args = submit_args(&farm, "second", 2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = farm.cli_as(&key, &args);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(expected), "{}", describe(&out));
    assert_eq!(
        farm.snapshot().await,
        before,
        "the refused CLI job stored nothing"
    );

    // Another tenant is not held by acme's limit, and acme may fill it.
    let other = farm.client_key("other", "submitter");
    submit_as(&farm, &other, "other", 10);
    submit_as(&farm, &key, "fills", 1);
    let used = usage(&farm, &key);
    assert_eq!(used["tenant"], "acme");
    assert_eq!(used["queued_tasks"], 4);
    assert_eq!(used["max_queued_tasks"], 4);
    let text = String::from_utf8_lossy(&farm.cli_as(&key, &["usage"]).stdout).into_owned();
    assert!(text.contains("queued tasks  4 of 4\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_limited_to_one_running_task_never_runs_two() {
    let farm = Farm::start(FarmOptions {
        workers: 3,
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    farm.tenants(&["set", "acme", "--max-running-tasks", "1"]);
    let key = farm.client_key("acme", "submitter");
    let job = submit_as(&farm, &key, "acme", 12);
    farm.wait_finished(&job, Duration::from_secs(180)).await;
    assert_eq!(tasks_in(&pool, &job, "succeeded").await, 12);

    // No two of acme's tasks ran at once. A claim's started_at is its
    // transaction's start, which may come before the commit of the
    // completion it waited for by the time it took to take the tenant's
    // lock: 100 ms of slack covers that.
    let overlapping = count(
        &pool,
        "SELECT count(*) FROM tasks a JOIN tasks b
           ON a.job_id = b.job_id AND a.id < b.id
         WHERE a.job_id = $1::UUID
           AND a.started_at < b.finished_at - INTERVAL '100 milliseconds'
           AND b.started_at < a.finished_at - INTERVAL '100 milliseconds'",
        &job,
    )
    .await;
    assert_eq!(overlapping, 0, "acme ran two tasks at once");
    assert!(
        farm.log("coordinator").contains("claim held back"),
        "the limit held a claim back at least once:\n{}",
        farm.log("coordinator")
    );

    // Without a limit the same farm runs a tenant's tasks side by side.
    let free = farm.client_key("free", "submitter");
    let job = submit_as(&farm, &free, "free", 30);
    farm.wait_finished(&job, Duration::from_secs(180)).await;
    let overlapping = count(
        &pool,
        "SELECT count(*) FROM tasks a JOIN tasks b
           ON a.job_id = b.job_id AND a.id < b.id
         WHERE a.job_id = $1::UUID
           AND a.started_at < b.finished_at AND b.started_at < a.finished_at",
        &job,
    )
    .await;
    assert!(
        overlapping > 0,
        "three workers ran free's tasks side by side"
    );

    // Device time: what the workers measured, once per attempt, as
    // `fresco usage` shows it and Postgres holds it.
    let (device_ms, attempts) = recorded_usage(&pool, "acme").await;
    assert_eq!(attempts, 12, "one report per attempt");
    assert!(device_ms > 0, "the workers measured their sampling");
    let used = usage(&farm, &key);
    assert_eq!(used["running_tasks"], 0);
    assert_eq!(used["max_running_tasks"], 1);
    let shown = used["device_seconds_total"].as_f64().expect("a number");
    assert!(
        (shown - device_ms as f64 / 1000.0).abs() < 1e-6,
        "usage {shown} s, Postgres {device_ms} ms"
    );
    assert_eq!(used["device_seconds_today"], used["device_seconds_total"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_device_time_holds_claims_and_refuses_submissions() {
    let farm = Farm::start(FarmOptions::default()).await;
    let pool = farm.db.pool().await;
    farm.tenants(&["set", "acme", "--max-device-seconds-per-day", "1"]);
    let key = farm.client_key("acme", "submitter");
    let job = submit_as(&farm, &key, "acme", 300);

    // Claims run until a second of device time is spent, then are held.
    let held = "may use 1 device-seconds a day (max_device_seconds_per_day)";
    wait_until(
        "a claim held back for spent device time",
        Duration::from_secs(180),
        || async { farm.log("coordinator").contains(held) },
    )
    .await;
    let (spent, _) = recorded_usage(&pool, "acme").await;
    assert!(spent >= 1_000, "held at {spent} ms of a 1,000 ms day");
    wait_until(
        "acme's running tasks to end",
        Duration::from_secs(30),
        || async { tasks_in(&pool, &job, "running").await == 0 },
    )
    .await;
    let succeeded = tasks_in(&pool, &job, "succeeded").await;
    let queued = tasks_in(&pool, &job, "queued").await;
    assert!(queued > 0, "tasks are left to wait");
    // Workers keep trying and keep being held: wait for two more refusals,
    // then nothing of acme's has run meanwhile.
    let refusals = farm.log("coordinator").matches(held).count();
    wait_until("two more held claims", Duration::from_secs(30), || async {
        farm.log("coordinator").matches(held).count() >= refusals + 2
    })
    .await;
    assert_eq!(tasks_in(&pool, &job, "succeeded").await, succeeded);
    assert_eq!(tasks_in(&pool, &job, "queued").await, queued);
    assert_eq!(
        farm.status(&job)["waiting_reason"],
        "tenant acme has spent its 1 device-seconds for today (UTC)"
    );

    // A new submission is refused, and stores nothing.
    let before = farm.snapshot().await;
    let mut client = farm.job_client_as(&key).await;
    let refused = client.submit_job(request(1)).await.expect_err("spent");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains(held), "{}", refused.message());
    assert!(
        refused.message().contains("today (UTC)"),
        "{}",
        refused.message()
    );
    assert_eq!(
        farm.snapshot().await,
        before,
        "the refused job stored nothing"
    );
    let used = usage(&farm, &key);
    assert!(used["device_seconds_today"].as_f64().expect("a number") >= 1.0);
    assert_eq!(used["max_device_seconds_per_day"], 1);

    // An operator lifts the limit: the waiting tasks run again (the rest
    // of the job is then cancelled, to keep the test short).
    farm.tenants(&["set", "acme", "--max-device-seconds-per-day", "none"]);
    wait_until(
        "acme's tasks to run again",
        Duration::from_secs(60),
        || async { tasks_in(&pool, &job, "succeeded").await >= succeeded + 10 },
    )
    .await;
    eprintln!("held after {succeeded} tasks and {spent} ms of device time");
    let out = farm.cli_as(&key, &["cancel", &job]);
    assert!(out.status.success(), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_reads_its_own_usage_and_only_an_admin_another() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let viewer = farm.client_key("acme", "viewer");
    let out = farm.cli_as(&viewer, &["usage", "--tenant", "other"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: permission denied: GetUsage of another tenant needs the admin role; this key is a viewer of tenant acme"
    );
    let own = usage(&farm, &viewer);
    assert_eq!(own["tenant"], "acme");
    assert_eq!(own["weight"], 1);
    assert_eq!(own["max_queued_tasks"], serde_json::Value::Null);
    farm.tenants(&["set", "other", "--weight", "3"]);
    let out = farm.cli(&["usage", "--tenant", "other", "--json"]);
    let other = stdout_json(&out);
    assert_eq!(other["tenant"], "other");
    assert_eq!(other["weight"], 3);
}
