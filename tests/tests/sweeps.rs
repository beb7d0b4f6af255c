//! A parameter study as a user runs it, on a real farm: 3 prompts from a
//! file × `--seeds 1-4` × `--guidance 3,7.5` through `fresco submit` make
//! one job of 24 tasks, expanded by the coordinator in the documented
//! order (prompts outermost, guidance innermost). Postgres (read with raw
//! SQL) and the API both give every task its parameters and coordinates;
//! the job finishes, each image carries its task's seed, and `fresco
//! status` shows the axes. On `fresco dev` (the SQLite store) a sweep of
//! prompts × seeds × sizes renders each image at its task's size.

use std::time::Duration;

use fresco_e2e::{
    FAST_SHAPES, Farm, FarmOptions, Proc, binary, describe, free_port, stdout_json, wait_until,
};
use fresco_proto::v1 as pb;

const PROMPTS: [&str; 3] = ["a red circle", "a blue square", "a green triangle"];
const SEEDS: [u64; 4] = [1, 2, 3, 4];
const GUIDANCE: [f32; 2] = [3.0, 7.5];

/// Task `index`'s place along each axis: (prompt, seed, guidance).
fn expected_place(index: usize) -> (usize, usize, usize) {
    let per_prompt = SEEDS.len() * GUIDANCE.len();
    (
        index / per_prompt,
        index % per_prompt / GUIDANCE.len(),
        index % GUIDANCE.len(),
    )
}

/// A task row as Postgres holds it.
type Row = (i32, String, i64, f32, i32, i32, i32, Option<String>);

/// Every task row of `job`, in index order, straight from Postgres.
async fn stored_tasks(farm: &Farm, job: &str) -> (Option<String>, Vec<Row>) {
    let pool = farm.db.pool().await;
    let sweep: Option<String> =
        sqlx::query_scalar("SELECT sweep::TEXT FROM jobs WHERE id = $1::UUID")
            .bind(job)
            .fetch_one(&pool)
            .await
            .expect("reading the job row");
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT idx, prompt, seed, guidance, steps, width, n, coordinates::TEXT
         FROM tasks WHERE job_id = $1::UUID ORDER BY idx",
    )
    .bind(job)
    .fetch_all(&pool)
    .await
    .expect("reading the task rows");
    (sweep, rows)
}

fn check_rows(rows: &[Row]) {
    assert_eq!(rows.len(), 24, "3 prompts × 4 seeds × 2 guidance values");
    for (i, (idx, prompt, seed, guidance, steps, width, n, coordinates)) in rows.iter().enumerate()
    {
        let (p, s, g) = expected_place(i);
        assert_eq!(*idx as usize, i);
        assert_eq!(prompt, PROMPTS[p], "task {i}");
        assert_eq!(*seed as u64, SEEDS[s], "task {i}");
        assert_eq!(*guidance, GUIDANCE[g], "task {i}");
        assert_eq!((*steps, *width, *n), (2, 16, 1), "task {i}: the defaults");
        let coordinates: serde_json::Value =
            serde_json::from_str(coordinates.as_deref().expect("coordinates stored"))
                .expect("coordinates as JSON");
        assert_eq!(
            coordinates,
            serde_json::json!({"prompt": p, "seed": s, "guidance": g}),
            "task {i}"
        );
    }
}

