//! `WatchJob` at scale: every stream of a job follows one shared poll (the
//! coordinator's `WatchHub`), on a coordinator over SQLite and in-process
//! queues. Many watchers of an unchanging job cost one store read per
//! interval; each still gets the job at once, each change, and the final
//! state; a watcher joining late starts from the newest state; the poller
//! stops once its last watcher leaves, and on shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{PATIENCE, TestCoordinator, job_request};
use fresco_coordinator::Settings;
use fresco_coordinator::watch_hub::HubCounts;
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};

type Watch = <fresco_coordinator::jobs::JobApi as JobService>::WatchJobStream;

/// A coordinator whose watches poll every `interval`.
async fn farm(interval: Duration) -> TestCoordinator {
    TestCoordinator::start(Settings {
        watch_interval: interval,
        ..Settings::default()
    })
    .await
}

async fn watch(farm: &TestCoordinator, job_id: &str) -> Watch {
    farm.jobs
        .watch_job(Request::new(pb::WatchJobRequest {
            job_id: job_id.to_owned(),
        }))
        .await
        .expect("WatchJob")
        .into_inner()
}

/// The next message of `stream`, waiting up to [`PATIENCE`].
async fn next(stream: &mut Watch) -> Option<Result<pb::Job, Status>> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a message, or the stream's end, in time")
}

async fn next_job(stream: &mut Watch) -> pb::Job {
    next(stream)
        .await
        .expect("the stream goes on")
        .expect("a job, not an error")
}

/// Waits up to [`PATIENCE`] until the hub's counts satisfy `ready`.
async fn counts_until(
    counts: &mut watch::Receiver<HubCounts>,
    what: &str,
    ready: impl FnMut(&HubCounts) -> bool,
) -> HubCounts {
    let seen = tokio::time::timeout(PATIENCE, counts.wait_for(ready))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("the hub lives as long as the coordinator");
    *seen
}

async fn pause(farm: &TestCoordinator, job_id: &str) {
    farm.jobs
        .pause_job(Request::new(pb::PauseJobRequest {
            job_id: job_id.to_owned(),
        }))
        .await
        .expect("PauseJob");
}

