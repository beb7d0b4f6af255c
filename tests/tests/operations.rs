//! Operating a farm, through the real binaries and standard clients (the
//! `tonic-health` and `tonic-reflection` crates' own, not fresco's code):
//! - `grpc.health.v1.Health` answers without a key, NOT_SERVING while
//!   Postgres or Redis is unreachable and SERVING again once both return;
//! - server reflection answers without a key, lists both APIs and health,
//!   and describes `SubmitJob`; the API itself still asks for a key;
//! - `fresco workers drain ID`: the worker finishes the task it runs,
//!   claims nothing more and exits 0, and other workers finish the job;
//!   an idle worker stays live through its pings and, drained, exits 0
//!   without waiting for a task;
//! - `fresco-coordinator migrate` creates the tables of an empty database
//!   and exits 0, and fails saying why on a database it cannot reach.

use std::time::Duration;

use fresco_e2e::{
    Farm, FarmOptions, Services, TestDatabase, binary, describe, job_client_at, stdout_json,
    wait_until,
};
use prost::Message;
use sqlx::Row;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const SERVICES: [&str; 3] = ["", "fresco.v1.JobService", "fresco.v1.WorkerService"];

/// The health of `service` as a plain health client (no key) reads it;
/// none while the call fails.
async fn health(channel: &Channel, service: &str) -> Option<ServingStatus> {
    let reply = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(reply.into_inner().status).ok()
}

