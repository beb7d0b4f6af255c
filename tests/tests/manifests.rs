//! A job's manifest on a real farm (Postgres, Redis, S3 on moto): once the
//! job finishes, `{prefix}/{job}/manifest.jsonl` appears in the bucket and
//! equals `fresco manifest --format jsonl`; each image's row agrees with
//! the PNG in the bucket (its text chunks, and the SHA-256 and size of its
//! bytes, computed here from object_store's own S3 client), with Postgres
//! (raw SQL) and with the model's weights file in the repository; a failed
//! task's row carries its whole error history and no image fields; the CSV
//! and Parquet forms read back (csv crate, parquet reader) to the same
//! rows. A retried job gets a new manifest once it finishes again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fresco_e2e::{FAST_SHAPES, Farm, FarmOptions, describe, wait_until};
use fresco_proto::v1 as pb;
use fresco_worker::png::read_png_text;
use object_store::ObjectStoreExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The task seed: image 1 of a task with it wraps to seed 0.
const SEED: u64 = u64::MAX;

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// object_store's own S3 client on the farm's bucket (from the `AWS_*`
/// variables), not fresco's storage code.
fn bucket(farm: &Farm) -> AmazonS3 {
    AmazonS3Builder::from_env()
        .with_bucket_name(&farm.services.bucket)
        .build()
        .expect("an S3 client from the AWS_* variables")
}

async fn object(farm: &Farm, key: &str) -> Option<Vec<u8>> {
    match bucket(farm).get(&Path::from(key)).await {
        Ok(got) => Some(got.bytes().await.expect("the object's bytes").to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("reading {key}: {e}"),
    }
}

/// The key of the job's manifest in the bucket, from the farm's storage
/// URL (`s3://bucket/prefix`).
fn manifest_key(farm: &Farm, job: &str) -> String {
    let prefix = farm
        .storage_url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or("", |(_, prefix)| prefix);
    format!("{prefix}/{job}/manifest.jsonl")
}

/// Waits until the job's manifest in the bucket holds `rows` lines.
async fn bucket_manifest(farm: &Farm, job: &str, rows: usize) -> Vec<u8> {
    let key = manifest_key(farm, job);
    wait_until(
        "the manifest in the bucket",
        Duration::from_secs(60),
        || async {
            object(farm, &key)
                .await
                .is_some_and(|bytes| bytes.iter().filter(|b| **b == b'\n').count() == rows)
        },
    )
    .await;
    object(farm, &key).await.expect("the manifest")
}

fn lines(jsonl: &[u8]) -> Vec<Value> {
    String::from_utf8(jsonl.to_vec())
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON row"))
        .collect()
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().map(|t| {
        DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|e| panic!("{t:?} is not an RFC 3339 time: {e}"))
            .to_utc()
    })
}

/// `fresco manifest JOB ARGS`, its stdout.
fn cli_manifest(farm: &Farm, job: &str, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["manifest", job];
    all.extend_from_slice(args);
    let out = farm.cli(&all);
    assert!(out.status.success(), "{}", describe(&out));
    out.stdout
}

/// A worker of the test's own: registers, claims the task and fails it,
/// once as the worker's fault and once as the request's.
async fn fail_twice(farm: &Farm, task: &str) -> String {
    let mut client = farm.worker_client().await;
    let worker = client
        .register_worker(pb::RegisterWorkerRequest {
            name: "flaky".into(),
            device: "cpu".into(),
            models: vec!["fresco-shapes".into()],
            ..Default::default()
        })
        .await
        .expect("registered")
        .into_inner()
        .worker_id;
    for (kind, message) in [
        (pb::FailureKind::Worker, "CUDA_ERROR_OUT_OF_MEMORY"),
        (pb::FailureKind::Request, "the prompt cannot be drawn"),
    ] {
        let attempt = claim_when_due(&mut client, &worker, task).await;
        client
            .fail_task(pb::FailTaskRequest {
                worker_id: worker.clone(),
                task_id: task.to_owned(),
                attempt,
                message: message.into(),
                kind: kind as i32,
                ..Default::default()
            })
            .await
            .expect("failed");
    }
    worker
}

/// Claims `task`, asking again while it waits out its backoff; its
/// attempt.
async fn claim_when_due(client: &mut fresco_e2e::WorkerClient, worker: &str, task: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = pb::ClaimTaskRequest {
            worker_id: worker.to_owned(),
            task_id: task.to_owned(),
            loaded_models: vec![],
        };
        match client.claim_task(request).await {
            Ok(reply) => return reply.into_inner().attempt,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("claiming {task}: {status:?}"),
        }
    }
}