async fn cancel(farm: &TestCoordinator, job_id: &str) {
    farm.jobs
        .cancel_job(Request::new(pb::CancelJobRequest {
            job_id: job_id.to_owned(),
        }))
        .await
        .expect("CancelJob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_watchers_of_a_job_share_one_poll_and_each_sees_every_change() {
    let interval = Duration::from_millis(20);
    let farm = farm(interval).await;
    let mut counts = farm.app.watches.counts();
    // No worker serves the model: nothing moves the job but this test.
    let job = farm.submit(job_request(3, 1, 1)).await.expect("SubmitJob");

    let mut watchers = Vec::new();
    for _ in 0..20 {
        let mut stream = watch(&farm, &job.id).await;
        let first = next_job(&mut stream).await;
        assert_eq!(first.id, job.id);
        assert_eq!(first.counts.expect("counts").queued, 3, "{first:?}");
        watchers.push(stream);
    }
    let before = *counts.borrow();
    assert_eq!((before.pollers, before.started), (1, 1), "{before:?}");

    // Twenty watchers each polling on their own would read twenty times an
    // interval; the shared poller reads once, each read after a full
    // interval's wait, so never more than one per interval passed.
    let started = Instant::now();
    let after = counts_until(&mut counts, "ten shared polls", |c| {
        c.polls >= before.polls + 10
    })
    .await;
    let intervals = started.elapsed().as_millis() / interval.as_millis();
    let polls = u128::from(after.polls - before.polls);
    assert!(
        polls <= 2 * intervals + 2,
        "{polls} polls in {intervals} intervals for 20 watchers"
    );
    assert_eq!((after.pollers, after.started), (1, 1), "{after:?}");

    pause(&farm, &job.id).await;
    for stream in &mut watchers {
        let paused = next_job(stream).await;
        assert!(paused.paused, "each watcher hears of the pause: {paused:?}");
    }
    cancel(&farm, &job.id).await;
    for stream in &mut watchers {
        let last = next_job(stream).await;
        assert!(last.finished, "each watcher gets the final state: {last:?}");
        assert_eq!(last.counts.expect("counts").cancelled, 3, "{last:?}");
        assert!(
            next(stream).await.is_none(),
            "the stream ends once finished"
        );
    }
    counts_until(&mut counts, "the poller to stop", |c| c.pollers == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_stops_when_the_last_watcher_leaves() {
    let farm = farm(Duration::from_millis(20)).await;
    let mut counts = farm.app.watches.counts();
    let job = farm.submit(job_request(1, 1, 1)).await.expect("SubmitJob");

    let mut watchers = Vec::new();
    for _ in 0..3 {
        let mut stream = watch(&farm, &job.id).await;
        next_job(&mut stream).await;
        watchers.push(stream);
    }
    watchers.truncate(1);
    let polls = counts.borrow().polls;
    let going = counts_until(&mut counts, "polls for the one left", |c| {
        c.polls >= polls + 2
    })
    .await;
    assert_eq!(going.pollers, 1, "one watcher keeps the poller: {going:?}");

    drop(watchers);
    let stopped = counts_until(&mut counts, "the poller to stop", |c| c.pollers == 0).await;
    assert_eq!(stopped.started, 1, "{stopped:?}");

    // A watcher after that starts a poller of its own, from the job now.
    let mut again = watch(&farm, &job.id).await;
    assert_eq!(next_job(&mut again).await.id, job.id);
    assert_eq!(counts.borrow().started, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_watcher_starts_from_the_newest_state_and_shares_it() {
    // A poller that never reads during the test: what the watchers see
    // comes from their own reads at subscription.
    let farm = farm(Duration::from_secs(3600)).await;
    let counts = farm.app.watches.counts();
    let job = farm.submit(job_request(2, 1, 1)).await.expect("SubmitJob");

    let mut early = watch(&farm, &job.id).await;
    assert!(!next_job(&mut early).await.paused);
    pause(&farm, &job.id).await;
    let mut late = watch(&farm, &job.id).await;
    assert!(
        next_job(&mut late).await.paused,
        "the late watcher starts from its own, newer read"
    );
    assert!(
        next_job(&mut early).await.paused,
        "the early watcher hears of the late one's newer read"
    );
    let now = *counts.borrow();
    assert_eq!((now.polls, now.started), (0, 1), "{now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_answers_once_with_no_poller() {
    let farm = farm(Duration::from_millis(20)).await;
    let job = farm.submit(job_request(1, 1, 1)).await.expect("SubmitJob");
    cancel(&farm, &job.id).await;

    let mut stream = watch(&farm, &job.id).await;
    assert!(next_job(&mut stream).await.finished);
    assert!(next(&mut stream).await.is_none());
    assert_eq!(farm.app.watches.counts().borrow().started, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_end_unavailable_when_the_coordinator_shuts_down() {
    let farm = farm(Duration::from_millis(20)).await;
    let mut counts = farm.app.watches.counts();
    let job = farm.submit(job_request(1, 1, 1)).await.expect("SubmitJob");
    let mut stream = watch(&farm, &job.id).await;
    next_job(&mut stream).await;

    farm.jobs.shutdown.cancel();
    let ended = next(&mut stream)
        .await
        .expect("the stream answers the shutdown");
    let status = ended.expect_err("an error, not a job");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    counts_until(&mut counts, "the poller to stop", |c| c.pollers == 0).await;
}

#[tokio::test]
async fn an_unknown_job_is_refused_before_any_poller_starts() {
    let farm = farm(Duration::from_millis(20)).await;
    let refused = farm
        .jobs
        .watch_job(Request::new(pb::WatchJobRequest {
            job_id: uuid::Uuid::new_v4().to_string(),
        }))
        .await
        .map(|_| ());
    assert_eq!(refused.expect_err("refused").code(), Code::NotFound);
    assert_eq!(farm.app.watches.counts().borrow().started, 0);
}
