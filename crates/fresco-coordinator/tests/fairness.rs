//! Fair sharing between tenants, through the real services: tenant A's
//! 10,000-task job is running on two workers when tenant B submits 20
//! tasks of the same model; B's job finishes in about the time its fair
//! share predicts (one of A's tasks per one of B's, at equal weights; one
//! per three at B's weight 3), not after A's backlog. Measured from the
//! store: A's tasks that succeeded between B's submission and B's last
//! completion. Run on the in-process queues and on Redis (a key prefix of
//! the test's own on the server `FRESCO_TEST_REDIS_URL` names; that half is
//! skipped, saying so, when it is not set). Also: Redis losing every key
//! mid-job costs nothing once the reconciler has run.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;

use std::time::Duration;

use common::{TestCoordinator, job_request};
use fresco_coordinator::{Settings, reconciler};
use fresco_core::params::DEFAULT_MODEL;
use fresco_core::{Caller, JobId, Role, TaskState};
use fresco_dispatch::{Dispatch, MemoryDispatch, RedisDispatch};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use tonic::Request;

/// The variable naming the test Redis server.
const REDIS_URL: &str = "FRESCO_TEST_REDIS_URL";

/// Redis dispatch under a key prefix of the test's own; `None`, said on
/// stderr, when no server is configured.
async fn redis(test: &str) -> Option<(Arc<dyn Dispatch>, String, String)> {
    let Ok(url) = std::env::var(REDIS_URL) else {
        eprintln!("SKIPPED {test} on Redis: {REDIS_URL} is not set");
        return None;
    };
    let prefix = format!("fairness-{}", uuid::Uuid::new_v4().simple());
    let dispatch = RedisDispatch::connect(&url, &prefix)
        .await
        .expect("connecting to redis");
    Some((Arc::new(dispatch), url, prefix))
}

/// Submits `request` as a submitter of `tenant`.
async fn submit_as(tc: &TestCoordinator, tenant: &str, request: pb::SubmitJobRequest) -> JobId {
    let mut request = Request::new(request);
    request.extensions_mut().insert(Caller::Client {
        key_id: Some(format!("key-of-{tenant}")),
        tenant: tenant.to_owned(),
        role: Role::Submitter,
    });
    let job = tc
        .jobs
        .submit_job(request)
        .await
        .expect("SubmitJob")
        .into_inner()
        .job
        .expect("a job");
    assert_eq!(job.tenant, tenant);
    job.id.parse().expect("a job id")
}

/// Writes a tenant's weight into the store's `tenants` table.
async fn set_weight(tc: &TestCoordinator, tenant: &str, weight: u32) {
    let url = format!("sqlite://{}", tc.database_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("the database");
    sqlx::query("INSERT INTO tenants (name, weight) VALUES (?1, ?2)")
        .bind(tenant)
        .bind(i64::from(weight))
        .execute(&pool)
        .await
        .expect("a tenants row");
    pool.close().await;
}

async fn count(tc: &TestCoordinator, job: JobId, state: TaskState) -> u64 {
    tc.app
        .store
        .get_job(job)
        .await
        .expect("the job")
        .counts
        .get(state)
        .to_owned()
}

/// Workers that each hold one task at a time, as daemons do: each step
/// completes the task claimed longest ago, and its worker pops and claims
/// the next one.
struct Workers<'a> {
    tc: &'a TestCoordinator,
    /// Each worker with its task, oldest claim first.
    running: VecDeque<(String, pb::ClaimTaskResponse)>,
}

impl<'a> Workers<'a> {
    async fn start(tc: &'a TestCoordinator, count: usize) -> Self {
        let mut workers = Self {
            tc,
            running: VecDeque::new(),
        };
        for i in 0..count {
            let id = tc.register(&format!("worker-{i}"), DEFAULT_MODEL).await;
            workers.take(id).await;
        }
        workers
    }

    /// Pops and claims the next task for `worker`, as its daemon does.
    async fn take(&mut self, worker: String) {
        let claimed = self.tc.take(&worker, DEFAULT_MODEL).await;
        self.running.push_back((worker, claimed));
    }

    /// Completes the oldest running task; its worker takes the next.
    async fn step(&mut self) {
        let worker = self.complete_oldest().await;
        self.take(worker).await;
    }

    /// Completes the oldest running task; returns its worker.
    async fn complete_oldest(&mut self) -> String {
        let (worker, claimed) = self.running.pop_front().expect("a running task");
        let task = claimed.task.expect("a claimed task");
        self.tc
            .complete(&worker, &task, claimed.attempt)
            .await
            .expect("CompleteTask");
        worker
    }

    /// Runs until the queues are empty and every worker is idle.
    async fn drain(&mut self) {
        while !self.running.is_empty() {
            let worker = self.complete_oldest().await;
            let next = self
                .tc
                .dispatch
                .pop(&[DEFAULT_MODEL.to_owned()], Duration::from_millis(300))
                .await
                .expect("pop");
            if let Some(popped) = next {
                let claimed = self
                    .tc
                    .claim(&worker, &popped.task.to_string())
                    .await
                    .expect("ClaimTask");
                self.running.push_back((worker, claimed));
            }
        }
    }
}

/// What one run measured.
#[derive(Debug)]
struct Share {
    /// A's tasks running when B submitted.
    in_flight: u64,
    /// A's tasks that succeeded between B's submission and B's last
    /// completion.
    a_during_b: u64,
    /// B's tasks (all succeeded).
    b_tasks: u64,
}

