//! Model folders for end-to-end tests: the diffusers-layout `tiny-sd`
//! folder (random weights, the one fresco-diffusers matches against
//! diffusers) copied into a models directory with a CLIP tokenizer of a
//! few words; and a DiT folder whose weights no reader accepts (a worker
//! fault: loading the model fails).

use std::path::{Path, PathBuf};

/// The reference `tiny-sd` folder in fresco-diffusers' test data.
pub fn tiny_sd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/fresco-diffusers/tests/data/tiny-sd")
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("reading the model folder") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A models directory holding `tiny-sd` plus a CLIP tokenizer for it (the
/// reference folder has none): a few lowercase words within its 1000 ids,
/// and every letter. A letter of `unembeddable` ends a word as an id past
/// the text encoder's 1000 (5000 on): the tokenizer knows it and the model
/// cannot embed it, so a prompt with that one-letter word fails on the
/// worker as a request fault.
pub fn tiny_sd_models_dir(unembeddable: &[char]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("tiny-sd");
    copy_dir(&tiny_sd(), &model);
    std::fs::create_dir(model.join("tokenizer")).expect("mkdir");
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|startoftext|>".into(), 998.into());
    vocab.insert("<|endoftext|>".into(), 999.into());
    for (id, word) in ["a", "red", "blue", "cat", "dog"].iter().enumerate() {
        vocab.insert(format!("{word}</w>"), (id + 10).into());
    }
    for (id, c) in ('a'..='z').enumerate() {
        let word_end = if unembeddable.contains(&c) { 5000 } else { 200 };
        vocab.insert(c.to_string(), (id + 100).into());
        vocab.insert(format!("{c}</w>"), (id + word_end).into());
    }
    std::fs::write(
        model.join("tokenizer/vocab.json"),
        serde_json::Value::Object(vocab).to_string(),
    )
    .expect("vocab");
    // No merges: words are spelled letter by letter.
    std::fs::write(model.join("tokenizer/merges.txt"), "#version: 0.2\n").expect("merges");
    dir
}

/// Writes the folder of a tiny DiT of model `name` with seeded random
/// weights at `dir`.
pub fn write_tiny_dit(dir: &Path, name: &str) {
    fresco_dit::DitPipeline::random(
        name,
        fresco_dit::DitConfig::tiny(),
        11,
        &candle_core::Device::Cpu,
    )
    .expect("a random DiT")
    .save(dir)
    .expect("saving the DiT folder");
}

/// The weights file of a DiT folder.
pub const DIT_WEIGHTS: &str = "model.safetensors";

/// Writes a sound tiny DiT folder of model `name` at `dir`, then
/// overwrites its weights with bytes no safetensors reader accepts;
/// returns the sound weights (to repair it with).
pub fn corrupt_dit_folder(dir: &Path, name: &str) -> Vec<u8> {
    write_tiny_dit(dir, name);
    let sound = std::fs::read(dir.join(DIT_WEIGHTS)).expect("reading the weights");
    std::fs::write(dir.join(DIT_WEIGHTS), b"not a safetensors file").expect("corrupting");
    sound
}
