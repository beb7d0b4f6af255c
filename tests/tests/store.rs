//! The Postgres store on a real server: the state machine's edges, fencing
//! tokens, lease expiry and attempts, all-or-nothing submissions.

use std::time::Duration;

use fresco_core::{JobSpec, TaskSpec, TaskState, WorkerId};
use fresco_e2e::{Services, TestDatabase};
use fresco_store::{
    FailOutcome, Heartbeat, JobStore, Lease, LeaseToken, OutputRecord, PgStore, StoreError,
    WorkerInfo,
};

fn spec(tasks: usize, max_attempts: u32) -> JobSpec {
    JobSpec {
        name: "test".into(),
        owner: "me".into(),
        model: "tiny-random-dit".into(),
        priority: 0,
        max_attempts,
        tasks: (0..tasks)
            .map(|i| TaskSpec {
                prompt: format!("prompt {i}"),
                negative_prompt: String::new(),
                seed: u64::MAX - i as u64,
                steps: 4,
                width: 32,
                height: 32,
                guidance: 4.0,
                n: 1,
                sampler: "euler".into(),
            })
            .collect(),
    }
}

async fn store() -> PgStore {
    let db = TestDatabase::create(&Services::from_env()).await;
    PgStore::connect(&db.url)
        .await
        .expect("connecting the store")
}

async fn worker(store: &PgStore) -> WorkerId {
    let id = WorkerId::new();
    store
        .register_worker(&WorkerInfo {
            id,
            name: "w".into(),
            device: "cpu".into(),
            models: vec!["tiny-random-dit".into()],
            loaded_models: vec![],
        })
        .await
        .expect("registering");
    id
}

fn output(key: &str) -> OutputRecord {
    OutputRecord {
        index: 0,
        key: key.into(),
        width: 32,
        height: 32,
        seed: 1,
        bytes: 10,
    }
}

#[tokio::test]
async fn a_submission_stores_every_task_in_order() {
    let store = store().await;
    let submitted = store.submit(&spec(12_345, 3)).await.expect("submit");
    assert_eq!(submitted.tasks.len(), 12_345);
    assert!(submitted.tasks.windows(2).all(|w| w[0].seq < w[1].seq));
    let job = store.get_job(submitted.job.id).await.expect("get_job");
    assert_eq!(job.counts.get(TaskState::Queued), 12_345);
    let task = store
        .get_task(submitted.tasks[7].id)
        .await
        .expect("get_task");
    assert_eq!(task.index, 7);
    assert_eq!(
        task.spec.seed,
        u64::MAX - 7,
        "u64 seeds survive the BIGINT column"
    );
}

