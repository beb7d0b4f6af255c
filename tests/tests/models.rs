//! Model folders: a worker started with `--models-dir` serves every model
//! folder in it, the coordinator accepts those ids once the worker has
//! registered, and the images come from that model.

use std::collections::HashMap;

use candle_core::Device;
use fresco_dit::{DitConfig, DitPipeline};
use fresco_e2e::{Farm, FarmOptions, describe};
use fresco_worker::png::read_png_text;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_the_model_folders_of_its_models_dir() {
    let models = tempfile::tempdir().expect("temp dir");
    DitPipeline::random("my-dit", DitConfig::tiny(), 42, &Device::Cpu)
        .expect("a random model")
        .save(models.path().join("my-dit"))
        .expect("saving the model folder");
    let farm = Farm::start(FarmOptions {
        workers: 1,
        worker_args: vec!["--models-dir".into(), models.path().display().to_string()],
        ..FarmOptions::default()
    })
    .await;

    let out = farm.cli(&[
        "submit",
        "--model",
        "my-dit",
        "--prompt",
        "a red circle",
        "--steps",
        "3",
        "--width",
        "16",
        "--height",
        "16",
        "--json",
        "--wait",
    ]);
    assert!(out.status.success(), "{}\n{}", describe(&out), farm.logs());
    let job: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().expect("a line"))
            .expect("json");
    assert_eq!(job["model"], "my-dit");

    let pool = farm.db.pool().await;
    let key: String = sqlx::query_scalar("SELECT key FROM outputs")
        .fetch_one(&pool)
        .await
        .expect("one output");
    let bytes = farm.storage().get(&key).await.expect("the image");
    let (_, _, text) = read_png_text(&bytes).expect("text chunks");
    let text: HashMap<String, String> = text.into_iter().collect();
    assert_eq!(text["model"], "my-dit");

    // A model no worker serves is still refused.
    let out = farm.cli(&["submit", "--model", "their-dit", "--prompt", "a"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model: unknown model"));
}
