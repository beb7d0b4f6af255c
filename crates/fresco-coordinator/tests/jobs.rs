//! The client API on a coordinator over SQLite and in-process queues:
//! submissions stored whole or not at all, cancelling a job or one task.

mod common;

use common::{TestCoordinator, counts, job_request, refused};
use fresco_coordinator::Settings;
use fresco_core::TaskState;
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_store::JobFilter;
use tonic::{Code, Request};

#[tokio::test]
async fn a_submission_stores_every_task_and_queues_it() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(3, 2, 0)).await.expect("SubmitJob");

    assert_eq!(job.task_count, 3);
    assert_eq!(counts(&job), (3, 0, 0, 0, 0));
    assert!(!job.finished);
    assert_eq!(job.name, "coordinator test");
    assert_eq!(job.owner, "tests");
    assert_eq!(
        farm.get_job(&job.id).await,
        job,
        "GetJob reads the stored job"
    );

    let stored = farm.stored_tasks(&job.id).await;
    assert_eq!(stored.len(), 3);
    for (i, task) in stored.iter().enumerate() {
        assert_eq!(task.index, i as u32);
        assert_eq!(task.state, TaskState::Queued);
        assert_eq!(task.attempt, 0);
        assert_eq!(task.spec.prompt, format!("prompt {i}"));
        assert_eq!(task.spec.seed, 1000 + i as u64);
        assert_eq!(
            (task.spec.steps, task.spec.n),
            (4, 2),
            "the job defaults apply"
        );
    }
    let listed = farm.tasks(&job.id).await;
    assert_eq!(
        listed.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        stored.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(),
        "ListTasks returns the stored tasks in index order"
    );
    assert_eq!(
        farm.queued_ids(&job.model).await,
        3,
        "every task is dispatched"
    );
}

#[tokio::test]
async fn a_resubmission_with_the_same_request_id_is_stored_once() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let request = pb::SubmitJobRequest {
        request_id: "submit-once".into(),
        ..job_request(2, 1, 0)
    };
    let first = farm.submit(request.clone()).await.expect("SubmitJob");
    let again = farm
        .jobs
        .submit_job(Request::new(request))
        .await
        .expect("SubmitJob again")
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.job.expect("the stored job").id, first.id);
    let jobs = farm
        .app
        .store
        .list_jobs(10, &JobFilter::default())
        .await
        .expect("list jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(farm.stored_tasks(&first.id).await.len(), 2);
    assert_eq!(farm.queued_ids(&first.model).await, 2);
}

#[tokio::test]
async fn a_bad_field_is_invalid_argument_and_stores_nothing() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let mut request = job_request(3, 1, 0);
    request.tasks[1].steps = Some(0);
    let message = refused(farm.submit(request).await, Code::InvalidArgument);
    assert!(message.contains("tasks[1].steps"), "{message}");

    let unknown = pb::SubmitJobRequest {
        model: "no-such-model".into(),
        ..job_request(1, 1, 0)
    };
    let message = refused(farm.submit(unknown).await, Code::InvalidArgument);
    assert!(message.contains("model"), "{message}");

    let jobs = farm
        .app
        .store
        .list_jobs(10, &JobFilter::default())
        .await
        .expect("list jobs");
    assert!(jobs.is_empty(), "nothing is stored: {jobs:?}");
    let queued = farm.app.store.queued_counts().await.expect("queued counts");
    assert!(queued.is_empty(), "nothing is queued: {queued:?}");
}

#[tokio::test]
async fn cancelling_a_job_ends_its_queued_and_running_tasks() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(3, 1, 0)).await.expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    let running = farm.take(&worker, &job.model).await;
    let running_task = running.task.expect("the claimed task");

    let cancelled = farm
        .jobs
        .cancel_job(Request::new(pb::CancelJobRequest {
            job_id: job.id.clone(),
        }))
        .await
        .expect("CancelJob")
        .into_inner();
    assert_eq!(counts(&cancelled), (0, 0, 0, 0, 3));
    assert!(cancelled.finished);
    assert_eq!(farm.get_job(&job.id).await, cancelled);
    for task in farm.stored_tasks(&job.id).await {
        assert_eq!(task.state, TaskState::Cancelled, "task {}", task.index);
    }
    assert_eq!(
        farm.queued_ids(&job.model).await,
        0,
        "the queue holds none of them"
    );

    let beat = farm
        .heartbeat(&worker, &running_task.id, running.attempt, 1)
        .await;
    assert!(beat.cancel, "the running task's worker is told to stop");
    let late = farm.complete(&worker, &running_task, running.attempt).await;
    refused(late, Code::FailedPrecondition);
    assert!(farm.get_task(&running_task.id).await.outputs.is_empty());
}

#[tokio::test]
async fn cancelling_one_task_leaves_the_others_queued() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm.submit(job_request(3, 1, 0)).await.expect("SubmitJob");
    let tasks = farm.tasks(&job.id).await;

    let cancel = |task_id: String| {
        farm.jobs
            .cancel_task(Request::new(pb::CancelTaskRequest { task_id }))
    };
    let cancelled = cancel(tasks[1].id.clone())
        .await
        .expect("CancelTask")
        .into_inner();
    assert_eq!(cancelled.state, pb::TaskState::Cancelled as i32);
    assert_eq!(farm.get_task(&tasks[1].id).await, cancelled);
    assert_eq!(counts(&farm.get_job(&job.id).await), (2, 0, 0, 0, 1));
    assert_eq!(farm.queued_ids(&job.model).await, 2);
    let left = farm.drain(&job.model).await;
    assert_eq!(left, vec![tasks[0].id.clone(), tasks[2].id.clone()]);

    let again = cancel(tasks[1].id.clone()).await;
    refused(again, Code::FailedPrecondition);
    assert_eq!(
        farm.stored_task(&tasks[0].id).await.state,
        TaskState::Queued,
        "the other tasks stay queued"
    );
}
