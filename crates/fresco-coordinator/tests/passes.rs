//! The coordinator's background passes, called one at a time on a
//! coordinator over SQLite and in-process queues: the lease reaper ends
//! leases whose heartbeats stopped, and the reconciler pushes again what the
//! dispatch queues lost.

mod common;

use std::time::Duration;

use common::{TestCoordinator, counts, job_request, time, wait_past};
use fresco_coordinator::Settings;
use fresco_coordinator::reaper::reap_once;
use fresco_coordinator::reconciler::reconcile_once;
use fresco_core::TaskState;
use fresco_proto::v1 as pb;
use fresco_store::Backoff;

/// Leases that expire the moment they are granted, and no backoff: a task
/// whose worker never heartbeats is reaped by the next pass.
fn expiring_at_once() -> Settings {
    Settings {
        lease: Duration::ZERO,
        retry_backoff: Backoff::NONE,
        ..Settings::default()
    }
}

#[tokio::test]
async fn an_expired_lease_goes_back_to_the_queue_then_fails_after_max_attempts() {
    let farm = TestCoordinator::start(expiring_at_once()).await;
    let job = farm.submit(job_request(1, 1, 2)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let first = farm.take(&worker, &job.model).await;
    let task = first.task.expect("the claimed task");
    wait_past(time(first.lease_expires_at)).await;

    assert_eq!(reap_once(&farm.app).await.expect("reaper pass"), 1);
    let requeued = farm.get_task(&task.id).await;
    assert_eq!(requeued.state, pb::TaskState::Queued as i32);
    assert_eq!(requeued.errors.len(), 1);
    assert_eq!(requeued.errors[0].attempt, 1);
    assert_eq!(requeued.errors[0].worker, worker);
    assert!(
        requeued.errors[0].message.contains("lease expired"),
        "{:?}",
        requeued.errors[0]
    );
    assert_eq!(
        farm.stored_task(&task.id).await.lease_expires_at,
        None,
        "the lease is gone"
    );
    assert_eq!(farm.queued_ids(&job.model).await, 1, "back in its queue");
    let beat = farm.heartbeat(&worker, &task.id, first.attempt, 1).await;
    assert!(beat.cancel, "the reaped attempt's worker is told to stop");

    let second = farm.take(&worker, &job.model).await;
    assert_eq!(second.attempt, 2);
    wait_past(time(second.lease_expires_at)).await;
    assert_eq!(reap_once(&farm.app).await.expect("reaper pass"), 1);
    let failed = farm.get_task(&task.id).await;
    assert_eq!(failed.state, pb::TaskState::Failed as i32);
    assert_eq!(
        failed.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let job = farm.get_job(&job.id).await;
    assert_eq!(counts(&job), (0, 0, 0, 1, 0));
    assert!(job.finished);
    assert_eq!(
        farm.queued_ids(&job.model).await,
        0,
        "a failed task is not queued"
    );
    assert_eq!(
        reap_once(&farm.app).await.expect("reaper pass"),
        0,
        "nothing left to reap"
    );
}

#[tokio::test]
async fn a_live_lease_is_not_reaped() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(1, 1, 0)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("the claimed task");

    assert_eq!(reap_once(&farm.app).await.expect("reaper pass"), 0);
    let stored = farm.stored_task(&task.id).await;
    assert_eq!(stored.state, TaskState::Running);
    assert_eq!(stored.attempt, 1);
    assert!(stored.errors.is_empty());
}

#[tokio::test]
async fn queued_tasks_missing_from_the_dispatch_queue_are_pushed_again() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(4, 1, 0)).await.expect("SubmitJob");
    let tasks = farm.tasks(&job.id).await;
    let worker = farm.register("w1", &job.model).await;
    let running = farm.take(&worker, &job.model).await;
    assert_eq!(running.task.expect("the claimed task").id, tasks[0].id);
    assert_eq!(
        reconcile_once(&farm.app).await.expect("reconciler pass"),
        0,
        "the queue holds every queued task"
    );

    // The queues lose everything (a Redis flush, say).
    assert_eq!(farm.drain(&job.model).await.len(), 3);
    assert_eq!(reconcile_once(&farm.app).await.expect("reconciler pass"), 3);
    assert_eq!(
        farm.drain(&job.model).await,
        vec![
            tasks[1].id.clone(),
            tasks[2].id.clone(),
            tasks[3].id.clone()
        ],
        "every queued task is back, in order; the running one is not"
    );

    // A queue that lost only some ids gets them back too.
    assert_eq!(reconcile_once(&farm.app).await.expect("reconciler pass"), 3);
    farm.pop(&job.model).await;
    assert_eq!(reconcile_once(&farm.app).await.expect("reconciler pass"), 3);
    assert_eq!(
        farm.queued_ids(&job.model).await,
        3,
        "pushing again adds no duplicate"
    );
    assert_eq!(reconcile_once(&farm.app).await.expect("reconciler pass"), 0);
    assert_eq!(counts(&farm.get_job(&job.id).await), (3, 1, 0, 0, 0));
}
