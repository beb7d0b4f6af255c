//! Caption sensitivity: how much a model's clean-image estimate depends on each
//! word of the caption, measured without sampling.
//!
//! A training image `x0` is noised to `x_t` at a fixed flow time and the model
//! estimates `x̂0 = x_t − t·v̂` once under its full caption and once under each
//! caption that swaps one attribute (every other shape, say). A model that
//! reads the attribute's word estimates `x0` best under the true caption; one
//! that ignores it does so only by chance. Reading the words is what sampling
//! needs to follow a prompt, so the top-1 rate is an early, low-noise sign of
//! learning that a sampled evaluation with a few images per prompt cannot give.

use std::fmt;

use candle_core::{Device, Tensor};
use fresco_dit::DitPipeline;
use fresco_shapes::image_io::rgb_to_chw;
use fresco_shapes::scene::Scene;
use fresco_shapes::vocab::{Colour, Position, Shape, Size};
use fresco_shapes::{Dataset, Framing, Sizing, Split, full_caption};
use serde::Serialize;

use crate::data::noised;
use crate::error::{Error, Result};
use crate::eval::prompt_text;
use crate::schedule::{normal_vec, step_rng};

/// A caption attribute whose word can be swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attribute {
    /// Foreground colour.
    Colour,
    /// Shape.
    Shape,
    /// Background colour.
    Background,
    /// Size class.
    Size,
    /// One of the nine positions.
    Position,
}

impl Attribute {
    /// Every attribute, in table order.
    pub const ALL: [Attribute; 5] = [
        Attribute::Colour,
        Attribute::Shape,
        Attribute::Background,
        Attribute::Size,
        Attribute::Position,
    ];

    /// The attributes the evaluation's prompt form names (see
    /// [`SensitivityOptions::canonical`]).
    pub const CANONICAL: [Attribute; 3] =
        [Attribute::Colour, Attribute::Shape, Attribute::Background];

    /// `scene` and every valid scene that differs from it in this attribute
    /// only; the true scene comes first.
    fn variants(self, scene: &Scene) -> Vec<Scene> {
        let with = |f: &dyn Fn(&mut Scene)| {
            let mut s = *scene;
            f(&mut s);
            s
        };
        let mut out = vec![*scene];
        let others: Vec<Scene> = match self {
            Attribute::Colour => Colour::ALL
                .iter()
                .map(|&c| with(&|s| s.colour = c))
                .collect(),
            Attribute::Shape => Shape::ALL.iter().map(|&v| with(&|s| s.shape = v)).collect(),
            Attribute::Background => Colour::BACKGROUNDS
                .iter()
                .map(|&c| with(&|s| s.background = c))
                .collect(),
            Attribute::Size => Size::ALL.iter().map(|&v| with(&|s| s.size = v)).collect(),
            Attribute::Position => Position::ALL
                .iter()
                .map(|&p| with(&|s| s.position = p))
                .collect(),
        };
        out.extend(others.into_iter().filter(|s| s != scene && s.is_valid()));
        out
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Attribute::Colour => "colour",
            Attribute::Shape => "shape",
            Attribute::Background => "background",
            Attribute::Size => "size",
            Attribute::Position => "position",
        };
        f.write_str(name)
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct SensitivityOptions {
    /// Training images to noise (samples `0..images` of the dataset).
    pub images: usize,
    /// Flow times to noise them to.
    pub times: Vec<f64>,
    /// Dataset and noise seed.
    pub seed: u64,
    /// Measure on canonical pictures (large, centred) under the evaluation's
    /// prompt form, which names neither size nor position, swapping colour,
    /// shape and background only: the captions a model trained with
    /// `--layout-words-percent 0` knows. Otherwise every caption names every
    /// attribute.
    pub canonical: bool,
    /// Image side.
    pub size: u32,
}

impl Default for SensitivityOptions {
    fn default() -> Self {
        Self {
            images: 48,
            times: vec![0.5, 0.7, 0.9],
            seed: 1,
            size: 32,
            canonical: false,
        }
    }
}

/// One row of the table: an attribute at one flow time.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeSensitivity {
    /// The swapped attribute.
    pub attribute: Attribute,
    /// Flow time.
    pub t: f64,
    /// Images measured.
    pub images: usize,
    /// Share of images whose true caption gave the smallest `x̂0` error.
    pub top1: f64,
    /// The top-1 rate of a model that ignores the attribute's word.
    pub chance: f64,
    /// Mean squared `x̂0` error under the true caption.
    pub error_true: f64,
    /// Mean squared `x̂0` error under the swapped captions.
    pub error_swapped: f64,
}

