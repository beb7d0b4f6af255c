//! Sweeps: a job whose tasks are the product of parameter axes (prompts ×
//! seeds × guidance × steps × samplers × sizes), expanded by the
//! coordinator rather than sent task by task.
//!
//! The expansion order is fixed, and a task's index follows it: prompts
//! outermost, then seeds, guidance, steps, samplers, and sizes innermost
//! (the last axis changes fastest). An empty axis is not varied: it takes
//! no part in the product and its parameter comes from the job's defaults.
//! [`Sweep::coordinates`] maps an index back to the position along each
//! varied axis, and [`Sweep::point`] to the values there.

#[cfg(feature = "grpc")]
use fresco_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// The axes of a sweep, as submitted and as the job keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sweep {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<SweepPrompt>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guidance: Vec<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samplers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<Size>,
}

/// One prompt of a sweep; `None` keeps the job's negative prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepPrompt {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
}

/// An image size along a sweep's size axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// A task's index along each axis its sweep varies (`None`: not varied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Coordinates {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guidance: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampler: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// The values of one task of a sweep: those of the varied axes at its
/// coordinates (`None` for an axis not varied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point<'a> {
    pub prompt: Option<&'a SweepPrompt>,
    pub seed: Option<u64>,
    pub guidance: Option<f32>,
    pub steps: Option<u32>,
    pub sampler: Option<&'a str>,
    pub size: Option<Size>,
}

/// The axes in expansion order (outermost first), by their request field
/// name, the singular the coordinates use, and how a summary counts them.
pub const AXES: [Axis; 6] = [
    Axis::new("prompts", "prompt", "prompt"),
    Axis::new("seeds", "seed", "seed"),
    Axis::new("guidance", "guidance", "guidance value"),
    Axis::new("steps", "steps", "step count"),
    Axis::new("samplers", "sampler", "sampler"),
    Axis::new("sizes", "size", "size"),
];

/// One axis's names, see [`AXES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// The field of the `Sweep` message (`sweep.guidance[2]`).
    pub field: &'static str,
    /// The field of the coordinates.
    pub coordinate: &'static str,
    /// What one of its values is called in a count (`1 guidance value`).
    pub value: &'static str,
}

impl Axis {
    const fn new(field: &'static str, coordinate: &'static str, value: &'static str) -> Self {
        Self {
            field,
            coordinate,
            value,
        }
    }

    /// `len` values of this axis, counted: `1 seed`, `4 seeds`.
    pub fn count(&self, len: usize) -> String {
        let plural = if len == 1 { "" } else { "s" };
        format!("{len} {}{plural}", self.value)
    }
}

impl Sweep {
    /// The length of each axis, in [`AXES`] order (0: not varied).
    pub fn lengths(&self) -> [usize; 6] {
        [
            self.prompts.len(),
            self.seeds.len(),
            self.guidance.len(),
            self.steps.len(),
            self.samplers.len(),
            self.sizes.len(),
        ]
    }

    /// Whether it varies no axis at all.
    pub fn is_empty(&self) -> bool {
        self.lengths().iter().all(|&len| len == 0)
    }

    /// How many tasks it makes: the product of its varied axes' lengths;
    /// `None` when that overflows a `u64`.
    pub fn task_count(&self) -> Option<u64> {
        self.lengths()
            .iter()
            .filter(|&&len| len > 0)
            .try_fold(1u64, |product, &len| product.checked_mul(len as u64))
    }