/// What Postgres says of the output `key` and the attempt that made it.
struct Recorded {
    bytes: i64,
    sha256: String,
    seed: i64,
    attempt: i32,
    worker_id: String,
    worker_name: String,
    worker_device: String,
    device_ms: i64,
    weights_sha256: String,
    created_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    registered_name: String,
    registered_device: String,
}

async fn recorded(pool: &sqlx::PgPool, key: &str) -> Recorded {
    let row: (i64, String, i64, i32, String, String, String, i64, String) = sqlx::query_as(
        "SELECT o.bytes, o.sha256, o.seed, t.attempt, t.worker_id::TEXT, t.worker_name,
                t.worker_device, t.device_ms, t.weights_sha256
         FROM outputs o JOIN tasks t ON t.id = o.task_id WHERE o.key = $1",
    )
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("the output's row");
    let times: (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, String, String) = sqlx::query_as(
        "SELECT t.created_at, t.started_at, t.finished_at, w.name, w.device
         FROM outputs o JOIN tasks t ON t.id = o.task_id JOIN workers w ON w.id = t.worker_id
         WHERE o.key = $1",
    )
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("the task's times and worker");
    Recorded {
        bytes: row.0,
        sha256: row.1,
        seed: row.2,
        attempt: row.3,
        worker_id: row.4,
        worker_name: row.5,
        worker_device: row.6,
        device_ms: row.7,
        weights_sha256: row.8,
        created_at: times.0,
        started_at: times.1,
        finished_at: times.2,
        registered_name: times.3,
        registered_device: times.4,
    }
}

/// Checks an image's row against its PNG in the bucket, Postgres and the
/// model's weights file.
async fn check_image_row(farm: &Farm, pool: &sqlx::PgPool, row: &Value, weights: &str) {
    let key = row["key"].as_str().expect("an image row has a key");
    let png = object(farm, key).await.expect("the image in the bucket");
    assert_eq!(row["sha256"], sha256(&png), "{row}");
    assert_eq!(row["bytes"], png.len() as u64, "{row}");
    let (width, height, text) = read_png_text(&png).expect("a PNG with text chunks");
    let text: BTreeMap<String, String> = text.into_iter().collect();
    assert_eq!(
        (row["width"].as_u64(), row["height"].as_u64()),
        (Some(u64::from(width)), Some(u64::from(height)))
    );
    let image_index = row["image_index"].as_u64().expect("an image index");
    let seed = row["seed"].as_u64().expect("an image seed");
    assert_eq!(
        seed,
        SEED.wrapping_add(image_index),
        "image k of seed s: s + k, wrapping"
    );
    assert_eq!(text["seed"], seed.to_string());
    assert_eq!(text["task_seed"], row["task_seed"].to_string());
    assert_eq!(text["prompt"], row["prompt"].as_str().expect("a prompt"));
    assert_eq!(
        text["negative_prompt"],
        row["negative_prompt"].as_str().expect("text")
    );
    assert_eq!(text["steps"], row["steps"].to_string());
    assert_eq!(text["sampler"], row["sampler"].as_str().expect("a sampler"));
    assert_eq!(text["model"], row["model"].as_str().expect("a model"));
    assert_eq!(text["fresco_job"], row["job_id"].as_str().expect("a job"));
    assert_eq!(
        text["fresco_task"],
        row["task_id"].as_str().expect("a task")
    );
    assert_eq!(
        text["guidance"].parse::<f64>().expect("a number"),
        row["guidance"].as_f64().expect("a number")
    );
    assert_eq!(row["weights_sha256"], weights, "the weights file's SHA-256");
    assert_eq!(text["model_sha256"], weights);
    assert!(
        text["parameters"].contains(&format!(
            "Model hash: {}, Model: fresco-shapes",
            &weights[..10]
        )),
        "{}",
        text["parameters"]
    );

    let db = recorded(pool, key).await;
    assert_eq!(row["bytes"], db.bytes);
    assert_eq!(row["sha256"], db.sha256);
    assert_eq!(seed, db.seed as u64);
    assert_eq!(row["attempt"], db.attempt);
    assert_eq!(row["worker_id"], db.worker_id);
    assert_eq!(row["worker_name"], db.worker_name);
    assert_eq!(row["worker_device"], db.worker_device);
    assert_eq!(
        (db.worker_name.as_str(), db.worker_device.as_str()),
        (db.registered_name.as_str(), db.registered_device.as_str())
    );
    assert!(db.worker_name.starts_with("worker-"), "{}", db.worker_name);
    assert_eq!(row["weights_sha256"], db.weights_sha256);
    assert_eq!(
        row["sampling_seconds"].as_f64(),
        Some(db.device_ms as f64 / 1000.0)
    );
    assert!(db.device_ms > 0);
    assert_eq!(time(&row["queued_at"]), Some(db.created_at));
    assert_eq!(time(&row["started_at"]), Some(db.started_at));
    assert_eq!(time(&row["finished_at"]), Some(db.finished_at));
    assert_eq!(row["state"], "succeeded");
}

