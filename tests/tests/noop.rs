//! The built-in `noop` model on a real farm: tasks submitted through the
//! CLI with any sampler go through claim, upload and completion like any
//! model's, and leave blank PNGs of the asked size in the bucket, carrying
//! the text chunks every model writes, with Postgres recording each task
//! as succeeded with its outputs; a side past the farm's limit is refused.

use std::collections::HashMap;
use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, decode_png, describe, stdout_json};
use fresco_worker::png::read_png_text;

/// One recorded output: its key, task seed and index, size and bytes.
type OutputRow = (String, i64, i32, i32, i32, i64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_tasks_leave_blank_pngs_with_their_text_chunks_in_the_bucket() {
    let farm = Farm::start(FarmOptions::default()).await;
    // Every worker serves it, as it does the other built-in models.
    let workers = stdout_json(&farm.cli(&["workers", "--json"]));
    let all = workers.as_array().expect("a list of workers");
    assert_eq!(all.len(), 2, "{workers}");
    for worker in all {
        assert!(
            worker["models"]
                .as_array()
                .is_some_and(|m| m.contains(&serde_json::json!("noop"))),
            "{worker}"
        );
    }
    let out = farm.cli(&[
        "submit",
        "--model",
        "noop",
        "--prompt",
        "a blank page",
        "--seeds",
        "1-3",
        "-n",
        "2",
        "--steps",
        "5",
        "--width",
        "48",
        "--height",
        "32",
        "--sampler",
        "dpmpp_2m_karras",
        "--json",
        "--wait",
    ]);
    assert!(out.status.success(), "{}\n{}", describe(&out), farm.logs());

    let pool = farm.db.pool().await;
    let states: Vec<(String, i32, bool, bool)> = sqlx::query_as(
        "SELECT state, attempt, started_at >= created_at, finished_at >= started_at
         FROM tasks WHERE model = 'noop' ORDER BY idx",
    )
    .fetch_all(&pool)
    .await
    .expect("the tasks");
    assert_eq!(
        states,
        vec![("succeeded".to_owned(), 1, true, true); 3],
        "{}",
        farm.logs()
    );

    let outputs: Vec<OutputRow> = sqlx::query_as(
        "SELECT o.key, t.seed, o.idx, o.width, o.height, o.bytes
         FROM outputs o JOIN tasks t ON t.id = o.task_id ORDER BY t.idx, o.idx",
    )
    .fetch_all(&pool)
    .await
    .expect("the outputs");
    assert_eq!(outputs.len(), 6, "{outputs:?}");
    let storage = farm.storage();
    for (key, task_seed, idx, width, height, size) in outputs {
        assert_eq!((width, height), (48, 32), "{key}");
        let bytes = storage.get(&key).await.expect("the image in the bucket");
        assert_eq!(bytes.len() as i64, size, "{key}");
        let (w, h, pixels) = decode_png(&bytes);
        assert_eq!((w, h), (48, 32), "{key}");
        assert_eq!(pixels.len(), 48 * 32 * 3, "{key}: RGB8");
        assert!(pixels.iter().all(|&b| b == 255), "{key}: not blank");

        let (_, _, text) = read_png_text(&bytes).expect("text chunks");
        let text: HashMap<String, String> = text.into_iter().collect();
        let image_seed = (task_seed as u64).wrapping_add(idx as u64);
        for (chunk, want) in [
            ("model", "noop".to_owned()),
            ("prompt", "a blank page".to_owned()),
            ("sampler", "dpmpp_2m_karras".to_owned()),
            ("steps", "5".to_owned()),
            ("width", "48".to_owned()),
            ("height", "32".to_owned()),
            ("seed", image_seed.to_string()),
            ("task_seed", (task_seed as u64).to_string()),
        ] {
            assert_eq!(text.get(chunk), Some(&want), "{key}: chunk {chunk}");
        }
        assert!(text["parameters"].contains("Model: noop"), "{key}");
        assert!(text.contains_key("fresco_job") && text.contains_key("fresco_task"));
    }

    // The largest side the farm draws, and one past it refused at submit.
    let job = farm.submit(&[
        "--model", "noop", "--prompt", "tall", "--width", "8", "--height", "2048",
    ]);
    let status = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(
        status["counts"]["succeeded"],
        1,
        "{status}\n{}",
        farm.logs()
    );
    let out = farm.cli(&[
        "submit", "--model", "noop", "--prompt", "x", "--width", "2056",
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
}
