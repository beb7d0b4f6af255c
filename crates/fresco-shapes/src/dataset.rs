//! Seeded, reproducible generation of captioned samples, with the train /
//! held-out split, plus mild Gaussian-like pixel noise for robustness checks.
//!
//! Sample `i` of a dataset is a pure function of `(seed, split, image_size, i)`:
//! a ChaCha8 stream keyed by the seed, stream number `i`, so samples can be
//! produced in any order or in parallel and are identical on every machine.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::caption::{DEFAULT_LAYOUT_PERCENT, below, caption_naming_with};
use crate::error::{Error, Result};
use crate::render::{check_image_size, render};
use crate::scene::{Jitter, Scene};
use crate::vocab::{Position, Shape, Size};

/// Which attribute combinations a dataset draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// Every valid combination except the held-out ones (for training).
    Train,
    /// Only held-out combinations (for testing generalisation).
    HeldOut,
    /// Every valid combination.
    All,
}

impl Split {
    /// Whether a scene belongs to this split.
    pub fn contains(self, scene: &Scene) -> bool {
        match self {
            Split::Train => !scene.is_held_out(),
            Split::HeldOut => scene.is_held_out(),
            Split::All => true,
        }
    }

    /// The canonical scenes of this split, in a fixed order.
    pub fn combinations(self) -> Vec<Scene> {
        Scene::all_combinations()
            .into_iter()
            .filter(|s| self.contains(s))
            .collect()
    }
}

/// Where a sample's shape goes when its caption names no position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// In any of the nine cells, drawn uniformly: a caption without a position
    /// word says nothing about where the shape is.
    #[default]
    Anywhere,
    /// In the centre cell (with the usual jitter): a caption without a position
    /// word means a centred shape, as a photographer frames an unqualified
    /// subject. Captions that name a position keep their drawn cell.
    CentreUnlessNamed,
}

/// How large a sample's shape is when its caption names no size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sizing {
    /// Any of the three size classes, drawn uniformly: a caption without a size
    /// word says nothing about how large the shape is.
    #[default]
    Any,
    /// Large (with the usual jitter): a caption without a size word means a
    /// shape that fills its frame, the size at which outlines read best.
    /// Captions that name a size keep their drawn size.
    LargeUnlessNamed,
}

/// One generated example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// What was drawn.
    pub scene: Scene,
    /// A varied English caption of the scene.
    pub caption: String,
    /// Image side in pixels.
    pub image_size: u32,
    /// Row-major RGB8 pixels, `image_size * image_size * 3` bytes.
    pub rgb: Vec<u8>,
}

/// A reproducible, random-access, unbounded source of samples.
#[derive(Debug, Clone)]
pub struct Dataset {
    seed: u64,
    image_size: u32,
    split: Split,
    framing: Framing,
    sizing: Sizing,
    layout_percent: u32,
    shape_weights: [u32; Shape::ALL.len()],
    combinations: Vec<Scene>,
}

fn signed_in<R: RngCore + ?Sized>(rng: &mut R, max: i8) -> i8 {
    let span = u32::from(max.unsigned_abs()) * 2 + 1;
    // below(span) <= 2*max, so the difference fits in i8.
    i8::try_from(i64::from(below(rng, span)) - i64::from(max)).unwrap_or(0)
}

/// Draws an attribute-preserving jitter.
pub fn random_jitter<R: RngCore + ?Sized>(rng: &mut R) -> Jitter {
    let mut j = Jitter {
        dx: signed_in(rng, Jitter::MAX_OFFSET),
        dy: signed_in(rng, Jitter::MAX_OFFSET),
        scale_percent: signed_in(rng, Jitter::MAX_SCALE_PERCENT),
        ..Jitter::default()
    };
    for c in &mut j.fg {
        *c = signed_in(rng, Jitter::MAX_FG);
    }
    for c in &mut j.bg {
        *c = signed_in(rng, Jitter::MAX_BG);
    }
    j
}

impl Dataset {
    /// A dataset over `split` at `image_size`×`image_size` pixels.
    pub fn new(seed: u64, image_size: u32, split: Split) -> Result<Dataset> {
        check_image_size(image_size)?;
        Ok(Dataset {
            seed,
            image_size,
            split,
            framing: Framing::Anywhere,
            sizing: Sizing::Any,
            layout_percent: DEFAULT_LAYOUT_PERCENT,
            shape_weights: [1; Shape::ALL.len()],
            combinations: split.combinations(),
        })
    }

    /// Largest weight [`Dataset::with_shape_weight`] accepts.
    pub const MAX_SHAPE_WEIGHT: u32 = 16;

    /// The same dataset with the combinations of `shape` drawn `weight` times
    /// as often as the rest (the default weight of every shape is 1), for
    /// training more on a shape a model finds hard. Each sample still draws one
    /// combination from its own stream, so every weight gives a reproducible
    /// dataset; at weight 1 it is the unweighted one, sample for sample.
    pub fn with_shape_weight(mut self, shape: Shape, weight: u32) -> Result<Dataset> {
        if !(1..=Self::MAX_SHAPE_WEIGHT).contains(&weight) {
            return Err(Error::InvalidShapeWeight {
                shape: shape.word(),
                weight,
                max: Self::MAX_SHAPE_WEIGHT,
            });
        }
        self.shape_weights[shape.index()] = weight;
        self.combinations = self
            .split
            .combinations()
            .into_iter()
            .flat_map(|scene| {
                let repeats = self.shape_weights[scene.shape.index()] as usize;
                std::iter::repeat_n(scene, repeats)
            })
            .collect();
        Ok(self)
    }