    /// The product spelled out, e.g. `3 prompts × 4 seeds × 2 guidance values`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = AXES
            .iter()
            .zip(self.lengths())
            .filter(|(_, len)| *len > 0)
            .map(|(axis, len)| axis.count(len))
            .collect();
        parts.join(" × ")
    }

    /// The coordinates of the task at `index`: `index` read as a number
    /// whose digits are the axes, the innermost (sizes) the least
    /// significant.
    pub fn coordinates(&self, index: u64) -> Coordinates {
        let mut rest = index;
        let mut digits = [None; 6];
        for (slot, &len) in digits.iter_mut().zip(self.lengths().iter()).rev() {
            if len == 0 {
                continue;
            }
            let len = len as u64;
            *slot = Some((rest % len) as u32);
            rest /= len;
        }
        let [prompt, seed, guidance, steps, sampler, size] = digits;
        Coordinates {
            prompt,
            seed,
            guidance,
            steps,
            sampler,
            size,
        }
    }

    /// The axis values at `at` (`None` where it names no value).
    pub fn point(&self, at: &Coordinates) -> Point<'_> {
        fn pick<T>(values: &[T], index: Option<u32>) -> Option<&T> {
            index.and_then(|i| values.get(i as usize))
        }
        Point {
            prompt: pick(&self.prompts, at.prompt),
            seed: pick(&self.seeds, at.seed).copied(),
            guidance: pick(&self.guidance, at.guidance).copied(),
            steps: pick(&self.steps, at.steps).copied(),
            sampler: pick(&self.samplers, at.sampler).map(String::as_str),
            size: pick(&self.sizes, at.size).copied(),
        }
    }

    /// The request field that gave task `index` its value of the task
    /// field `field` (`width`, `sampler`, `negative_prompt`, ...): the
    /// sweep axis value when the sweep varies it, else the job default.
    pub fn field_of(&self, index: u64, field: &str) -> String {
        let at = self.coordinates(index);
        let point = self.point(&at);
        let axis = match field {
            "width" | "height" => at.size.map(|i| format!("sizes[{i}].{field}")),
            "sampler" => at.sampler.map(|i| format!("samplers[{i}]")),
            "steps" => at.steps.map(|i| format!("steps[{i}]")),
            "guidance" => at.guidance.map(|i| format!("guidance[{i}]")),
            "seed" => at.seed.map(|i| format!("seeds[{i}]")),
            "prompt" => at.prompt.map(|i| format!("prompts[{i}].prompt")),
            "negative_prompt" => point
                .prompt
                .filter(|p| p.negative_prompt.is_some())
                .and(at.prompt)
                .map(|i| format!("prompts[{i}].negative_prompt")),
            _ => None,
        };
        match axis {
            Some(path) => format!("sweep.{path}"),
            None => format!("defaults.{field}"),
        }
    }

    /// The stored form: a JSON object of the varied axes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads [`Self::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Sweep, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl Coordinates {
    /// The stored form: a JSON object of the varied axes' indices.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads [`Self::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Coordinates, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(feature = "grpc")]
