//! The store conformance suite: every test runs against both
//! [`JobStore`]s, Postgres on a real server (a database of its own per test,
//! when `FRESCO_TEST_DATABASE_URL` names one; skipped, saying so, when not)
//! and SQLite in a temp file, so the embedded store of `fresco dev` keeps
//! the production store's semantics: the state machine's edges, fencing
//! tokens, lease expiry and attempts, all-or-nothing submissions, dispatch
//! order, and claims racing each other.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use fresco_core::capabilities::Family;
use fresco_core::params::Schedule;
use fresco_core::sweep::{Size, Sweep, SweepPrompt};
use fresco_core::{
    FailureKind, JobId, JobSpec, ModelCapabilities, Role, TaskId, TaskSpec, TaskState, WorkerId,
};
use fresco_store::{
    AttemptOutcome, Backoff, Completion, CompletionReport, FailOutcome, FailReport, Heartbeat,
    JobFilter, JobStore, KeyScope, Lease, LeaseToken, ManifestDue, NewApiKey, OutputRecord,
    PgStore, RECENT_ERRORS, SqliteStore, StoreError, TaskQuery, TenantLimits, TenantSettings,
    TenantUsage, WorkerHealth, WorkerInfo, WorkerStatus,
};

mod support;

type Store = Arc<dyn JobStore>;

/// A store under test and what must outlive it.
struct Fixture {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

/// A Postgres store on a database of the test's own; `None` when no
/// Postgres server is configured.
async fn postgres(test: &str) -> Option<Fixture> {
    let url = support::fresh_database(test).await?;
    let store = PgStore::connect(&url).await.expect("connecting the store");
    Some(Fixture {
        store: Arc::new(store),
        _dir: None,
    })
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    // A directory that does not exist yet: open creates it.
    let store = SqliteStore::open(&dir.path().join("farm").join("fresco.db"))
        .await
        .expect("opening the store");
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// Expands each test body `async fn name(store: Store)` into a module
/// `name` with one test per store.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let Some(fixture) = super::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(fixture.store.clone()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let fixture = super::sqlite().await;
                    super::$name(fixture.store.clone()).await;
                }
            }
        )*
    };
}

conformance!(
    a_submission_stores_every_task_in_order,
    claims_and_reports_follow_the_state_machine,
    a_stale_fencing_token_is_refused,
    attempts_run_out_and_the_history_is_kept,
    expired_leases_past_the_last_attempt_fail_the_task,
    cancelling_a_job_cancels_queued_and_running_tasks,
    releasing_running_tasks_requeues_them_without_a_failure,
    heartbeat_progress_is_capped_at_the_steps,
    jobs_are_listed_newest_first_per_owner,
    queued_tasks_page_in_dispatch_order_per_model,
    served_models_are_the_union_of_registered_workers,
    outputs_are_known_by_key,
    a_jobs_outputs_are_listed_in_order_and_only_its_own,
    concurrent_claims_take_every_task_exactly_once,
    a_paused_job_is_neither_dispatched_nor_claimed_until_resumed,
    a_retried_job_queues_its_failed_tasks_with_their_history,
    cancelling_one_task_leaves_the_others,
    workers_are_listed_with_loaded_models_and_running_tasks,
    a_failed_task_waits_out_its_backoff,
    a_task_is_not_handed_again_to_a_worker_that_failed_it,
    a_worker_failing_in_a_row_is_quarantined,
    a_workers_recent_errors_keep_its_last_failures,
    a_quarantined_worker_goes_on_probation_after_its_cooldown,
    an_operator_releases_a_quarantined_worker,
    a_draining_worker_finishes_its_task_and_claims_nothing_more,
    a_worker_on_probation_claims_one_probe_at_a_time,
    a_probe_that_fails_quarantines_the_worker_again,
    a_request_failure_fails_the_task_at_once,
    a_submission_sent_again_with_its_request_id_is_stored_once,
    a_completion_reported_again_is_recorded_once,
    a_job_tells_its_deadline_and_how_its_queued_tasks_stand_against_backoff,
    model_workers_count_live_and_quarantined_workers,
    queued_tasks_past_their_jobs_deadline_fail_and_running_ones_finish,
    sweep_candidates_are_tasks_with_ended_attempts_a_lease_old,
    worker_capabilities_are_stored_listed_and_read_per_model,
    every_queue_change_names_the_tasks_tenant,
    api_keys_are_kept_as_digests_listed_and_revoked,
    a_worker_keeps_the_token_it_registered_with,
    an_output_names_its_job,
    tenants_are_set_replaced_and_listed,
    a_submission_past_the_queued_limit_stores_nothing,
    concurrent_submissions_never_pass_the_queued_limit,
    claims_wait_at_the_running_limit,
    concurrent_claims_never_pass_the_running_limit,
    reports_add_their_device_time_once,
    spent_device_time_refuses_submissions_and_holds_claims,
    finished_jobs_past_the_retention_are_deleted_whole,
    tasks_are_counted_per_model_and_state,
    a_sweep_keeps_its_axes_and_each_task_its_coordinates,
    labels_are_stored_and_every_one_filters_the_list,
    jobs_are_found_by_model_and_text_and_paged,
    jobs_are_listed_by_their_job_level_state,
    a_priority_change_reaches_the_job_and_its_unended_tasks,
    throughput_and_eta_follow_recent_successes,
    a_completion_keeps_what_the_manifest_needs,
    a_finished_job_wants_its_manifest_again_after_a_retry,
);

/// A sweep of 5 prompts × 1,100 seeds × 2 sizes (11,000 tasks: past one
/// insert chunk of either store), its tasks in expansion order as the
/// coordinator makes them.
fn sweep_spec() -> JobSpec {
    let sweep = Sweep {
        prompts: (0..5)
            .map(|p| SweepPrompt {
                prompt: format!("prompt {p}"),
                negative_prompt: (p == 2).then(|| "blurry".to_owned()),
            })
            .collect(),
        seeds: (0..1_100).map(|s| u64::MAX - s).collect(),
        sizes: vec![
            Size {
                width: 32,
                height: 32,
            },
            Size {
                width: 64,
                height: 32,
            },
        ],
        ..Sweep::default()
    };
    let base = spec(1, 3).tasks.remove(0);
    let tasks = (0..sweep.task_count().expect("a small sweep"))
        .map(|index| {
            let point = sweep.point(&sweep.coordinates(index));
            let prompt = point.prompt.expect("a prompt");
            let size = point.size.expect("a size");
            TaskSpec {
                prompt: prompt.prompt.clone(),
                negative_prompt: prompt.negative_prompt.clone().unwrap_or_default(),
                seed: point.seed.expect("a seed"),
                width: size.width,
                height: size.height,
                ..base.clone()
            }
        })
        .collect();
    JobSpec {
        tasks,
        sweep: Some(sweep),
        ..spec(0, 3)
    }
}

async fn a_sweep_keeps_its_axes_and_each_task_its_coordinates(store: Store) {
    let spec = sweep_spec();
    let sweep = spec.sweep.clone().expect("a sweep");
    let submitted = store.submit(&spec).await.expect("submit");
    assert_eq!(submitted.job.sweep.as_ref(), Some(&sweep));
    assert_eq!(submitted.job.task_count, 11_000);
    let job = store.get_job(submitted.job.id).await.expect("get_job");
    assert_eq!(
        job.sweep.as_ref(),
        Some(&sweep),
        "u64 seeds survive the JSON"
    );
    let listed = store
        .list_jobs(10, &JobFilter::default())
        .await
        .expect("list_jobs");
    assert_eq!(listed[0].sweep.as_ref(), Some(&sweep));

    let tasks = store
        .list_tasks(&TaskQuery {
            job: Some(submitted.job.id),
            limit: 20_000,
            ..TaskQuery::default()
        })
        .await
        .expect("list_tasks");
    assert_eq!(tasks.len(), 11_000);
    for task in &tasks {
        let at = sweep.coordinates(u64::from(task.index));
        assert_eq!(task.coordinates, Some(at), "task {}", task.index);
        assert_eq!(
            task.spec, spec.tasks[task.index as usize],
            "task {}",
            task.index
        );
    }
    // Sizes innermost, prompts outermost: 4,403 = 2 × 2,200 + 1 × 2 + 1.
    let at = tasks[4_403].coordinates.expect("coordinates");
    assert_eq!((at.prompt, at.seed, at.size), (Some(2), Some(1), Some(1)));
    assert_eq!((at.guidance, at.steps, at.sampler), (None, None, None));
    assert_eq!(tasks[4_403].spec.negative_prompt, "blurry");
    assert_eq!(tasks[4_403].spec.seed, u64::MAX - 1);

    let last = submitted.tasks[10_999].id;
    let read = store.get_task(last).await.expect("get_task");
    assert_eq!(read.coordinates, Some(sweep.coordinates(10_999)));
    let w = worker(&*store).await;
    let claim = store
        .claim(last, w, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(claim.task.coordinates, Some(sweep.coordinates(10_999)));

    // A job of listed tasks has neither.
    let plain = store
        .submit(&spec_for("tiny-random-dit", 2, 3))
        .await
        .expect("submit");
    assert_eq!(plain.job.sweep, None);
    let task = store.get_task(plain.tasks[1].id).await.expect("get_task");
    assert_eq!(task.coordinates, None);
}

/// Raw SQL on a store's database, for rows no store call writes and for
/// reading rows back past the store.
enum Sql {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Sql {
    /// Runs one statement that binds nothing (the same text in both).
    async fn execute(&self, statement: &'static str) {
        match self {
            Sql::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
            Sql::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Each state's task count of `job`, counted over its task rows.
    async fn counted_states(&self, job: JobId) -> BTreeMap<String, u64> {
        const COUNT: &str =
            "SELECT state, count(*) AS n FROM tasks WHERE job_id = $1 GROUP BY state";
        let rows: Vec<(String, i64)> = match self {
            Sql::Postgres(pool) => sqlx::query_as(COUNT).bind(job.0).fetch_all(pool).await,
            Sql::Sqlite(pool) => {
                sqlx::query_as(COUNT)
                    .bind(job.0.hyphenated().to_string())
                    .fetch_all(pool)
                    .await
            }
        }
        .expect("counting task rows");
        rows.into_iter()
            .map(|(state, n)| (state, u64::try_from(n).expect("a count")))
            .collect()
    }

    /// Count changes recorded and not folded yet (Postgres; SQLite writes
    /// its counts in place and has none).
    async fn unfolded_count_changes(&self) -> i64 {
        match self {
            Sql::Postgres(pool) => sqlx::query_scalar("SELECT count(*) FROM job_task_count_deltas")
                .fetch_one(pool)
                .await
                .expect("counting deltas"),
            Sql::Sqlite(_) => 0,
        }
    }
}

/// `job`'s counts as the store reports them, by state name.
async fn reported_states(store: &dyn JobStore, job: JobId) -> BTreeMap<String, u64> {
    let summary = store.get_job(job).await.expect("get_job");
    summary
        .counts
        .0
        .iter()
        .map(|(state, n)| (state.as_str().to_owned(), *n))
        .collect()
}

/// The store's counts of every job in `jobs` equal the task rows' own, read
/// before and after a fold; after it no change is left unfolded.
async fn assert_counts_exact(store: &dyn JobStore, sql: &Sql, jobs: &[JobId], after: &str) {
    for &job in jobs {
        assert_eq!(
            reported_states(store, job).await,
            sql.counted_states(job).await,
            "job {job} after {after}, before folding"
        );
    }
    store.fold_task_counts().await.expect("folding");
    assert_eq!(sql.unfolded_count_changes().await, 0, "after {after}");
    for &job in jobs {
        assert_eq!(
            reported_states(store, job).await,
            sql.counted_states(job).await,
            "job {job} after {after}, folded"
        );
    }
}

/// Expands each test body `async fn name(store: Store, sql: Sql)` into a
/// module `name` with one test per store, each also given raw SQL on the
/// store's database.
macro_rules! conformance_with_sql {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let Some(url) = super::support::fresh_database(stringify!($name)).await else {
                        return;
                    };
                    let store = fresco_store::PgStore::connect(&url).await.expect("connecting the store");
                    let pool = sqlx::PgPool::connect(&url).await.expect("connecting for raw SQL");
                    super::$name(std::sync::Arc::new(store), super::Sql::Postgres(pool)).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let path = dir.path().join("fresco.db");
                    let store = fresco_store::SqliteStore::open(&path).await.expect("opening the store");
                    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .expect("connecting for raw SQL");
                    super::$name(std::sync::Arc::new(store), super::Sql::Sqlite(pool)).await;
                }
            }
        )*
    };
}

conformance_with_sql!(
    tenant_weights_are_read_from_the_tenants_table,
    a_jobs_counts_follow_every_move_of_its_tasks,
    counts_stay_exact_under_concurrent_claims_and_folds,
);

async fn tasks_are_counted_per_model_and_state(store: Store) {
    assert!(store.task_counts().await.expect("counts").is_empty());
    let w = worker_serving(&*store, &["model-a", "model-b"]).await;
    let lease = Duration::from_secs(30);
    let a = store
        .submit(&spec_for("model-a", 5, 3))
        .await
        .expect("submit a");
    let b = store
        .submit(&spec_for("model-b", 2, 3))
        .await
        .expect("submit b");

    // a[0] runs; a[1] failed and waits out a long backoff; a[2] failed for
    // good; a[3] succeeded; a[4] is due. Job b is paused: queued, not due.
    let claim = store.claim(a.tasks[0].id, w, lease).await.expect("claim");
    assert!(
        claim.claimed_at >= claim.due_at,
        "claimed at {} after becoming due at {}",
        claim.claimed_at,
        claim.due_at
    );
    let long = Backoff {
        base: Duration::from_secs(600),
        max: Duration::from_secs(600),
    };
    for (task, kind) in [
        (a.tasks[1].id, FailureKind::Worker),
        (a.tasks[2].id, FailureKind::Request),
    ] {
        let token = claimed(&*store, task, w, lease).await;
        let report = FailReport {
            message: "no",
            kind,
            give_back: false,
            device_ms: 0,
        };
        store.fail(&token, &report, long).await.expect("fail");
    }
    let done = claimed(&*store, a.tasks[3].id, w, lease).await;
    store
        .complete(&done, &[output("a3")], 0)
        .await
        .expect("complete");
    store.set_paused(b.job.id, true).await.expect("pause");

    assert_eq!(
        store.task_counts().await.expect("counts"),
        vec![
            fresco_store::ModelTaskCounts {
                model: "model-a".into(),
                queued: 2,
                due: 1,
                running: 1,
                failed: 1,
            },
            fresco_store::ModelTaskCounts {
                model: "model-b".into(),
                queued: 2,
                due: 0,
                running: 0,
                failed: 0,
            },
        ]
    );
}

