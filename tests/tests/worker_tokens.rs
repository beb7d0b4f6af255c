//! Workers and their tokens on a real farm:
//! - a worker whose token the coordinator does not take (unknown, or a
//!   client key) stops at start, saying so and naming the flag, and
//!   registers nothing;
//! - a worker whose token is revoked while it runs stops at its next claim,
//!   failing, and leaves the task it popped queued for another worker;
//! - a coordinator started with `--insecure-no-auth` warns at start and
//!   takes callers without any key, clients and workers alike.

use std::process::Stdio;
use std::time::Duration;

use fresco_core::CredentialKind;
use fresco_core::credentials::IssuedKey;
use fresco_e2e::{Farm, FarmOptions, Proc, binary, job_client_at, log_file, wait_until};
use fresco_proto::v1 as pb;
use sqlx::PgPool;

/// A worker of `farm` named `name` calling with `token` (none: no token).
fn worker_with(farm: &Farm, name: &str, token: Option<&str>) -> Proc {
    let mut command = binary("fresco-worker");
    command
        .args(["--coordinator", &farm.endpoint])
        .args(["--redis-url", &farm.redis.url])
        .args(["--storage", &farm.storage_url])
        .args(["--name", name])
        .env_remove("FRESCO_WORKER_TOKEN")
        .stdout(Stdio::null())
        .stderr(log_file(farm.dir.path(), name));
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    Proc::spawn("fresco-worker", &mut command)
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_token_is_not_taken_stops_at_start() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    let unknown = IssuedKey::generate(CredentialKind::Worker).expect("a token");
    let client_key = farm.client_key("default", "admin");
    for (name, token, said) in [
        (
            "unknown-token",
            unknown.key.as_str(),
            format!(
                "the coordinator refused the worker token: unknown key {} (give a worker token with --token or FRESCO_WORKER_TOKEN)",
                unknown.id
            ),
        ),
        (
            "client-key",
            client_key.as_str(),
            "the coordinator refused the registration: RegisterWorker needs a worker token; a client key opens only the client API".to_owned(),
        ),
    ] {
        let mut worker = worker_with(&farm, name, Some(token));
        let status = worker.wait_exit(Duration::from_secs(60));
        let log = farm.log(name);
        assert!(!status.success(), "{name}: {status}\n{log}");
        assert!(log.contains(&said), "{name}: the worker says why:\n{log}");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM workers").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_token_is_revoked_stops_and_leaves_its_task_queued() {
    let mut farm = Farm::start(FarmOptions {
        workers: 1,
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    farm.revoke_key(&farm.worker_token.clone());
    let job = farm.submit(&[
        "--model",
        "fresco-shapes",
        "--prompt",
        "a red circle",
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
    ]);
    let status = farm.workers[0].wait_exit(Duration::from_secs(60));
    let log = farm.log("worker-0");
    assert!(!status.success(), "the worker fails: {status}\n{log}");
    assert!(
        log.contains("the coordinator refused the worker token"),
        "the worker says why:\n{log}"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE state = 'queued' AND attempt = 0"
        )
        .await,
        1,
        "the popped task was never claimed and stays queued"
    );

    // A worker with a new token takes it.
    farm.worker_token = farm.new_worker_token();
    farm.start_worker().await;
    let done = farm.wait_finished(&job, Duration::from_secs(60)).await;
    assert_eq!(done["counts"]["succeeded"], 1, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_without_auth_warns_and_takes_every_caller() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        coordinator_args: vec!["--insecure-no-auth".into()],
        ..FarmOptions::default()
    })
    .await;
    let log = farm.log("coordinator");
    assert!(
        log.contains("WARN") && log.contains("serving WITHOUT authentication (--insecure-no-auth)"),
        "the coordinator warns at start:\n{log}"
    );
    let mut anyone = job_client_at(&farm.endpoint, None).await;
    let submitted = anyone
        .submit_job(pb::SubmitJobRequest {
            model: "fresco-shapes".into(),
            defaults: Some(pb::TaskParams {
                steps: Some(2),
                width: Some(16),
                height: Some(16),
                ..Default::default()
            }),
            tasks: vec![pb::TaskParams {
                prompt: Some("a blue square".into()),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("a submission without a key")
        .into_inner();
    let job = submitted.job.expect("the job");
    assert_eq!(
        job.tenant, "default",
        "an anonymous caller submits as the default tenant"
    );
    let job = job.id;
    let pool = farm.db.pool().await;
    let _worker = worker_with(&farm, "tokenless", None);
    wait_until(
        "the tokenless worker to run the job",
        Duration::from_secs(60),
        || async {
            count(
                &pool,
                "SELECT count(*) FROM tasks WHERE state = 'succeeded'",
            )
            .await
                == 1
        },
    )
    .await;
    let listed = anyone
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .expect("a listing without a key")
        .into_inner();
    assert_eq!(listed.jobs.len(), 1, "{listed:?}");
    assert_eq!(listed.jobs[0].id, job);
    assert_eq!(listed.jobs[0].tenant, "default");
    let workers = count(&pool, "SELECT count(*) FROM workers WHERE token_id IS NULL").await;
    assert_eq!(workers, 1, "the worker registered without a token");
}