/// The CSV form read back: one record per row, each field the row's value
/// (numbers compared as numbers, absent as empty, errors as their JSON).
fn check_csv(csv_bytes: &[u8], rows: &[Value]) {
    let mut reader = csv::Reader::from_reader(csv_bytes);
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(String::from)
        .collect();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a record")).collect();
    assert_eq!(records.len(), rows.len());
    for (record, row) in records.iter().zip(rows) {
        let object = row.as_object().expect("an object");
        assert_eq!(header.len(), object.len(), "a column per field");
        for (name, field) in header.iter().zip(record.iter()) {
            let value = &object[name];
            match value {
                Value::Null => assert_eq!(field, "", "{name}"),
                Value::String(_) if name.ends_with("_at") => {
                    assert_eq!(time(&Value::from(field)), time(value), "{name}")
                }
                Value::String(s) => assert_eq!(field, s, "{name}"),
                Value::Number(n) => assert_eq!(field.parse::<f64>().ok(), n.as_f64(), "{name}"),
                Value::Bool(b) => assert_eq!(field, b.to_string(), "{name}"),
                Value::Array(_) | Value::Object(_) => assert_eq!(
                    serde_json::from_str::<Value>(field).expect("JSON"),
                    *value,
                    "{name}"
                ),
            }
        }
    }
}

