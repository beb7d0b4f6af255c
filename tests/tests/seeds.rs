//! One per-image seed contract on every model family, through a real farm: for
//! fresco's DiT, a Stable Diffusion 1.x folder, an SD3 folder and a FLUX folder,
//! image 2 of an n = 4 task carries in its PNG the seed that, submitted alone
//! with n = 1, renders the same pixels again.

#[path = "../../crates/fresco-diffusers/tests/flow_common/mod.rs"]
mod flow_common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fresco_e2e::models::copy_dir;
use fresco_e2e::{Farm, FarmOptions, decode_png, describe};
use fresco_worker::png::read_png_text;

/// A task seed two below the top, so image 2's seed wraps around to 0.
const TASK_SEED: u64 = u64::MAX - 1;

/// CLIP's `vocab.json` with no merges: words are spelled letter by letter.
fn write_letter_tokenizer(dir: &Path) {
    std::fs::create_dir_all(dir).expect("tokenizer dir");
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|startoftext|>".into(), 998.into());
    vocab.insert("<|endoftext|>".into(), 999.into());
    for (id, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), (id + 100).into());
        vocab.insert(format!("{c}</w>"), (id + 200).into());
    }
    std::fs::write(
        dir.join("vocab.json"),
        serde_json::Value::Object(vocab).to_string(),
    )
    .expect("vocab");
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\n").expect("merges");
}

/// A T5 `tokenizer.json`: whole words of the test's prompt, within the tiny
/// T5's 128 ids.
fn write_t5_tokenizer(dir: &Path) {
    std::fs::create_dir_all(dir).expect("tokenizer dir");
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": null,
        "decoder": null,
        "model": {
            "type": "WordLevel",
            "vocab": { "<unk>": 2, "a": 10, "red": 11, "fox": 12 },
            "unk_token": "<unk>"
        }
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).expect("tokenizer.json");
}

/// A models directory with one folder per diffusers-layout family: `tiny-sd`
/// (SD 1.x, fresco-diffusers' reference folder), `tiny-sd3` and `tiny-flux` (seeded
/// random weights), each with the tokenizers text prompts need.
fn models_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let sd = dir.path().join("tiny-sd");
    let reference = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/fresco-diffusers/tests/data/tiny-sd");
    copy_dir(&reference, &sd);
    write_letter_tokenizer(&sd.join("tokenizer"));

    let sd3 = dir.path().join("tiny-sd3");
    flow_common::write_sd3(&sd3, false, 21);
    write_letter_tokenizer(&sd3.join("tokenizer"));
    write_letter_tokenizer(&sd3.join("tokenizer_2"));

    let flux = dir.path().join("tiny-flux");
    flow_common::write_flux(&flux, true, 31);
    write_letter_tokenizer(&flux.join("tokenizer"));
    write_t5_tokenizer(&flux.join("tokenizer_2"));
    dir
}

/// The pixels and text chunks of a downloaded PNG.
fn read_png(path: &Path) -> (Vec<u8>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, _, text) = read_png_text(&bytes).expect("reading PNG text chunks");
    (decode_png(&bytes).2, text.into_iter().collect())
}

/// Renders one task of `model` with `seed` and `n` images; returns the
/// downloaded images, in order.
async fn render(
    farm: &Farm,
    model: &str,
    sampler: &str,
    seed: u64,
    n: u32,
) -> Vec<(Vec<u8>, HashMap<String, String>)> {
    let job = submit(farm, model, sampler, &[], seed, n);
    finished_images(farm, &job, n).await
}

/// Submits one task of `model` with `seed`, `n` images and `extra` flags;
/// returns the job id.
fn submit(farm: &Farm, model: &str, sampler: &str, extra: &[&str], seed: u64, n: u32) -> String {
    let seed = seed.to_string();
    let n = n.to_string();
    let mut args = vec![
        "--model",
        model,
        "--prompt",
        "a red fox",
        "--sampler",
        sampler,
        "--seed",
        &seed,
        "-n",
        &n,
        "--steps",
        "3",
        "--width",
        "16",
        "--height",
        "16",
        "--guidance",
        "3",
        "--max-attempts",
        "1",
    ];
    args.extend_from_slice(extra);
    farm.submit(&args)
}

