//! Fair sharing between tenants on a real farm (coordinator, two workers,
//! fresco-shapes at few steps and small images): tenant A's 10,000-task
//! job is running when tenant B submits 20 tasks of the same model. B's job
//! finishes in about the time its fair share predicts, not after A's job:
//! measured straight from Postgres as A's tasks that succeeded between B's
//! submission and B's last completion. At equal weights the prediction is
//! one of A's per one of B's (~20); at B's weight 3, one per three (~7).
//! The bound is generous (three times the prediction, plus A's tasks
//! already running when B submitted) and still far below A's 10,000.

use std::time::Duration;

use fresco_e2e::{FAST_SHAPES, Farm, FarmOptions, describe, wait_until};
use sqlx::PgPool;

const A_TASKS: usize = 10_000;
const B_TASKS: usize = 20;

/// Submits `count` prompts as `tenant` (a submitter key of its own);
/// returns the job id.
fn submit_as(farm: &Farm, tenant: &str, count: usize) -> String {
    let file = farm.dir.path().join(format!("{tenant}.txt"));
    let prompts: Vec<String> = (0..count)
        .map(|i| format!("a red circle number {i}"))
        .collect();
    std::fs::write(&file, prompts.join("\n")).expect("writing the prompts file");
    let key = farm.client_key(tenant, "submitter");
    let mut args = vec!["submit", "--prompts-file", file.to_str().expect("utf-8")];
    args.extend(FAST_SHAPES);
    let out = farm.cli_as(&key, &args);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn tasks_in(pool: &PgPool, job: &str, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasks WHERE job_id = $1::UUID AND state = $2")
        .bind(job)
        .bind(state)
        .fetch_one(pool)
        .await
        .expect("counting tasks")
}

/// What one run measured, from Postgres.
#[derive(Debug)]
struct Share {
    /// A's tasks that had succeeded when B submitted.
    a_before_b: i64,
    /// A's tasks running when B submitted (started before, finished after).
    in_flight: i64,
    /// A's tasks that succeeded between B's submission and B's last
    /// completion.
    a_during_b: i64,
    /// B's job, submission to last completion.
    b_seconds: f64,
    /// A's tasks still queued when B finished.
    a_left: i64,
}

/// A's long job, then B's short one once A is running (B's weight set
/// with `fresco-coordinator tenants set` first, when given); A is cancelled at the end.
async fn a_long_job_then_a_short_one(b_weight: Option<u32>) -> Share {
    let farm = Farm::start(FarmOptions::default()).await;
    let pool = farm.db.pool().await;
    if let Some(weight) = b_weight {
        farm.tenants(&["set", "b", "--weight", &weight.to_string()]);
    }
    let a = submit_as(&farm, "a", A_TASKS);
    wait_until("A to be running", Duration::from_secs(60), || async {
        tasks_in(&pool, &a, "succeeded").await >= 10 && tasks_in(&pool, &a, "running").await > 0
    })
    .await;

    let b = submit_as(&farm, "b", B_TASKS);
    wait_until("B's job to finish", Duration::from_secs(300), || async {
        tasks_in(&pool, &b, "succeeded").await == B_TASKS as i64
    })
    .await;
    let (a_before_b, in_flight, a_during_b, b_seconds): (i64, i64, i64, f64) = sqlx::query_as(
        "WITH b AS (SELECT j.created_at AS submitted, max(t.finished_at) AS done
                    FROM jobs j JOIN tasks t ON t.job_id = j.id
                    WHERE j.id = $2::UUID GROUP BY j.created_at)
         SELECT (SELECT count(*) FROM tasks, b
                 WHERE job_id = $1::UUID AND state = 'succeeded'
                   AND finished_at <= b.submitted),
                (SELECT count(*) FROM tasks, b
                 WHERE job_id = $1::UUID AND started_at <= b.submitted
                   AND (finished_at IS NULL OR finished_at > b.submitted)),
                (SELECT count(*) FROM tasks, b
                 WHERE job_id = $1::UUID AND state = 'succeeded'
                   AND finished_at > b.submitted AND finished_at <= b.done),
                (SELECT extract(epoch FROM b.done - b.submitted)::FLOAT8 FROM b)",
    )
    .bind(&a)
    .bind(&b)
    .fetch_one(&pool)
    .await
    .expect("measuring the share");
    let a_left = tasks_in(&pool, &a, "queued").await;

    let key = farm.client_key("a", "submitter");
    let out = farm.cli_as(&key, &["cancel", &a]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(tasks_in(&pool, &a, "queued").await, 0, "A is cancelled");
    Share {
        a_before_b,
        in_flight,
        a_during_b,
        b_seconds,
        a_left,
    }
}

fn assert_fair(share: &Share, predicted: i64) {
    eprintln!(
        "fair share on a farm: {} of A's tasks during B's {B_TASKS} (predicted {predicted}; \
         {} of A's in flight at B's submission); B took {:.2} s; {} of A's still queued",
        share.a_during_b, share.in_flight, share.b_seconds, share.a_left
    );
    assert!(share.a_before_b >= 10, "A was under way when B submitted");
    assert!(
        share.a_during_b <= 3 * predicted + share.in_flight,
        "B waited behind A: {share:?}, predicted {predicted}"
    );
    assert!(
        share.a_left > (A_TASKS as i64) / 2,
        "B finished long before A's backlog: {share:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_job_of_another_tenant_finishes_in_its_fair_share() {
    let share = a_long_job_then_a_short_one(None).await;
    assert_fair(&share, B_TASKS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_of_weight_three_takes_three_turns_to_one() {
    let share = a_long_job_then_a_short_one(Some(3)).await;
    assert_fair(&share, (B_TASKS as i64 + 2) / 3);
}