async fn check_api(farm: &Farm, job: &str) {
    let mut client = farm.job_client().await;
    let stored = client
        .get_job(pb::GetJobRequest {
            job_id: job.to_owned(),
        })
        .await
        .expect("GetJob")
        .into_inner();
    let sweep = stored.sweep.expect("the job keeps its axes");
    let prompts: Vec<&str> = sweep.prompts.iter().map(|p| p.prompt.as_str()).collect();
    assert_eq!(prompts, PROMPTS);
    assert_eq!(sweep.seeds, SEEDS);
    assert_eq!(sweep.guidance, GUIDANCE);
    assert!(sweep.steps.is_empty() && sweep.samplers.is_empty() && sweep.sizes.is_empty());
    let tasks = client
        .list_tasks(pb::ListTasksRequest {
            job_id: job.to_owned(),
            ..Default::default()
        })
        .await
        .expect("ListTasks")
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 24);
    for (i, task) in tasks.iter().enumerate() {
        let (p, s, g) = expected_place(i);
        let at = task.coordinates.expect("coordinates");
        assert_eq!(
            (at.prompt, at.seed, at.guidance),
            (Some(p as u32), Some(s as u32), Some(g as u32)),
            "task {i}"
        );
        assert_eq!((at.steps, at.sampler, at.size), (None, None, None));
        assert_eq!(
            (task.prompt.as_str(), task.seed, task.guidance),
            (PROMPTS[p], SEEDS[s], GUIDANCE[g])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_from_the_cli_makes_every_combination_and_renders_it() {
    let farm = Farm::start(FarmOptions::default()).await;
    let prompts = farm.dir.path().join("prompts.txt");
    std::fs::write(&prompts, PROMPTS.join("\n")).expect("writing the prompts file");
    let prompts = prompts.to_str().expect("utf-8 path");
    let mut args = vec![
        "submit",
        "--prompts-file",
        prompts,
        "--seeds",
        "1-4",
        "--guidance",
        "3,7.5",
    ];
    args.extend(FAST_SHAPES);
    let out = farm.cli(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("with 24 tasks"),
        "{}",
        describe(&out)
    );

    let (sweep, rows) = stored_tasks(&farm, &job).await;
    let sweep: serde_json::Value =
        serde_json::from_str(&sweep.expect("the job row keeps the axes")).expect("JSON");
    assert_eq!(
        sweep,
        serde_json::json!({
            "prompts": PROMPTS.map(|p| serde_json::json!({"prompt": p})),
            "seeds": SEEDS,
            "guidance": GUIDANCE,
        })
    );
    check_rows(&rows);
    check_api(&farm, &job).await;

    wait_until("the sweep to finish", Duration::from_secs(300), || async {
        let out = farm.cli(&["status", "--json", &job]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|status| status["finished"] == true)
    })
    .await;
    let status = stdout_json(&farm.cli(&["status", "--json", "--tasks", "all", &job]));
    assert_eq!(status["counts"]["succeeded"], 24, "{status}");
    assert_eq!(
        status["sweep"]["seeds"],
        serde_json::json!(SEEDS),
        "{status}"
    );
    for (i, task) in status["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .enumerate()
    {
        let (p, s, g) = expected_place(i);
        assert_eq!(
            task["coordinates"],
            serde_json::json!({"prompt": p, "seed": s, "guidance": g})
        );
        assert_eq!(task["outputs"][0]["seed"], SEEDS[s], "{task}");
    }

    let out = farm.cli(&["status", "--tasks", "all", &job]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "sweep: 3 prompts × 4 seeds × 2 guidance values = 24 tasks",
        "  prompts (3): \"a red circle\", \"a blue square\", \"a green triangle\"",
        "  seeds (4): 1, 2, 3, 4",
        "  guidance (2): 3, 7.5",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(
        text.contains("\"a green triangle\" [prompt 2, seed 3, guidance 1]"),
        "the last task's place:\n{text}"
    );

    // Each image's manifest row names its place in the sweep; axes the
    // sweep does not vary are empty.
    let manifest = farm.cli(&["manifest", &job]);
    assert!(manifest.status.success(), "{}", describe(&manifest));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&manifest.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 24);
    for row in &rows {
        let index = row["task_index"].as_u64().expect("a task index") as usize;
        let (p, s, g) = expected_place(index);
        assert_eq!(
            (
                &row["sweep_prompt"],
                &row["sweep_seed"],
                &row["sweep_guidance"]
            ),
            (
                &serde_json::json!(p),
                &serde_json::json!(s),
                &serde_json::json!(g)
            ),
            "{row}"
        );
        for unvaried in ["sweep_steps", "sweep_sampler", "sweep_size"] {
            assert_eq!(row[unvaried], serde_json::Value::Null, "{row}");
        }
        assert_eq!(row["seed"], SEEDS[s], "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fresco_dev_a_sweep_renders_every_size_it_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let endpoint = format!("http://{listen}");
    let _dev = Proc::spawn(
        "fresco dev",
        binary("fresco")
            .args(["dev", "--workers", "1", "--listen", &listen, "--data-dir"])
            .arg(dir.path().join("data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let cli = |args: &[&str]| {
        binary("fresco")
            .args(["--coordinator", &endpoint])
            .args(args)
            .output()
            .expect("running fresco")
    };
    wait_until(
        "fresco dev to list its worker",
        Duration::from_secs(60),
        || async {
            let out = cli(&["workers", "--json"]);
            out.status.success()
                && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|w| w.as_array().is_some_and(|w| !w.is_empty()))
        },
    )
    .await;

    let out = cli(&[
        "submit",
        "--model",
        "fresco-shapes",
        "--steps",
        "2",
        "-p",
        "a red circle",
        "-p",
        "a blue square",
        "--seeds",
        "5,9",
        "--size",
        "16x16,32x16",
        "--wait",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let status = stdout_json(&cli(&["status", "--json", &job]));
    assert_eq!(status["counts"]["succeeded"], 8, "{status}");
    let tasks = status["tasks"].as_array().expect("tasks");
    for (i, task) in tasks.iter().enumerate() {
        let (p, s, z) = (i / 4, i / 2 % 2, i % 2);
        assert_eq!(
            task["coordinates"],
            serde_json::json!({"prompt": p, "seed": s, "size": z}),
            "{task}"
        );
        let width = [16, 32][z];
        assert_eq!(
            (&task["width"], &task["height"]),
            (&width.into(), &16.into())
        );
        assert_eq!(task["outputs"][0]["width"], width, "{task}");
        assert_eq!(task["outputs"][0]["seed"], [5, 9][s], "{task}");
    }
}
