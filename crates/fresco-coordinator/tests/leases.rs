//! The worker API on a coordinator over SQLite and in-process queues:
//! claims lease a task to one attempt, heartbeats extend that lease, and
//! completions and failures are taken only from the attempt holding it.

mod common;

use std::time::Duration;

use common::{TestCoordinator, counts, job_request, output_key, refused, time, wait_past};
use fresco_coordinator::Settings;
use fresco_core::TaskState;
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_store::Backoff;
use tonic::{Code, Request};

#[tokio::test]
async fn a_claim_leases_the_task_to_its_first_attempt() {
    let lease = Duration::from_secs(30);
    let farm = TestCoordinator::start(Settings {
        lease,
        ..Settings::default()
    })
    .await;
    let job = farm.submit(job_request(2, 1, 0)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let before = chrono::Utc::now();
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("the claimed task");

    assert_eq!(claim.attempt, 1);
    assert_eq!(
        task.index, 0,
        "the queue hands out tasks in submission order"
    );
    assert_eq!(task.state, pb::TaskState::Running as i32);
    assert_eq!(task.worker, worker);
    let expires = time(claim.lease_expires_at);
    assert!(
        expires >= before + lease - chrono::Duration::milliseconds(1),
        "the lease runs a whole lease from the claim: {expires} vs {before}"
    );
    let stored = farm.stored_task(&task.id).await;
    assert_eq!(stored.state, TaskState::Running);
    assert_eq!(stored.attempt, 1);
    assert_eq!(stored.worker.map(|w| w.to_string()), Some(worker.clone()));
    assert_eq!(stored.lease_expires_at, Some(expires));
    assert_eq!(counts(&farm.get_job(&job.id).await), (1, 1, 0, 0, 0));

    let twice = farm.claim(&worker, &task.id).await;
    refused(twice, Code::FailedPrecondition);
    assert_eq!(
        farm.stored_task(&task.id).await.attempt,
        1,
        "a refused claim counts nothing"
    );
}

#[tokio::test]
async fn a_heartbeat_extends_the_lease_and_records_progress() {
    let lease = Duration::from_secs(30);
    let farm = TestCoordinator::start(Settings {
        lease,
        ..Settings::default()
    })
    .await;
    let job = farm.submit(job_request(1, 1, 0)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("the claimed task");
    let claimed_until = time(claim.lease_expires_at);
    // The store counts in milliseconds: let one pass since the claim.
    wait_past(claimed_until - lease).await;

    let beat = farm.heartbeat(&worker, &task.id, claim.attempt, 3).await;
    assert!(!beat.cancel);
    let extended = time(beat.lease_expires_at);
    assert!(extended > claimed_until, "{extended} > {claimed_until}");
    let stored = farm.stored_task(&task.id).await;
    assert_eq!(stored.lease_expires_at, Some(extended));
    assert_eq!(stored.state, TaskState::Running);
    assert_eq!(farm.get_task(&task.id).await.progress_step, 3);
    let job = farm.get_job(&job.id).await;
    assert_eq!((job.running_steps_done, job.running_steps_total), (3, 4));
}

/// A task claimed, given back and claimed again: the first attempt is
/// stale, and the coordinator takes nothing more from it.
#[tokio::test]
async fn a_stale_attempt_is_refused() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(1, 1, 0)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let first = farm.take(&worker, &job.model).await;
    let task = first.task.expect("the claimed task");
    let given_back = farm
        .fail(&worker, &task.id, first.attempt, "shutting down", true)
        .await
        .expect("FailTask");
    assert!(given_back.requeued);
    let stored = farm.stored_task(&task.id).await;
    assert_eq!(stored.state, TaskState::Queued);
    assert!(stored.errors.is_empty(), "a give-back is not a failure");
    let second = farm.take(&worker, &job.model).await;
    assert_eq!(second.attempt, 2);
    let lease = farm.stored_task(&task.id).await.lease_expires_at;

    let stale_beat = farm.heartbeat(&worker, &task.id, first.attempt, 2).await;
    assert!(stale_beat.cancel, "a stale attempt is told to stop");
    assert_eq!(stale_beat.lease_expires_at, None);
    let stale_done = farm.complete(&worker, &task, first.attempt).await;
    refused(stale_done, Code::FailedPrecondition);
    let stale_fail = farm
        .fail(&worker, &task.id, first.attempt, "late", false)
        .await;
    refused(stale_fail, Code::FailedPrecondition);

    let stored = farm.stored_task(&task.id).await;
    assert_eq!(stored.state, TaskState::Running);
    assert_eq!(stored.attempt, 2);
    assert_eq!(
        stored.lease_expires_at, lease,
        "the live lease is untouched"
    );
    assert_eq!(stored.progress_step, 0);
    assert!(stored.outputs.is_empty());
    assert!(stored.errors.is_empty());
}

#[tokio::test]
async fn a_completion_records_the_outputs() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(1, 2, 0)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("the claimed task");
    let (job_id, task_id) = (
        job.id.parse().expect("job id"),
        task.id.parse().expect("task id"),
    );

    let short = pb::CompleteTaskRequest {
        device_ms: 0,
        weights_sha256: String::new(),
        worker_id: worker.clone(),
        task_id: task.id.clone(),
        attempt: claim.attempt,
        outputs: Vec::new(),
    };
    let short = fresco_proto::v1::worker_service_server::WorkerService::complete_task(
        &farm.workers,
        Request::new(short),
    )
    .await;
    let message = refused(short, Code::InvalidArgument);
    assert!(message.contains("outputs"), "{message}");

    let png = bytes::Bytes::from_static(b"\x89PNG not really");
    let first_key = output_key(job_id, task_id, claim.attempt, 0);
    farm.app
        .storage
        .put(&first_key, png.clone())
        .await
        .expect("upload");
    farm.complete(&worker, &task, claim.attempt)
        .await
        .expect("CompleteTask");

    let done = farm.get_task(&task.id).await;
    assert_eq!(done.state, pb::TaskState::Succeeded as i32);
    let keys: Vec<_> = done.outputs.iter().map(|o| o.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            first_key.clone(),
            output_key(job_id, task_id, claim.attempt, 1)
        ]
    );
    assert_eq!(done.outputs[1].seed, task.seed + 1);
    assert_eq!(done.outputs[1].bytes, 101);
    assert_eq!(farm.stored_task(&task.id).await.outputs.len(), 2);
    assert!(
        farm.app
            .store
            .has_output(&first_key)
            .await
            .expect("has_output")
    );
    let job = farm.get_job(&job.id).await;
    assert_eq!(counts(&job), (0, 0, 1, 0, 0));
    assert!(job.finished);

    let mut stream = farm
        .jobs
        .read_output(Request::new(pb::ReadOutputRequest { key: first_key }))
        .await
        .expect("ReadOutput")
        .into_inner();
    let mut read = Vec::new();
    while let Some(chunk) = tokio_stream::StreamExt::next(&mut stream).await {
        read.extend(chunk.expect("a chunk").data);
    }
    assert_eq!(
        read,
        png.to_vec(),
        "the recorded output reads back from storage"
    );
}

