//! Failures belong to whoever caused them, and quarantine is recoverable,
//! through the real services on SQLite and in-process queues: a request
//! failure fails its task at once and is not counted against the worker;
//! worker failures quarantine it after `quarantine_after` in a row; after
//! the cool-down (or `ReleaseWorker`) it goes on probation and takes one
//! probe task at a time; a probe's success returns it to service, its
//! failure or expired lease quarantines it again.

mod common;

use std::time::Duration;

use common::{TestCoordinator, job_request, refused, time, wait_past};
use fresco_coordinator::Settings;
use fresco_coordinator::quarantine::release_once;
use fresco_coordinator::reaper::reap_once;
use fresco_proto::v1 as pb;
use fresco_proto::v1::worker_service_server::WorkerService;
use fresco_store::Backoff;
use tonic::Code;

fn settings(quarantine_after: u32) -> Settings {
    Settings {
        quarantine_after,
        retry_backoff: Backoff::NONE,
        ..Settings::default()
    }
}

/// Pops the next task of `model`, claims it for `worker` and reports it
/// failed with `kind`; returns the task's id and whether it was requeued.
async fn take_and_fail(
    farm: &TestCoordinator,
    worker: &str,
    model: &str,
    message: &str,
    kind: pb::FailureKind,
) -> (String, bool) {
    let claim = farm.take(worker, model).await;
    let task = claim.task.expect("the claimed task");
    let outcome = farm
        .fail_as(worker, &task.id, claim.attempt, message, kind)
        .await
        .expect("FailTask");
    (task.id, outcome.requeued)
}

