//! Aggregate scoring of generated images against their prompts: per-attribute
//! accuracy split into seen vs held-out combinations, and per-prompt diversity.
//! [`EvalReport`]'s `Display` is a compact markdown table.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::analyze::{Analysis, analyze};
use crate::caption::{PromptAttributes, parse_prompt};
use crate::error::Result;

/// `correct` out of `total` judged items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    /// Items judged correct.
    pub correct: usize,
    /// Items judged (those whose prompt asked for the attribute).
    pub total: usize,
}

impl Ratio {
    /// Records one judgement.
    pub fn record(&mut self, ok: bool) {
        self.total += 1;
        if ok {
            self.correct += 1;
        }
    }

    /// `correct / total`, or `None` when nothing was judged.
    pub fn accuracy(&self) -> Option<f64> {
        (self.total > 0).then(|| self.correct as f64 / self.total as f64)
    }

    fn merged(self, other: Ratio) -> Ratio {
        Ratio {
            correct: self.correct + other.correct,
            total: self.total + other.total,
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.accuracy() {
            Some(a) => write!(f, "{:.1}%", a * 100.0),
            None => f.write_str("–"),
        }
    }
}

/// Accuracy counts for one group of images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Images in the group.
    pub images: usize,
    /// Foreground colour matches the prompt's colour.
    pub colour: Ratio,
    /// Shape matches.
    pub shape: Ratio,
    /// Background matches.
    pub background: Ratio,
    /// Size class matches.
    pub size: Ratio,
    /// Grid position matches.
    pub position: Ratio,
    /// Colour, shape and background (those asked for) all match.
    pub all: Ratio,
}

impl Tally {
    fn record(&mut self, want: &PromptAttributes, got: &Analysis) {
        self.images += 1;
        let mut all_ok = true;
        let mut judge = |ratio: &mut Ratio, ok: Option<bool>, core: bool| {
            if let Some(ok) = ok {
                ratio.record(ok);
                if core && !ok {
                    all_ok = false;
                }
            }
        };
        judge(
            &mut self.colour,
            want.colour.map(|c| got.foreground == Some(c)),
            true,
        );
        judge(
            &mut self.shape,
            want.shape.map(|s| got.shape == Some(s)),
            true,
        );
        judge(
            &mut self.background,
            want.background.map(|b| got.background == b),
            true,
        );
        judge(
            &mut self.size,
            want.size.map(|s| got.size == Some(s)),
            false,
        );
        judge(
            &mut self.position,
            want.position.map(|p| got.position == Some(p)),
            false,
        );
        self.all.record(all_ok);
    }

    fn merged(&self, o: &Tally) -> Tally {
        Tally {
            images: self.images + o.images,
            colour: self.colour.merged(o.colour),
            shape: self.shape.merged(o.shape),
            background: self.background.merged(o.background),
            size: self.size.merged(o.size),
            position: self.position.merged(o.position),
            all: self.all.merged(o.all),
        }
    }
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Prompts whose combination is allowed in training.
    pub seen: Tally,
    /// Prompts whose combination is held out of training.
    pub held_out: Tally,
    /// Mean over prompts with ≥ 2 images of the mean pairwise
    /// [`mean_abs_distance`]; `None` when no prompt has two images.
    pub diversity: Option<f64>,
    /// Prompts that contributed to `diversity`.
    pub diversity_prompts: usize,
}

impl EvalReport {
    /// Seen and held-out together.
    pub fn overall(&self) -> Tally {
        self.seen.merged(&self.held_out)
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| split | images | colour | shape | background | size | position | all three |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for (name, t) in [
            ("seen", self.seen),
            ("held-out", self.held_out),
            ("overall", self.overall()),
        ] {
            writeln!(
                f,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                t.images, t.colour, t.shape, t.background, t.size, t.position, t.all
            )?;
        }
        match self.diversity {
            Some(d) => writeln!(
                f,
                "\ndiversity (mean pairwise mean-abs pixel distance, 0–1): {d:.4} over {} prompts",
                self.diversity_prompts
            ),
            None => writeln!(f, "\ndiversity: – (no prompt has two images)"),
        }
    }
}

/// Mean absolute difference of two equally long byte buffers, scaled to `0..=1`
/// (0 for identical images). `None` when the lengths differ or are zero.
pub fn mean_abs_distance(a: &[u8], b: &[u8]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    Some(sum as f64 / (a.len() as f64 * 255.0))
}

/// Accumulates (prompt, image) pairs and produces an [`EvalReport`].
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    seen: Tally,
    held_out: Tally,
    /// Images per prompt, for diversity (ordered map: deterministic output).
    by_prompt: BTreeMap<String, Vec<Vec<u8>>>,
}

impl Evaluator {
    /// An empty evaluator.
    pub fn new() -> Evaluator {
        Evaluator::default()
    }

    /// Analyses `rgb` (`width`×`height` RGB8) and scores it against `prompt`.
    /// Returns the analysis for callers that want per-image detail.
    pub fn add(&mut self, prompt: &str, rgb: &[u8], width: u32, height: u32) -> Result<Analysis> {
        let want = parse_prompt(prompt);
        let got = analyze(rgb, width, height)?;
        self.record(&want, &got);
        self.by_prompt
            .entry(prompt.to_owned())
            .or_default()
            .push(rgb.to_vec());
        Ok(got)
    }

    /// Scores an existing analysis against explicitly given attributes (no image
    /// is kept, so it does not count toward diversity).
    pub fn record(&mut self, want: &PromptAttributes, got: &Analysis) {
        if want.is_held_out() {
            self.held_out.record(want, got);
        } else {
            self.seen.record(want, got);
        }
    }

    /// The report so far.
    pub fn report(&self) -> EvalReport {
        let mut total = 0.0;
        let mut prompts = 0;
        for images in self.by_prompt.values() {
            let mut sum = 0.0;
            let mut pairs = 0usize;
            for (i, a) in images.iter().enumerate() {
                for b in &images[i + 1..] {
                    if let Some(d) = mean_abs_distance(a, b) {
                        sum += d;
                        pairs += 1;
                    }
                }
            }
            if pairs > 0 {
                total += sum / pairs as f64;
                prompts += 1;
            }
        }
        EvalReport {
            seen: self.seen,
            held_out: self.held_out,
            diversity: (prompts > 0).then(|| total / prompts as f64),
            diversity_prompts: prompts,
        }
    }
}