/// Waits until the server and both services report `want`.
async fn wait_for_health(channel: &Channel, want: ServingStatus, why: &str) {
    wait_until(
        &format!("health {want:?} ({why})"),
        Duration::from_secs(30),
        || async {
            for service in SERVICES {
                if health(channel, service).await != Some(want) {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_postgres_or_redis_is_unreachable() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        proxy_database: true,
        ..FarmOptions::default()
    })
    .await;
    let channel = farm.client_endpoint().connect().await.expect("connecting");
    wait_for_health(&channel, ServingStatus::Serving, "both answer").await;

    let proxy = farm.db_proxy.as_ref().expect("a database proxy");
    proxy.set_down(true);
    wait_for_health(&channel, ServingStatus::NotServing, "Postgres cut off").await;
    proxy.set_down(false);
    wait_for_health(&channel, ServingStatus::Serving, "Postgres back").await;

    farm.redis.stop();
    wait_for_health(&channel, ServingStatus::NotServing, "Redis killed").await;
    farm.redis.restart().await;
    wait_for_health(&channel, ServingStatus::Serving, "Redis back").await;

    let log = farm.log("coordinator");
    assert!(log.contains("health: NOT_SERVING"), "{log}");
    assert_eq!(
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .expect_err("an unknown service")
            .code(),
        Code::NotFound
    );
}

/// One reflection request, its one answer.
async fn reflect(channel: &Channel, request: MessageRequest) -> MessageResponse {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection answers without a key")
        .into_inner();
    answers
        .message()
        .await
        .expect("a reflection answer")
        .and_then(|answer| answer.message_response)
        .expect("a reflection answer with a message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_the_api_without_a_key_and_the_api_still_asks_for_one() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let channel = farm.client_endpoint().connect().await.expect("connecting");

    let MessageResponse::ListServicesResponse(listed) =
        reflect(&channel, MessageRequest::ListServices(String::new())).await
    else {
        panic!("ListServices must answer with services");
    };
    let names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    for service in [
        "fresco.v1.JobService",
        "fresco.v1.WorkerService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == service), "{service} in {names:?}");
    }

    let MessageResponse::FileDescriptorResponse(files) = reflect(
        &channel,
        MessageRequest::FileContainingSymbol("fresco.v1.JobService".into()),
    )
    .await
    else {
        panic!("FileContainingSymbol must answer with files");
    };
    let submit = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("a file"))
        .flat_map(|file| file.service)
        .filter(|service| service.name() == "JobService")
        .flat_map(|service| service.method)
        .find(|method| method.name() == "SubmitJob")
        .expect("JobService describes SubmitJob");
    assert_eq!(submit.input_type(), ".fresco.v1.SubmitJobRequest");
    assert_eq!(submit.output_type(), ".fresco.v1.SubmitJobResponse");

    // Health and reflection are open; the API is not.
    assert_eq!(
        health(&channel, "").await,
        Some(ServingStatus::Serving),
        "health without a key"
    );
    let refused = job_client_at(&farm.endpoint, None)
        .await
        .list_workers(fresco_proto::v1::ListWorkersRequest { limit: 10 })
        .await
        .expect_err("the API asks for a key");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_worker_finishes_its_task_and_exits_and_others_finish_the_job() {
    let mut farm = Farm::start(FarmOptions {
        workers: 1,
        ..FarmOptions::default()
    })
    .await;
    let job = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--prompt",
        "drained one",
        "--prompt",
        "drained two",
        "--prompt",
        "drained three",
        "--steps",
        "200",
        "--width",
        "128",
        "--height",
        "128",
        "--seed",
        "5",
    ]);
    farm.wait_for_running_task().await;
    let pool = farm.db.pool().await;
    let running = sqlx::query(
        "SELECT id::TEXT AS id, worker_id::TEXT AS worker FROM tasks WHERE state = 'running'",
    )
    .fetch_one(&pool)
    .await
    .expect("the running task");
    let (task, worker): (String, String) = (running.get("id"), running.get("worker"));

    let out = farm.cli(&["workers", "drain", &worker, "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let drained = stdout_json(&out);
    assert!(drained["draining_at"].is_i64(), "{drained}");
    assert_eq!(
        drained["running_tasks"],
        serde_json::json!([task]),
        "drained while it runs its task"
    );
    // Only an admin drains (a submitter is refused); an unknown worker is not found.
    let submitter = farm.client_key("default", "submitter");
    let out = farm.cli_as(&submitter, &["workers", "drain", &worker]);
    assert!(!out.status.success(), "{}", describe(&out));
    let out = farm.cli(&["workers", "drain", &uuid::Uuid::new_v4().to_string()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        describe(&out)
    );

    let listing = farm.cli(&["workers"]);
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("DRAINING"),
        "{}",
        describe(&listing)
    );

    let exit = farm.workers[0].wait_exit(Duration::from_secs(300));
    assert!(
        exit.success(),
        "the drained worker exits 0: {exit:?}\n{}",
        farm.logs()
    );
    let row = sqlx::query("SELECT state, worker_id::TEXT AS worker FROM tasks WHERE id = $1::UUID")
        .bind(&task)
        .fetch_one(&pool)
        .await
        .expect("the drained worker's task");
    assert_eq!(
        row.get::<String, _>("state"),
        "succeeded",
        "{}",
        farm.logs()
    );
    assert_eq!(
        row.get::<String, _>("worker"),
        worker,
        "it finished its own task"
    );
    let leased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE worker_id = $1::UUID AND state = 'running'",
    )
    .bind(&worker)
    .fetch_one(&pool)
    .await
    .expect("counting its leases");
    assert_eq!(leased, 0, "nothing is leased to the drained worker");
    assert!(
        farm.log("worker-0").contains("worker drained"),
        "{}",
        farm.logs()
    );

    farm.start_worker().await;
    let status = farm.wait_finished(&job, Duration::from_secs(300)).await;
    assert_eq!(
        status["counts"]["succeeded"],
        3,
        "{status}\n{}",
        farm.logs()
    );
    let by_others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE state = 'succeeded' AND worker_id <> $1::UUID",
    )
    .bind(&worker)
    .fetch_one(&pool)
    .await
    .expect("counting the others' tasks");
    assert_eq!(by_others, 2, "the other worker finished the rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_stays_live_and_exits_when_drained() {
    let mut farm = Farm::start(FarmOptions {
        workers: 1,
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    let worker: String = sqlx::query_scalar("SELECT id::TEXT FROM workers")
        .fetch_one(&pool)
        .await
        .expect("the worker");
    // Live means seen within two leases (8 s here): the idle worker is
    // seen again after longer than that, with nothing to claim.
    let lease = farm.options.lease_seconds as f64;
    wait_until(
        "the idle worker to be seen past two leases",
        Duration::from_secs(60),
        || async {
            let seen: f64 = sqlx::query_scalar(
                "SELECT extract(epoch FROM last_seen_at - registered_at)::FLOAT8 FROM workers",
            )
            .fetch_one(&pool)
            .await
            .expect("when the worker was seen");
            seen > 2.0 * lease + 1.0
        },
    )
    .await;
    let out = farm.cli(&[
        "submit",
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
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("no live worker"),
        "the idle worker counts as live: {}",
        describe(&out)
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    farm.wait_finished(&job, Duration::from_secs(60)).await;

    let out = farm.cli(&["workers", "drain", &worker]);
    assert!(out.status.success(), "{}", describe(&out));
    let exit = farm.workers[0].wait_exit(Duration::from_secs(60));
    assert!(
        exit.success(),
        "the drained idle worker exits 0: {exit:?}\n{}",
        farm.logs()
    );
    assert!(
        farm.log("worker-0")
            .contains("the coordinator drains this idle worker"),
        "{}",
        farm.logs()
    );
    let leased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE worker_id = $1::UUID AND state = 'running'",
    )
    .bind(&worker)
    .fetch_one(&pool)
    .await
    .expect("counting its leases");
    assert_eq!(leased, 0);
}

/// The newest Postgres migration as `migrate` names it: `VERSION
/// (description)`, read from the file names in `migrations/postgres/`.
fn newest_migration() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
    let newest = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".sql").map(str::to_owned))
        .max()
        .expect("a migration");
    let (version, description) = newest.split_once('_').expect("VERSION_description");
    format!("{version} ({})", description.replace('_', " "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_tables_of_an_empty_database_and_exits() {
    let services = Services::from_env();
    let db = TestDatabase::create(&services).await;
    let migrate = |url: &str| {
        binary("fresco-coordinator")
            .env_remove("FRESCO_DATABASE_URL")
            .args(["migrate", "--database-url", url])
            .output()
            .expect("running fresco-coordinator migrate")
    };
    let out = migrate(&db.url);
    assert!(out.status.success(), "{}", describe(&out));
    let newest = newest_migration();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&newest),
        "expected {newest:?}: {}",
        describe(&out)
    );
    let pool = db.pool().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .expect("listing tables");
    for table in ["jobs", "tasks", "workers", "outputs", "api_keys", "tenants"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    let draining: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'workers' AND column_name = 'draining_at'",
    )
    .fetch_one(&pool)
    .await
    .expect("reading the columns");
    assert_eq!(draining, 1);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .expect("counting migrations");
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/postgres"
    ))
    .expect("the migrations folder")
    .count();
    assert_eq!(applied, files as i64, "every migration applied");

    let again = migrate(&db.url);
    assert!(again.status.success(), "{}", describe(&again));

    let unreachable = migrate("postgres://postgres@127.0.0.1:1/nothing");
    assert!(!unreachable.status.success(), "{}", describe(&unreachable));
    assert!(
        String::from_utf8_lossy(&unreachable.stderr)
            .contains("connecting to Postgres and applying migrations"),
        "{}",
        describe(&unreachable)
    );
    let missing = binary("fresco-coordinator")
        .env_remove("FRESCO_DATABASE_URL")
        .arg("migrate")
        .output()
        .expect("running fresco-coordinator migrate");
    assert!(!missing.status.success(), "{}", describe(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("migrate needs --database-url"),
        "{}",
        describe(&missing)
    );
}