#[tokio::test]
async fn a_request_failure_fails_its_task_at_once_and_does_not_count_against_the_worker() {
    let farm = TestCoordinator::start(settings(2)).await;
    let job = farm.submit(job_request(4, 1, 5)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;

    let (flaky, requeued) = take_and_fail(
        &farm,
        &worker,
        &job.model,
        "tensor error: CUDA_ERROR_ILLEGAL_ADDRESS",
        pb::FailureKind::Worker,
    )
    .await;
    assert!(requeued, "a worker failure is retried");
    assert_eq!(farm.worker(&worker).await.consecutive_failures, 1);

    for _ in 0..3 {
        let (task, requeued) = take_and_fail(
            &farm,
            &worker,
            &job.model,
            "invalid generation parameters: caption must have 1..=32 tokens, got 40",
            pb::FailureKind::Request,
        )
        .await;
        assert!(!requeued, "four attempts were left, none is used");
        let failed = farm.get_task(&task).await;
        assert_eq!(failed.state, pb::TaskState::Failed as i32);
        let last = failed.errors.last().expect("the failure is recorded");
        assert_eq!(
            (last.kind.as_str(), last.worker.as_str()),
            ("request", worker.as_str())
        );
        if task == flaky {
            assert_eq!(failed.errors[0].kind, "worker");
        }
    }

    // Three request failures in a row neither quarantined the worker
    // (after 2) nor ended its run of one worker failure.
    let listed = farm.worker(&worker).await;
    assert_eq!(listed.quarantined_at, None);
    assert_eq!(listed.consecutive_failures, 1);
    let kinds: Vec<_> = listed
        .recent_errors
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(kinds, ["worker"], "only the worker's own failure");
    assert_eq!(listed.recent_errors[0].task_id, flaky);
    let job = farm.get_job(&job.id).await;
    assert_eq!(job.counts.expect("counts").failed, 3);
}

#[tokio::test]
async fn worker_failures_in_a_row_quarantine_it_and_say_why() {
    let farm = TestCoordinator::start(settings(3)).await;
    let job = farm.submit(job_request(4, 1, 1)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let mut failed = Vec::new();
    for i in 0..2 {
        let (task, _) = take_and_fail(
            &farm,
            &worker,
            &job.model,
            &format!("loading the model: model file missing: {i}"),
            pb::FailureKind::Worker,
        )
        .await;
        failed.push(task);
        assert_eq!(farm.worker(&worker).await.quarantined_at, None);
    }
    // A failure whose kind is not said is the worker's.
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("the claimed task");
    farm.fail(&worker, &task.id, claim.attempt, "unspecified", false)
        .await
        .expect("FailTask");
    failed.push(task.id);

    let listed = farm.worker(&worker).await;
    assert!(listed.quarantined_at.is_some(), "{listed:?}");
    assert_eq!(listed.consecutive_failures, 3);
    assert!(!listed.probation);
    let why: Vec<_> = listed
        .recent_errors
        .iter()
        .map(|e| (e.task_id.as_str(), e.kind.as_str(), e.worker.as_str()))
        .collect();
    assert_eq!(
        why,
        failed
            .iter()
            .map(|t| (t.as_str(), "worker", worker.as_str()))
            .collect::<Vec<_>>()
    );
    assert_eq!(listed.recent_errors[2].message, "unspecified");
    let next = farm.pop(&job.model).await;
    let refusal = refused(farm.claim(&worker, &next).await, Code::PermissionDenied);
    assert!(refusal.contains("quarantined"), "{refusal}");
}

#[tokio::test]
async fn after_the_cooldown_one_probe_task_at_a_time_and_success_returns_it_to_service() {
    let cooldown = Duration::from_secs(1);
    let farm = TestCoordinator::start(Settings {
        quarantine_cooldown: cooldown,
        ..settings(1)
    })
    .await;
    let job = farm.submit(job_request(1, 1, 1)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    take_and_fail(&farm, &worker, &job.model, "oom", pb::FailureKind::Worker).await;
    let quarantined_at = farm.worker(&worker).await.quarantined_at;
    assert!(quarantined_at.is_some());
    assert_eq!(
        release_once(&farm.app).await.expect("release pass"),
        0,
        "the cool-down has not passed"
    );

    wait_past(time(quarantined_at) + cooldown).await;
    assert_eq!(release_once(&farm.app).await.expect("release pass"), 1);
    let listed = farm.worker(&worker).await;
    assert_eq!(listed.quarantined_at, None);
    assert!(listed.probation);

    let next = farm.submit(job_request(3, 1, 3)).await.expect("SubmitJob");
    let probe = farm.take(&worker, &next.model).await;
    let second = farm.pop(&next.model).await;
    let refusal = refused(farm.claim(&worker, &second).await, Code::PermissionDenied);
    assert!(refusal.contains("probation"), "{refusal}");

    let probe_task = probe.task.expect("the probe task");
    farm.complete(&worker, &probe_task, probe.attempt)
        .await
        .expect("CompleteTask");
    let listed = farm.worker(&worker).await;
    assert!(!listed.probation, "the probe succeeded");
    assert_eq!(listed.consecutive_failures, 0);
    assert_eq!(listed.quarantined_at, None);
    // Back in service: it claims while it runs a task.
    farm.claim(&worker, &second).await.expect("ClaimTask");
    farm.take(&worker, &next.model).await;
    assert_eq!(farm.worker(&worker).await.running_tasks.len(), 2);
}

#[tokio::test]
async fn a_probe_that_fails_or_whose_lease_expires_quarantines_the_worker_again() {
    // Leases that expire the moment they are granted: only the reaper pass
    // called below ends them.
    let farm = TestCoordinator::start(Settings {
        lease: Duration::ZERO,
        ..settings(3)
    })
    .await;
    let job = farm.submit(job_request(5, 1, 1)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    for _ in 0..3 {
        take_and_fail(&farm, &worker, &job.model, "oom", pb::FailureKind::Worker).await;
    }
    assert!(farm.worker(&worker).await.quarantined_at.is_some());

    let released = farm.release_worker(&worker).await.expect("ReleaseWorker");
    assert!(released.probation);
    take_and_fail(
        &farm,
        &worker,
        &job.model,
        "oom again",
        pb::FailureKind::Worker,
    )
    .await;
    let listed = farm.worker(&worker).await;
    assert!(
        listed.quarantined_at.is_some(),
        "one failed probe quarantines it, not {} more",
        3
    );
    assert!(!listed.probation);
    assert_eq!(listed.consecutive_failures, 4);

    farm.release_worker(&worker).await.expect("ReleaseWorker");
    let probe = farm.take(&worker, &job.model).await;
    wait_past(time(probe.lease_expires_at)).await;
    assert_eq!(reap_once(&farm.app).await.expect("reaper pass"), 1);
    let listed = farm.worker(&worker).await;
    assert!(listed.quarantined_at.is_some(), "{listed:?}");
    assert!(!listed.probation);
    let last = listed.recent_errors.last().expect("recent errors");
    assert_eq!(last.kind, "lease");
    assert_eq!(last.task_id, probe.task.as_ref().expect("task").id);
    let task = farm.get_task(&last.task_id).await;
    assert_eq!(task.errors.last().expect("history").kind, "lease");
}

#[tokio::test]
async fn release_worker_puts_only_a_quarantined_worker_on_probation() {
    let farm = TestCoordinator::start(settings(1)).await;
    let job = farm.submit(job_request(1, 1, 1)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;

    let bad = refused(farm.release_worker("nope").await, Code::InvalidArgument);
    assert!(bad.contains("worker_id"), "{bad}");
    let unknown = refused(
        farm.release_worker(&fresco_core::WorkerId::new().to_string())
            .await,
        Code::NotFound,
    );
    assert!(unknown.contains("worker"), "{unknown}");
    let healthy = refused(farm.release_worker(&worker).await, Code::FailedPrecondition);
    assert!(healthy.contains("not quarantined"), "{healthy}");

    take_and_fail(&farm, &worker, &job.model, "oom", pb::FailureKind::Worker).await;
    let released = farm.release_worker(&worker).await.expect("ReleaseWorker");
    assert_eq!(released.id, worker);
    assert!(released.probation);
    assert_eq!(released.quarantined_at, None);
    assert_eq!(released.recent_errors.len(), 1, "why it was quarantined");
    let listed = farm.worker(&worker).await;
    assert!(listed.probation && listed.quarantined_at.is_none());
}

#[tokio::test]
async fn a_failure_kind_outside_the_enum_is_refused_naming_the_field() {
    let farm = TestCoordinator::start(settings(1)).await;
    let job = farm.submit(job_request(1, 1, 3)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("task");
    let result = farm
        .workers
        .fail_task(tonic::Request::new(pb::FailTaskRequest {
            device_ms: 0,
            worker_id: worker.clone(),
            task_id: task.id.clone(),
            attempt: claim.attempt,
            message: "boom".into(),
            give_back: false,
            kind: 9,
        }))
        .await;
    let message = refused(result, Code::InvalidArgument);
    assert!(message.starts_with("kind:"), "{message}");
    assert_eq!(
        farm.get_task(&task.id).await.state,
        pb::TaskState::Running as i32,
        "nothing recorded"
    );
}
