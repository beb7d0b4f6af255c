//! Clean-image probes: what a model believes the clean image is at each noise
//! level.
//!
//! One canonical scene per shape (large, centred, one colour on one
//! background) is noised to each flow time with one shared noise image, and
//! the model estimates `x̂0 = x_t − t·v̂` under the evaluation's prompt for it
//! ("a purple circle on a white background", which names neither size nor
//! position, as the evaluation prompts do). At high
//! noise `x_t` says almost nothing about the outline, so the estimate can only
//! come from the caption: a model that has not learned the shape words draws
//! the same blob in every row there, however well it denoises at low noise.
//! [`Probe::contrast`] puts a number on it, and [`write_probe_grid`] draws it.

use std::path::Path;

use candle_core::Tensor;
use fresco_dit::DitPipeline;
use fresco_shapes::Scene;
use fresco_shapes::image_io::{chw_to_rgb, rgb_to_chw};
use fresco_shapes::render::render;
use fresco_shapes::vocab::{Colour, Position, Shape, Size};
use serde::Serialize;

use crate::data::noised;
use crate::error::{Error, Result};
use crate::eval::{GridRow, prompt_text, write_labelled_grid};
use crate::schedule::{normal_vec, step_rng};

/// What to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Flow times, each in `[0, 1]`.
    pub times: Vec<f64>,
    /// Foreground colour of every scene.
    pub colour: Colour,
    /// Background colour of every scene.
    pub background: Colour,
    /// Seed of the shared noise image.
    pub seed: u64,
    /// Image side.
    pub size: u32,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            times: vec![0.95, 0.85, 0.7, 0.5, 0.3],
            colour: Colour::Purple,
            background: Colour::White,
            seed: 1,
            size: 32,
        }
    }
}

/// One shape's row: its clean scene and the model's estimate at each time.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// The prompt the estimates were conditioned on.
    pub caption: String,
    /// The clean scene, planar `[3, S, S]` in `[-1, 1]`.
    pub clean: Vec<f32>,
    /// `x̂0` at each of [`ProbeOptions::times`], same layout.
    pub estimates: Vec<Vec<f32>>,
}

/// The probe of every shape.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The flow times of the columns.
    pub times: Vec<f64>,
    /// Image side.
    pub size: u32,
    /// One row per shape, in [`Shape::ALL`] order.
    pub rows: Vec<ProbeRow>,
}

/// How much the estimates of different shapes differ at one flow time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Contrast {
    /// Flow time.
    pub t: f64,
    /// Mean pairwise distance between the shapes' estimates over the mean
    /// pairwise distance between their clean scenes: 1 when the estimates
    /// differ as much as the shapes do, 0 when every shape gets the same
    /// picture.
    pub ratio: f64,
}

/// Runs the probe.
pub fn clean_image_probe(pipeline: &DitPipeline, opts: &ProbeOptions) -> Result<Probe> {
    if opts.times.is_empty() || opts.times.iter().any(|t| !(0.0..=1.0).contains(t)) {
        return Err(Error::Options(
            "the probe needs at least one flow time, each in [0, 1]".into(),
        ));
    }
    let (size, side) = (opts.size, opts.size as usize);
    let device = pipeline.device().clone();
    let noise = normal_vec(&mut step_rng(opts.seed, 0), 3 * side * side);
    let mut rows = Vec::with_capacity(Shape::ALL.len());
    for shape in Shape::ALL {
        let scene = Scene::new(
            shape,
            opts.colour,
            opts.background,
            Size::Large,
            Position::CENTRE,
        );
        if !scene.is_valid() {
            return Err(Error::Options(format!(
                "{} on {} is not a scene the generator draws",
                opts.colour.word(),
                opts.background.word()
            )));
        }
        let caption = prompt_text(shape, opts.colour, opts.background);
        let ids = pipeline.tokenizer().tokenize(&caption).ids;
        let clean = rgb_to_chw(&render(&scene, size)?, size, size)?;
        let mut estimates = Vec::with_capacity(opts.times.len());
        for &t in &opts.times {
            let x_t = Tensor::from_vec(noised(&clean, &noise, t), (1, 3, side, side), &device)?;
            let v = pipeline.velocity(&x_t, &[t], std::slice::from_ref(&ids))?;
            let estimate = (x_t - (v * t)?)?.flatten_all()?.to_vec1::<f32>()?;
            estimates.push(estimate);
        }
        rows.push(ProbeRow {
            caption,
            clean,
            estimates,
        });
    }
    Ok(Probe {
        times: opts.times.clone(),
        size,
        rows,
    })
}

