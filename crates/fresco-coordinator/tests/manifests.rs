//! Manifests on a coordinator over SQLite and `file://` storage, as
//! `fresco dev` runs: a completion's hashes are checked and kept, the
//! manifest pass writes `{job}/manifest.jsonl` beside the images once the
//! job finishes (the same rows `JobManifest` streams), and again after a
//! retry finishes it again.

mod common;

use common::{TestCoordinator, job_request, refused};
use fresco_coordinator::{Settings, manifest};
use fresco_core::keys::output_key;
use fresco_core::manifest::ManifestRow;
use fresco_core::{JobId, TaskId};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_proto::v1::worker_service_server::WorkerService;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};

const WEIGHTS: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A completion of `task`'s images as a worker reports it, with `sha256`
/// for each image and the weights hash `weights`.
fn completion(
    worker: &str,
    task: &pb::Task,
    attempt: u32,
    sha256: &str,
    weights: &str,
) -> pb::CompleteTaskRequest {
    let job: JobId = task.job_id.parse().expect("a job id");
    let id: TaskId = task.id.parse().expect("a task id");
    pb::CompleteTaskRequest {
        worker_id: worker.to_owned(),
        task_id: task.id.clone(),
        attempt,
        outputs: (0..task.n)
            .map(|index| pb::Output {
                index,
                key: output_key("", job, id, attempt, index),
                width: task.width,
                height: task.height,
                seed: task.seed.wrapping_add(u64::from(index)),
                bytes: 10,
                sha256: sha256.to_owned(),
            })
            .collect(),
        device_ms: 1_500,
        weights_sha256: weights.to_owned(),
    }
}

async fn complete(farm: &TestCoordinator, request: pb::CompleteTaskRequest) -> Result<(), Status> {
    farm.workers
        .complete_task(Request::new(request))
        .await
        .map(drop)
}

/// Every row `JobManifest` streams for the job.
async fn streamed(farm: &TestCoordinator, job_id: &str) -> Vec<ManifestRow> {
    let mut stream = farm
        .jobs
        .job_manifest(Request::new(pb::JobManifestRequest {
            job_id: job_id.to_owned(),
        }))
        .await
        .expect("JobManifest")
        .into_inner();
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await {
        rows.push(ManifestRow::from_proto(&row.expect("a row")));
    }
    rows
}

/// The manifest file the pass wrote for the job, if any.
fn written(farm: &TestCoordinator, job_id: &str) -> Option<String> {
    std::fs::read_to_string(farm.outputs_dir().join(job_id).join("manifest.jsonl")).ok()
}

fn jsonl(rows: &[ManifestRow]) -> String {
    rows.iter()
        .map(|row| format!("{}\n", row.jsonl().expect("a JSON line")))
        .collect()
}

#[tokio::test]
async fn a_completion_with_a_malformed_hash_is_refused_naming_the_field() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(1, 2, 0)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("a task");
    for (request, says) in [
        (
            completion(&worker, &task, claim.attempt, "ABC", WEIGHTS),
            "outputs[0].sha256: must be a SHA-256 as 64 lower-case hex digits, or empty (got \"ABC\")",
        ),
        (
            completion(
                &worker,
                &task,
                claim.attempt,
                WEIGHTS,
                &WEIGHTS.to_uppercase(),
            ),
            &*format!(
                "weights_sha256: must be a SHA-256 as 64 lower-case hex digits, or empty (got {:?})",
                WEIGHTS.to_uppercase()
            ),
        ),
    ] {
        let message = refused(complete(&farm, request).await, Code::InvalidArgument);
        assert_eq!(message, says);
        let stored = farm.stored_task(&task.id).await;
        assert!(stored.outputs.is_empty(), "nothing stored: {stored:?}");
        assert_eq!(stored.completion, None);
    }
    complete(
        &farm,
        completion(&worker, &task, claim.attempt, WEIGHTS, WEIGHTS),
    )
    .await
    .expect("a well-formed completion");
    let read = farm.get_task(&task.id).await;
    assert_eq!(read.weights_sha256, WEIGHTS);
    assert_eq!(read.sampling_seconds, Some(1.5));
    assert_eq!(
        (read.worker_name.as_str(), read.worker_device.as_str()),
        ("w1", "cpu")
    );
    assert!(read.outputs.iter().all(|o| o.sha256 == WEIGHTS));
    assert!(read.created_at.is_some() && read.started_at.is_some() && read.finished_at.is_some());
}

#[tokio::test]
async fn the_manifest_pass_writes_a_finished_jobs_rows_beside_its_images() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(2, 2, 1)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;

    let first = farm.take(&worker, &job.model).await;
    let done = first.task.expect("a task");
    complete(
        &farm,
        completion(&worker, &done, first.attempt, WEIGHTS, WEIGHTS),
    )
    .await
    .expect("CompleteTask");
    assert_eq!(
        manifest::write_due_once(&farm.app).await.expect("a pass"),
        0
    );
    assert_eq!(written(&farm, &job.id), None, "unfinished: no manifest yet");

    let second = farm.take(&worker, &job.model).await;
    let failing = second.task.expect("a task");
    farm.fail_as(
        &worker,
        &failing.id,
        second.attempt,
        "bad prompt",
        pb::FailureKind::Request,
    )
    .await
    .expect("FailTask");
    assert_eq!(
        manifest::write_due_once(&farm.app).await.expect("a pass"),
        1
    );
    let rows = streamed(&farm, &job.id).await;
    assert_eq!(
        written(&farm, &job.id),
        Some(jsonl(&rows)),
        "the streamed rows"
    );
    assert_eq!(rows.len(), 3, "two images and the failed task");
    for (k, row) in rows[..2].iter().enumerate() {
        assert_eq!(row.image_index, Some(k as u32));
        assert_eq!(row.seed, Some(done.seed.wrapping_add(k as u64)));
        assert_eq!(row.sha256.as_deref(), Some(WEIGHTS));
        assert_eq!(row.weights_sha256.as_deref(), Some(WEIGHTS));
        assert_eq!(row.worker_name.as_deref(), Some("w1"));
        assert_eq!(row.worker_id.as_deref(), Some(worker.as_str()));
        assert_eq!(row.sampling_seconds, Some(1.5));
        assert_eq!(row.state, "succeeded");
    }
    let failed = &rows[2];
    assert_eq!(
        (
            failed.state.as_str(),
            failed.image_index,
            failed.key.as_deref()
        ),
        ("failed", None, None)
    );
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(failed.errors[0].kind, "request");
    assert_eq!(failed.errors[0].message, "bad prompt");
    assert_eq!(
        manifest::write_due_once(&farm.app).await.expect("a pass"),
        0,
        "written once"
    );

    // Retried and finished again: written again, with the new images.
    farm.jobs
        .retry_job(Request::new(pb::RetryJobRequest {
            job_id: job.id.clone(),
        }))
        .await
        .expect("RetryJob");
    assert_eq!(
        manifest::write_due_once(&farm.app).await.expect("a pass"),
        0,
        "running again"
    );
    let again = farm.take(&worker, &job.model).await;
    let retried = again.task.expect("a task");
    complete(
        &farm,
        completion(&worker, &retried, again.attempt, WEIGHTS, WEIGHTS),
    )
    .await
    .expect("CompleteTask");
    assert_eq!(
        manifest::write_due_once(&farm.app).await.expect("a pass"),
        1
    );
    let rows = streamed(&farm, &job.id).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(written(&farm, &job.id), Some(jsonl(&rows)));
}