    /// How many times as often as weight 1 the combinations of `shape` are drawn.
    pub fn shape_weight(&self, shape: Shape) -> u32 {
        self.shape_weights[shape.index()]
    }

    /// The same dataset with another [`Framing`] (the default is
    /// [`Framing::Anywhere`]). Scenes, captions and jitter come from the same
    /// random draws under every framing; only the position of samples whose
    /// caption names none differs.
    pub fn with_framing(mut self, framing: Framing) -> Dataset {
        self.framing = framing;
        self
    }

    /// The framing of samples whose caption names no position.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The same dataset with another [`Sizing`] (the default is [`Sizing::Any`]).
    /// As with [`Dataset::with_framing`], only the size of samples whose caption
    /// names none differs.
    pub fn with_sizing(mut self, sizing: Sizing) -> Dataset {
        self.sizing = sizing;
        self
    }

    /// The size of samples whose caption names no size.
    pub fn sizing(&self) -> Sizing {
        self.sizing
    }

    /// The same dataset with captions that name the size with probability
    /// `percent`/100, and the position with the same probability
    /// ([`crate::caption_naming_with`]; the default is
    /// [`DEFAULT_LAYOUT_PERCENT`]). Scenes, jitter and the rest of each caption
    /// come from the same random draws at every percentage; with
    /// [`Framing::CentreUnlessNamed`] and [`Sizing::LargeUnlessNamed`], 0 makes
    /// every sample a large centred shape whose caption names neither.
    pub fn with_layout_percent(mut self, percent: u32) -> Result<Dataset> {
        if percent > 100 {
            return Err(Error::InvalidLayoutPercent(percent));
        }
        self.layout_percent = percent;
        Ok(self)
    }

    /// How often, in percent, a caption names the size (and the position).
    pub fn layout_percent(&self) -> u32 {
        self.layout_percent
    }

    /// Generates samples `0..count` of [`Dataset::new`]`(seed, image_size, split)`.
    pub fn generate(seed: u64, count: usize, image_size: u32, split: Split) -> Result<Vec<Sample>> {
        let ds = Dataset::new(seed, image_size, split)?;
        (0..count as u64).map(|i| ds.sample(i)).collect()
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The image side.
    pub fn image_size(&self) -> u32 {
        self.image_size
    }

    /// The split.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The scene of sample `index` (cheap: no rendering).
    pub fn scene(&self, index: u64) -> Scene {
        self.scene_and_caption(index).0
    }

    /// Scene and caption of sample `index`: the combination, its jitter and the
    /// caption's wording are drawn in that order from the sample's own stream,
    /// then the framing places a shape whose caption names no position and the
    /// sizing sizes one whose caption names no size.
    fn scene_and_caption(&self, index: u64) -> (Scene, String) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let n = u32::try_from(self.combinations.len()).unwrap_or(u32::MAX);
        let pick = below(&mut rng, n) as usize;
        let mut scene = self.combinations[pick];
        scene.jitter = random_jitter(&mut rng);
        let caption = caption_naming_with(&scene, &mut rng, self.layout_percent);
        if self.framing == Framing::CentreUnlessNamed && !caption.names_position {
            scene.position = Position::CENTRE;
        }
        if self.sizing == Sizing::LargeUnlessNamed && !caption.names_size {
            scene.size = Size::Large;
        }
        (scene, caption.text)
    }

    /// Sample number `index`: scene, caption and pixels.
    pub fn sample(&self, index: u64) -> Result<Sample> {
        let (scene, caption) = self.scene_and_caption(index);
        let rgb = render(&scene, self.image_size)?;
        Ok(Sample {
            scene,
            caption,
            image_size: self.image_size,
            rgb,
        })
    }

    /// Samples `start, start+1, ...` without end (for training loops).
    pub fn iter_from(&self, start: u64) -> impl Iterator<Item = Result<Sample>> + '_ {
        (start..).map(move |i| self.sample(i))
    }
}

/// Adds zero-mean Gaussian-like noise (a sum of three uniform integers in
/// `-amplitude..=amplitude`, standard deviation ≈ `amplitude + 0.5`) to every byte,
/// saturating at 0 and 255.
pub fn add_noise<R: RngCore + ?Sized>(rgb: &mut [u8], amplitude: u8, rng: &mut R) {
    let a = u32::from(amplitude);
    if a == 0 {
        return;
    }
    for px in rgb.iter_mut() {
        let mut sum: i32 = 0;
        for _ in 0..3 {
            // below(2a+1) <= 510, fits in i32.
            sum += i32::try_from(below(rng, 2 * a + 1)).unwrap_or(0) - i32::from(amplitude);
        }
        let v = i32::from(*px) + sum;
        *px = u8::try_from(v.clamp(0, 255)).unwrap_or(0);
    }
}
