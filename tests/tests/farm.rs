//! The farm end to end: a bulk job from a JSONL file through the real CLI,
//! coordinator and two workers, to PNGs in a real S3 bucket.

use std::collections::HashMap;
use std::io::Write;

use fresco_e2e::{Farm, FarmOptions, decode_png, describe};
use fresco_worker::png::read_png_text;
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_job_flows_from_the_cli_to_the_bucket() {
    let farm = Farm::start(FarmOptions::default()).await;

    // 24 tasks; two pairs repeat the same parameters to check determinism,
    // and lines override sizes, steps, guidance and n.
    let mut lines = Vec::new();
    for i in 0..20 {
        lines.push(format!(
            r#"{{"prompt": "a shape number {i}", "seed": {}}}"#,
            1000 + i
        ));
    }
    lines.push(r#"{"prompt": "a red circle", "seed": 7, "steps": 3}"#.to_owned());
    lines.push(r#"{"prompt": "a red circle", "seed": 7, "steps": 3}"#.to_owned());
    lines.push(r#"{"prompt": "a blue square", "seed": 9, "width": 48, "height": 24, "n": 3, "guidance": 2.5, "negative_prompt": "green"}"#.to_owned());
    lines.push(r#"{"prompt": "a blue square", "seed": 9, "width": 48, "height": 24, "n": 3, "guidance": 2.5, "negative_prompt": "green"}"#.to_owned());
    let file = farm.dir.path().join("prompts.jsonl");
    let mut f = std::fs::File::create(&file).expect("creating prompts file");
    writeln!(f, "{}", lines.join("\n")).expect("writing prompts file");

    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompts-file",
        file.to_str().expect("utf-8 path"),
        "--steps",
        "4",
        "--width",
        "32",
        "--height",
        "32",
        "-n",
        "2",
        "--json",
        "--wait",
    ]);
    assert!(out.status.success(), "{}\n{}", describe(&out), farm.logs());
    let submitted: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .next()
            .expect("a first line"),
    )
    .expect("submit --json prints a JSON object");
    let job_id = submitted["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(submitted["task_count"], 24);

    // Postgres: every task succeeded, and both workers took part.
    let pool = farm.db.pool().await;
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM tasks GROUP BY state")
            .fetch_all(&pool)
            .await
            .expect("counting states");
    assert_eq!(
        states,
        vec![("succeeded".to_owned(), 24)],
        "{}",
        farm.logs()
    );
    let workers: i64 = sqlx::query_scalar("SELECT count(DISTINCT worker_id) FROM tasks")
        .fetch_one(&pool)
        .await
        .expect("counting workers");
    assert_eq!(workers, 2, "tasks should be spread over both workers");
    let leased: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE lease_expires_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("counting leases");
    assert_eq!(leased, 0);

    // Every output exists in the bucket, decodes to the asked size and
    // carries its parameters.
    let rows = sqlx::query(
        "SELECT t.idx, t.prompt, t.negative_prompt, t.seed, t.steps, t.width, t.height, t.n,
                t.guidance, o.idx AS image, o.key, o.width AS ow, o.height AS oh, o.bytes, o.seed AS oseed
         FROM tasks t JOIN outputs o ON o.task_id = t.id ORDER BY t.idx, o.idx",
    )
    .fetch_all(&pool)
    .await
    .expect("reading outputs");
    assert_eq!(rows.len(), 22 * 2 + 2 * 3);
    let storage = farm.storage();
    let mut pixels: HashMap<(i32, i32), Vec<u8>> = HashMap::new();
    for row in &rows {
        let key: String = row.get("key");
        let bytes = storage
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("{key} is not in the bucket: {e}"));
        assert_eq!(bytes.len() as i64, row.get::<i64, _>("bytes"));
        let (w, h, rgb) = decode_png(&bytes);
        assert_eq!((w as i32, h as i32), (row.get("width"), row.get("height")));
        assert_eq!((w as i32, h as i32), (row.get("ow"), row.get("oh")));
        let (_, _, text) = read_png_text(&bytes).expect("reading PNG text chunks");
        let text: HashMap<String, String> = text.into_iter().collect();
        assert_eq!(text["prompt"], row.get::<String, _>("prompt"));
        assert_eq!(
            text["negative_prompt"],
            row.get::<String, _>("negative_prompt")
        );
        assert_eq!(text["steps"], row.get::<i32, _>("steps").to_string());
        assert_eq!(text["model"], "tiny-random-dit");
        assert_eq!(text["sampler"], "euler");
        assert_eq!(text["width"], w.to_string());
        assert_eq!(
            text["task_seed"],
            (row.get::<i64, _>("seed") as u64).to_string()
        );
        assert_eq!(
            text["seed"],
            (row.get::<i64, _>("oseed") as u64).to_string()
        );
        assert_eq!(text["guidance"], row.get::<f32, _>("guidance").to_string());
        assert!(text["parameters"].contains(", Sampler: Euler, "));
        pixels.insert((row.get("idx"), row.get("image")), rgb);
    }
    // Same seed and parameters, same pixels; another seed, other pixels.
    assert_eq!(pixels[&(20, 0)], pixels[&(21, 0)]);
    assert_eq!(pixels[&(20, 1)], pixels[&(21, 1)]);
    assert_eq!(pixels[&(22, 2)], pixels[&(23, 2)]);
    assert_ne!(
        pixels[&(20, 0)],
        pixels[&(20, 1)],
        "images of a batch draw different noise"
    );
    assert_ne!(pixels[&(0, 0)], pixels[&(1, 0)]);

    // `fresco status --json` agrees with the database.
    let out = farm.cli(&["status", &job_id, "--json", "--tasks", "all"]);
    assert!(out.status.success(), "{}", describe(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(status["counts"]["succeeded"], 24);
    assert_eq!(status["counts"]["queued"], 0);
    assert_eq!(status["finished"], true);
    let tasks = status["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 24);
    let listed_keys: usize = tasks
        .iter()
        .map(|t| t["outputs"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(listed_keys, rows.len());

    // `fresco list` shows the job; `fresco download` fetches every image.
    let out = farm.cli(&["list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&job_id),
        "{}",
        describe(&out)
    );
    let dest = farm.dir.path().join("downloaded");
    let out = farm.cli(&["download", &job_id, "--out", dest.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", describe(&out));
    let files = std::fs::read_dir(&dest).expect("download dir").count();
    assert_eq!(files, rows.len());
    let first = std::fs::read(dest.join("task-00020-0.png")).expect("a downloaded image");
    assert_eq!(decode_png(&first).2, pixels[&(20, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_restores_queues_after_redis_is_flushed() {
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompt",
        "a",
        "--prompt",
        "b",
        "--prompt",
        "c",
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let mut redis = farm.redis.connection().await;
    // The default tenant's queue of the model (a farm without keys).
    let key = "fresco:queue:tiny-random-dit:default";
    let len: u64 = redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("ZCARD");
    assert_eq!(len, 3);
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .expect("FLUSHALL");
    fresco_e2e::wait_until(
        "the reconciler to re-push",
        std::time::Duration::from_secs(15),
        || {
            let mut redis = redis.clone();
            async move {
                redis::cmd("ZCARD")
                    .arg(key)
                    .query_async::<u64>(&mut redis)
                    .await
                    .map(|n| n == 3)
                    .unwrap_or(false)
            }
        },
    )
    .await;

    // A worker that starts now finishes the job.
    farm.start_worker().await;
    let out = farm.cli(&["watch", &job_id]);
    assert!(out.status.success(), "{}\n{}", describe(&out), farm.logs());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("succeeded 3"),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_finishes_every_task_when_redis_is_flushed_mid_job() {
    let farm = Farm::start(FarmOptions::default()).await;
    let prompts = farm.dir.path().join("prompts.txt");
    let lines: Vec<String> = (0..300).map(|i| format!("a blue square {i}")).collect();
    std::fs::write(&prompts, lines.join("\n")).expect("writing prompts");
    let job_id = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--prompts-file",
        prompts.to_str().expect("utf-8"),
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
    ]);
    let pool = farm.db.pool().await;
    let count = |state: &'static str| {
        let pool = pool.clone();
        let job_id = job_id.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM tasks WHERE job_id = $1::UUID AND state = $2",
            )
            .bind(job_id)
            .bind(state)
            .fetch_one(&pool)
            .await
            .expect("counting tasks")
        }
    };
    fresco_e2e::wait_until(
        "the job to be under way",
        std::time::Duration::from_secs(60),
        || async { count("succeeded").await >= 5 },
    )
    .await;

    let mut redis = farm.redis.connection().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .expect("FLUSHALL");
    // The flush took work that was still waiting: Postgres holds it queued.
    let queued_at_flush = count("queued").await;
    assert!(queued_at_flush > 0, "the flush came before the job ran dry");

    let status = farm
        .wait_finished(&job_id, std::time::Duration::from_secs(300))
        .await;
    assert_eq!(
        status["counts"]["succeeded"],
        300,
        "{status}\n{}",
        farm.logs()
    );
    assert_eq!(count("succeeded").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_by_sigterm_leaves_nothing_leased() {
    let mut farm = Farm::start(FarmOptions {
        workers: 1,
        ..FarmOptions::default()
    })
    .await;
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompt",
        "slow one",
        "--prompt",
        "slow two",
        "--steps",
        "150",
        "--width",
        "128",
        "--height",
        "128",
        "-n",
        "2",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let pool = farm.db.pool().await;
    farm.wait_for_running_task().await;
    let worker = &mut farm.workers[0];
    worker.signal("TERM");
    let status = worker.wait_exit(std::time::Duration::from_secs(30));
    assert!(
        status.success(),
        "the worker exits cleanly on SIGTERM: {status:?}\n{}",
        farm.logs()
    );
    let leased: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE state = 'running'")
        .fetch_one(&pool)
        .await
        .expect("counting leases");
    assert_eq!(leased, 0, "{}", farm.logs());
    let errors: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(jsonb_array_length(errors)), 0)::BIGINT FROM tasks",
    )
    .fetch_one(&pool)
    .await
    .expect("counting errors");
    assert_eq!(errors, 0, "finishing or giving back is not a failure");

    // The coordinator stops cleanly too, even with a watcher attached.
    let mut watcher = farm
        .cli_command(&farm.admin_key)
        .args(["watch", &job_id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting a watcher");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let coordinator = farm.coordinator.as_mut().expect("a coordinator");
    coordinator.signal("TERM");
    let status = coordinator.wait_exit(std::time::Duration::from_secs(15));
    assert!(
        status.success(),
        "the coordinator exits cleanly on SIGTERM: {status:?}\n{}",
        farm.logs()
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
}

#[test]
fn docker_compose_names_the_whole_farm() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("docker-compose.yml exists");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    let services = doc["services"].as_mapping().expect("a services map");
    for name in ["postgres", "redis", "minio", "coordinator", "worker"] {
        assert!(
            services.contains_key(serde_yaml::Value::from(name)),
            "docker-compose.yml has no {name} service"
        );
    }
    let worker_env = serde_yaml::to_string(&doc["services"]["worker"]).expect("worker yaml");
    assert!(worker_env.contains("FRESCO_COORDINATOR"), "{worker_env}");
    assert!(worker_env.contains("AWS_ENDPOINT_URL"), "{worker_env}");
    let coordinator_env =
        serde_yaml::to_string(&doc["services"]["coordinator"]).expect("coordinator yaml");
    assert!(
        coordinator_env.contains("FRESCO_DATABASE_URL"),
        "{coordinator_env}"
    );
    // The farm asks for keys: `keys` makes an admin key and a worker token
    // before the coordinator starts, and the workers call with the token.
    let keys = serde_yaml::to_string(&doc["services"]["keys"]).expect("keys yaml");
    for made in [
        "keys create --kind client --tenant default --role admin",
        "keys create --kind worker",
    ] {
        assert!(keys.contains(made), "{keys}");
    }
    assert_eq!(
        doc["services"]["coordinator"]["depends_on"]["keys"]["condition"],
        "service_completed_successfully"
    );
    assert!(worker_env.contains("FRESCO_WORKER_TOKEN"), "{worker_env}");
    assert!(!coordinator_env.contains("INSECURE"), "{coordinator_env}");
}