/// Tenant A's 10,000 tasks run on two workers; after 50, tenant B submits
/// 20 (with `b_weight` in the tenants table first, when given); runs until
/// B's job has finished, then cancels A's.
async fn a_long_job_then_a_short_one(dispatch: Arc<dyn Dispatch>, b_weight: Option<u32>) -> Share {
    let tc = TestCoordinator::start_with_dispatch(Settings::default(), dispatch).await;
    let a = submit_as(&tc, "a", job_request(10_000, 1, 3)).await;
    let mut workers = Workers::start(&tc, 2).await;
    for _ in 0..50 {
        workers.step().await;
    }
    if let Some(weight) = b_weight {
        set_weight(&tc, "b", weight).await;
    }
    let a_before = count(&tc, a, TaskState::Succeeded).await;
    let in_flight = count(&tc, a, TaskState::Running).await;
    let b = submit_as(&tc, "b", job_request(20, 1, 3)).await;
    let mut steps = 0;
    while count(&tc, b, TaskState::Succeeded).await < 20 {
        workers.step().await;
        steps += 1;
        assert!(steps < 10_000, "B's job never finished");
    }
    let a_during_b = count(&tc, a, TaskState::Succeeded).await - a_before;

    tc.jobs
        .cancel_job(Request::new(pb::CancelJobRequest {
            job_id: a.to_string(),
        }))
        .await
        .expect("CancelJob");
    assert_eq!(count(&tc, a, TaskState::Queued).await, 0);
    assert_eq!(
        tc.queued_ids(DEFAULT_MODEL).await,
        0,
        "A's cancelled tasks left the queues"
    );
    Share {
        in_flight,
        a_during_b,
        b_tasks: 20,
    }
}

/// B's job got its fair share: A's completions during it are within a
/// generous factor of the prediction, and far below A's backlog.
fn assert_fair(share: &Share, predicted: u64) {
    eprintln!("fair share: {share:?}, predicted {predicted} of A's");
    assert!(share.in_flight > 0, "A was running when B submitted");
    assert!(
        share.a_during_b <= 3 * predicted + share.in_flight,
        "B waited behind A: {share:?}, predicted {predicted}"
    );
    assert!(
        share.a_during_b >= predicted / 3,
        "A was starved while B ran: {share:?}, predicted {predicted}"
    );
}

/// The fair share of A's completions while B's `b_tasks` run at weights
/// 1 (A) and `b_weight` (B).
fn predicted(b_tasks: u64, b_weight: u64) -> u64 {
    b_tasks.div_ceil(b_weight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_weights_in_process() {
    let share = a_long_job_then_a_short_one(Arc::new(MemoryDispatch::new()), None).await;
    assert_fair(&share, predicted(share.b_tasks, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_three_in_process() {
    let share = a_long_job_then_a_short_one(Arc::new(MemoryDispatch::new()), Some(3)).await;
    assert_fair(&share, predicted(share.b_tasks, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_weights_on_redis() {
    let Some((dispatch, _, _)) = redis("equal_weights_on_redis").await else {
        return;
    };
    let share = a_long_job_then_a_short_one(dispatch, None).await;
    assert_fair(&share, predicted(share.b_tasks, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_three_on_redis() {
    let Some((dispatch, _, _)) = redis("weight_three_on_redis").await else {
        return;
    };
    let share = a_long_job_then_a_short_one(dispatch, Some(3)).await;
    assert_fair(&share, predicted(share.b_tasks, 3));
}

/// Every key under `prefix` in the Redis server at `url`, gone, as a
/// flushed or restarted Redis would have it (other tests share the server,
/// so not a `FLUSHALL`).
async fn lose_every_key(url: &str, prefix: &str) -> usize {
    let mut conn = redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    for key in &keys {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_every_key_mid_job_still_finishes_every_task() {
    let Some((dispatch, url, prefix)) = redis("redis_losing_every_key").await else {
        return;
    };
    let tc = TestCoordinator::start_with_dispatch(Settings::default(), dispatch).await;
    set_weight(&tc, "b", 3).await;
    let a = submit_as(&tc, "a", job_request(60, 1, 3)).await;
    let b = submit_as(&tc, "b", job_request(40, 1, 3)).await;
    let mut workers = Workers::start(&tc, 2).await;
    for _ in 0..20 {
        workers.step().await;
    }
    let a_done = count(&tc, a, TaskState::Succeeded).await;
    let b_done = count(&tc, b, TaskState::Succeeded).await;
    assert!(b_done > a_done, "B's weight counted: {a_done} vs {b_done}");

    assert!(lose_every_key(&url, &prefix).await >= 4);
    assert_eq!(tc.queued_ids(DEFAULT_MODEL).await, 0, "the queues are gone");
    let pushed = reconciler::reconcile_once(&tc.app).await.expect("a pass");
    let queued = count(&tc, a, TaskState::Queued).await + count(&tc, b, TaskState::Queued).await;
    assert_eq!(pushed, queued, "every queued task pushed again");
    assert_eq!(tc.queued_ids(DEFAULT_MODEL).await, queued);

    // The weights came back with the pass: B still takes three turns to A's
    // one while both have work.
    let before = (
        count(&tc, a, TaskState::Succeeded).await,
        count(&tc, b, TaskState::Succeeded).await,
    );
    for _ in 0..20 {
        workers.step().await;
    }
    let a_more = count(&tc, a, TaskState::Succeeded).await - before.0;
    let b_more = count(&tc, b, TaskState::Succeeded).await - before.1;
    assert!(
        b_more >= 2 * a_more,
        "after the loss: A {a_more}, B {b_more}"
    );

    workers.drain().await;
    assert_eq!(count(&tc, a, TaskState::Succeeded).await, 60);
    assert_eq!(count(&tc, b, TaskState::Succeeded).await, 40);
}