#[tokio::test]
async fn claims_and_reports_follow_the_state_machine() {
    let store = store().await;
    let w = worker(&store).await;
    let submitted = store.submit(&spec(2, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;
    let lease = Duration::from_secs(30);

    // queued → succeeded is not an edge.
    let token = LeaseToken {
        task,
        worker: w,
        attempt: 1,
    };
    assert!(matches!(
        store.complete(&token, &[output("k0")]).await,
        Err(StoreError::Conflict(_))
    ));

    let claim = store.claim(task, w, lease).await.expect("claim");
    assert_eq!(claim.attempt, 1);
    assert_eq!(claim.task.state, TaskState::Running);
    // running → running (a second claim) is refused.
    assert!(matches!(
        store.claim(task, w, lease).await,
        Err(StoreError::Conflict(_))
    ));

    let beat = Heartbeat {
        lease: token,
        step: 2,
    };
    assert!(matches!(
        store.heartbeat(&beat, lease).await.expect("heartbeat"),
        Lease::Extended(_)
    ));
    assert_eq!(store.get_task(task).await.expect("task").progress_step, 2);

    store
        .complete(&token, &[output("k0")])
        .await
        .expect("complete");
    let done = store.get_task(task).await.expect("task");
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.outputs, vec![output("k0")]);
    // Terminal: no claim, no second completion, no failure, no heartbeat.
    assert!(matches!(
        store.claim(task, w, lease).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.complete(&token, &[output("k1")]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.fail(&token, "late", false).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.heartbeat(&beat, lease).await.expect("heartbeat"),
        Lease::Lost
    );
    assert!(matches!(
        store.claim(fresco_core::TaskId::new(), w, lease).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_stale_fencing_token_is_refused() {
    let store = store().await;
    let w1 = worker(&store).await;
    let w2 = worker(&store).await;
    let submitted = store.submit(&spec(1, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;

    // w1's lease expires; w2 claims attempt 2.
    store
        .claim(task, w1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let expired = store.expire_leases().await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].state, TaskState::Queued);
    let claim = store
        .claim(task, w2, Duration::from_secs(30))
        .await
        .expect("reclaim");
    assert_eq!(claim.attempt, 2);

    // w1 comes back late: every write with attempt 1 is refused.
    let stale = LeaseToken {
        task,
        worker: w1,
        attempt: 1,
    };
    assert!(matches!(
        store.complete(&stale, &[output("stale")]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.fail(&stale, "x", false).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .heartbeat(
                &Heartbeat {
                    lease: stale,
                    step: 1
                },
                Duration::from_secs(30)
            )
            .await
            .expect("hb"),
        Lease::Lost
    );
    // Even the right attempt from the wrong worker is refused.
    let wrong = LeaseToken {
        task,
        worker: w1,
        attempt: 2,
    };
    assert!(matches!(
        store.complete(&wrong, &[output("wrong")]).await,
        Err(StoreError::Conflict(_))
    ));

    let winner = LeaseToken {
        task,
        worker: w2,
        attempt: 2,
    };
    store
        .complete(&winner, &[output("winner")])
        .await
        .expect("winner completes");
    let done = store.get_task(task).await.expect("task");
    assert_eq!(done.outputs, vec![output("winner")]);
    assert_eq!(
        done.errors.len(),
        1,
        "the expired attempt is in the history"
    );
    assert!(done.errors[0].message.contains("lease expired"));
}

#[tokio::test]
async fn attempts_run_out_and_the_history_is_kept() {
    let store = store().await;
    let w = worker(&store).await;
    let submitted = store.submit(&spec(1, 2)).await.expect("submit");
    let task = submitted.tasks[0].id;
    let lease = Duration::from_secs(30);

    let c1 = store.claim(task, w, lease).await.expect("claim 1");
    let t1 = LeaseToken {
        task,
        worker: w,
        attempt: c1.attempt,
    };
    assert!(matches!(
        store.fail(&t1, "out of memory", false).await.expect("fail"),
        FailOutcome::Requeued(_)
    ));

    // Giving a task back does not use up an attempt.
    let c2 = store.claim(task, w, lease).await.expect("claim 2");
    let t2 = LeaseToken {
        task,
        worker: w,
        attempt: c2.attempt,
    };
    assert!(matches!(
        store
            .fail(&t2, "shutting down", true)
            .await
            .expect("give back"),
        FailOutcome::Requeued(_)
    ));

    let c3 = store.claim(task, w, lease).await.expect("claim 3");
    let t3 = LeaseToken {
        task,
        worker: w,
        attempt: c3.attempt,
    };
    assert_eq!(
        store
            .fail(&t3, "nan in latents", false)
            .await
            .expect("fail"),
        FailOutcome::Failed
    );

    let failed = store.get_task(task).await.expect("task");
    assert_eq!(failed.state, TaskState::Failed);
    let messages: Vec<_> = failed
        .errors
        .iter()
        .map(|e| (e.attempt, e.message.as_str()))
        .collect();
    assert_eq!(messages, vec![(1, "out of memory"), (3, "nan in latents")]);
    assert!(matches!(
        store.claim(task, w, lease).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn expired_leases_past_the_last_attempt_fail_the_task() {
    let store = store().await;
    let w = worker(&store).await;
    let submitted = store.submit(&spec(1, 1)).await.expect("submit");
    let task = submitted.tasks[0].id;
    store
        .claim(task, w, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let expired = store.expire_leases().await.expect("expire");
    assert_eq!(expired[0].state, TaskState::Failed);
    let failed = store.get_task(task).await.expect("task");
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.lease_expires_at, None);
    assert!(
        store
            .expire_leases()
            .await
            .expect("expire again")
            .is_empty()
    );
}

#[tokio::test]
async fn cancelling_a_job_cancels_queued_and_running_tasks() {
    let store = store().await;
    let w = worker(&store).await;
    let submitted = store.submit(&spec(3, 3)).await.expect("submit");
    let running = submitted.tasks[0].id;
    let claim = store
        .claim(running, w, Duration::from_secs(30))
        .await
        .expect("claim");
    let cancelled = store.cancel_job(submitted.job.id).await.expect("cancel");
    assert_eq!(cancelled.len(), 3);
    let token = LeaseToken {
        task: running,
        worker: w,
        attempt: claim.attempt,
    };
    assert_eq!(
        store
            .heartbeat(
                &Heartbeat {
                    lease: token,
                    step: 1
                },
                Duration::from_secs(30)
            )
            .await
            .expect("hb"),
        Lease::Lost,
        "the worker learns through its heartbeat"
    );
    assert!(matches!(
        store.complete(&token, &[output("late")]).await,
        Err(StoreError::Conflict(_))
    ));
    let job = store.get_job(submitted.job.id).await.expect("job");
    assert_eq!(job.counts.get(TaskState::Cancelled), 3);
    assert!(fresco_store::is_finished(&job.counts));
}