fn spec(tasks: usize, max_attempts: u32) -> JobSpec {
    spec_for("tiny-random-dit", tasks, max_attempts)
}

fn spec_for(model: &str, tasks: usize, max_attempts: u32) -> JobSpec {
    JobSpec {
        request_id: None,
        name: "test".into(),
        owner: "me".into(),
        tenant: "default".into(),
        model: model.into(),
        priority: 0,
        max_attempts,
        deadline: None,
        traceparent: String::new(),
        sweep: None,
        labels: Default::default(),
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
                // Every third task carries schedule knobs, so the specs the
                // suite reads back check that they are stored as given.
                schedule: if i % 3 == 1 {
                    Schedule {
                        eta: Some(0.25),
                        karras_sigmas: Some(true),
                        beta_schedule: Some("squaredcos_cap_v2".into()),
                        ..Schedule::default()
                    }
                } else {
                    Schedule::default()
                },
            })
            .collect(),
    }
}

async fn worker(store: &dyn JobStore) -> WorkerId {
    worker_serving(store, &["tiny-random-dit"]).await
}

async fn worker_serving(store: &dyn JobStore, models: &[&str]) -> WorkerId {
    let id = WorkerId::new();
    register(store, id, models).await;
    id
}

async fn register(store: &dyn JobStore, id: WorkerId, models: &[&str]) {
    register_with(store, id, models, vec![]).await;
}

async fn register_with(
    store: &dyn JobStore,
    id: WorkerId,
    models: &[&str],
    capabilities: Vec<ModelCapabilities>,
) {
    store
        .register_worker(
            &WorkerInfo {
                id,
                name: "w".into(),
                device: "cpu".into(),
                models: models.iter().map(|m| m.to_string()).collect(),
                loaded_models: vec![],
                capabilities,
            },
            None,
        )
        .await
        .expect("registering");
}

/// Claims `task` for `worker` and returns the lease token to report with.
async fn claimed(
    store: &dyn JobStore,
    task: TaskId,
    worker: WorkerId,
    lease: Duration,
) -> LeaseToken {
    let claim = store.claim(task, worker, lease).await.expect("claim");
    LeaseToken {
        task,
        worker,
        attempt: claim.attempt,
    }
}

fn output(key: &str) -> OutputRecord {
    OutputRecord {
        index: 0,
        key: key.into(),
        width: 32,
        height: 32,
        seed: 1,
        bytes: 10,
        sha256: String::new(),
    }
}

async fn a_submission_stores_every_task_in_order(store: Store) {
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
    // Dispatch order is task index order.
    let listed = store
        .list_tasks(&TaskQuery {
            job: Some(submitted.job.id),
            limit: 20_000,
            ..TaskQuery::default()
        })
        .await
        .expect("list_tasks");
    let by_index: Vec<_> = listed.iter().map(|t| t.id).collect();
    let by_seq: Vec<_> = submitted.tasks.iter().map(|t| t.id).collect();
    assert_eq!(by_index, by_seq);
    assert_eq!(listed[12_344].spec, spec(12_345, 3).tasks[12_344]);
}