impl Sweep {
    /// The axes of a request's sweep, unchecked.
    pub fn from_proto(p: &pb::Sweep) -> Sweep {
        Sweep {
            prompts: p
                .prompts
                .iter()
                .map(|entry| SweepPrompt {
                    prompt: entry.prompt.clone(),
                    negative_prompt: entry.negative_prompt.clone(),
                })
                .collect(),
            seeds: p.seeds.clone(),
            guidance: p.guidance.clone(),
            steps: p.steps.clone(),
            samplers: p.samplers.clone(),
            sizes: p
                .sizes
                .iter()
                .map(|s| Size {
                    width: s.width,
                    height: s.height,
                })
                .collect(),
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::Sweep {
        pb::Sweep {
            prompts: self
                .prompts
                .iter()
                .map(|entry| pb::SweepPrompt {
                    prompt: entry.prompt.clone(),
                    negative_prompt: entry.negative_prompt.clone(),
                })
                .collect(),
            seeds: self.seeds.clone(),
            guidance: self.guidance.clone(),
            steps: self.steps.clone(),
            samplers: self.samplers.clone(),
            sizes: self
                .sizes
                .iter()
                .map(|s| pb::Size {
                    width: s.width,
                    height: s.height,
                })
                .collect(),
        }
    }
}

#[cfg(feature = "grpc")]
impl Coordinates {
    /// Reads the wire form.
    pub fn from_proto(p: &pb::SweepCoordinates) -> Coordinates {
        Coordinates {
            prompt: p.prompt,
            seed: p.seed,
            guidance: p.guidance,
            steps: p.steps,
            sampler: p.sampler,
            size: p.size,
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::SweepCoordinates {
        pb::SweepCoordinates {
            prompt: self.prompt,
            seed: self.seed,
            guidance: self.guidance,
            steps: self.steps,
            sampler: self.sampler,
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(texts: &[&str]) -> Vec<SweepPrompt> {
        texts
            .iter()
            .map(|t| SweepPrompt {
                prompt: (*t).to_owned(),
                negative_prompt: None,
            })
            .collect()
    }

    fn study() -> Sweep {
        Sweep {
            prompts: prompts(&["a", "b", "c"]),
            seeds: vec![1, 2, 3, 4],
            guidance: vec![3.0, 7.5],
            ..Sweep::default()
        }
    }

    #[test]
    fn the_product_counts_only_varied_axes() {
        assert_eq!(study().task_count(), Some(24));
        assert_eq!(Sweep::default().task_count(), Some(1));
        assert!(Sweep::default().is_empty());
        let huge = Sweep {
            seeds: vec![0; 1 << 20],
            steps: vec![1; 1 << 20],
            samplers: vec![String::new(); 1 << 20],
            guidance: vec![1.0; 1 << 5],
            ..Sweep::default()
        };
        assert_eq!(huge.task_count(), None, "2^65 overflows");
        assert_eq!(
            study().describe(),
            "3 prompts × 4 seeds × 2 guidance values"
        );
    }

    #[test]
    fn prompts_are_outermost_and_the_last_varied_axis_innermost() {
        let sweep = study();
        let order: Vec<(u32, u32, u32)> = (0..24)
            .map(|i| {
                let at = sweep.coordinates(i);
                assert_eq!(at.steps, None, "steps are not varied");
                assert_eq!(at.size, None, "sizes are not varied");
                (
                    at.prompt.expect("prompt"),
                    at.seed.expect("seed"),
                    at.guidance.expect("guidance"),
                )
            })
            .collect();
        let mut expected = Vec::new();
        for p in 0..3 {
            for s in 0..4 {
                for g in 0..2 {
                    expected.push((p, s, g));
                }
            }
        }
        assert_eq!(order, expected);
    }

    #[test]
    fn every_axis_follows_the_documented_order() {
        let sweep = Sweep {
            prompts: prompts(&["a", "b"]),
            seeds: vec![10, 11],
            guidance: vec![1.0, 2.0],
            steps: vec![5, 6],
            samplers: vec!["euler".into(), "ddim".into()],
            sizes: vec![
                Size {
                    width: 32,
                    height: 32,
                },
                Size {
                    width: 64,
                    height: 32,
                },
            ],
        };
        // Index 0b100101: prompt 1, seed 0, guidance 0, steps 1, sampler 0, size 1.
        let at = sweep.coordinates(0b100101);
        assert_eq!(
            at,
            Coordinates {
                prompt: Some(1),
                seed: Some(0),
                guidance: Some(0),
                steps: Some(1),
                sampler: Some(0),
                size: Some(1),
            }
        );
        let point = sweep.point(&at);
        assert_eq!(point.prompt.map(|p| p.prompt.as_str()), Some("b"));
        assert_eq!(point.seed, Some(10));
        assert_eq!(point.steps, Some(6));
        assert_eq!(point.sampler, Some("euler"));
        assert_eq!(
            point.size,
            Some(Size {
                width: 64,
                height: 32
            })
        );
    }

    #[test]
    fn a_field_is_named_on_its_axis_or_in_the_defaults() {
        let sweep = Sweep {
            samplers: vec!["euler".into(), "warp".into()],
            ..study()
        };
        // Index 5: prompt 0, seed 1, guidance 0, sampler 1.
        assert_eq!(sweep.field_of(5, "sampler"), "sweep.samplers[1]");
        assert_eq!(sweep.field_of(5, "guidance"), "sweep.guidance[0]");
        assert_eq!(sweep.field_of(5, "width"), "defaults.width");
        assert_eq!(
            sweep.field_of(5, "negative_prompt"),
            "defaults.negative_prompt"
        );
        assert_eq!(sweep.field_of(5, "n"), "defaults.n");
    }

    #[test]
    fn the_stored_forms_read_back() {
        let sweep = study();
        assert_eq!(Sweep::from_json(&sweep.to_json()).expect("sweep"), sweep);
        let at = sweep.coordinates(23);
        assert_eq!(at.to_json(), r#"{"prompt":2,"seed":3,"guidance":1}"#);
        assert_eq!(
            Coordinates::from_json(&at.to_json()).expect("coordinates"),
            at
        );
    }
}