impl Probe {
    /// [`Contrast`] at every flow time.
    pub fn contrast(&self) -> Vec<Contrast> {
        let cleans: Vec<&[f32]> = self.rows.iter().map(|r| r.clean.as_slice()).collect();
        let between_shapes = mean_pairwise_distance(&cleans);
        self.times
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let estimates: Vec<&[f32]> = self
                    .rows
                    .iter()
                    .map(|r| r.estimates[k].as_slice())
                    .collect();
                let ratio = if between_shapes > 0.0 {
                    mean_pairwise_distance(&estimates) / between_shapes
                } else {
                    0.0
                };
                Contrast { t, ratio }
            })
            .collect()
    }
}

/// Mean over pairs of the mean absolute difference per value.
fn mean_pairwise_distance(images: &[&[f32]]) -> f64 {
    let mut sum = 0.0;
    let mut pairs = 0usize;
    for (i, a) in images.iter().enumerate() {
        for b in &images[i + 1..] {
            let d: f64 = a
                .iter()
                .zip(*b)
                .map(|(x, y)| f64::from((x - y).abs()))
                .sum();
            sum += d / a.len().max(1) as f64;
            pairs += 1;
        }
    }
    if pairs == 0 { 0.0 } else { sum / pairs as f64 }
}

/// The contrast row as a Markdown table.
pub fn contrast_table(contrast: &[Contrast]) -> String {
    let mut out = String::from("| t | shape contrast |\n|---:|---:|\n");
    for c in contrast {
        out.push_str(&format!("| {:.2} | {:.2} |\n", c.t, c.ratio));
    }
    out
}

/// Draws the probe: one row per shape labelled with its caption, the clean
/// scene first, then the estimate at each flow time.
pub fn write_probe_grid(probe: &Probe, path: &Path, scale: u32) -> Result<()> {
    let images = probe
        .rows
        .iter()
        .map(|row| {
            std::iter::once(&row.clean)
                .chain(&row.estimates)
                .map(|chw| Ok(chw_to_rgb(chw, probe.size, probe.size)?))
                .collect::<Result<Vec<Vec<u8>>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<GridRow<'_>> = probe
        .rows
        .iter()
        .zip(&images)
        .map(|(row, images)| GridRow {
            label: row.caption.clone(),
            highlight: false,
            images,
        })
        .collect();
    write_labelled_grid(&rows, probe.size, path, scale)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::presets::Preset;

    fn pipeline() -> DitPipeline {
        DitPipeline::random("probe", Preset::Tiny.config(), 3, &Device::Cpu).unwrap()
    }

    /// At `t = 0` the estimate is the clean scene itself (`x_t = x0`, whatever
    /// the model says), so the contrast there is exactly 1; every shape gets a
    /// row and every time a column.
    #[test]
    fn at_zero_noise_the_estimate_is_the_clean_scene() {
        let opts = ProbeOptions {
            times: vec![0.0, 0.9],
            size: 16,
            ..ProbeOptions::default()
        };
        let probe = clean_image_probe(&pipeline(), &opts).unwrap();
        assert_eq!(probe.rows.len(), Shape::ALL.len());
        for row in &probe.rows {
            assert_eq!(row.estimates.len(), 2);
            assert_eq!(row.estimates[0], row.clean, "{}", row.caption);
            assert_ne!(row.estimates[1], row.clean, "{}", row.caption);
        }
        let contrast = probe.contrast();
        assert_eq!(contrast[0], Contrast { t: 0.0, ratio: 1.0 });
        assert!(contrast[1].ratio > 0.0 && contrast[1].ratio.is_finite());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.png");
        write_probe_grid(&probe, &path, 2).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
    }

    #[test]
    fn bad_times_and_scenes_are_refused() {
        let p = pipeline();
        for times in [vec![], vec![1.5], vec![-0.1]] {
            let opts = ProbeOptions {
                times,
                size: 16,
                ..ProbeOptions::default()
            };
            assert!(clean_image_probe(&p, &opts).is_err());
        }
        let same = ProbeOptions {
            background: Colour::White,
            colour: Colour::White,
            size: 16,
            ..ProbeOptions::default()
        };
        let err = clean_image_probe(&p, &same).unwrap_err();
        assert!(err.to_string().contains("white on white"), "{err}");
    }
}
