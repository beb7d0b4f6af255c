//! The [`Scene`] description (one shape on a solid background), its small
//! deterministic [`Jitter`], and the fixed held-out rule that keeps some attribute
//! combinations out of the training split.

use serde::{Deserialize, Serialize};

use crate::vocab::{Colour, Position, Shape, Size};

/// Shape/colour pairs that never appear in [`crate::Split::Train`].
pub const HELD_OUT_SHAPE_COLOURS: [(Shape, Colour); 3] = [
    (Shape::Triangle, Colour::Purple),
    (Shape::Star, Colour::Orange),
    (Shape::Ring, Colour::Green),
];

/// Foreground/background colour pairs that never appear in [`crate::Split::Train`]
/// (for any shape).
pub const HELD_OUT_COLOUR_BACKGROUNDS: [(Colour, Colour); 1] = [(Colour::Yellow, Colour::Black)];

/// The held-out rule on (possibly partial) attributes: a combination is held out
/// when its shape and colour form a pair in [`HELD_OUT_SHAPE_COLOURS`], or its colour
/// and background form a pair in [`HELD_OUT_COLOUR_BACKGROUNDS`]. Unknown attributes
/// never match.
pub fn is_held_out_combination(
    shape: Option<Shape>,
    colour: Option<Colour>,
    background: Option<Colour>,
) -> bool {
    let Some(colour) = colour else {
        return false;
    };
    let shape_pair = shape.is_some_and(|s| HELD_OUT_SHAPE_COLOURS.contains(&(s, colour)));
    let bg_pair = background.is_some_and(|b| HELD_OUT_COLOUR_BACKGROUNDS.contains(&(colour, b)));
    shape_pair || bg_pair
}

/// Small per-sample variations that do not change any attribute. All-zero
/// ([`Jitter::default`]) renders the canonical scene.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Jitter {
    /// Horizontal offset in units of 1/64 of the image side, in `-2..=2`.
    pub dx: i8,
    /// Vertical offset in units of 1/64 of the image side, in `-2..=2`.
    pub dy: i8,
    /// Radius change in percent, in `-4..=4`.
    pub scale_percent: i8,
    /// Added to each foreground channel, each in `-8..=8`.
    pub fg: [i8; 3],
    /// Added to each background channel, each in `-6..=6`.
    pub bg: [i8; 3],
}

impl Jitter {
    /// Largest |dx|, |dy|.
    pub const MAX_OFFSET: i8 = 2;
    /// Largest |scale_percent|.
    pub const MAX_SCALE_PERCENT: i8 = 4;
    /// Largest |fg channel offset|.
    pub const MAX_FG: i8 = 8;
    /// Largest |bg channel offset|.
    pub const MAX_BG: i8 = 6;
}

/// One foreground shape on a solid background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scene {
    /// The foreground shape.
    pub shape: Shape,
    /// The foreground colour.
    pub colour: Colour,
    /// The background colour (one of [`Colour::BACKGROUNDS`]).
    pub background: Colour,
    /// The size class.
    pub size: Size,
    /// The placement cell.
    pub position: Position,
    /// Attribute-preserving variation.
    #[serde(default)]
    pub jitter: Jitter,
}

impl Scene {
    /// A canonical (unjittered) scene.
    pub fn new(
        shape: Shape,
        colour: Colour,
        background: Colour,
        size: Size,
        position: Position,
    ) -> Scene {
        Scene {
            shape,
            colour,
            background,
            size,
            position,
            jitter: Jitter::default(),
        }
    }

    /// Whether the scene is one the generator can produce: the background is one of
    /// [`Colour::BACKGROUNDS`] and differs from the foreground colour.
    pub fn is_valid(&self) -> bool {
        Colour::BACKGROUNDS.contains(&self.background) && self.colour != self.background
    }

    /// Whether the scene's combination is held out of training (see
    /// [`is_held_out_combination`]).
    pub fn is_held_out(&self) -> bool {
        is_held_out_combination(Some(self.shape), Some(self.colour), Some(self.background))
    }

    /// Every valid canonical scene, in a fixed order (shape, colour, background,
    /// size, position).
    pub fn all_combinations() -> Vec<Scene> {
        let mut out = Vec::new();
        for shape in Shape::ALL {
            for colour in Colour::FOREGROUNDS {
                for background in Colour::BACKGROUNDS {
                    for size in Size::ALL {
                        for position in Position::ALL {
                            let scene = Scene::new(shape, colour, background, size, position);
                            if scene.is_valid() {
                                out.push(scene);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
