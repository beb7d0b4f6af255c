//! Following and steering jobs through the real CLI on a real farm: a
//! raised priority sends a later job's queued tasks ahead of an earlier
//! one's; a job's throughput and estimated finish appear once tasks have
//! succeeded and the estimate goes once it has finished; labels given at
//! submit are kept and filter `fresco list`, as does `--state`, and bad
//! labels are refused with nothing stored; `fresco status` of a big job
//! shows a page of its tasks, how to page on, and its first failed tasks.

use std::collections::BTreeSet;
use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, describe, stdout_json, wait_until};
use fresco_proto::v1 as pb;
use sqlx::PgPool;
use tonic::Code;

const MODEL: &str = "tiny-random-dit";

async fn tasks_in(pool: &PgPool, job: &str, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasks WHERE job_id = $1::UUID AND state = $2")
        .bind(job)
        .bind(state)
        .fetch_one(pool)
        .await
        .expect("counting tasks")
}

async fn jobs_stored(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .expect("counting jobs")
}

/// `fresco submit` of `prompts` tasks of 2 steps, with `extra` flags.
fn submit(farm: &Farm, prompts: usize, extra: &[&str]) -> String {
    let mut args = vec!["--model", MODEL, "--steps", "2"];
    let names: Vec<String> = (0..prompts).map(|i| format!("prompt {i}")).collect();
    for name in &names {
        args.extend(["-p", name.as_str()]);
    }
    args.extend_from_slice(extra);
    farm.submit(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_priority_runs_the_later_jobs_queued_tasks_first() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    let earlier = submit(&farm, 3, &[]);
    let later = submit(&farm, 3, &[]);

    let raised = farm.cli(&["priority", &later, "5"]);
    assert!(raised.status.success(), "{}", describe(&raised));
    assert!(
        String::from_utf8_lossy(&raised.stdout).contains("priority 5"),
        "{}",
        describe(&raised)
    );
    let out_of_bounds = farm.cli(&["priority", &later, "5000"]);
    assert_eq!(
        out_of_bounds.status.code(),
        Some(2),
        "{}",
        describe(&out_of_bounds)
    );
    assert!(
        String::from_utf8_lossy(&out_of_bounds.stderr).contains("priority: must be between"),
        "{}",
        describe(&out_of_bounds)
    );
    let priorities: Vec<(String, i32)> = sqlx::query_as(
        "SELECT j.id::TEXT, t.priority FROM tasks t JOIN jobs j ON j.id = t.job_id
         WHERE j.priority = t.priority ORDER BY j.created_at, t.idx",
    )
    .fetch_all(&pool)
    .await
    .expect("reading priorities");
    assert_eq!(
        priorities,
        [vec![(earlier.clone(), 0); 3], vec![(later.clone(), 5); 3]].concat(),
        "the job and its tasks carry the new priority; the bad one changed nothing"
    );

    farm.start_worker().await;
    farm.wait_finished(&earlier, Duration::from_secs(90)).await;
    farm.wait_finished(&later, Duration::from_secs(90)).await;
    let (raised_first, starts): (bool, String) = sqlx::query_as(
        "WITH later AS (SELECT max(started_at) AS last FROM tasks WHERE job_id = $1::UUID),
              earlier AS (SELECT min(started_at) AS first FROM tasks WHERE job_id = $2::UUID)
         SELECT later.last < earlier.first, later.last::TEXT || ' vs ' || earlier.first::TEXT
         FROM later, earlier",
    )
    .bind(&later)
    .bind(&earlier)
    .fetch_one(&pool)
    .await
    .expect("reading start times");
    assert!(
        raised_first,
        "every task of the raised job started before the earlier job's first: {starts}\n{}",
        farm.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_and_eta_appear_once_tasks_succeed_and_the_eta_goes_at_the_end() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    // A quick first task, then slower ones (per-task steps override the
    // job's), so the job is still going when the first has succeeded.
    let file = farm.dir.path().join("tasks.jsonl");
    let mut lines = String::from("{\"prompt\": \"quick\"}\n");
    for i in 0..6 {
        lines.push_str(&format!("{{\"prompt\": \"slow {i}\", \"steps\": 40}}\n"));
    }
    std::fs::write(&file, lines).expect("write");
    let job = farm.submit(&[
        "--model",
        MODEL,
        "--steps",
        "2",
        "-n",
        "2",
        "--prompts-file",
        file.to_str().expect("utf-8"),
    ]);
    let fresh = farm.status(&job);
    assert_eq!(fresh["eta"], serde_json::Value::Null, "{fresh}");
    assert_eq!(fresh["tasks_per_minute"], 0.0, "{fresh}");

    farm.start_worker().await;
    wait_until("a task to succeed", Duration::from_secs(90), || async {
        tasks_in(&pool, &job, "succeeded").await >= 1
    })
    .await;
    let paused = farm.cli(&["pause", &job]);
    assert!(paused.status.success(), "{}", describe(&paused));
    let going = farm.status(&job);
    assert!(
        going["counts"]["queued"].as_u64() > Some(0),
        "tasks left while paused: {going}"
    );
    let per_minute = going["tasks_per_minute"].as_f64().expect("a rate");
    assert!(per_minute > 0.0, "{going}");
    let images_per_minute = going["images_per_minute"].as_f64().expect("a rate");
    assert!(
        (images_per_minute - 2.0 * per_minute).abs() <= 1e-9 * per_minute,
        "two images a task (to rounding): {going}"
    );
    assert!(going["eta"].is_string(), "{going}");
    assert!(going["eta_seconds"].is_u64(), "{going}");
    let text = farm.cli(&["status", &job]);
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(
        shown.contains("throughput ") && shown.contains("tasks/min") && shown.contains(", eta "),
        "{}",
        describe(&text)
    );
    let listed = farm.cli(&["list"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("tasks/min"),
        "{}",
        describe(&listed)
    );

    let resumed = farm.cli(&["resume", &job]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let done = farm.wait_finished(&job, Duration::from_secs(180)).await;
    assert_eq!(done["counts"]["succeeded"], 7, "{done}");
    assert_eq!(done["eta"], serde_json::Value::Null, "finished: {done}");
    assert!(done["tasks_per_minute"].as_f64() > Some(0.0), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_tasks_show_their_step_in_status() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let job = farm.submit(&[
        "--model", MODEL, "--steps", "200", "--width", "256", "--height", "256", "-p", "slow",
    ]);
    farm.start_worker().await;
    wait_until(
        "the task to report a step",
        Duration::from_secs(90),
        || async { farm.status(&job)["tasks"][0]["progress_step"].as_u64() > Some(0) },
    )
    .await;
    let text = farm.cli(&["status", &job]);
    let shown = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        shown.contains("running") && shown.contains("/200"),
        "{}",
        describe(&text)
    );
    let cancelled = farm.cli(&["cancel", &job]);
    assert!(cancelled.status.success(), "{}", describe(&cancelled));
}

/// `fresco status JOB --json ARGS`.
fn status_with(farm: &Farm, job: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["status", job, "--json"];
    all.extend_from_slice(args);
    stdout_json(&farm.cli(&all))
}

/// The indices of the tasks under `key` of a status.
fn indices(status: &serde_json::Value, key: &str) -> Vec<u64> {
    status[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {status}"))
        .iter()
        .filter_map(|task| task["index"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_big_job_shows_a_page_of_tasks_and_its_first_failures() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let big = submit(&farm, 45, &[]);

    let page = status_with(&farm, &big, &[]);
    assert_eq!(page["task_count"], 45, "{page}");
    assert_eq!(indices(&page, "tasks"), (0..20).collect::<Vec<_>>());
    assert_eq!(page["tasks_following"], 25, "{page}");
    assert_eq!(page["next_from_index"], 20, "{page}");
    let last = status_with(&farm, &big, &["--from-index", "40", "--tasks", "10"]);
    assert_eq!(indices(&last, "tasks"), (40..45).collect::<Vec<_>>());
    assert_eq!(last["tasks_following"], 0, "{last}");
    assert_eq!(last["next_from_index"], serde_json::Value::Null, "{last}");
    let every = status_with(&farm, &big, &["--tasks", "all"]);
    assert_eq!(indices(&every, "tasks"), (0..45).collect::<Vec<_>>());

    let text = farm.cli(&["status", &big]);
    assert!(text.status.success(), "{}", describe(&text));
    let shown = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(shown.contains("tasks #0-#19 of 45:"), "{shown}");
    assert!(
        shown.contains("\"prompt 19\"") && !shown.contains("\"prompt 20\""),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "25 more tasks from #20: fresco status {big} --from-index 20"
        )),
        "{shown}"
    );

    // A job whose 25 tasks all fail at its deadline: the first 20 show
    // with their errors, beside a page of 5.
    let doomed = submit(&farm, 25, &["--deadline", "2s"]);
    let done = farm.wait_finished(&doomed, Duration::from_secs(60)).await;
    assert_eq!(done["counts"]["failed"], 25, "{done}");
    let page = status_with(&farm, &doomed, &["--tasks", "5"]);
    assert_eq!(indices(&page, "failed_tasks"), (0..20).collect::<Vec<_>>());
    assert_eq!(
        page["failed_tasks"][0]["errors"][0]["kind"], "deadline",
        "{page}"
    );
    assert_eq!(indices(&page, "tasks"), (0..5).collect::<Vec<_>>());
    let text = farm.cli(&["status", &doomed, "--tasks", "5"]);
    let shown = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        shown.contains("failed tasks: 25 (the first 20):"),
        "{shown}"
    );
    assert!(shown.contains("(deadline): "), "the errors show: {shown}");
}

/// The ids `fresco list --json ARGS` prints.
fn listed(farm: &Farm, args: &[&str]) -> BTreeSet<String> {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    let out = farm.cli(&all);
    assert!(out.status.success(), "{}", describe(&out));
    stdout_json(&out)
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|j| j["job_id"].as_str().map(str::to_owned))
        .collect()
}

fn ids(jobs: &[&String]) -> BTreeSet<String> {
    jobs.iter().map(|j| (*j).clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_states_filter_the_list_and_bad_labels_store_nothing() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let pool = farm.db.pool().await;
    let x = submit(
        &farm,
        1,
        &["--label", "project=catalog-2027", "--label", "team=x"],
    );
    let y = submit(
        &farm,
        1,
        &["--label", "project=catalog-2027", "--label", "team=y"],
    );
    let plain = submit(&farm, 1, &[]);

    let status = farm.status(&x);
    assert_eq!(
        status["labels"],
        serde_json::json!({"project": "catalog-2027", "team": "x"})
    );
    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT labels FROM jobs WHERE id = $1::UUID")
            .bind(&x)
            .fetch_one(&pool)
            .await
            .expect("reading labels");
    assert_eq!(stored, status["labels"], "as stored");
    assert_eq!(
        listed(&farm, &["--label", "project=catalog-2027"]),
        ids(&[&x, &y])
    );
    assert_eq!(
        listed(
            &farm,
            &["--label", "project=catalog-2027", "--label", "team=x"]
        ),
        ids(&[&x]),
        "every label must match"
    );
    assert!(listed(&farm, &["--label", "team=z"]).is_empty());
    let text = farm.cli(&["list", "--label", "team=x"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("[project=catalog-2027, team=x]"),
        "{}",
        describe(&text)
    );

    let paused = farm.cli(&["pause", &plain]);
    assert!(paused.status.success(), "{}", describe(&paused));
    let cancelled = farm.cli(&["cancel", &y]);
    assert!(cancelled.status.success(), "{}", describe(&cancelled));
    assert_eq!(listed(&farm, &["--state", "queued"]), ids(&[&x]));
    assert_eq!(listed(&farm, &["--state", "paused"]), ids(&[&plain]));
    assert_eq!(listed(&farm, &["--state", "active"]), ids(&[&x, &plain]));
    assert_eq!(listed(&farm, &["--state", "cancelled"]), ids(&[&y]));
    assert_eq!(listed(&farm, &["--state", "finished"]), ids(&[&y]));
    assert!(listed(&farm, &["--state", "running"]).is_empty());
    assert_eq!(
        listed(
            &farm,
            &["--state", "active", "--label", "project=catalog-2027"]
        ),
        ids(&[&x])
    );
    let unknown = farm.cli(&["list", "--state", "done"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));

    // Bad labels: refused, naming the field and the rule; nothing stored.
    let before = jobs_stored(&pool).await;
    let bad_key = farm.cli(&["submit", "--model", MODEL, "-p", "x", "--label", "Team=x"]);
    assert_eq!(bad_key.status.code(), Some(2), "{}", describe(&bad_key));
    assert!(
        String::from_utf8_lossy(&bad_key.stderr).contains("labels: key \"Team\" must be"),
        "{}",
        describe(&bad_key)
    );
    let mut client = farm.job_client().await;
    let request = |labels: Vec<(String, String)>| pb::SubmitJobRequest {
        model: MODEL.into(),
        tasks: vec![pb::TaskParams {
            prompt: Some("x".into()),
            ..Default::default()
        }],
        labels: labels.into_iter().collect(),
        ..Default::default()
    };
    let too_many = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
    let long_value = vec![("k".to_owned(), "v".repeat(257))];
    for (labels, rule) in [
        (too_many, "labels: at most 32 labels (got 33)"),
        (
            long_value,
            "labels: value of \"k\" must be at most 256 characters (got 257)",
        ),
    ] {
        let err = client
            .submit_job(request(labels))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(err.message(), rule);
    }
    let err = client
        .list_jobs(pb::ListJobsRequest {
            labels: [("Bad".to_owned(), "x".to_owned())].into_iter().collect(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("labels: key"), "{err:?}");
    for (request, rule) in [
        (
            pb::ListJobsRequest {
                search: "x".repeat(201),
                ..Default::default()
            },
            "search: must be at most 200 characters (got 201)",
        ),
        (
            pb::ListJobsRequest {
                page_token: "next".into(),
                ..Default::default()
            },
            "page_token: must be a UUID (got \"next\")",
        ),
    ] {
        let err = client.list_jobs(request).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(err.message(), rule);
    }
    assert_eq!(jobs_stored(&pool).await, before, "nothing stored");
}