/// The Parquet form read back with the parquet crate's reader: the same
/// columns, the same values.
fn check_parquet(path: &std::path::Path, rows: &[Value]) {
    let file = std::fs::File::open(path).expect("the Parquet file");
    let reader = SerializedFileReader::new(file).expect("a Parquet file");
    let read: Vec<_> = reader
        .get_row_iter(None)
        .expect("rows")
        .map(|r| r.expect("a row"))
        .collect();
    assert_eq!(read.len(), rows.len());
    for (got, row) in read.iter().zip(rows) {
        let object = row.as_object().expect("an object");
        let mut columns = 0;
        for (name, field) in got.get_column_iter() {
            columns += 1;
            let value = &object[name];
            match (field, value) {
                (Field::Null, Value::Null) => {}
                (Field::Str(s), Value::Array(_)) => {
                    assert_eq!(
                        serde_json::from_str::<Value>(s).expect("JSON"),
                        *value,
                        "{name}"
                    )
                }
                (Field::Str(s), Value::String(v)) => assert_eq!(s, v, "{name}"),
                (Field::ULong(n), Value::Number(v)) => assert_eq!(Some(*n), v.as_u64(), "{name}"),
                (Field::Float(f), Value::Number(v)) => {
                    assert_eq!(Some(f64::from(*f)), v.as_f64(), "{name}")
                }
                (Field::Double(f), Value::Number(v)) => assert_eq!(Some(*f), v.as_f64(), "{name}"),
                (Field::Bool(b), Value::Bool(v)) => assert_eq!(b, v, "{name}"),
                (Field::TimestampMicros(us), Value::String(_)) => assert_eq!(
                    Some(*us),
                    time(value).map(|t| t.timestamp_micros()),
                    "{name}"
                ),
                (field, value) => panic!("{name}: {field:?} against {value}"),
            }
        }
        assert_eq!(columns, object.len(), "a column per field");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_jobs_manifest_tells_what_made_each_image() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        coordinator_args: vec!["--manifest-interval-seconds".into(), "1".into()],
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    let seed = SEED.to_string();
    let mut args: Vec<&str> = FAST_SHAPES.to_vec();
    args.extend([
        "--prompt",
        "a red circle",
        "--prompt",
        "a blue square",
        "--prompt",
        "a green triangle",
        "-n",
        "2",
        "--seed",
        &seed,
        "--negative-prompt",
        "a green circle",
        "--name",
        "catalogue",
        "--max-attempts",
        "3",
    ]);
    let job = farm.submit(&args);
    let status = farm.status(&job);
    let failing = status["tasks"][2]["task_id"]
        .as_str()
        .expect("a task id")
        .to_owned();

    // The last task fails on a worker of the test's own before any real
    // worker starts: first the worker's fault, then the request's.
    let flaky = fail_twice(&farm, &failing).await;
    farm.start_worker().await;
    let finished = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(
        finished["counts"]["succeeded"],
        2,
        "{finished}\n{}",
        farm.logs()
    );
    assert_eq!(finished["counts"]["failed"], 1, "{finished}");

    // Two tasks of two images, and the failed task: five rows.
    let in_bucket = bucket_manifest(&farm, &job, 5).await;
    let from_cli = cli_manifest(&farm, &job, &[]);
    assert_eq!(
        String::from_utf8_lossy(&in_bucket),
        String::from_utf8_lossy(&from_cli),
        "the bucket's manifest.jsonl is `fresco manifest`'s"
    );
    let rows = lines(&in_bucket);
    let order: Vec<(u64, Option<u64>)> = rows
        .iter()
        .map(|r| {
            (
                r["task_index"].as_u64().expect("an index"),
                r["image_index"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (0, Some(0)),
            (0, Some(1)),
            (1, Some(0)),
            (1, Some(1)),
            (2, None)
        ]
    );

    let weights = sha256(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/fresco-shapes/model.safetensors"
        ))
        .expect("the built-in model's weights file"),
    );
    for row in &rows[..4] {
        check_image_row(&farm, &pool, row, &weights).await;
        assert_eq!(row["job_id"], job.as_str());
        assert_eq!(row["job_name"], "catalogue");
        assert_eq!(row["negative_prompt"], "a green circle");
        assert_eq!(row["task_seed"], SEED);
        assert_eq!(row["errors"], serde_json::json!([]));
    }

    let failed = &rows[4];
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["task_id"], failing.as_str());
    assert_eq!(failed["prompt"], "a green triangle");
    for field in [
        "image_index",
        "seed",
        "key",
        "bytes",
        "sha256",
        "weights_sha256",
        "sampling_seconds",
    ] {
        assert!(
            failed[field].is_null(),
            "{field} of a task without images: {failed}"
        );
    }
    let errors = failed["errors"].as_array().expect("errors");
    let history: Vec<(u64, &str, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["attempt"].as_u64().expect("an attempt"),
                e["worker"].as_str().expect("a worker"),
                e["kind"].as_str().expect("a kind"),
                e["message"].as_str().expect("a message"),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (1, flaky.as_str(), "worker", "CUDA_ERROR_OUT_OF_MEMORY"),
            (2, flaky.as_str(), "request", "the prompt cannot be drawn"),
        ]
    );
    let db_errors: Value = sqlx::query_scalar("SELECT errors FROM tasks WHERE id = $1::UUID")
        .bind(&failing)
        .fetch_one(&pool)
        .await
        .expect("the task's errors");
    assert_eq!(db_errors.as_array().map(Vec::len), Some(2));
    for (ours, theirs) in errors.iter().zip(db_errors.as_array().expect("an array")) {
        assert_eq!(time(&ours["at"]), time(&theirs["at"]), "{ours} {theirs}");
        assert_eq!(ours["worker"], theirs["worker"]);
    }

    // CSV and Parquet read back to the same rows.
    check_csv(&cli_manifest(&farm, &job, &["--format", "csv"]), &rows);
    let parquet = farm.dir.path().join("manifest.parquet");
    let out = farm.cli(&[
        "manifest",
        &job,
        "--format",
        "parquet",
        "-o",
        parquet.to_str().expect("UTF-8"),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    check_parquet(&parquet, &rows);

    // Retried after finishing, the job gets a new manifest once it
    // finishes again: the failed task is queued again and renders.
    let out = farm.cli(&["retry", &job]);
    assert!(out.status.success(), "{}", describe(&out));
    let again = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(again["counts"]["succeeded"], 3, "{again}\n{}", farm.logs());
    let rewritten = bucket_manifest(&farm, &job, 6).await;
    let rows = lines(&rewritten);
    let last: Vec<&Value> = rows.iter().filter(|r| r["task_index"] == 2).collect();
    assert_eq!(last.len(), 2, "the retried task's two images");
    for row in last {
        check_image_row(&farm, &pool, row, &weights).await;
        assert_eq!(row["attempt"], 3, "after two failed attempts");
        assert_eq!(
            row["errors"].as_array().map(Vec::len),
            Some(2),
            "its history stays"
        );
    }
    assert_eq!(rewritten, cli_manifest(&farm, &job, &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_manifest_is_not_found_and_a_bad_id_is_refused() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let job = farm.submit(&["--model", "fresco-shapes", "--prompt", "a red circle"]);
    let other = farm.client_key("team-b", "viewer");
    let out = farm.cli_as(&other, &["manifest", &job]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!("error: job {job} not found")
    );
    let out = farm.cli(&["manifest", "not-a-job"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: job_id: must be a UUID (got \"not-a-job\")"
    );
    // Unfinished, the job has a manifest to read (its queued task's row)
    // and none in the bucket yet.
    let rows = lines(&cli_manifest(&farm, &job, &[]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "queued");
    assert!(object(&farm, &manifest_key(&farm, &job)).await.is_none());
}
