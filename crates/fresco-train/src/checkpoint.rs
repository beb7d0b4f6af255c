//! Checkpoints: a directory holding the model (`config.json` + `model.safetensors`,
//! itself loadable by `DitPipeline::from_dir`), the optimizer moments
//! (`optimizer.safetensors`) and the run state (`state.json`: step counter, seed and
//! the options that must not change on resume, the dataset's [`DataRecipe`] among
//! them). Steps draw their randomness from
//! `(seed, step)` only, so the step counter is the whole RNG position.
//! Checkpoints are written to a temporary directory and then renamed into place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fresco_shapes::{Dataset, Framing, Shape, Sizing};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_err};

/// File of the run state inside a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// File of the optimizer moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// What a resumed run needs besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed (the next step to run).
    pub step: u64,
    /// Run seed (data, noise, flow times and dropout of every step derive from it).
    pub seed: u64,
    /// Batch size.
    pub batch: usize,
    /// Training image side.
    pub image_size: u32,
    /// Restrict training to dataset samples `0..n` (tests, overfitting).
    pub dataset_size: Option<u64>,
    /// Smoothed loss at `step` (for continuous logs).
    pub loss_ema: Option<f64>,
    /// The dataset options of the run (`None` in checkpoints written before
    /// they were recorded, which resume unchecked).
    #[serde(default)]
    pub data: Option<DataRecipe>,
}

/// The dataset options that decide which picture and caption every step
/// draws. A resumed run must keep them, or it would no longer be the run the
/// checkpoint belongs to; the noise options (flow-time distribution, caption
/// dropout, loss weights) and the schedule may change on resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRecipe {
    /// Where a shape goes when its caption names no position.
    pub framing: Framing,
    /// How large a shape is when its caption names no size.
    pub sizing: Sizing,
    /// How often, in percent, a caption names the size, and the position.
    pub layout_percent: u32,
    /// The shapes drawn more often than the rest, with their weight (shapes
    /// of weight 1 are left out, so the unweighted dataset has none).
    pub shape_weights: BTreeMap<Shape, u32>,
}

impl DataRecipe {
    /// The recipe of `dataset`.
    pub fn of(dataset: &Dataset) -> Self {
        Self {
            framing: dataset.framing(),
            sizing: dataset.sizing(),
            layout_percent: dataset.layout_percent(),
            shape_weights: Shape::ALL
                .iter()
                .map(|&shape| (shape, dataset.shape_weight(shape)))
                .filter(|&(_, weight)| weight != 1)
                .collect(),
        }
    }

    /// The command-line options of `self` that `given` sets otherwise, as
    /// `--option (checkpoint X, given Y)` phrases; empty when they agree.
    pub fn differences(&self, given: &DataRecipe) -> Vec<String> {
        let mut out = Vec::new();
        let mut note = |flag: &str, saved: String, now: String| {
            if saved != now {
                out.push(format!("--{flag} (checkpoint {saved}, given {now})"));
            }
        };
        note(
            "unnamed-position",
            framing_word(self.framing).to_owned(),
            framing_word(given.framing).to_owned(),
        );
        note(
            "unnamed-size",
            sizing_word(self.sizing).to_owned(),
            sizing_word(given.sizing).to_owned(),
        );
        note(
            "layout-words-percent",
            self.layout_percent.to_string(),
            given.layout_percent.to_string(),
        );
        note(
            "shape-weight",
            weights_phrase(&self.shape_weights),
            weights_phrase(&given.shape_weights),
        );
        out
    }
}

/// The `--unnamed-position` value of `framing`.
fn framing_word(framing: Framing) -> &'static str {
    match framing {
        Framing::Anywhere => "anywhere",
        Framing::CentreUnlessNamed => "centre",
    }
}

/// The `--unnamed-size` value of `sizing`.
fn sizing_word(sizing: Sizing) -> &'static str {
    match sizing {
        Sizing::Any => "any",
        Sizing::LargeUnlessNamed => "large",
    }
}

/// `star=3 square=2`, or `none`.
fn weights_phrase(weights: &BTreeMap<Shape, u32>) -> String {
    if weights.is_empty() {
        return "none".to_owned();
    }
    weights
        .iter()
        .map(|(shape, weight)| format!("{}={weight}", shape.word()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl TrainState {
    /// Reads `dir/state.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let json = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        Ok(serde_json::from_str(&json)?)
    }

    /// Writes `dir/state.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)?).map_err(io_err(&path))
    }
}

/// Writes a checkpoint into `target` atomically: `fill` populates a fresh
/// `<target>.tmp` directory, which then replaces `target`.
pub fn write_atomically(target: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = sibling(target, "tmp");
    let old = sibling(target, "old");
    for p in [&tmp, &old] {
        if p.exists() {
            std::fs::remove_dir_all(p).map_err(io_err(p))?;
        }
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    fill(&tmp)?;
    if target.exists() {
        std::fs::rename(target, &old).map_err(io_err(target))?;
    }
    std::fs::rename(&tmp, target).map_err(io_err(&tmp))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "checkpoint".into());
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// Fails unless `dir` looks like a checkpoint.
pub fn check_dir(dir: &Path) -> Result<()> {
    for f in [
        STATE_FILE,
        OPTIMIZER_FILE,
        "config.json",
        "model.safetensors",
    ] {
        if !dir.join(f).is_file() {
            return Err(Error::Options(format!(
                "{} is not a checkpoint (missing {f})",
                dir.display()
            )));
        }
    }
    Ok(())
}