async fn claims_and_reports_follow_the_state_machine(store: Store) {
    let w = worker(&*store).await;
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
        store.complete(&token, &[output("k0")], 0).await,
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
        .complete(&token, &[output("k0")], 0)
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
        store.complete(&token, &[output("k1")], 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .fail(
                &token,
                &FailReport {
                    message: "late",
                    kind: FailureKind::Worker,
                    give_back: false,
                    device_ms: 0
                },
                Backoff::NONE
            )
            .await,
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

async fn a_stale_fencing_token_is_refused(store: Store) {
    let w1 = worker(&*store).await;
    let w2 = worker(&*store).await;
    let submitted = store.submit(&spec(1, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;

    // w1's lease expires; w2 claims attempt 2.
    store
        .claim(task, w1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let expired = store.expire_leases(Backoff::NONE).await.expect("expire");
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
        store.complete(&stale, &[output("stale")], 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .fail(
                &stale,
                &FailReport {
                    message: "x",
                    kind: FailureKind::Worker,
                    give_back: false,
                    device_ms: 0
                },
                Backoff::NONE
            )
            .await,
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
        store.complete(&wrong, &[output("wrong")], 0).await,
        Err(StoreError::Conflict(_))
    ));

    let winner = LeaseToken {
        task,
        worker: w2,
        attempt: 2,
    };
    store
        .complete(&winner, &[output("winner")], 0)
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

async fn attempts_run_out_and_the_history_is_kept(store: Store) {
    let w = worker(&*store).await;
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
        store
            .fail(
                &t1,
                &FailReport {
                    message: "out of memory",
                    kind: FailureKind::Worker,
                    give_back: false,
                    device_ms: 0
                },
                Backoff::NONE
            )
            .await
            .expect("fail"),
        FailOutcome::Requeued(..)
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
            .fail(
                &t2,
                &FailReport {
                    message: "shutting down",
                    kind: FailureKind::Worker,
                    give_back: true,
                    device_ms: 0
                },
                Backoff::NONE
            )
            .await
            .expect("give back"),
        FailOutcome::Requeued(..)
    ));

    let c3 = store.claim(task, w, lease).await.expect("claim 3");
    let t3 = LeaseToken {
        task,
        worker: w,
        attempt: c3.attempt,
    };
    assert_eq!(
        store
            .fail(
                &t3,
                &FailReport {
                    message: "nan in latents",
                    kind: FailureKind::Worker,
                    give_back: false,
                    device_ms: 0
                },
                Backoff::NONE
            )
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

async fn expired_leases_past_the_last_attempt_fail_the_task(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&spec(1, 1)).await.expect("submit");
    let task = submitted.tasks[0].id;
    store
        .claim(task, w, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let expired = store.expire_leases(Backoff::NONE).await.expect("expire");
    assert_eq!(expired[0].state, TaskState::Failed);
    assert_eq!(
        expired[0].lease,
        Some(LeaseToken {
            task,
            worker: w,
            attempt: 1
        }),
        "the lease that ended, to count against its worker"
    );
    let failed = store.get_task(task).await.expect("task");
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.lease_expires_at, None);
    assert_eq!(failed.errors[0].kind, FailureKind::Lease);
    assert!(
        store
            .expire_leases(Backoff::NONE)
            .await
            .expect("expire again")
            .is_empty()
    );
}

async fn cancelling_a_job_cancels_queued_and_running_tasks(store: Store) {
    let w = worker(&*store).await;
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
        store.complete(&token, &[output("late")], 0).await,
        Err(StoreError::Conflict(_))
    ));
    let job = store.get_job(submitted.job.id).await.expect("job");
    assert_eq!(job.counts.get(TaskState::Cancelled), 3);
    assert!(fresco_store::is_finished(&job.counts));
}

async fn releasing_running_tasks_requeues_them_without_a_failure(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&spec(2, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;
    let lease = Duration::from_secs(30);
    assert!(
        store.release_running().await.expect("release").is_empty(),
        "nothing runs yet"
    );

    // One counted failure first, then a second attempt that is running.
    let c1 = store.claim(task, w, lease).await.expect("claim 1");
    let t1 = LeaseToken {
        task,
        worker: w,
        attempt: c1.attempt,
    };
    store
        .fail(
            &t1,
            &FailReport {
                message: "out of memory",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    let c2 = store.claim(task, w, lease).await.expect("claim 2");
    assert_eq!(c2.attempt, 2);

    let released = store.release_running().await.expect("release");
    assert_eq!(released, vec![submitted.tasks[0].clone()]);
    let back = store.get_task(task).await.expect("task");
    assert_eq!(back.state, TaskState::Queued);
    assert_eq!(back.attempt, 2, "the attempt stays as the last token");
    assert_eq!(back.lease_expires_at, None);
    assert_eq!(back.errors.len(), 1, "releasing records no error");
    assert_eq!(
        store
            .get_task(submitted.tasks[1].id)
            .await
            .expect("task")
            .state,
        TaskState::Queued
    );
    assert!(store.release_running().await.expect("again").is_empty());

    // The released lease is dead.
    let t2 = LeaseToken {
        task,
        worker: w,
        attempt: c2.attempt,
    };
    assert_eq!(
        store
            .heartbeat(&Heartbeat { lease: t2, step: 1 }, lease)
            .await
            .expect("hb"),
        Lease::Lost
    );
    assert!(matches!(
        store.complete(&t2, &[output("released")], 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .fail(
                &t2,
                &FailReport {
                    message: "late",
                    kind: FailureKind::Worker,
                    give_back: false,
                    device_ms: 0
                },
                Backoff::NONE
            )
            .await,
        Err(StoreError::Conflict(_))
    ));

    // No failure was counted: with 3 attempts, a second failure requeues.
    let c3 = store.claim(task, w, lease).await.expect("claim 3");
    assert_eq!(c3.attempt, 3);
    let t3 = LeaseToken {
        task,
        worker: w,
        attempt: c3.attempt,
    };
    assert!(matches!(
        store
            .fail(
                &t3,
                &FailReport {
                    message: "again",
                    kind: FailureKind::Worker,
                    give_back: false,
                    device_ms: 0
                },
                Backoff::NONE
            )
            .await
            .expect("fail"),
        FailOutcome::Requeued(..)
    ));
}

async fn heartbeat_progress_is_capped_at_the_steps(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&spec(1, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;
    let lease = Duration::from_secs(30);
    let claim = store.claim(task, w, lease).await.expect("claim");
    let token = LeaseToken {
        task,
        worker: w,
        attempt: claim.attempt,
    };
    let Lease::Extended(until) = store
        .heartbeat(
            &Heartbeat {
                lease: token,
                step: 99,
            },
            lease,
        )
        .await
        .expect("heartbeat")
    else {
        panic!("the lease is held");
    };
    assert!(until >= claim.lease_expires_at, "the lease is extended");
    let running = store.get_task(task).await.expect("task");
    assert_eq!(running.progress_step, 4, "capped at the task's 4 steps");
    assert_eq!(running.lease_expires_at, Some(until));
    let job = store.get_job(submitted.job.id).await.expect("job");
    assert_eq!(job.running_steps, (4, 4));
    assert_eq!(job.counts.get(TaskState::Running), 1);
}

async fn jobs_are_listed_newest_first_per_owner(store: Store) {
    let mut ids = Vec::new();
    for owner in ["ann", "bob", "ann"] {
        let mut spec = spec(1, 1);
        spec.owner = owner.into();
        ids.push(store.submit(&spec).await.expect("submit").job.id);
    }
    let listed =
        |jobs: Vec<fresco_store::JobSummary>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        listed(
            store
                .list_jobs(10, &JobFilter::default())
                .await
                .expect("list")
        ),
        vec![ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        listed(store.list_jobs(10, &owned_by("ann")).await.expect("list")),
        vec![ids[2], ids[0]]
    );
    assert_eq!(
        listed(
            store
                .list_jobs(1, &JobFilter::default())
                .await
                .expect("list")
        ),
        vec![ids[2]]
    );
    assert!(
        store
            .list_jobs(10, &owned_by("nobody"))
            .await
            .expect("list")
            .is_empty()
    );
    let job = &store.list_jobs(10, &owned_by("bob")).await.expect("list")[0];
    assert_eq!(job.owner, "bob");
    assert_eq!(job.task_count, 1);
    assert_eq!(job.counts.get(TaskState::Queued), 1);
}

async fn queued_tasks_page_in_dispatch_order_per_model(store: Store) {
    let w = worker_serving(&*store, &["model-a", "model-b"]).await;
    let a = store
        .submit(&spec_for("model-a", 5, 3))
        .await
        .expect("submit a");
    let b = store
        .submit(&spec_for("model-b", 3, 3))
        .await
        .expect("submit b");
    let a2 = store
        .submit(&spec_for("model-a", 2, 3))
        .await
        .expect("submit a2");
    assert!(
        a.tasks[4].seq < b.tasks[0].seq && b.tasks[2].seq < a2.tasks[0].seq,
        "seq increases across submissions"
    );
    store
        .claim(a.tasks[1].id, w, Duration::from_secs(30))
        .await
        .expect("claim");

    let mut counts = store.queued_counts().await.expect("counts");
    counts.sort();
    assert_eq!(
        counts,
        vec![("model-a".to_string(), 6), ("model-b".to_string(), 3)]
    );

    let expected: Vec<_> = a
        .tasks
        .iter()
        .chain(&a2.tasks)
        .filter(|t| t.id != a.tasks[1].id)
        .cloned()
        .collect();
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.queued_tasks("model-a", after, 4).await.expect("page");
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, expected);
    assert_eq!(
        store.queued_tasks("model-b", 0, 100).await.expect("b"),
        b.tasks
    );
    assert!(
        store
            .queued_tasks("model-c", 0, 100)
            .await
            .expect("c")
            .is_empty()
    );
}

async fn served_models_are_the_union_of_registered_workers(store: Store) {
    assert!(store.served_models().await.expect("models").is_empty());
    let w1 = worker_serving(&*store, &["b", "a"]).await;
    worker_serving(&*store, &["a", "c"]).await;
    assert_eq!(
        store.served_models().await.expect("models"),
        vec!["a", "b", "c"]
    );
    // Registering again replaces the worker's list.
    register(&*store, w1, &["d"]).await;
    assert_eq!(
        store.served_models().await.expect("models"),
        vec!["a", "c", "d"]
    );
}

async fn outputs_are_known_by_key(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&spec(1, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;
    assert!(!store.has_output("k").await.expect("has_output"));
    let token = claimed(&*store, task, w, Duration::from_secs(30)).await;
    let mut second = output("k2");
    second.index = 1;
    store
        .complete(&token, &[output("k"), second.clone()], 0)
        .await
        .expect("complete");
    assert!(store.has_output("k").await.expect("has_output"));
    assert!(store.has_output("k2").await.expect("has_output"));
    assert!(!store.has_output("other").await.expect("has_output"));
    let done = store.get_task(task).await.expect("task");
    assert_eq!(done.outputs, vec![output("k"), second]);
    assert_eq!(done.progress_step, 4);
}

/// Completes `task` for `w` with one output per key, at image indexes 0..
async fn complete_with(store: &dyn JobStore, w: WorkerId, task: TaskId, keys: &[&str]) {
    let token = claimed(store, task, w, Duration::from_secs(30)).await;
    let outputs: Vec<OutputRecord> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| OutputRecord {
            index: i as u32,
            bytes: 10 + i as u64,
            ..output(key)
        })
        .collect();
    store.complete(&token, &outputs, 0).await.expect("complete");
}

async fn a_jobs_outputs_are_listed_in_order_and_only_its_own(store: Store) {
    let w = worker(&*store).await;
    let job = store.submit(&spec(3, 3)).await.expect("submit");
    let other = store.submit(&spec(1, 3)).await.expect("submit");
    // Completed out of index order: the listing still follows the tasks.
    complete_with(&*store, w, job.tasks[2].id, &["j/2/0.png"]).await;
    complete_with(&*store, w, job.tasks[0].id, &["j/0/0.png", "j/0/1.png"]).await;
    complete_with(&*store, w, other.tasks[0].id, &["o/0/0.png"]).await;
    let keys = |outputs: Vec<OutputRecord>| -> Vec<(String, u64)> {
        outputs.into_iter().map(|o| (o.key, o.bytes)).collect()
    };

    let all = store
        .job_outputs(job.job.id, &[])
        .await
        .expect("job_outputs");
    assert_eq!(
        keys(all),
        [
            ("j/0/0.png".to_owned(), 10),
            ("j/0/1.png".to_owned(), 11),
            ("j/2/0.png".to_owned(), 10)
        ],
        "every recorded output, in task then image order; a task without outputs has none"
    );
    let asked: Vec<String> = ["j/2/0.png", "o/0/0.png", "none.png", "j/0/1.png"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let some = store
        .job_outputs(job.job.id, &asked)
        .await
        .expect("job_outputs");
    assert_eq!(
        keys(some),
        [("j/0/1.png".to_owned(), 11), ("j/2/0.png".to_owned(), 10)],
        "only the keys asked for, and of those only this job's recorded outputs"
    );
    let theirs = store
        .job_outputs(other.job.id, &[])
        .await
        .expect("job_outputs");
    assert_eq!(keys(theirs), [("o/0/0.png".to_owned(), 10)]);
    let unknown = store
        .job_outputs(fresco_core::JobId::new(), &[])
        .await
        .expect("job_outputs of an unknown job");
    assert!(unknown.is_empty());
}

/// `claimers` workers at once, each trying every task of `tasks` (each
/// from its own start) and completing what it claims; the tasks each one
/// claimed.
async fn claim_and_complete_concurrently(
    store: &Store,
    tasks: &[TaskId],
    claimers: usize,
) -> Vec<TaskId> {
    let tasks: Arc<Vec<TaskId>> = Arc::new(tasks.to_vec());
    let mut handles = Vec::new();
    for n in 0..claimers {
        let store = store.clone();
        let tasks = tasks.clone();
        handles.push(tokio::spawn(async move {
            let w = worker(&*store).await;
            let mut mine = Vec::new();
            let start = n * tasks.len() / claimers;
            for i in 0..tasks.len() {
                let task = tasks[(start + i) % tasks.len()];
                match store.claim(task, w, Duration::from_secs(30)).await {
                    Ok(claim) => {
                        let token = LeaseToken {
                            task,
                            worker: w,
                            attempt: claim.attempt,
                        };
                        store
                            .complete(&token, &[output(&format!("out-{task}"))], 0)
                            .await
                            .expect("completing a claimed task");
                        mine.push(task);
                    }
                    Err(StoreError::Conflict(_)) => {}
                    Err(other) => panic!("claiming {task}: {other}"),
                }
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for handle in handles {
        claimed.extend(handle.await.expect("claimer"));
    }
    claimed
}

async fn concurrent_claims_take_every_task_exactly_once(store: Store) {
    let submitted = store.submit(&spec(200, 3)).await.expect("submit");
    let tasks: Vec<TaskId> = submitted.tasks.iter().map(|t| t.id).collect();
    let claimed = claim_and_complete_concurrently(&store, &tasks, 8).await;
    assert_eq!(claimed.len(), 200, "every task claimed once, none twice");
    let unique: HashSet<_> = claimed.iter().collect();
    assert_eq!(unique.len(), 200);
    let job = store.get_job(submitted.job.id).await.expect("job");
    assert_eq!(job.counts.get(TaskState::Succeeded), 200);
    assert!(fresco_store::is_finished(&job.counts));
}

async fn a_paused_job_is_neither_dispatched_nor_claimed_until_resumed(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let paused = store.submit(&spec(3, 3)).await.expect("submit");
    let other = store.submit(&spec(2, 3)).await.expect("submit");
    let running = paused.tasks[0].id;
    store
        .claim(running, w, lease)
        .await
        .expect("claim before pausing");

    let held = store.set_paused(paused.job.id, true).await.expect("pause");
    assert_eq!(
        held.iter().map(|t| t.id).collect::<Vec<_>>(),
        paused.tasks[1..].iter().map(|t| t.id).collect::<Vec<_>>(),
        "pausing returns the queued tasks in dispatch order"
    );
    assert!(store.get_job(paused.job.id).await.expect("job").paused);
    assert!(!store.get_job(other.job.id).await.expect("job").paused);
    assert_eq!(
        store.queued_counts().await.expect("counts"),
        vec![("tiny-random-dit".to_owned(), 2)],
        "only the other job's tasks are dispatchable"
    );
    let dispatchable = store
        .queued_tasks("tiny-random-dit", i64::MIN, 100)
        .await
        .expect("queued");
    assert_eq!(
        dispatchable.iter().map(|t| t.id).collect::<Vec<_>>(),
        other.tasks.iter().map(|t| t.id).collect::<Vec<_>>()
    );
    assert!(matches!(
        store.claim(paused.tasks[1].id, w, lease).await,
        Err(StoreError::Conflict(_))
    ));
    // The task running when the job was paused keeps its lease.
    let beat = Heartbeat {
        lease: LeaseToken {
            task: running,
            worker: w,
            attempt: 1,
        },
        step: 1,
    };
    assert!(matches!(
        store.heartbeat(&beat, lease).await.expect("heartbeat"),
        Lease::Extended(_)
    ));

    let resumed = store
        .set_paused(paused.job.id, false)
        .await
        .expect("resume");
    assert_eq!(resumed.len(), 2);
    assert!(!store.get_job(paused.job.id).await.expect("job").paused);
    assert_eq!(
        store.queued_counts().await.expect("counts"),
        vec![("tiny-random-dit".to_owned(), 4)]
    );
    store
        .claim(paused.tasks[1].id, w, lease)
        .await
        .expect("claim after resuming");
    assert!(matches!(
        store.set_paused(fresco_core::JobId::new(), true).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_retried_job_queues_its_failed_tasks_with_their_history(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let submitted = store.submit(&spec(2, 1)).await.expect("submit");
    let (bad, good) = (submitted.tasks[0].id, submitted.tasks[1].id);
    let fail_once = |message: &'static str| {
        let store = store.clone();
        async move {
            let token = claimed(&*store, bad, w, lease).await;
            store
                .fail(
                    &token,
                    &FailReport {
                        message,
                        kind: FailureKind::Worker,
                        give_back: false,
                        device_ms: 0,
                    },
                    Backoff::NONE,
                )
                .await
                .expect("fail")
        }
    };
    assert_eq!(fail_once("first").await, FailOutcome::Failed);
    let token = claimed(&*store, good, w, lease).await;
    store
        .complete(&token, &[output("retry/good/0.png")], 0)
        .await
        .expect("complete");

    let requeued = store.retry_job(submitted.job.id).await.expect("retry");
    assert_eq!(
        requeued.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![bad],
        "only the failed task goes back"
    );
    let task = store.get_task(bad).await.expect("task");
    assert_eq!(task.state, TaskState::Queued);
    assert_eq!(task.errors.len(), 1, "the history stays");
    assert_eq!(
        store.get_task(good).await.expect("task").state,
        TaskState::Succeeded
    );

    // Its failure count starts again: one more attempt under max_attempts 1.
    assert_eq!(fail_once("second").await, FailOutcome::Failed);
    let task = store.get_task(bad).await.expect("task");
    assert_eq!(
        task.errors
            .iter()
            .map(|e| (e.attempt, e.message.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "first"), (2, "second")]
    );
    assert!(
        store
            .retry_job(submitted.job.id)
            .await
            .expect("retry")
            .len()
            == 1
    );
    let nothing = store.submit(&spec(1, 1)).await.expect("submit");
    assert!(
        store
            .retry_job(nothing.job.id)
            .await
            .expect("retry")
            .is_empty(),
        "a job with no failed task has nothing to retry"
    );
    assert!(matches!(
        store.retry_job(fresco_core::JobId::new()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn cancelling_one_task_leaves_the_others(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let submitted = store.submit(&spec(3, 3)).await.expect("submit");
    let ids: Vec<_> = submitted.tasks.iter().map(|t| t.id).collect();

    let cancelled = store.cancel_task(ids[0]).await.expect("cancel queued");
    assert_eq!(cancelled.id, ids[0]);
    assert!(matches!(
        store.claim(ids[0], w, lease).await,
        Err(StoreError::Conflict(_))
    ));

    let claim = store.claim(ids[1], w, lease).await.expect("claim");
    store.cancel_task(ids[1]).await.expect("cancel running");
    let token = LeaseToken {
        task: ids[1],
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
                lease
            )
            .await
            .expect("heartbeat"),
        Lease::Lost,
        "a cancelled running task loses its lease"
    );
    assert!(matches!(
        store.complete(&token, &[output("cancel/1/0.png")], 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        !store
            .has_output("cancel/1/0.png")
            .await
            .expect("has_output")
    );
    assert!(matches!(
        store.cancel_task(ids[1]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.cancel_task(fresco_core::TaskId::new()).await,
        Err(StoreError::NotFound(_))
    ));

    let job = store.get_job(submitted.job.id).await.expect("job");
    assert_eq!(job.counts.get(TaskState::Cancelled), 2);
    assert_eq!(job.counts.get(TaskState::Queued), 1);
    store
        .claim(ids[2], w, lease)
        .await
        .expect("the third still runs");
}

async fn workers_are_listed_with_loaded_models_and_running_tasks(store: Store) {
    let a = worker(&*store).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = worker(&*store).await;
    let submitted = store.submit(&spec(2, 3)).await.expect("submit");
    let lease = Duration::from_secs(30);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let loaded = vec!["tiny-random-dit".to_owned()];
    store.worker_seen(a, Some(&loaded)).await.expect("seen");
    store
        .claim(submitted.tasks[0].id, a, lease)
        .await
        .expect("claim");

    let listed = store.list_workers(10).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].info.id, a, "the most recently seen first");
    assert_eq!(listed[0].running, vec![submitted.tasks[0].id]);
    assert_eq!(listed[0].info.loaded_models, loaded);
    assert_eq!(listed[0].info.models, vec!["tiny-random-dit".to_owned()]);
    assert_eq!(listed[1].info.id, b);
    assert!(listed[1].running.is_empty() && listed[1].info.loaded_models.is_empty());
    assert!(listed[0].last_seen_at >= listed[0].registered_at);

    // A heartbeat says nothing of loaded models: they stay as they were.
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.worker_seen(b, None).await.expect("seen");
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.worker_seen(a, None).await.expect("seen");
    let listed = store.list_workers(1).await.expect("list");
    assert_eq!(listed.len(), 1, "the limit holds");
    assert_eq!(
        (listed[0].info.id, &listed[0].info.loaded_models),
        (a, &loaded)
    );

    // Its recent throughput counts the tasks it finished successfully.
    assert_eq!(listed[0].recent_succeeded, 0);
    let token = LeaseToken {
        task: submitted.tasks[0].id,
        worker: a,
        attempt: 1,
    };
    store
        .complete(&token, &[output("w0")], 0)
        .await
        .expect("complete");
    let token = claimed(&*store, submitted.tasks[1].id, b, lease).await;
    store
        .complete(&token, &[output("w1")], 0)
        .await
        .expect("complete");
    let listed = store.list_workers(10).await.expect("list");
    let of = |w: WorkerId| listed.iter().find(|s| s.info.id == w).expect("listed");
    assert_eq!((of(a).recent_succeeded, of(b).recent_succeeded), (1, 1));
    let (per_minute, window) = of(a).rate(chrono::Utc::now());
    assert!(
        per_minute > 0.0 && window <= fresco_store::RATE_WINDOW,
        "{per_minute} {window:?}"
    );
}

async fn a_failed_task_waits_out_its_backoff(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let backoff = Backoff {
        base: Duration::from_millis(400),
        max: Duration::from_secs(10),
    };
    let submitted = store.submit(&spec(1, 5)).await.expect("submit");
    let task = submitted.tasks[0].id;
    let fail = |give_back: bool| {
        let store = store.clone();
        async move {
            let token = claimed(&*store, task, w, lease).await;
            let before = chrono::Utc::now();
            match store
                .fail(
                    &token,
                    &FailReport {
                        message: "boom",
                        kind: FailureKind::Worker,
                        give_back,
                        device_ms: 0,
                    },
                    backoff,
                )
                .await
                .expect("fail")
            {
                FailOutcome::Requeued(_, not_before) => (before, not_before),
                FailOutcome::Failed => panic!("attempts were left"),
            }
        }
    };
    type Stamp = chrono::DateTime<chrono::Utc>;
    let wait_of = |(before, not_before): (Stamp, Option<Stamp>)| {
        (not_before.expect("a failure backs off") - before)
            .to_std()
            .unwrap_or_default()
    };

    // First failure: 0.5–1 × base.
    let first = fail(false).await;
    let waited = wait_of(first);
    assert!(
        waited >= Duration::from_millis(150) && waited <= Duration::from_millis(450),
        "first backoff {waited:?}"
    );
    assert!(
        matches!(
            store.claim(task, w, lease).await,
            Err(StoreError::Conflict(_))
        ),
        "no claim during the backoff"
    );
    assert!(
        store.queued_counts().await.expect("counts").is_empty(),
        "a task backing off is not dispatchable"
    );
    assert!(
        store
            .queued_tasks("tiny-random-dit", i64::MIN, 10)
            .await
            .expect("queued")
            .is_empty()
    );
    tokio::time::sleep(waited + Duration::from_millis(100)).await;
    assert_eq!(
        store.queued_counts().await.expect("counts"),
        vec![("tiny-random-dit".to_owned(), 1)]
    );

    // Second failure: 0.5–1 × 2 × base.
    let second = wait_of(fail(false).await);
    assert!(
        second >= Duration::from_millis(350) && second <= Duration::from_millis(850),
        "second backoff {second:?}"
    );
    tokio::time::sleep(second + Duration::from_millis(100)).await;

    // Giving a task back is not a failure: it may run again at once.
    let (_, given_back) = fail(true).await;
    assert_eq!(given_back, None);
    store
        .claim(task, w, lease)
        .await
        .expect("claimed at once after a give-back");

    // An expired lease backs off too.
    let expiring = store.submit(&spec(1, 5)).await.expect("submit");
    store
        .claim(expiring.tasks[0].id, w, Duration::from_millis(10))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let expired = store.expire_leases(backoff).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].state, TaskState::Queued);
    assert!(
        expired[0]
            .not_before
            .is_some_and(|at| at > chrono::Utc::now())
    );
}

async fn a_task_is_not_handed_again_to_a_worker_that_failed_it(store: Store) {
    let lease = Duration::from_secs(30);
    let a = worker(&*store).await;
    let b = worker(&*store).await;
    // Serving another model only: it cannot take the task.
    let _other = worker_serving(&*store, &["tiny-random-dit-b"]).await;
    let submitted = store.submit(&spec(1, 5)).await.expect("submit");
    let task = submitted.tasks[0].id;
    let token = claimed(&*store, task, a, lease).await;
    store
        .fail(
            &token,
            &FailReport {
                message: "cuda error",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");

    match store.claim(task, a, lease).await {
        Err(StoreError::Refused(why)) => assert!(why.contains("already failed"), "{why}"),
        other => panic!("the worker that failed it claimed it again: {other:?}"),
    }
    let token = claimed(&*store, task, b, lease).await;
    store
        .fail(
            &token,
            &FailReport {
                message: "cuda error again",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");

    // Both live workers failed it: rather than strand it, either may retry.
    store
        .claim(task, a, lease)
        .await
        .expect("no other worker is left to take it");
    let token = LeaseToken {
        task,
        worker: a,
        attempt: 3,
    };
    store
        .fail(
            &token,
            &FailReport {
                message: "third",
                kind: FailureKind::Worker,
                give_back: true,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("give back");

    // A worker counts as live for two leases after it was last seen: with a
    // lease of a millisecond nobody else is, and the one that failed it may
    // take it.
    let second = store.submit(&spec(1, 5)).await.expect("submit");
    let task = second.tasks[0].id;
    let token = claimed(&*store, task, b, lease).await;
    store
        .fail(
            &token,
            &FailReport {
                message: "boom",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .claim(task, b, Duration::from_millis(1))
        .await
        .expect("no live worker but this one");
}

/// A failed attempt of `task` that is the worker's fault.
fn failed(task: TaskId, attempt: u32, message: &str) -> AttemptOutcome<'_> {
    AttemptOutcome::Failed {
        task,
        attempt,
        message,
        kind: FailureKind::Worker,
    }
}

/// Counts `failures` failed attempts for `w` (quarantine after `after`);
/// returns its health after the last.
async fn fail_in_a_row(
    store: &dyn JobStore,
    w: WorkerId,
    failures: u32,
    after: u32,
) -> WorkerHealth {
    let task = TaskId::new();
    let mut health = None;
    for attempt in 1..=failures {
        let outcome = failed(task, attempt, "cuda error");
        health = Some(
            store
                .record_attempt(w, outcome, after)
                .await
                .expect("count"),
        );
    }
    health.expect("at least one failure")
}

async fn the_worker(store: &dyn JobStore, w: WorkerId) -> WorkerStatus {
    let listed = store.list_workers(100).await.expect("list");
    listed
        .into_iter()
        .find(|s| s.info.id == w)
        .expect("the worker is listed")
}

async fn a_worker_failing_in_a_row_is_quarantined(store: Store) {
    let w = worker(&*store).await;
    let task = TaskId::new();
    for attempt in 1..=2 {
        let health = store
            .record_attempt(w, failed(task, attempt, "boom"), 3)
            .await
            .expect("count");
        assert!(!health.quarantined);
        assert_eq!(health.consecutive_failures, attempt);
    }
    // A success ends the run.
    let health = store
        .record_attempt(w, AttemptOutcome::Succeeded, 3)
        .await
        .expect("count");
    assert_eq!(
        (health.consecutive_failures, health.quarantined),
        (0, false)
    );
    for attempt in 3..=4 {
        let health = store
            .record_attempt(w, failed(task, attempt, "boom"), 3)
            .await
            .expect("count");
        assert!(!health.quarantined && !health.newly_quarantined);
    }
    let health = store
        .record_attempt(w, failed(task, 5, "boom"), 3)
        .await
        .expect("count");
    assert!(health.quarantined && health.newly_quarantined, "{health:?}");

    let listed = the_worker(&*store, w).await;
    assert_eq!(listed.consecutive_failures, 3);
    assert!(listed.quarantined_at.is_some());
    assert!(!listed.probation);
    let submitted = store.submit(&spec(1, 3)).await.expect("submit");
    match store
        .claim(submitted.tasks[0].id, w, Duration::from_secs(30))
        .await
    {
        Err(StoreError::Refused(why)) => assert!(why.contains("quarantined"), "{why}"),
        other => panic!("a quarantined worker claimed a task: {other:?}"),
    }
    // Quarantine lasts: a later success does not lift it, nor does a later
    // failure quarantine it anew.
    let health = store
        .record_attempt(w, AttemptOutcome::Succeeded, 3)
        .await
        .expect("count");
    assert!(health.quarantined);
    let health = store
        .record_attempt(w, failed(task, 6, "boom"), 3)
        .await
        .expect("count");
    assert!(health.quarantined && !health.newly_quarantined);
    assert!(matches!(
        store
            .record_attempt(WorkerId::new(), failed(task, 1, "boom"), 3)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_workers_recent_errors_keep_its_last_failures(store: Store) {
    let w = worker(&*store).await;
    let other = worker(&*store).await;
    let tasks: Vec<TaskId> = (0..7).map(|_| TaskId::new()).collect();
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for (i, task) in tasks.iter().enumerate() {
        let kind = if i == 6 {
            FailureKind::Lease
        } else {
            FailureKind::Worker
        };
        let outcome = AttemptOutcome::Failed {
            task: *task,
            attempt: i as u32 + 1,
            message: &format!("error {i}"),
            kind,
        };
        store.record_attempt(w, outcome, 100).await.expect("count");
    }
    // A success ends the run but keeps the errors: they say what happened.
    store
        .record_attempt(w, AttemptOutcome::Succeeded, 100)
        .await
        .expect("count");

    let listed = the_worker(&*store, w).await;
    assert_eq!(listed.consecutive_failures, 0);
    let kept: Vec<_> = listed
        .recent_errors
        .iter()
        .map(|e| (e.task, e.attempt, e.message.as_str(), e.kind))
        .collect();
    assert_eq!(
        kept,
        vec![
            (tasks[2], 3, "error 2", FailureKind::Worker),
            (tasks[3], 4, "error 3", FailureKind::Worker),
            (tasks[4], 5, "error 4", FailureKind::Worker),
            (tasks[5], 6, "error 5", FailureKind::Worker),
            (tasks[6], 7, "error 6", FailureKind::Lease),
        ],
        "the last {RECENT_ERRORS}, oldest first"
    );
    assert!(listed.recent_errors.iter().all(|e| e.at > before));
    assert!(
        the_worker(&*store, other).await.recent_errors.is_empty(),
        "another worker's errors are its own"
    );
}

async fn a_quarantined_worker_goes_on_probation_after_its_cooldown(store: Store) {
    let w = worker(&*store).await;
    let healthy = worker(&*store).await;
    assert!(fail_in_a_row(&*store, w, 2, 2).await.quarantined);
    assert!(
        store
            .release_quarantined(Duration::from_secs(3600))
            .await
            .expect("release")
            .is_empty(),
        "the cool-down has not passed"
    );
    assert!(the_worker(&*store, w).await.quarantined_at.is_some());

    tokio::time::sleep(Duration::from_millis(30)).await;
    let released = store
        .release_quarantined(Duration::from_millis(10))
        .await
        .expect("release");
    assert_eq!(released, vec![w], "only the quarantined worker");
    let listed = the_worker(&*store, w).await;
    assert_eq!(listed.quarantined_at, None);
    assert!(listed.probation);
    assert_eq!(
        listed.recent_errors.len(),
        2,
        "why it was quarantined stays visible"
    );
    assert!(!the_worker(&*store, healthy).await.probation);
    assert!(
        store
            .release_quarantined(Duration::ZERO)
            .await
            .expect("release again")
            .is_empty(),
        "released once"
    );
}

async fn an_operator_releases_a_quarantined_worker(store: Store) {
    let w = worker(&*store).await;
    assert!(matches!(
        store.release_worker(w).await,
        Err(StoreError::Conflict(why)) if why.contains("not quarantined")
    ));
    assert!(matches!(
        store.release_worker(WorkerId::new()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(fail_in_a_row(&*store, w, 1, 1).await.quarantined);
    let released = store.release_worker(w).await.expect("release");
    assert_eq!(released.info.id, w);
    assert_eq!(released.quarantined_at, None);
    assert!(released.probation);
    assert_eq!(released.consecutive_failures, 1);
    let listed = the_worker(&*store, w).await;
    assert!(listed.probation && listed.quarantined_at.is_none());
    assert!(matches!(
        store.release_worker(w).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn a_draining_worker_finishes_its_task_and_claims_nothing_more(store: Store) {
    let w = worker(&*store).await;
    let other = worker(&*store).await;
    let submitted = store.submit(&spec(2, 3)).await.expect("submit");
    let (running, next) = (submitted.tasks[0].id, submitted.tasks[1].id);
    let lease = Duration::from_secs(30);
    let token = claimed(&*store, running, w, lease).await;
    assert!(!store.worker_draining(w).await.expect("draining?"));
    assert_eq!(the_worker(&*store, w).await.draining_at, None);

    let drained = store.drain_worker(w).await.expect("drain");
    assert_eq!(drained.info.id, w);
    let since = drained.draining_at.expect("draining since now");
    assert_eq!(drained.running, vec![running], "its task stays its own");
    assert!(store.worker_draining(w).await.expect("draining?"));
    assert!(!store.worker_draining(other).await.expect("draining?"));
    assert_eq!(the_worker(&*store, w).await.draining_at, Some(since));
    assert_eq!(
        store
            .drain_worker(w)
            .await
            .expect("drain again")
            .draining_at,
        Some(since),
        "draining again keeps the first time"
    );

    // Its running task is still its to heartbeat and complete.
    let beat = Heartbeat {
        lease: token,
        step: 1,
    };
    assert!(matches!(
        store.heartbeat(&beat, lease).await.expect("heartbeat"),
        Lease::Extended(_)
    ));
    store
        .complete(&token, &[output("drained/0.png")], 5)
        .await
        .expect("complete");
    // It claims nothing more; the task stays queued for another worker.
    match store.claim(next, w, lease).await {
        Err(StoreError::Draining(why)) => assert!(why.contains("draining"), "{why}"),
        other => panic!("a draining worker's claim must be refused, got {other:?}"),
    }
    assert_eq!(
        store.get_task(next).await.expect("task").state,
        TaskState::Queued
    );
    claimed(&*store, next, other, lease).await;

    // Registering again ends the drain.
    register(&*store, w, &["tiny-random-dit"]).await;
    assert!(!store.worker_draining(w).await.expect("draining?"));
    assert_eq!(the_worker(&*store, w).await.draining_at, None);

    let unknown = WorkerId::new();
    assert!(matches!(
        store.drain_worker(unknown).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.worker_draining(unknown).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_worker_on_probation_claims_one_probe_at_a_time(store: Store) {
    let w = worker(&*store).await;
    assert!(fail_in_a_row(&*store, w, 5, 5).await.quarantined);
    store.release_worker(w).await.expect("release");
    let submitted = store.submit(&spec(3, 3)).await.expect("submit");
    let (t1, t2, t3) = (
        submitted.tasks[0].id,
        submitted.tasks[1].id,
        submitted.tasks[2].id,
    );
    let lease = Duration::from_secs(30);

    let probe = claimed(&*store, t1, w, lease).await;
    match store.claim(t2, w, lease).await {
        Err(StoreError::Refused(why)) => assert!(why.contains("probation"), "{why}"),
        other => panic!("a second probe was claimed: {other:?}"),
    }
    // A request failure ends the probe without a verdict: the next task is
    // the next probe.
    store
        .fail(
            &probe,
            &FailReport {
                message: "caption too long",
                kind: FailureKind::Request,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    let probe = claimed(&*store, t2, w, lease).await;
    store
        .complete(&probe, &[output("probe/0.png")], 0)
        .await
        .expect("complete");
    let health = store
        .record_attempt(w, AttemptOutcome::Succeeded, 5)
        .await
        .expect("count");
    assert_eq!(
        (
            health.consecutive_failures,
            health.quarantined,
            health.probation
        ),
        (0, false, false),
        "a probe's success returns the worker to service"
    );
    // Back in service it claims while it runs a task.
    claimed(&*store, t3, w, lease).await;
    let more = store.submit(&spec(1, 3)).await.expect("submit");
    claimed(&*store, more.tasks[0].id, w, lease).await;
}

async fn a_probe_that_fails_quarantines_the_worker_again(store: Store) {
    let w = worker(&*store).await;
    assert!(fail_in_a_row(&*store, w, 5, 5).await.quarantined);
    store.release_worker(w).await.expect("release");
    let health = store
        .record_attempt(w, failed(TaskId::new(), 1, "cuda error"), 5)
        .await
        .expect("count");
    assert!(
        health.quarantined && health.newly_quarantined && !health.probation,
        "at once, not after 5 more: {health:?}"
    );
    let listed = the_worker(&*store, w).await;
    assert!(listed.quarantined_at.is_some());
    assert!(!listed.probation);
    assert_eq!(listed.consecutive_failures, 6);
}

async fn a_request_failure_fails_the_task_at_once(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&spec(2, 5)).await.expect("submit");
    let lease = Duration::from_secs(30);
    let bad = claimed(&*store, submitted.tasks[0].id, w, lease).await;
    let outcome = store
        .fail(
            &bad,
            &FailReport {
                message: "invalid generation parameters: caption must have 1..=32 tokens, got 40",
                kind: FailureKind::Request,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    assert_eq!(outcome, FailOutcome::Failed, "four attempts were left");
    let failed_task = store.get_task(bad.task).await.expect("task");
    assert_eq!(failed_task.state, TaskState::Failed);
    assert_eq!(failed_task.errors.len(), 1);
    assert_eq!(failed_task.errors[0].kind, FailureKind::Request);
    assert_eq!(failed_task.errors[0].worker, w.to_string());

    // A worker failure is retried, and says so.
    let flaky = claimed(&*store, submitted.tasks[1].id, w, lease).await;
    let outcome = store
        .fail(
            &flaky,
            &FailReport {
                message: "cuda error",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    assert!(matches!(outcome, FailOutcome::Requeued(..)));
    let requeued = store.get_task(flaky.task).await.expect("task");
    assert_eq!(requeued.state, TaskState::Queued);
    assert_eq!(requeued.errors[0].kind, FailureKind::Worker);
    // Given back: no failure, no entry, whatever the kind.
    let again = claimed(&*store, flaky.task, w, lease).await;
    store
        .fail(
            &again,
            &FailReport {
                message: "shutting down",
                kind: FailureKind::Request,
                give_back: true,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("give back");
    let given_back = store.get_task(flaky.task).await.expect("task");
    assert_eq!(given_back.state, TaskState::Queued);
    assert_eq!(given_back.errors.len(), 1);
}

async fn a_submission_sent_again_with_its_request_id_is_stored_once(store: Store) {
    let keyed = JobSpec {
        request_id: Some("cli:0190f1c2-7b1e".into()),
        ..spec(3, 3)
    };
    let first = store.submit(&keyed).await.expect("submit");
    assert!(!first.replayed);
    assert_eq!(first.tasks.len(), 3);
    let again = store.submit(&keyed).await.expect("submit again");
    assert!(again.replayed, "the second send is a replay");
    assert_eq!(again.job.id, first.job.id);
    assert!(again.tasks.is_empty(), "nothing new to dispatch");
    assert_eq!(
        store
            .list_jobs(10, &JobFilter::default())
            .await
            .expect("list")
            .len(),
        1
    );

    // The same key on another submission is refused, not merged.
    let other = JobSpec {
        request_id: keyed.request_id.clone(),
        ..spec(5, 3)
    };
    assert!(matches!(
        store.submit(&other).await,
        Err(StoreError::Conflict(_))
    ));
    // Submissions without a key never collide.
    store.submit(&spec(1, 3)).await.expect("submit");
    store.submit(&spec(1, 3)).await.expect("submit");
    assert_eq!(
        store
            .list_jobs(10, &JobFilter::default())
            .await
            .expect("list")
            .len(),
        3
    );

    // Concurrent sends of one keyed submission store it once.
    let raced = JobSpec {
        request_id: Some("race".into()),
        ..spec(50, 3)
    };
    let sends: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let raced = raced.clone();
            tokio::spawn(async move { store.submit(&raced).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for send in sends {
        ids.insert(send.await.expect("join").expect("submit").job.id);
    }
    assert_eq!(ids.len(), 1, "one job for one request id");
    assert_eq!(
        store
            .list_jobs(10, &JobFilter::default())
            .await
            .expect("list")
            .len(),
        4
    );
}

async fn a_completion_reported_again_is_recorded_once(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&spec(1, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;
    let token = claimed(&*store, task, w, Duration::from_secs(30)).await;
    let outputs = [output("again/0.png")];
    store.complete(&token, &outputs, 0).await.expect("complete");
    // The answer was lost and the worker reports again: still fine, and
    // the worker must not take it for a refusal (it would delete the image).
    store
        .complete(&token, &outputs, 0)
        .await
        .expect("a repeated report of a recorded result");
    let recorded = store.get_task(task).await.expect("task");
    assert_eq!(recorded.state, TaskState::Succeeded);
    assert_eq!(recorded.outputs.len(), 1, "recorded once");
    // Another attempt's token is still refused.
    let stale = LeaseToken {
        attempt: token.attempt + 1,
        ..token
    };
    assert!(matches!(
        store.complete(&stale, &outputs, 0).await,
        Err(StoreError::Conflict(_))
    ));
}

/// Waits until the wall clock, which the stores read, has passed `at` by a
/// millisecond (the SQLite store's resolution).
async fn wait_past(at: chrono::DateTime<chrono::Utc>) {
    let target = at + chrono::Duration::milliseconds(1);
    while let Ok(left) = (target - chrono::Utc::now()).to_std() {
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left).await;
    }
}

async fn a_job_tells_its_deadline_and_how_its_queued_tasks_stand_against_backoff(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let timed = JobSpec {
        deadline: Some(Duration::from_secs(3600)),
        ..spec(2, 3)
    };
    let submitted = store.submit(&timed).await.expect("submit");
    let job = submitted.job.clone();
    let deadline = job.deadline.expect("a deadline is stored");
    let after = (deadline - job.created_at).num_milliseconds();
    assert!(
        (3_599_000..=3_601_000).contains(&after),
        "deadline {after} ms after creation"
    );
    assert_eq!(
        store.get_job(job.id).await.expect("get").deadline,
        Some(deadline)
    );
    assert_eq!(job.queued_ready, 2);
    assert_eq!(job.retry_at, None);

    let untimed = store.submit(&spec(1, 3)).await.expect("submit").job;
    assert_eq!(untimed.deadline, None);

    // One task backs off for minutes, the other may still run now.
    let backoff = Backoff {
        base: Duration::from_secs(600),
        max: Duration::from_secs(600),
    };
    let first = claimed(&*store, submitted.tasks[0].id, w, lease).await;
    let FailOutcome::Requeued(_, not_before) = store
        .fail(
            &first,
            &FailReport {
                message: "boom",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            backoff,
        )
        .await
        .expect("fail")
    else {
        panic!("attempts were left");
    };
    let now = store.get_job(job.id).await.expect("get");
    assert_eq!(now.queued_ready, 1);

    // Both back off: none may run, and the first retry is the earlier one.
    let w2 = worker(&*store).await;
    let second = claimed(&*store, submitted.tasks[1].id, w2, lease).await;
    let FailOutcome::Requeued(_, later) = store
        .fail(
            &second,
            &FailReport {
                message: "boom",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            backoff,
        )
        .await
        .expect("fail")
    else {
        panic!("attempts were left");
    };
    let listed = store
        .list_jobs(10, &JobFilter::default())
        .await
        .expect("list");
    let now = listed.iter().find(|j| j.id == job.id).expect("listed");
    assert_eq!(now.queued_ready, 0);
    let (first_retry, second_retry) = (not_before.expect("backoff"), later.expect("backoff"));
    let expected = first_retry.min(second_retry);
    let got = now.retry_at.expect("a retry time");
    assert!(
        (got - expected).num_milliseconds().abs() <= 1,
        "retry at {got}, expected {expected}"
    );
}

async fn model_workers_count_live_and_quarantined_workers(store: Store) {
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let both = worker_serving(&*store, &["a", "b"]).await;
    let only_a = worker_serving(&*store, &["a"]).await;
    let lease = Duration::from_secs(30);
    let models: Vec<String> = ["a", "b", "never"].iter().map(|m| m.to_string()).collect();

    let served = store
        .model_workers(&models, lease)
        .await
        .expect("model workers");
    assert_eq!(
        served
            .iter()
            .map(|m| (m.model.as_str(), m.live, m.available))
            .collect::<Vec<_>>(),
        [("a", 2, 2), ("b", 1, 1)],
        "a model no worker registered is absent"
    );
    for m in &served {
        assert!(m.last_seen_at >= before && m.last_seen_at <= chrono::Utc::now());
    }

    assert!(
        store
            .record_attempt(only_a, failed(TaskId::new(), 1, "boom"), 1)
            .await
            .expect("count")
            .quarantined
    );
    let served = store
        .model_workers(&models, lease)
        .await
        .expect("model workers");
    assert_eq!(
        served
            .iter()
            .map(|m| (m.model.as_str(), m.live, m.available))
            .collect::<Vec<_>>(),
        [("a", 2, 1), ("b", 1, 1)],
        "a quarantined worker is live but not available"
    );
    assert!(
        store
            .record_attempt(both, failed(TaskId::new(), 1, "boom"), 1)
            .await
            .expect("count")
            .quarantined
    );
    let served = store
        .model_workers(&models, lease)
        .await
        .expect("model workers");
    assert_eq!(
        served
            .iter()
            .map(|m| (m.model.as_str(), m.live, m.available))
            .collect::<Vec<_>>(),
        [("a", 2, 0), ("b", 1, 0)]
    );

    // Seen within two leases of zero: nobody is live, the last sighting stays.
    let served = store
        .model_workers(&models, Duration::ZERO)
        .await
        .expect("model workers");
    assert_eq!(
        served
            .iter()
            .map(|m| (m.model.as_str(), m.live, m.available))
            .collect::<Vec<_>>(),
        [("a", 0, 0), ("b", 0, 0)]
    );
    assert!(served.iter().all(|m| m.last_seen_at >= before));
}

async fn queued_tasks_past_their_jobs_deadline_fail_and_running_ones_finish(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let timed = store
        .submit(&JobSpec {
            deadline: Some(Duration::from_secs(2)),
            ..spec(3, 3)
        })
        .await
        .expect("submit");
    let untimed = store.submit(&spec(1, 3)).await.expect("submit");
    let running = claimed(&*store, timed.tasks[0].id, w, lease).await;
    assert!(
        store.expire_deadlines().await.expect("pass").is_empty(),
        "not yet"
    );

    let deadline = timed.job.deadline.expect("a deadline");
    wait_past(deadline).await;
    let missed = store.expire_deadlines().await.expect("pass");
    let mut failed: Vec<TaskId> = missed.iter().map(|m| m.task.id).collect();
    failed.sort();
    let mut expected = vec![timed.tasks[1].id, timed.tasks[2].id];
    expected.sort();
    assert_eq!(failed, expected, "only the queued tasks of the timed job");
    assert!(missed.iter().all(|m| m.job_id == timed.job.id));
    assert!(
        store.expire_deadlines().await.expect("pass").is_empty(),
        "once"
    );

    let message = format!(
        "deadline {} passed while the task was still queued",
        deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for id in &expected {
        let task = store.get_task(*id).await.expect("task");
        assert_eq!(task.state, TaskState::Failed);
        assert_eq!(task.errors.len(), 1);
        assert_eq!(task.errors[0].message, message);
        assert_eq!(task.errors[0].worker, "");
    }
    store
        .complete(&running, &[output("deadline/late.png")], 0)
        .await
        .expect("a running task finishes");
    let job = store.get_job(timed.job.id).await.expect("job");
    assert_eq!(job.counts.get(TaskState::Succeeded), 1);
    assert_eq!(job.counts.get(TaskState::Failed), 2);
    assert!(fresco_store::is_finished(&job.counts));
    let other = store.get_task(untimed.tasks[0].id).await.expect("task");
    assert_eq!(
        other.state,
        TaskState::Queued,
        "a job without a deadline waits on"
    );
}

async fn sweep_candidates_are_tasks_with_ended_attempts_a_lease_old(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let tasks = store.submit(&spec(5, 5)).await.expect("submit").tasks;
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
    let now = |store: Store| async move {
        let mut c: Vec<(TaskId, u32)> = store
            .sweep_candidates(Duration::ZERO, 100)
            .await
            .expect("candidates")
            .iter()
            .map(|c| (c.task, c.ended_through))
            .collect();
        c.sort();
        c
    };
    let sorted = |mut v: Vec<(TaskId, u32)>| {
        v.sort();
        v
    };

    // Released at start (while nothing else runs): its attempt ended too.
    claimed(&*store, ids[4], w, lease).await;
    store.release_running().await.expect("release");
    assert_eq!(now(store.clone()).await, vec![(ids[4], 1)]);
    // Completed at its first attempt: nothing to sweep, ever.
    let t = claimed(&*store, ids[0], w, lease).await;
    store
        .complete(&t, &[output("s/0/1/0.png")], 0)
        .await
        .expect("complete");
    // Failed once, running again: its first attempt is one.
    let t = claimed(&*store, ids[1], w, lease).await;
    store
        .fail(
            &t,
            &FailReport {
                message: "boom",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    let w2 = worker(&*store).await;
    claimed(&*store, ids[1], w2, lease).await;
    // Failed once, then completed: both attempts.
    let t = claimed(&*store, ids[2], w, lease).await;
    store
        .fail(
            &t,
            &FailReport {
                message: "boom",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    let t = claimed(&*store, ids[2], w2, lease).await;
    store
        .complete(&t, &[output("s/2/2/0.png")], 0)
        .await
        .expect("complete");
    // Cancelled while running.
    claimed(&*store, ids[3], w, lease).await;
    store.cancel_task(ids[3]).await.expect("cancel");
    assert_eq!(
        now(store.clone()).await,
        sorted(vec![(ids[1], 1), (ids[2], 2), (ids[3], 1), (ids[4], 1)])
    );
    assert!(
        store
            .sweep_candidates(Duration::from_secs(3600), 100)
            .await
            .expect("candidates")
            .is_empty(),
        "no attempt ended an hour ago"
    );
    assert_eq!(
        store
            .sweep_candidates(Duration::ZERO, 1)
            .await
            .expect("candidates")
            .len(),
        1
    );

    for (id, through) in [(ids[1], 1), (ids[2], 2), (ids[3], 1), (ids[4], 1)] {
        store.mark_swept(id, through).await.expect("mark");
    }
    assert_eq!(now(store.clone()).await, vec![], "all swept");
    store.mark_swept(ids[2], 1).await.expect("never backwards");
    assert_eq!(now(store.clone()).await, vec![]);

    // A task whose earlier attempts are swept completes without a sweep.
    let running = store.get_task(ids[1]).await.expect("task");
    let token = LeaseToken {
        task: ids[1],
        worker: w2,
        attempt: running.attempt,
    };
    store
        .complete(&token, &[output("s/1/2/0.png")], 0)
        .await
        .expect("complete");
    assert_eq!(now(store.clone()).await, vec![]);
}

async fn worker_capabilities_are_stored_listed_and_read_per_model(store: Store) {
    let sd = |max_side| {
        ModelCapabilities::of_family("acme/sd", Family::StableDiffusion, 8, max_side, Some(4))
    };
    let flux = ModelCapabilities::of_family("acme/flux", Family::Flux, 16, None, Some(64));
    assert!(
        store
            .model_capabilities("acme/sd")
            .await
            .expect("read")
            .is_empty()
    );

    let a = WorkerId::new();
    // Reported in another order than the models: listed in the models' order.
    register_with(
        &*store,
        a,
        &["acme/sd", "acme/flux"],
        vec![flux.clone(), sd(Some(512))],
    )
    .await;
    let b = WorkerId::new();
    register_with(&*store, b, &["acme/sd"], vec![sd(None)]).await;
    let c = worker_serving(&*store, &["acme/sd"]).await;

    assert_eq!(
        store.model_capabilities("acme/sd").await.expect("read"),
        vec![sd(None), sd(Some(512))],
        "every worker that reported some, the most recently registered first"
    );
    assert_eq!(
        store.model_capabilities("acme/flux").await.expect("read"),
        vec![flux.clone()]
    );
    assert!(
        store
            .model_capabilities("acme")
            .await
            .expect("read")
            .is_empty()
    );

    let listed = store.list_workers(10).await.expect("list");
    let of = |id: WorkerId| {
        listed
            .iter()
            .find(|w| w.info.id == id)
            .map(|w| w.info.capabilities.clone())
            .expect("listed")
    };
    assert_eq!(of(a), vec![sd(Some(512)), flux]);
    assert_eq!(of(b), vec![sd(None)]);
    assert!(of(c).is_empty());

    // Registering again replaces what the worker reported.
    register_with(&*store, b, &["acme/sd"], vec![]).await;
    assert_eq!(
        store.model_capabilities("acme/sd").await.expect("read"),
        vec![sd(Some(512))]
    );
}

async fn every_queue_change_names_the_tasks_tenant(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let acme = |tasks| JobSpec {
        tenant: "acme".into(),
        ..spec(tasks, 3)
    };
    let job = store.submit(&acme(6)).await.expect("submit");
    let ids: Vec<TaskId> = job.tasks.iter().map(|t| t.id).collect();
    let other = store.submit(&spec(1, 3)).await.expect("submit");
    let of = |tasks: &[fresco_store::QueuedTask]| -> Vec<String> {
        tasks.iter().map(|t| t.tenant.clone()).collect()
    };
    assert_eq!(of(&job.tasks), vec!["acme"; 6], "submitted");
    assert_eq!(of(&other.tasks), ["default"], "submitted");
    let queued = store
        .queued_tasks("tiny-random-dit", i64::MIN, 100)
        .await
        .expect("queued");
    assert_eq!(
        of(&queued),
        [vec!["acme"; 6], vec!["default"]].concat(),
        "queued, in dispatch order"
    );
    let paused = store.set_paused(job.job.id, true).await.expect("pause");
    assert_eq!(of(&paused), vec!["acme"; 6], "paused");
    let resumed = store.set_paused(job.job.id, false).await.expect("resume");
    assert_eq!(of(&resumed), vec!["acme"; 6], "resumed");
    let cancelled = store.cancel_task(ids[0]).await.expect("cancel");
    assert_eq!(cancelled.tenant, "acme", "cancelled");

    let token = claimed(&*store, ids[1], w, lease).await;
    let outcome = store
        .fail(
            &token,
            &FailReport {
                message: "oom",
                kind: FailureKind::Worker,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    let FailOutcome::Requeued(requeued, _) = outcome else {
        panic!("attempts are left: {outcome:?}");
    };
    assert_eq!(requeued.tenant, "acme", "requeued after a failure");

    let short = claimed(&*store, ids[2], w, Duration::from_millis(50)).await;
    let until = store
        .get_task(short.task)
        .await
        .expect("task")
        .lease_expires_at
        .expect("a lease");
    wait_past(until).await;
    let expired = store.expire_leases(Backoff::NONE).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].task.tenant, "acme", "an expired lease");

    claimed(&*store, ids[3], w, lease).await;
    let released = store.release_running().await.expect("release");
    assert_eq!(of(&released), ["acme"], "released at start");

    let failing = claimed(&*store, ids[4], w, lease).await;
    store
        .fail(
            &failing,
            &FailReport {
                message: "bad prompt",
                kind: FailureKind::Request,
                give_back: false,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail for good");
    let retried = store.retry_job(job.job.id).await.expect("retry");
    assert_eq!(of(&retried), ["acme"], "retried");

    let timed = store
        .submit(&JobSpec {
            deadline: Some(Duration::from_millis(10)),
            ..acme(1)
        })
        .await
        .expect("submit");
    wait_past(timed.job.deadline.expect("a deadline")).await;
    let missed = store.expire_deadlines().await.expect("deadlines");
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].task.tenant, "acme", "failed at its deadline");

    let all = store.cancel_job(job.job.id).await.expect("cancel job");
    assert_eq!(of(&all), vec!["acme"; 5], "cancelled with its job");
}

async fn tenant_weights_are_read_from_the_tenants_table(store: Store, sql: Sql) {
    assert!(
        store.tenant_weights().await.expect("weights").is_empty(),
        "no rows: every tenant weighs 1"
    );
    sql.execute("INSERT INTO tenants (name, weight) VALUES ('zeta', 1), ('acme', 3)")
        .await;
    sql.execute("INSERT INTO tenants (name, max_running_tasks) VALUES ('limited', 4)")
        .await;
    assert_eq!(
        store.tenant_weights().await.expect("weights"),
        [
            ("acme".to_owned(), 3),
            ("limited".to_owned(), 1),
            ("zeta".to_owned(), 1)
        ]
    );
}

fn new_key(id: &str, scope: KeyScope, digest_byte: u8) -> NewApiKey {
    NewApiKey {
        id: id.into(),
        scope,
        name: format!("key {id}"),
        secret_sha256: [digest_byte; 32],
    }
}

async fn api_keys_are_kept_as_digests_listed_and_revoked(store: Store) {
    let viewer = KeyScope::Client {
        tenant: "team-a".into(),
        role: Role::Viewer,
    };
    let client = store
        .create_api_key(&new_key("0123456789ab", viewer.clone(), 7))
        .await
        .expect("a client key");
    assert_eq!(
        (client.id.as_str(), &client.scope, client.name.as_str()),
        ("0123456789ab", &viewer, "key 0123456789ab")
    );
    assert_eq!(client.revoked_at, None);
    let worker = store
        .create_api_key(&new_key("ba9876543210", KeyScope::Worker, 9))
        .await
        .expect("a worker token");
    assert_eq!(worker.scope, KeyScope::Worker);

    // Looked up by id, with the digest a presented key is checked against.
    let stored = store
        .api_key("0123456789ab")
        .await
        .expect("lookup")
        .expect("the client key");
    assert_eq!(stored.key, client);
    assert_eq!(stored.secret_sha256, vec![7u8; 32]);
    assert!(
        store
            .api_key("000000000000")
            .await
            .expect("lookup")
            .is_none()
    );

    // An id is never taken twice.
    let taken = store
        .create_api_key(&new_key("0123456789ab", KeyScope::Worker, 1))
        .await
        .expect_err("a taken id");
    assert!(matches!(taken, StoreError::Conflict(_)), "{taken:?}");
    assert_eq!(
        store
            .api_key("0123456789ab")
            .await
            .expect("lookup")
            .expect("still there")
            .secret_sha256,
        vec![7u8; 32],
        "the first key is left as it was"
    );

    let listed = store.list_api_keys().await.expect("list");
    let mut ids: Vec<&str> = listed.iter().map(|k| k.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["0123456789ab", "ba9876543210"]);

    // Revoked at once, for the very next lookup; revoking again keeps the
    // first time.
    let revoked = store.revoke_api_key("ba9876543210").await.expect("revoke");
    let at = revoked.revoked_at.expect("a revocation time");
    let seen = store
        .api_key("ba9876543210")
        .await
        .expect("lookup")
        .expect("a revoked key is still known");
    assert_eq!(seen.key.revoked_at, Some(at));
    let again = store.revoke_api_key("ba9876543210").await.expect("again");
    assert_eq!(again.revoked_at, Some(at));
    let unknown = store
        .revoke_api_key("ffffffffffff")
        .await
        .expect_err("an unknown key");
    assert_eq!(unknown.to_string(), "key ffffffffffff not found");
    let listed = store.list_api_keys().await.expect("list");
    let client_listed = listed
        .iter()
        .find(|k| k.id == "0123456789ab")
        .expect("listed");
    assert_eq!(client_listed.revoked_at, None, "only the one revoked");
}

fn info(id: WorkerId) -> WorkerInfo {
    WorkerInfo {
        id,
        name: "w".into(),
        device: "cpu".into(),
        models: vec!["tiny-random-dit".into()],
        loaded_models: vec![],
        capabilities: vec![],
    }
}

async fn a_worker_keeps_the_token_it_registered_with(store: Store) {
    let bound = WorkerId::new();
    store
        .register_worker(&info(bound), Some("aaaaaaaaaaaa"))
        .await
        .expect("register");
    assert_eq!(
        store.worker_token(bound).await.expect("token").as_deref(),
        Some("aaaaaaaaaaaa")
    );
    // The same token registers it again; another, or none, may not take it.
    let mut renamed = info(bound);
    renamed.name = "renamed".into();
    store
        .register_worker(&renamed, Some("aaaaaaaaaaaa"))
        .await
        .expect("again with its token");
    for other in [Some("bbbbbbbbbbbb"), None] {
        let mut hijack = info(bound);
        hijack.name = "hijack".into();
        let refused = store
            .register_worker(&hijack, other)
            .await
            .expect_err("another token");
        assert!(matches!(refused, StoreError::Refused(_)), "{refused:?}");
        assert_eq!(
            refused.to_string(),
            format!("worker {bound} is registered with another worker token")
        );
    }
    let listed = store.list_workers(10).await.expect("list");
    assert_eq!(
        listed[0].info.name, "renamed",
        "the refused ones changed nothing"
    );
    assert_eq!(
        store.worker_token(bound).await.expect("token").as_deref(),
        Some("aaaaaaaaaaaa")
    );

    // A farm without keys: no token.
    let open = WorkerId::new();
    store
        .register_worker(&info(open), None)
        .await
        .expect("register");
    assert_eq!(store.worker_token(open).await.expect("token"), None);
    store
        .register_worker(&info(open), None)
        .await
        .expect("again without a token");

    let unknown = WorkerId::new();
    let missing = store.worker_token(unknown).await.expect_err("unknown");
    assert_eq!(missing.to_string(), format!("worker {unknown} not found"));
}

async fn an_output_names_its_job(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&spec(1, 3)).await.expect("submit");
    let task = submitted.tasks[0].id;
    assert_eq!(store.output_job("k").await.expect("output job"), None);
    let token = claimed(&*store, task, w, Duration::from_secs(30)).await;
    store
        .complete(&token, &[output("k")], 0)
        .await
        .expect("complete");
    assert_eq!(
        store.output_job("k").await.expect("output job"),
        Some(submitted.job.id)
    );
    assert_eq!(store.output_job("other").await.expect("output job"), None);
}

fn tenant_spec(tenant: &str, tasks: usize) -> JobSpec {
    JobSpec {
        tenant: tenant.into(),
        ..spec(tasks, 3)
    }
}

fn limits(queued: Option<u64>, running: Option<u64>, device_seconds: Option<u64>) -> TenantLimits {
    TenantLimits {
        weight: 1,
        max_queued_tasks: queued,
        max_running_tasks: running,
        max_device_seconds_per_day: device_seconds,
    }
}

async fn set_limits(store: &dyn JobStore, tenant: &str, limits: TenantLimits) {
    store
        .set_tenant(&TenantSettings {
            name: tenant.into(),
            limits,
        })
        .await
        .expect("setting the tenant");
}

/// The message of an over-quota refusal of a submission.
fn over_quota(result: fresco_store::Result<fresco_store::Submitted>) -> String {
    match result {
        Err(StoreError::OverQuota(message)) => message,
        Err(other) => panic!("expected an over-quota refusal, got {other}"),
        Ok(s) => panic!(
            "expected an over-quota refusal, job {} was stored",
            s.job.id
        ),
    }
}

/// The message and task of a claim held back by its tenant's quota.
fn held(result: fresco_store::Result<fresco_store::Claim>) -> (String, fresco_store::QueuedTask) {
    match result {
        Err(StoreError::TenantAtLimit { message, task }) => (message, *task),
        Err(other) => panic!("expected a claim held at the tenant's limit, got {other}"),
        Ok(c) => panic!(
            "expected a claim held at the tenant's limit, got attempt {}",
            c.attempt
        ),
    }
}

async fn usage(store: &dyn JobStore, tenant: &str) -> TenantUsage {
    store.tenant_usage(tenant).await.expect("usage")
}

async fn tenants_are_set_replaced_and_listed(store: Store) {
    assert!(store.list_tenants().await.expect("list").is_empty());
    let unknown = usage(&*store, "nobody").await;
    assert_eq!(unknown.limits, TenantLimits::default());
    assert_eq!(
        (
            unknown.queued_tasks,
            unknown.running_tasks,
            unknown.device_ms_total
        ),
        (0, 0, 0)
    );
    set_limits(&*store, "zeta", limits(Some(10), None, Some(3600))).await;
    let weighty = TenantLimits {
        weight: 5,
        ..limits(None, Some(2), None)
    };
    set_limits(&*store, "acme", weighty.clone()).await;
    set_limits(&*store, "zeta", limits(None, None, None)).await;
    let listed = store.list_tenants().await.expect("list");
    assert_eq!(
        listed,
        vec![
            TenantSettings {
                name: "acme".into(),
                limits: weighty.clone()
            },
            TenantSettings {
                name: "zeta".into(),
                limits: limits(None, None, None)
            },
        ]
    );
    assert_eq!(usage(&*store, "acme").await.limits, weighty);
    assert_eq!(
        store.tenant_weights().await.expect("weights"),
        vec![("acme".to_owned(), 5), ("zeta".to_owned(), 1)]
    );
}

async fn a_submission_past_the_queued_limit_stores_nothing(store: Store) {
    set_limits(&*store, "acme", limits(Some(5), None, None)).await;
    store.submit(&tenant_spec("acme", 3)).await.expect("3 of 5");
    let message = over_quota(store.submit(&tenant_spec("acme", 3)).await);
    assert_eq!(
        message,
        "tenant \"acme\" may have at most 5 queued tasks (max_queued_tasks); it has 3 queued and this job adds 3"
    );
    let jobs = store
        .list_jobs(
            100,
            &JobFilter {
                tenant: Some("acme".into()),
                ..JobFilter::default()
            },
        )
        .await
        .expect("jobs");
    assert_eq!(jobs.len(), 1, "the refused job is not stored");
    assert_eq!(usage(&*store, "acme").await.queued_tasks, 3);
    // Another tenant is not held by acme's limit; acme may fill it exactly.
    store
        .submit(&tenant_spec("other", 50))
        .await
        .expect("no limit");
    store.submit(&tenant_spec("acme", 2)).await.expect("5 of 5");
    // Running tasks no longer count as queued.
    let w = worker(&*store).await;
    let first = jobs[0].id;
    let task = store
        .list_tasks(&TaskQuery {
            job: Some(first),
            limit: 10,
            ..TaskQuery::default()
        })
        .await
        .expect("tasks")[0]
        .id;
    claimed(&*store, task, w, Duration::from_secs(30)).await;
    store
        .submit(&tenant_spec("acme", 1))
        .await
        .expect("5 of 5 again");
    assert_eq!(usage(&*store, "acme").await.queued_tasks, 5);
}

async fn concurrent_submissions_never_pass_the_queued_limit(store: Store) {
    set_limits(&*store, "acme", limits(Some(10), None, None)).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store.submit(&tenant_spec("acme", 3)).await
        }));
    }
    let mut stored = 0;
    for handle in handles {
        match handle.await.expect("submitter") {
            Ok(_) => stored += 1,
            Err(StoreError::OverQuota(_)) => {}
            Err(other) => panic!("submitting: {other}"),
        }
    }
    assert_eq!(
        stored, 3,
        "3 × 3 tasks fit a limit of 10; a fourth would not"
    );
    assert_eq!(usage(&*store, "acme").await.queued_tasks, 9);
}

async fn claims_wait_at_the_running_limit(store: Store) {
    set_limits(&*store, "acme", limits(None, Some(1), None)).await;
    let submitted = store.submit(&tenant_spec("acme", 2)).await.expect("submit");
    let free = store
        .submit(&tenant_spec("other", 1))
        .await
        .expect("submit");
    let (a, b) = (submitted.tasks[0].id, submitted.tasks[1].id);
    let w = worker(&*store).await;
    let first = claimed(&*store, a, w, Duration::from_secs(30)).await;
    let (message, task) = held(store.claim(b, w, Duration::from_secs(30)).await);
    assert_eq!(
        message,
        "tenant \"acme\" may run at most 1 tasks at once (max_running_tasks); 1 are running"
    );
    assert_eq!(
        task, submitted.tasks[1],
        "the held task, as the queues hold it"
    );
    let record = store.get_task(b).await.expect("task");
    assert_eq!((record.state, record.attempt), (TaskState::Queued, 0));
    // Another tenant's task is claimed meanwhile.
    claimed(&*store, free.tasks[0].id, w, Duration::from_secs(30)).await;
    store
        .complete(&first, &[output("acme/0.png")], 10)
        .await
        .expect("complete");
    claimed(&*store, b, w, Duration::from_secs(30)).await;
}

async fn concurrent_claims_never_pass_the_running_limit(store: Store) {
    set_limits(&*store, "acme", limits(None, Some(2), None)).await;
    let submitted = store
        .submit(&tenant_spec("acme", 12))
        .await
        .expect("submit");
    let mut handles = Vec::new();
    for task in submitted.tasks.iter().map(|t| t.id) {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let w = worker(&*store).await;
            store.claim(task, w, Duration::from_secs(30)).await
        }));
    }
    let mut won = 0;
    for handle in handles {
        match handle.await.expect("claimer") {
            Ok(_) => won += 1,
            Err(StoreError::TenantAtLimit { .. }) => {}
            Err(other) => panic!("claiming: {other}"),
        }
    }
    assert_eq!(won, 2);
    assert_eq!(usage(&*store, "acme").await.running_tasks, 2);
}

async fn reports_add_their_device_time_once(store: Store) {
    let w = worker(&*store).await;
    let submitted = store.submit(&tenant_spec("acme", 2)).await.expect("submit");
    let first = claimed(&*store, submitted.tasks[0].id, w, Duration::from_secs(30)).await;
    let outputs = [output("acme/a.png")];
    store
        .complete(&first, &outputs, 1_200)
        .await
        .expect("complete");
    store
        .complete(&first, &outputs, 1_200)
        .await
        .expect("the same report again");
    let second = claimed(&*store, submitted.tasks[1].id, w, Duration::from_secs(30)).await;
    let report = FailReport {
        message: "nan in latents",
        kind: FailureKind::Worker,
        give_back: false,
        device_ms: 300,
    };
    store
        .fail(&second, &report, Backoff::NONE)
        .await
        .expect("fail");
    let used = usage(&*store, "acme").await;
    assert_eq!((used.device_ms_today, used.device_ms_total), (1_500, 1_500));
    assert_eq!((used.attempts_today, used.attempts_total), (2, 2));
    assert_eq!(usage(&*store, "other").await.device_ms_total, 0);
}

async fn spent_device_time_refuses_submissions_and_holds_claims(store: Store) {
    set_limits(&*store, "acme", limits(None, None, Some(1))).await;
    let submitted = store.submit(&tenant_spec("acme", 2)).await.expect("submit");
    let w = worker(&*store).await;
    let first = claimed(&*store, submitted.tasks[0].id, w, Duration::from_secs(30)).await;
    store
        .complete(&first, &[output("acme/0.png")], 1_000)
        .await
        .expect("complete");
    let (message, _) = held(
        store
            .claim(submitted.tasks[1].id, w, Duration::from_secs(30))
            .await,
    );
    assert_eq!(
        message,
        "tenant \"acme\" may use 1 device-seconds a day (max_device_seconds_per_day); it used 1.0 today (UTC)"
    );
    let refused = over_quota(store.submit(&tenant_spec("acme", 1)).await);
    assert_eq!(refused, message);
    set_limits(&*store, "acme", limits(None, None, Some(2))).await;
    claimed(&*store, submitted.tasks[1].id, w, Duration::from_secs(30)).await;
}

async fn finished_jobs_past_the_retention_are_deleted_whole(store: Store) {
    let w = worker(&*store).await;
    let done = store.submit(&spec(1, 3)).await.expect("submit");
    let token = claimed(&*store, done.tasks[0].id, w, Duration::from_secs(30)).await;
    store
        .complete(&token, &[output("retained/0.png")], 5)
        .await
        .expect("complete");
    let cancelled = store.submit(&spec(2, 3)).await.expect("submit");
    store.cancel_job(cancelled.job.id).await.expect("cancel");
    let waiting = store.submit(&spec(1, 3)).await.expect("submit");
    let ended = store.get_task(done.tasks[0].id).await.expect("task");
    assert_eq!(ended.state, TaskState::Succeeded);
    wait_past(chrono::Utc::now()).await;

    let hour = Duration::from_secs(3600);
    assert!(
        store
            .expired_jobs(hour, 10)
            .await
            .expect("expired")
            .is_empty()
    );
    assert!(!store.delete_job(done.job.id, hour).await.expect("delete"));
    let expired: HashSet<_> = store
        .expired_jobs(Duration::ZERO, 10)
        .await
        .expect("expired")
        .into_iter()
        .collect();
    assert_eq!(
        expired,
        HashSet::from([done.job.id, cancelled.job.id]),
        "the finished jobs; the queued one stays"
    );
    assert!(
        !store
            .delete_job(waiting.job.id, Duration::ZERO)
            .await
            .expect("delete")
    );
    assert!(
        store
            .delete_job(done.job.id, Duration::ZERO)
            .await
            .expect("delete")
    );
    assert!(matches!(
        store.get_job(done.job.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_task(done.tasks[0].id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        !store
            .has_output("retained/0.png")
            .await
            .expect("has_output")
    );
    assert!(
        !store
            .delete_job(done.job.id, Duration::ZERO)
            .await
            .expect("again")
    );
    store
        .get_job(waiting.job.id)
        .await
        .expect("the queued job stays");
    store
        .get_job(cancelled.job.id)
        .await
        .expect("not deleted yet");
}

fn owned_by(owner: &str) -> JobFilter {
    JobFilter {
        owner: Some(owner.into()),
        ..JobFilter::default()
    }
}

fn labelled(pairs: &[(&str, &str)]) -> fresco_core::Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn listed_ids(jobs: &[fresco_store::JobSummary]) -> Vec<fresco_core::JobId> {
    jobs.iter().map(|j| j.id).collect()
}

async fn labels_are_stored_and_every_one_filters_the_list(store: Store) {
    let mut ids = Vec::new();
    for labels in [
        labelled(&[("project", "catalog-2027"), ("team", "x")]),
        labelled(&[("project", "catalog-2027"), ("team", "y")]),
        labelled(&[]),
    ] {
        let spec = JobSpec {
            labels,
            ..spec(1, 1)
        };
        ids.push(store.submit(&spec).await.expect("submit").job.id);
    }
    let job = store.get_job(ids[0]).await.expect("get");
    assert_eq!(
        job.labels,
        labelled(&[("project", "catalog-2027"), ("team", "x")])
    );
    let by = |pairs: &[(&str, &str)]| JobFilter {
        labels: labelled(pairs),
        ..JobFilter::default()
    };
    let list = |filter: JobFilter| {
        let store = store.clone();
        async move { listed_ids(&store.list_jobs(10, &filter).await.expect("list")) }
    };
    assert_eq!(
        list(by(&[("project", "catalog-2027")])).await,
        vec![ids[1], ids[0]]
    );
    assert_eq!(
        list(by(&[("project", "catalog-2027"), ("team", "x")])).await,
        vec![ids[0]],
        "every label must match"
    );
    assert!(list(by(&[("team", "z")])).await.is_empty());
    assert!(list(by(&[("owner", "x")])).await.is_empty());
    assert_eq!(list(JobFilter::default()).await.len(), 3);
}

async fn jobs_are_found_by_model_and_text_and_paged(store: Store) {
    let mut ids = Vec::new();
    for (model, name, prompt) in [
        ("tiny-random-dit", "catalogue", "a Red Circle"),
        ("fresco-shapes", "posters", "a blue square"),
        ("fresco-shapes", "misc", "a green triangle"),
    ] {
        let mut spec = spec_for(model, 2, 1);
        spec.name = name.into();
        spec.tasks[1].prompt = prompt.into();
        ids.push(store.submit(&spec).await.expect("submit").job.id);
    }
    let list = |filter: JobFilter, limit: u32| {
        let store = store.clone();
        async move { listed_ids(&store.list_jobs(limit, &filter).await.expect("list")) }
    };
    let model = |m: &str| JobFilter {
        model: Some(m.into()),
        ..JobFilter::default()
    };
    let search = |s: &str| JobFilter {
        search: Some(s.into()),
        ..JobFilter::default()
    };
    assert_eq!(list(model("fresco-shapes"), 10).await, vec![ids[2], ids[1]]);
    assert_eq!(list(model("sd-1.5"), 10).await, vec![]);
    assert_eq!(
        list(search("red circle"), 10).await,
        vec![ids[0]],
        "a task's prompt, whatever its case"
    );
    assert_eq!(list(search("POSTER"), 10).await, vec![ids[1]], "the name");
    let id = ids[2].to_string();
    let prefix = &id[..id.len() - 4];
    assert_eq!(list(search(prefix), 10).await, vec![ids[2]], "an id prefix");
    assert_eq!(list(search("%"), 10).await, vec![], "no wildcards");
    let first = list(JobFilter::default(), 2).await;
    assert_eq!(first, vec![ids[2], ids[1]]);
    let after = JobFilter {
        after: Some(ids[1]),
        ..JobFilter::default()
    };
    assert_eq!(list(after, 2).await, vec![ids[0]], "the next page");
}

async fn jobs_are_listed_by_their_job_level_state(store: Store) {
    use fresco_core::JobState;
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let queued = store.submit(&spec(2, 1)).await.expect("submit");
    let running = store.submit(&spec(2, 1)).await.expect("submit");
    store
        .claim(running.tasks[0].id, w, lease)
        .await
        .expect("claim");
    let paused = store.submit(&spec(1, 1)).await.expect("submit");
    store.set_paused(paused.job.id, true).await.expect("pause");
    let succeeded = store.submit(&spec(1, 1)).await.expect("submit");
    let token = claimed(&*store, succeeded.tasks[0].id, w, lease).await;
    store
        .complete(&token, &[output("s0")], 0)
        .await
        .expect("complete");
    let failed = store.submit(&spec(1, 1)).await.expect("submit");
    let token = claimed(&*store, failed.tasks[0].id, w, lease).await;
    let report = FailReport {
        message: "no",
        kind: FailureKind::Request,
        give_back: false,
        device_ms: 0,
    };
    store
        .fail(&token, &report, Backoff::NONE)
        .await
        .expect("fail");
    let cancelled = store.submit(&spec(1, 1)).await.expect("submit");
    store.cancel_job(cancelled.job.id).await.expect("cancel");

    let jobs = |state| {
        let store = store.clone();
        async move {
            let filter = JobFilter {
                state: Some(state),
                ..JobFilter::default()
            };
            let mut ids = listed_ids(&store.list_jobs(10, &filter).await.expect("list"));
            ids.sort();
            ids
        }
    };
    let sorted = |jobs: &[&fresco_store::Submitted]| {
        let mut ids: Vec<_> = jobs.iter().map(|s| s.job.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        jobs(JobState::Active).await,
        sorted(&[&queued, &running, &paused])
    );
    assert_eq!(jobs(JobState::Queued).await, sorted(&[&queued]));
    assert_eq!(jobs(JobState::Running).await, sorted(&[&running]));
    assert_eq!(jobs(JobState::Paused).await, sorted(&[&paused]));
    assert_eq!(
        jobs(JobState::Finished).await,
        sorted(&[&succeeded, &failed, &cancelled])
    );
    assert_eq!(jobs(JobState::Succeeded).await, sorted(&[&succeeded]));
    assert_eq!(jobs(JobState::Failed).await, sorted(&[&failed]));
    assert_eq!(jobs(JobState::Cancelled).await, sorted(&[&cancelled]));
}

async fn a_priority_change_reaches_the_job_and_its_unended_tasks(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let first = store.submit(&spec(2, 3)).await.expect("submit");
    let later = store.submit(&spec(3, 3)).await.expect("submit");
    let running = claimed(&*store, later.tasks[0].id, w, lease).await;

    let moved = store.set_priority(later.job.id, 7).await.expect("priority");
    assert_eq!(
        moved.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![later.tasks[1].id, later.tasks[2].id],
        "its queued tasks, in dispatch order"
    );
    assert!(moved.iter().all(|t| t.priority == 7), "{moved:?}");
    assert_eq!(store.get_job(later.job.id).await.expect("get").priority, 7);
    let order: Vec<TaskId> = store
        .queued_tasks("tiny-random-dit", i64::MIN, 10)
        .await
        .expect("queued")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(order.len(), 4);

    // The running task goes back to the queue at the new priority.
    let outcome = store
        .fail(
            &running,
            &FailReport {
                message: "oom",
                kind: FailureKind::Worker,
                give_back: true,
                device_ms: 0,
            },
            Backoff::NONE,
        )
        .await
        .expect("fail");
    let FailOutcome::Requeued(requeued, _) = outcome else {
        panic!("requeued: {outcome:?}");
    };
    assert_eq!(requeued.priority, 7);
    assert_eq!(
        store.get_job(first.job.id).await.expect("get").priority,
        0,
        "other jobs keep theirs"
    );

    store.set_paused(later.job.id, true).await.expect("pause");
    assert!(
        store
            .set_priority(later.job.id, -2)
            .await
            .expect("priority")
            .is_empty(),
        "a paused job's tasks are out of the queues"
    );
    assert_eq!(store.get_job(later.job.id).await.expect("get").priority, -2);
    assert!(matches!(
        store.set_priority(fresco_core::JobId::new(), 1).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn throughput_and_eta_follow_recent_successes(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let mut four = spec(4, 1);
    for task in &mut four.tasks {
        task.n = 2;
    }
    let job = store.submit(&four).await.expect("submit");
    let fresh = store.get_job(job.job.id).await.expect("get");
    assert_eq!(
        fresh.rate,
        fresco_store::JobRate::default(),
        "nothing ended"
    );

    // A failure is no throughput.
    let token = claimed(&*store, job.tasks[0].id, w, lease).await;
    let report = FailReport {
        message: "no",
        kind: FailureKind::Request,
        give_back: false,
        device_ms: 0,
    };
    store
        .fail(&token, &report, Backoff::NONE)
        .await
        .expect("fail");
    assert_eq!(store.get_job(job.job.id).await.expect("get").rate.eta, None);

    for (i, task) in job.tasks[1..3].iter().enumerate() {
        let token = claimed(&*store, task.id, w, lease).await;
        store
            .complete(&token, &[output(&format!("t{i}"))], 0)
            .await
            .expect("complete");
    }
    let before = chrono::Utc::now();
    let going = store.get_job(job.job.id).await.expect("get");
    assert!(going.rate.tasks_per_minute > 0.0, "{:?}", going.rate);
    assert!(
        (going.rate.images_per_minute - 2.0 * going.rate.tasks_per_minute).abs()
            <= 1e-9 * going.rate.tasks_per_minute,
        "two images a task (to rounding): {:?}",
        going.rate
    );
    assert!(going.rate.window <= fresco_store::RATE_WINDOW);
    let eta = going.rate.eta.expect("an eta once tasks ended");
    assert!(eta >= before, "{eta} before {before}");
    let listed = store
        .list_jobs(10, &JobFilter::default())
        .await
        .expect("list");
    assert!(listed[0].rate.eta.is_some(), "lists carry the rate too");

    let token = claimed(&*store, job.tasks[3].id, w, lease).await;
    store
        .complete(&token, &[output("t3")], 0)
        .await
        .expect("complete");
    let done = store.get_job(job.job.id).await.expect("get");
    assert_eq!(done.rate.eta, None, "finished: no eta");
    assert!(done.rate.tasks_per_minute > 0.0);
}

async fn a_completion_keeps_what_the_manifest_needs(store: Store) {
    let w = WorkerId::new();
    store
        .register_worker(
            &WorkerInfo {
                id: w,
                name: "gpu-7".into(),
                device: "cuda:0 (NVIDIA H100)".into(),
                models: vec!["tiny-random-dit".into()],
                loaded_models: vec![],
                capabilities: vec![],
            },
            None,
        )
        .await
        .expect("registering");
    let submitted = store.submit(&spec(2, 3)).await.expect("submit");
    let (done, waiting) = (submitted.tasks[0].id, submitted.tasks[1].id);
    let queued = store.get_task(done).await.expect("queued task");
    assert_eq!((queued.started_at, queued.finished_at), (None, None));
    assert_eq!(queued.completion, None);

    let token = claimed(&*store, done, w, Duration::from_secs(30)).await;
    let outputs = [OutputRecord {
        sha256: "ab".repeat(32),
        ..output("manifest/0.png")
    }];
    let weights = "cd".repeat(32);
    let report = CompletionReport {
        outputs: &outputs,
        device_ms: 1_250,
        weights_sha256: &weights,
    };
    store
        .record_completion(&token, &report)
        .await
        .expect("complete");
    // The worker registers again on another device: the task keeps the
    // device that made it.
    store
        .register_worker(
            &WorkerInfo {
                id: w,
                name: "gpu-7".into(),
                device: "cpu".into(),
                models: vec!["tiny-random-dit".into()],
                loaded_models: vec![],
                capabilities: vec![],
            },
            None,
        )
        .await
        .expect("registering again");

    let task = store.get_task(done).await.expect("get_task");
    assert_eq!(
        task.completion,
        Some(Completion {
            weights_sha256: weights.clone(),
            device_ms: 1_250,
            worker_name: "gpu-7".into(),
            worker_device: "cuda:0 (NVIDIA H100)".into(),
        })
    );
    assert_eq!(task.outputs, outputs);
    assert_eq!((task.worker, task.attempt), (Some(w), 1));
    let started = task.started_at.expect("started");
    let finished = task.finished_at.expect("finished");
    assert!(
        task.created_at <= started && started <= finished,
        "{task:?}"
    );
    let listed = store
        .list_tasks(&TaskQuery {
            job: Some(submitted.job.id),
            limit: 10,
            ..TaskQuery::default()
        })
        .await
        .expect("list_tasks");
    assert_eq!(listed[0], task, "listed as read alone");
    assert_eq!(
        store
            .job_outputs(submitted.job.id, &[])
            .await
            .expect("outputs"),
        outputs
    );
    let other = store.get_task(waiting).await.expect("the other task");
    assert_eq!((other.completion, other.started_at), (None, None));
}

async fn a_finished_job_wants_its_manifest_again_after_a_retry(store: Store) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let submitted = store.submit(&spec(2, 3)).await.expect("submit");
    let job = submitted.job.id;
    let (good, bad) = (submitted.tasks[0].id, submitted.tasks[1].id);
    let due = |store: Store| async move { store.manifests_due(10).await.expect("manifests due") };
    assert!(due(store.clone()).await.is_empty(), "unfinished: not yet");

    let token = claimed(&*store, good, w, lease).await;
    store
        .complete(&token, &[output("m/0.png")], 0)
        .await
        .expect("complete");
    assert!(due(store.clone()).await.is_empty(), "a task still queued");
    let token = claimed(&*store, bad, w, lease).await;
    let refused = FailReport {
        message: "bad prompt",
        kind: FailureKind::Request,
        give_back: false,
        device_ms: 0,
    };
    store
        .fail(&token, &refused, Backoff::NONE)
        .await
        .expect("fail");
    let first = ManifestDue { job, reopened: 0 };
    assert_eq!(due(store.clone()).await, [first], "finished: due");
    assert!(store.mark_manifest_written(first).await.expect("mark"));
    assert!(due(store.clone()).await.is_empty(), "written");

    // A retry reopens it: due again only once it finishes again.
    assert_eq!(store.retry_job(job).await.expect("retry").len(), 1);
    assert!(due(store.clone()).await.is_empty(), "running again");
    let token = claimed(&*store, bad, w, lease).await;
    store
        .complete(&token, &[output("m/1.png")], 0)
        .await
        .expect("complete");
    let second = ManifestDue { job, reopened: 1 };
    assert_eq!(due(store.clone()).await, [second]);
    // A manifest written before the retry does not count for it.
    assert!(store.mark_manifest_written(first).await.expect("mark"));
    assert_eq!(due(store.clone()).await, [second]);
    assert!(store.mark_manifest_written(second).await.expect("mark"));
    assert!(due(store.clone()).await.is_empty());
    // A retry with nothing failed reopens nothing.
    assert!(store.retry_job(job).await.expect("retry").is_empty());
    assert!(due(store.clone()).await.is_empty());

    let missing = ManifestDue {
        job: fresco_core::JobId::new(),
        reopened: 0,
    };
    assert!(
        !store.mark_manifest_written(missing).await.expect("mark"),
        "a job that is gone is not marked"
    );
}

/// Every store call that moves tasks keeps the job's counts exact: each is
/// compared with a count over the task rows (raw SQL, past the store) right
/// after the call, and again after folding.
async fn a_jobs_counts_follow_every_move_of_its_tasks(store: Store, sql: Sql) {
    let w = worker(&*store).await;
    let lease = Duration::from_secs(30);
    let a = store.submit(&spec(6, 2)).await.expect("submit a");
    let b = store.submit(&spec(3, 2)).await.expect("submit b");
    let jobs = [a.job.id, b.job.id];
    assert_counts_exact(&*store, &sql, &jobs, "submitting").await;
    assert_eq!(
        reported_states(&*store, a.job.id).await,
        BTreeMap::from([("queued".to_owned(), 6)])
    );

    let done = claimed(&*store, a.tasks[0].id, w, lease).await;
    assert_counts_exact(&*store, &sql, &jobs, "a claim").await;
    store
        .complete(&done, &[output("a0")], 0)
        .await
        .expect("complete");
    assert_counts_exact(&*store, &sql, &jobs, "a completion").await;

    let retried = claimed(&*store, a.tasks[1].id, w, lease).await;
    let report = FailReport {
        message: "no",
        kind: FailureKind::Worker,
        give_back: false,
        device_ms: 0,
    };
    store
        .fail(&retried, &report, Backoff::NONE)
        .await
        .expect("fail");
    assert_counts_exact(&*store, &sql, &jobs, "a failure with attempts left").await;
    let again = claimed(&*store, a.tasks[1].id, w, lease).await;
    store
        .fail(&again, &report, Backoff::NONE)
        .await
        .expect("fail");
    assert_counts_exact(&*store, &sql, &jobs, "a failure for good").await;

    store.cancel_task(a.tasks[2].id).await.expect("cancel task");
    assert_counts_exact(&*store, &sql, &jobs, "cancelling a task").await;

    store
        .claim(a.tasks[3].id, w, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.expire_leases(Backoff::NONE).await.expect("expire");
    assert_counts_exact(&*store, &sql, &jobs, "an expired lease").await;

    claimed(&*store, a.tasks[4].id, w, lease).await;
    store.release_running().await.expect("release");
    assert_counts_exact(&*store, &sql, &jobs, "releasing running tasks").await;

    claimed(&*store, b.tasks[0].id, w, lease).await;
    store.cancel_job(b.job.id).await.expect("cancel job");
    assert_counts_exact(&*store, &sql, &jobs, "cancelling a job").await;
    store.retry_job(b.job.id).await.expect("retry job");
    assert_counts_exact(&*store, &sql, &jobs, "retrying a job").await;
    store.retry_job(a.job.id).await.expect("retry job");
    assert_counts_exact(&*store, &sql, &jobs, "retrying a job with failed tasks").await;
    assert_eq!(
        reported_states(&*store, a.job.id).await,
        BTreeMap::from([
            ("cancelled".to_owned(), 1),
            ("queued".to_owned(), 4),
            ("succeeded".to_owned(), 1),
        ]),
        "the failed task queued again beside the requeued ones"
    );

    // A deleted job's counts go with it.
    store.cancel_job(b.job.id).await.expect("cancel job");
    assert!(
        store
            .delete_job(b.job.id, Duration::ZERO)
            .await
            .expect("delete")
    );
    assert_counts_exact(&*store, &sql, &[a.job.id], "deleting a job").await;
    assert!(matches!(
        store.get_job(b.job.id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Claims and completions from many connections at once, with folds
/// running beside them: every count stays exact.
async fn counts_stay_exact_under_concurrent_claims_and_folds(store: Store, sql: Sql) {
    let submitted = store.submit(&spec(120, 3)).await.expect("submit");
    let tasks: Vec<TaskId> = submitted.tasks.iter().map(|t| t.id).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let folder = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut folds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                store.fold_task_counts().await.expect("folding");
                folds += 1;
                tokio::task::yield_now().await;
            }
            folds
        })
    };
    claim_and_complete_concurrently(&store, &tasks, 6).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let folds = folder.await.expect("folder");
    assert!(folds > 0);
    assert_counts_exact(&*store, &sql, &[submitted.job.id], "concurrent claims").await;
    assert_eq!(
        reported_states(&*store, submitted.job.id).await,
        BTreeMap::from([("succeeded".to_owned(), 120)])
    );
}
