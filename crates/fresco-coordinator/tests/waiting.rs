//! Why a stuck job waits, what a submission is warned of, and deadlines: on
//! a coordinator over SQLite and in-process queues, read back through the
//! API as `fresco status` reads it.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{TestCoordinator, counts, job_request, refused, time, wait_past};
use fresco_coordinator::Settings;
use fresco_coordinator::deadlines::expire_once;
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_store::Backoff;
use tonic::{Code, Request};

/// Submits `request`; returns the job and the warnings.
async fn submit(farm: &TestCoordinator, request: pb::SubmitJobRequest) -> (pb::Job, Vec<String>) {
    let response = farm
        .jobs
        .submit_job(Request::new(request))
        .await
        .expect("SubmitJob")
        .into_inner();
    (response.job.expect("a job"), response.warnings)
}

async fn reason(farm: &TestCoordinator, job: &pb::Job) -> String {
    farm.get_job(&job.id).await.waiting_reason
}

#[tokio::test]
async fn a_job_a_live_worker_can_take_waits_for_nothing_and_is_not_warned() {
    let farm = TestCoordinator::start(Settings::default()).await;
    farm.register("w1", fresco_core::params::DEFAULT_MODEL)
        .await;
    let (job, warnings) = submit(&farm, job_request(2, 1, 3)).await;
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(job.waiting_reason, "");
    assert_eq!(reason(&farm, &job).await, "");
}

#[tokio::test]
async fn a_model_no_worker_ever_served_is_warned_of_and_explains_the_wait() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let (job, warnings) = submit(&farm, job_request(1, 1, 3)).await;
    let expected = format!("no worker has ever served model {}", job.model);
    assert_eq!(
        warnings,
        std::slice::from_ref(&expected),
        "a built-in model is no exception"
    );
    assert_eq!(job.waiting_reason, expected);
    assert_eq!(reason(&farm, &job).await, expected);
    let listed = farm
        .jobs
        .list_jobs(Request::new(pb::ListJobsRequest::default()))
        .await
        .expect("ListJobs")
        .into_inner()
        .jobs;
    assert_eq!(listed[0].waiting_reason, expected, "ListJobs explains too");
}

#[tokio::test]
async fn a_model_whose_workers_went_quiet_says_when_one_was_last_seen() {
    let lease = Duration::from_millis(200);
    let farm = TestCoordinator::start(Settings {
        lease,
        ..Settings::default()
    })
    .await;
    let model = fresco_core::params::DEFAULT_MODEL;
    farm.register("w1", model).await;
    let (job, warnings) = submit(&farm, job_request(1, 1, 3)).await;
    assert_eq!(warnings, Vec::<String>::new(), "live at submission");
    // Live means seen within two leases.
    wait_past(Utc::now() + lease * 2).await;
    let why = reason(&farm, &job).await;
    let prefix = format!("no live worker serves model {model} (last seen ");
    assert!(
        why.starts_with(&prefix) && why.ends_with(" s ago)"),
        "{why}"
    );
    let (_, warnings) = submit(&farm, job_request(1, 1, 3)).await;
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with(&prefix), "{warnings:?}");
}

#[tokio::test]
async fn a_model_whose_live_workers_are_all_quarantined_says_so() {
    let farm = TestCoordinator::start(Settings {
        quarantine_after: 1,
        retry_backoff: Backoff::NONE,
        ..Settings::default()
    })
    .await;
    let (job, _) = submit(&farm, job_request(1, 1, 3)).await;
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("a task");
    farm.fail(&worker, &task.id, claim.attempt, "device lost", false)
        .await
        .expect("FailTask");
    assert_eq!(
        reason(&farm, &job).await,
        format!("every worker serving {} is quarantined", job.model)
    );
    let (_, warnings) = submit(&farm, job_request(1, 1, 3)).await;
    assert_eq!(
        warnings,
        [format!("every worker serving {} is quarantined", job.model)]
    );
}

#[tokio::test]
async fn a_job_whose_queued_tasks_all_back_off_says_until_when() {
    let farm = TestCoordinator::start(Settings {
        retry_backoff: Backoff {
            base: Duration::from_secs(600),
            max: Duration::from_secs(600),
        },
        ..Settings::default()
    })
    .await;
    let (job, _) = submit(&farm, job_request(1, 1, 3)).await;
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let task = claim.task.expect("a task");
    assert_eq!(reason(&farm, &job).await, "", "running: nothing waits");
    let before = Utc::now();
    farm.fail(&worker, &task.id, claim.attempt, "boom", false)
        .await
        .expect("FailTask");
    let why = reason(&farm, &job).await;
    let until = why
        .strip_prefix("waiting for retry backoff until ")
        .unwrap_or_else(|| panic!("{why}"));
    assert!(
        until.ends_with('Z') && !until.contains('.'),
        "UTC, seconds: {until}"
    );
    let until: DateTime<Utc> = until.parse().expect("RFC 3339");
    let waits = (until - before).num_seconds();
    assert!((299..=600).contains(&waits), "backoff of {waits} s");
}