#[tokio::test]
async fn a_failure_is_retried_after_its_backoff_then_fails_for_good() {
    let backoff = Duration::from_secs(2);
    let farm = TestCoordinator::start(Settings {
        retry_backoff: Backoff {
            base: backoff,
            max: backoff,
        },
        ..Settings::default()
    })
    .await;
    let job = farm.submit(job_request(1, 1, 2)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let first = farm.take(&worker, &job.model).await;
    let task = first.task.expect("the claimed task");

    let outcome = farm
        .fail(&worker, &task.id, first.attempt, "out of memory", false)
        .await
        .expect("FailTask");
    assert!(outcome.requeued, "one attempt is left");
    let queued = farm.get_task(&task.id).await;
    assert_eq!(queued.state, pb::TaskState::Queued as i32);
    assert_eq!(queued.errors.len(), 1);
    assert_eq!(
        (queued.errors[0].attempt, queued.errors[0].message.as_str()),
        (1, "out of memory")
    );
    assert_eq!(queued.errors[0].worker, worker);
    // The backoff (between half and all of `backoff`) holds the task back:
    // it is not in the queue yet, and a claim is refused.
    assert_eq!(farm.queued_ids(&job.model).await, 0);
    let early = farm.claim(&worker, &task.id).await;
    let message = refused(early, Code::FailedPrecondition);
    assert!(message.contains("backoff"), "{message}");

    // Once the backoff has passed, the coordinator pushes it again.
    let second = farm.take(&worker, &job.model).await;
    assert_eq!(second.attempt, 2);
    let outcome = farm
        .fail(
            &worker,
            &task.id,
            second.attempt,
            "out of memory again",
            false,
        )
        .await
        .expect("FailTask");
    assert!(!outcome.requeued, "out of attempts");

    let failed = farm.get_task(&task.id).await;
    assert_eq!(failed.state, pb::TaskState::Failed as i32);
    let history: Vec<_> = failed
        .errors
        .iter()
        .map(|e| (e.attempt, e.message.as_str()))
        .collect();
    assert_eq!(
        history,
        vec![(1, "out of memory"), (2, "out of memory again")],
        "every attempt's error is kept"
    );
    let job = farm.get_job(&job.id).await;
    assert_eq!(counts(&job), (0, 0, 0, 1, 0));
    assert!(job.finished);
    assert_eq!(farm.queued_ids(&job.model).await, 0);
}
