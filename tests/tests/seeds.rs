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
use fresco_e2e::{Farm, FarmOptions, describe};
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
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    (buf, text.into_iter().collect())
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
    let job = farm.submit(&[
        "--model",
        model,
        "--prompt",
        "a red fox",
        "--sampler",
        sampler,
        "--seed",
        &seed.to_string(),
        "-n",
        &n.to_string(),
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
    ]);
    let status = farm.wait_finished(&job, Duration::from_secs(300)).await;
    assert_eq!(status["counts"]["succeeded"], 1, "{model}: {status}");
    let out = farm.dir.path().join(format!("download-{job}"));
    let download = farm.cli(&["download", &job, "--out", &out.display().to_string()]);
    assert!(download.status.success(), "{}", describe(&download));
    (0..n)
        .map(|k| read_png(&out.join(format!("task-00000-{k}.png"))))
        .collect()
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