/// Measures every attribute at every flow time of `opts`.
pub fn caption_sensitivity(
    pipeline: &DitPipeline,
    opts: &SensitivityOptions,
) -> Result<Vec<AttributeSensitivity>> {
    if opts.images == 0 || opts.times.iter().any(|t| !(0.0..=1.0).contains(t)) {
        return Err(Error::Options(
            "sensitivity needs at least one image and flow times in [0, 1]".into(),
        ));
    }
    let mut dataset = Dataset::new(opts.seed, opts.size, Split::Train)?;
    let (attributes, caption): (&[Attribute], fn(&Scene) -> String) = if opts.canonical {
        dataset = dataset
            .with_framing(Framing::CentreUnlessNamed)
            .with_sizing(Sizing::LargeUnlessNamed)
            .with_layout_percent(0)?;
        (&Attribute::CANONICAL, |s| {
            prompt_text(s.shape, s.colour, s.background)
        })
    } else {
        (&Attribute::ALL, full_caption)
    };
    let side = opts.size as usize;
    let per = 3 * side * side;
    let device = pipeline.device().clone();
    // Each image and its noise, rendered and drawn once for every row.
    let probes = (0..opts.images as u64)
        .map(|i| {
            let sample = dataset.sample(i)?;
            let x0 = rgb_to_chw(&sample.rgb, opts.size, opts.size)?;
            let noise = normal_vec(&mut step_rng(opts.seed, i), per);
            Ok((sample.scene, x0, noise))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for &t in &opts.times {
        for &attribute in attributes {
            let mut tally = Tally::default();
            for (scene, x0, noise) in &probes {
                let variants = attribute.variants(scene);
                let captions: Vec<String> = variants.iter().map(caption).collect();
                let errors = estimate_errors(pipeline, x0, noise, t, &captions, side, &device)?;
                tally.add(&errors);
            }
            rows.push(tally.finish(attribute, t));
        }
    }
    Ok(rows)
}

/// Mean squared error of `x̂0` against `x0` under each of `captions`, one
/// model call for all of them.
fn estimate_errors(
    pipeline: &DitPipeline,
    x0: &[f32],
    noise: &[f32],
    t: f64,
    captions: &[String],
    side: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    let n = captions.len();
    let x_t =
        Tensor::from_vec(noised(x0, noise, t), (1, 3, side, side), device)?.repeat((n, 1, 1, 1))?;
    let x0 = Tensor::from_vec(x0.to_vec(), (1, 3, side, side), device)?;
    let ids: Vec<Vec<u32>> = captions
        .iter()
        .map(|c| pipeline.tokenizer().tokenize(c).ids)
        .collect();
    let v = pipeline.velocity(&x_t, &[t], &ids)?;
    let estimate = (x_t - (v * t)?)?;
    let errors = estimate
        .broadcast_sub(&x0)?
        .sqr()?
        .flatten_from(1)?
        .mean(1)?
        .to_vec1::<f32>()?;
    Ok(errors.into_iter().map(f64::from).collect())
}

/// Running sums of one table row.
#[derive(Default)]
struct Tally {
    images: usize,
    top1: usize,
    chance: f64,
    error_true: f64,
    error_swapped: f64,
}

impl Tally {
    /// `errors[0]` is the true caption's.
    fn add(&mut self, errors: &[f64]) {
        let Some((&truth, swapped)) = errors.split_first() else {
            return;
        };
        self.images += 1;
        if swapped.iter().all(|&e| truth < e) {
            self.top1 += 1;
        }
        self.chance += 1.0 / errors.len() as f64;
        self.error_true += truth;
        if !swapped.is_empty() {
            self.error_swapped += swapped.iter().sum::<f64>() / swapped.len() as f64;
        }
    }

    fn finish(self, attribute: Attribute, t: f64) -> AttributeSensitivity {
        let n = self.images.max(1) as f64;
        AttributeSensitivity {
            attribute,
            t,
            images: self.images,
            top1: self.top1 as f64 / n,
            chance: self.chance / n,
            error_true: self.error_true / n,
            error_swapped: self.error_swapped / n,
        }
    }
}

/// The rows as a Markdown table.
pub fn sensitivity_table(rows: &[AttributeSensitivity]) -> String {
    let mut out = String::from(
        "| attribute | t | images | true caption best | chance | x̂0 error, true | x̂0 error, swapped |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.2} | {} | {:.1}% | {:.1}% | {:.4} | {:.4} |\n",
            r.attribute,
            r.t,
            r.images,
            100.0 * r.top1,
            100.0 * r.chance,
            r.error_true,
            r.error_swapped
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fresco_shapes::vocab::{Col, Row};

    #[test]
    fn variants_put_the_true_scene_first_and_change_one_attribute() {
        let scene = Scene::new(
            Shape::Circle,
            Colour::Red,
            Colour::White,
            Size::Small,
            Position {
                row: Row::Top,
                col: Col::Left,
            },
        );
        for attribute in Attribute::ALL {
            let v = attribute.variants(&scene);
            assert_eq!(v[0], scene, "{attribute}");
            assert!(v[1..].iter().all(|s| *s != scene && s.is_valid()));
            let expected = match attribute {
                // Eleven colours but white, the background.
                Attribute::Colour => 10,
                Attribute::Shape => 7,
                // Gray and black; red is never a background.
                Attribute::Background => 3,
                Attribute::Size => 3,
                Attribute::Position => 9,
            };
            assert_eq!(v.len(), expected, "{attribute}");
        }
    }

    #[test]
    fn the_tally_counts_strict_wins_and_the_chance_of_a_blind_model() {
        let mut t = Tally::default();
        t.add(&[0.1, 0.2, 0.3]);
        t.add(&[0.2, 0.2, 0.3]);
        t.add(&[0.3, 0.1]);
        let row = t.finish(Attribute::Shape, 0.5);
        assert_eq!(row.images, 3);
        assert!((row.top1 - 1.0 / 3.0).abs() < 1e-12);
        assert!((row.chance - (1.0 / 3.0 + 1.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((row.error_true - 0.2).abs() < 1e-12);
        assert!((row.error_swapped - (0.25 + 0.25 + 0.1) / 3.0).abs() < 1e-12);
    }
}