#[tokio::test]
async fn a_paused_job_says_paused_until_resumed() {
    let farm = TestCoordinator::start(Settings::default()).await;
    farm.register("w1", fresco_core::params::DEFAULT_MODEL)
        .await;
    let (job, _) = submit(&farm, job_request(2, 1, 3)).await;
    let paused = farm
        .jobs
        .pause_job(Request::new(pb::PauseJobRequest {
            job_id: job.id.clone(),
        }))
        .await
        .expect("PauseJob")
        .into_inner();
    assert_eq!(paused.waiting_reason, "paused");
    assert_eq!(reason(&farm, &job).await, "paused");
    let resumed = farm
        .jobs
        .resume_job(Request::new(pb::ResumeJobRequest {
            job_id: job.id.clone(),
        }))
        .await
        .expect("ResumeJob")
        .into_inner();
    assert_eq!(resumed.waiting_reason, "");
}

#[tokio::test]
async fn queued_tasks_fail_at_the_deadline_and_running_ones_finish() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let request = pb::SubmitJobRequest {
        deadline_seconds: 1,
        ..job_request(3, 1, 3)
    };
    let (job, _) = submit(&farm, request).await;
    let deadline = time(job.deadline);
    let after = (deadline - time(job.created_at)).num_milliseconds();
    assert!(
        (999..=1001).contains(&after),
        "deadline {after} ms after creation"
    );
    let worker = farm.register("w1", &job.model).await;
    let claim = farm.take(&worker, &job.model).await;
    let running = claim.task.expect("a task");
    assert_eq!(expire_once(&farm.app).await.expect("pass"), 0, "not yet");

    wait_past(deadline).await;
    assert_eq!(expire_once(&farm.app).await.expect("pass"), 2);
    assert_eq!(farm.queued_ids(&job.model).await, 0, "out of dispatch");
    let message = format!(
        "deadline {} passed while the task was still queued",
        deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for task in farm.tasks(&job.id).await {
        if task.id == running.id {
            assert_eq!(task.state, pb::TaskState::Running as i32);
            continue;
        }
        assert_eq!(task.state, pb::TaskState::Failed as i32);
        assert_eq!(task.errors.len(), 1);
        assert_eq!(task.errors[0].message, message);
    }
    farm.complete(&worker, &running, claim.attempt)
        .await
        .expect("the running task finishes");
    let done = farm.get_job(&job.id).await;
    assert_eq!(counts(&done), (0, 0, 1, 2, 0));
    assert!(done.finished);
    assert_eq!(done.waiting_reason, "");
}

#[tokio::test]
async fn the_queue_timeout_is_the_deadline_of_a_job_that_sets_none() {
    let farm = TestCoordinator::start(Settings {
        queue_timeout: Some(Duration::from_secs(3600)),
        ..Settings::default()
    })
    .await;
    let (job, _) = submit(&farm, job_request(1, 1, 3)).await;
    let after = (time(job.deadline) - time(job.created_at)).num_seconds();
    assert_eq!(after, 3600);
    let own = pb::SubmitJobRequest {
        deadline_seconds: 60,
        ..job_request(1, 1, 3)
    };
    let (job, _) = submit(&farm, own).await;
    assert_eq!(
        (time(job.deadline) - time(job.created_at)).num_seconds(),
        60
    );

    let untimed = TestCoordinator::start(Settings::default()).await;
    let (job, _) = submit(&untimed, job_request(1, 1, 3)).await;
    assert_eq!(job.deadline, None, "no queue timeout: no deadline");
}

#[tokio::test]
async fn a_deadline_beyond_the_limit_is_refused_naming_the_field() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let request = pb::SubmitJobRequest {
        deadline_seconds: 30 * 24 * 3600 + 1,
        ..job_request(1, 1, 3)
    };
    let message = refused(
        farm.jobs.submit_job(Request::new(request)).await,
        Code::InvalidArgument,
    );
    assert!(
        message.contains("deadline_seconds") && message.contains("must be at most 2592000 seconds"),
        "{message}"
    );
}
