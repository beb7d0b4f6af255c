//! Job retention on a real farm (`--job-retention-seconds 3`): a finished
//! job is deleted once its last task is three seconds old, its rows from
//! Postgres (read with raw SQL) and its images and manifest from the
//! bucket (listed by object_store's own S3 client); an unfinished (paused)
//! job is kept whole, however old.

use std::time::Duration;

use fresco_e2e::{FAST_SHAPES, Farm, FarmOptions, describe, wait_until};
use sqlx::PgPool;

/// Rows of `table` belonging to `job` (`tasks`, `outputs` through its
/// tasks, `jobs` itself).
async fn rows_of(pool: &PgPool, table: &str, job: &str) -> i64 {
    let sql = match table {
        "jobs" => "SELECT count(*) FROM jobs WHERE id = $1::UUID",
        "tasks" => "SELECT count(*) FROM tasks WHERE job_id = $1::UUID",
        "outputs" => {
            "SELECT count(*) FROM outputs o JOIN tasks t ON t.id = o.task_id WHERE t.job_id = $1::UUID"
        }
        other => panic!("no query for {other}"),
    };
    sqlx::query_scalar(sql)
        .bind(job)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The bucket's objects under `job`'s folder.
async fn objects_of(farm: &Farm, job: &str) -> usize {
    farm.bucket_keys()
        .await
        .iter()
        .filter(|key| key.contains(&format!("/{job}/")))
        .count()
}

fn submit(farm: &Farm, prompts: &[&str]) -> String {
    let mut args: Vec<&str> = FAST_SHAPES.to_vec();
    for prompt in prompts {
        args.extend(["--prompt", prompt]);
    }
    farm.submit(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_deleted_past_the_retention_and_unfinished_ones_kept() {
    let farm = Farm::start(FarmOptions {
        workers: 1,
        coordinator_args: vec![
            "--job-retention-seconds".into(),
            "3".into(),
            "--manifest-interval-seconds".into(),
            "1".into(),
        ],
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;

    // An unfinished job: paused with tasks still queued.
    let prompts: Vec<String> = (0..200).map(|i| format!("a red circle {i}")).collect();
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let kept = submit(&farm, &prompts);
    let out = farm.cli(&["pause", &kept]);
    assert!(out.status.success(), "{}", describe(&out));

    let done = submit(&farm, &["a blue square", "a green triangle"]);
    let finished = farm.wait_finished(&done, Duration::from_secs(60)).await;
    assert_eq!(finished["counts"]["succeeded"], 2, "{finished}");
    assert_eq!(rows_of(&pool, "outputs", &done).await, 2);
    farm.wait_manifests_written(&[&done]).await;
    let objects: Vec<String> = farm
        .bucket_keys()
        .await
        .into_iter()
        .filter(|key| key.contains(&format!("/{done}/")))
        .collect();
    assert_eq!(
        objects.len(),
        3,
        "its two images and its manifest: {objects:?}"
    );
    assert!(
        objects
            .iter()
            .any(|key| key.ends_with(&format!("/{done}/manifest.jsonl"))),
        "{objects:?}"
    );
    let kept_queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE job_id = $1::UUID AND state = 'queued'",
    )
    .bind(&kept)
    .fetch_one(&pool)
    .await
    .expect("counting queued tasks");
    assert!(kept_queued > 0, "the paused job has tasks queued");
    let kept_objects = objects_of(&farm, &kept).await;

    wait_until(
        "the coordinator to delete the finished job",
        Duration::from_secs(60),
        || async { rows_of(&pool, "jobs", &done).await == 0 },
    )
    .await;
    let log = farm.log("coordinator");
    assert!(
        log.lines()
            .any(|line| line.contains("expired job deleted") && line.contains(&done)),
        "{log}"
    );
    for table in ["jobs", "tasks", "outputs"] {
        assert_eq!(
            rows_of(&pool, table, &done).await,
            0,
            "{table} of the deleted job"
        );
    }
    assert_eq!(
        objects_of(&farm, &done).await,
        0,
        "its images and manifest left the bucket"
    );
    let out = farm.cli(&["status", &done]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("job {done} not found")),
        "{}",
        describe(&out)
    );

    // The paused job, older than the retention by now, is whole.
    assert_eq!(rows_of(&pool, "jobs", &kept).await, 1);
    assert_eq!(rows_of(&pool, "tasks", &kept).await, 200);
    assert_eq!(objects_of(&farm, &kept).await, kept_objects);
}