/// Waits for `job` (one task of `n` images) to succeed; its images, in
/// order, downloaded.
async fn finished_images(
    farm: &Farm,
    job: &str,
    n: u32,
) -> Vec<(Vec<u8>, HashMap<String, String>)> {
    let status = farm.wait_finished(job, Duration::from_secs(300)).await;
    assert_eq!(status["counts"]["succeeded"], 1, "{job}: {status}");
    let out = download_dir(farm, job);
    let download = farm.cli(&["download", job, "--out", &out.display().to_string()]);
    assert!(download.status.success(), "{}", describe(&download));
    (0..n)
        .map(|k| read_png(&out.join(format!("task-00000-{k}.png"))))
        .collect()
}

fn download_dir(farm: &Farm, job: &str) -> PathBuf {
    farm.dir.path().join(format!("download-{job}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_k_of_a_task_renders_again_alone_from_the_seed_in_its_png() {
    let models = models_dir();
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;

    // Euler ancestral draws fresh noise at every step: SD's step noise too
    // must come from the image seed.
    for (model, sampler) in [
        ("tiny-random-dit", "euler"),
        ("tiny-sd", "euler_a"),
        ("tiny-sd3", "flow_euler"),
        ("tiny-flux", "flow_euler"),
    ] {
        let batch = render(&farm, model, sampler, TASK_SEED, 4).await;
        for (k, (_, text)) in batch.iter().enumerate() {
            assert_eq!(text["task_seed"], TASK_SEED.to_string(), "{model}");
            assert_eq!(
                text["seed"],
                TASK_SEED.wrapping_add(k as u64).to_string(),
                "{model}: image {k}'s seed is the task seed + {k}"
            );
        }
        assert_ne!(batch[1].0, batch[2].0, "{model}: images of a batch differ");
        let (pixels, text) = &batch[2];
        let seed: u64 = text["seed"].parse().expect("a u64 seed");
        assert_eq!(seed, 0, "{model}: the image seed wraps around");
        let alone = render(&farm, model, sampler, seed, 1).await;
        assert_eq!(alone[0].1["seed"], seed.to_string(), "{model}");
        assert_eq!(
            &alone[0].0, pixels,
            "{model}: image 2's seed alone with n = 1 renders image 2 again"
        );
    }
}

/// `fresco regen` renders image 2 of an n = 4 task again, pixel for pixel,
/// both from its PNG and from the job's record, on every family, schedule
/// knobs included; the PNG's webui `parameters` text names the sampler as
/// the webui does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresco_regen_renders_an_image_again_from_its_png_and_from_its_record() {
    let models = models_dir();
    let mut farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;

    for (model, sampler, extra, webui_sampler) in [
        (
            "tiny-random-dit",
            "heun",
            &["--flow-shift", "2"][..],
            "Heun",
        ),
        (
            "tiny-sd",
            "dpmpp_2m",
            &["--timestep-spacing", "trailing", "--karras-sigmas", "true"][..],
            "DPM++ 2M Karras",
        ),
        (
            "tiny-sd3",
            "flow_euler",
            &["--flow-shift", "2"][..],
            "Euler",
        ),
        ("tiny-flux", "flow_euler", &[][..], "Euler"),
    ] {
        let job = submit(&farm, model, sampler, extra, 1234, 4);
        let batch = finished_images(&farm, &job, 4).await;
        let (pixels, text) = &batch[2];
        assert!(
            text["parameters"].contains(&format!(", Sampler: {webui_sampler}, ")),
            "{model}: {}",
            text["parameters"]
        );
        let png = download_dir(&farm, &job).join("task-00000-2.png");
        let png = png.display().to_string();
        for how in [
            vec!["regen", &png, "--wait"],
            vec!["regen", &job, "0", "2", "--wait"],
        ] {
            let regen = farm.cli(&how);
            assert!(regen.status.success(), "{model}: {}", describe(&regen));
            let again = String::from_utf8_lossy(&regen.stdout).trim().to_owned();
            let alone = finished_images(&farm, &again, 1).await;
            assert_eq!(
                &alone[0].0, pixels,
                "{model}: {how:?} renders image 2 again, pixel for pixel"
            );
            let (_, again_text) = &alone[0];
            for chunk in [
                "seed", "prompt", "sampler", "schedule", "steps", "guidance", "model",
            ] {
                assert_eq!(again_text[chunk], text[chunk], "{model}: {how:?}: {chunk}");
            }
            assert_eq!(
                again_text["task_seed"], text["seed"],
                "{model}: one image, its seed"
            );
        }
    }
    assert!(
        farm.cli(&["regen", "a", "b"]).status.code() == Some(2),
        "two words are neither a file nor JOB TASK IMAGE"
    );
}
