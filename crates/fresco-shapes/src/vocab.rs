//! The closed attribute sets of the shapes world — shapes, colours, sizes and
//! positions — with their English words, palette values and the fixed caption
//! vocabulary that a text encoder can be built over.
//!
//! Every list here is in a fixed order (the enum declaration order), so indices
//! such as [`Shape::index`] are stable and can be used as class ids.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A foreground shape. Shapes are never rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// An axis-aligned filled square.
    Square,
    /// An upward-pointing filled triangle.
    Triangle,
    /// A square standing on one corner.
    Diamond,
    /// A five-pointed star, one point up.
    Star,
    /// A plus sign with arms of equal length.
    Cross,
    /// A disc with a round hole (annulus).
    Ring,
}

impl Shape {
    /// All shapes, in class-id order.
    pub const ALL: [Shape; 7] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
        Shape::Star,
        Shape::Cross,
        Shape::Ring,
    ];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Diamond => "diamond",
            Shape::Star => "star",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
        }
    }

    /// Stable class id (position in [`Shape::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a caption word or a common synonym ("plus", "disc", "rhombus", ...).
    pub fn from_word(word: &str) -> Option<Shape> {
        Some(match word {
            "circle" | "circles" | "disc" | "disk" | "dot" => Shape::Circle,
            "square" | "squares" => Shape::Square,
            "triangle" | "triangles" => Shape::Triangle,
            "diamond" | "diamonds" | "rhombus" => Shape::Diamond,
            "star" | "stars" => Shape::Star,
            "cross" | "plus" | "crosses" => Shape::Cross,
            "ring" | "rings" | "donut" | "doughnut" | "annulus" => Shape::Ring,
            _ => return None,
        })
    }
}

/// A named colour. The first eight are hues, the last three are achromatic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    /// Hue ~0°.
    Red,
    /// Hue ~32°.
    Orange,
    /// Hue ~54°.
    Yellow,
    /// Hue ~124°.
    Green,
    /// Hue ~186°.
    Cyan,
    /// Hue ~227°.
    Blue,
    /// Hue ~276°.
    Purple,
    /// Hue ~326°, lighter and less saturated than red.
    Pink,
    /// Achromatic, bright.
    White,
    /// Achromatic, mid grey.
    Gray,
    /// Achromatic, dark.
    Black,
}

impl Colour {
    /// All colours, in class-id order.
    pub const ALL: [Colour; 11] = [
        Colour::Red,
        Colour::Orange,
        Colour::Yellow,
        Colour::Green,
        Colour::Cyan,
        Colour::Blue,
        Colour::Purple,
        Colour::Pink,
        Colour::White,
        Colour::Gray,
        Colour::Black,
    ];

    /// Colours a foreground shape may have (all of them).
    pub const FOREGROUNDS: [Colour; 11] = Colour::ALL;

    /// Colours a background may have.
    pub const BACKGROUNDS: [Colour; 3] = [Colour::White, Colour::Gray, Colour::Black];

    /// The caption word (British spelling "gray" is kept as "gray"; parsing accepts "grey").
    pub fn word(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Orange => "orange",
            Colour::Yellow => "yellow",
            Colour::Green => "green",
            Colour::Cyan => "cyan",
            Colour::Blue => "blue",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::White => "white",
            Colour::Gray => "gray",
            Colour::Black => "black",
        }
    }

    /// Stable class id (position in [`Colour::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a caption word or a common synonym ("grey", "violet", "magenta", ...).
    pub fn from_word(word: &str) -> Option<Colour> {
        Some(match word {
            "red" => Colour::Red,
            "orange" => Colour::Orange,
            "yellow" => Colour::Yellow,
            "green" => Colour::Green,
            "cyan" | "turquoise" | "teal" => Colour::Cyan,
            "blue" => Colour::Blue,
            "purple" | "violet" => Colour::Purple,
            "pink" | "magenta" => Colour::Pink,
            "white" => Colour::White,
            "gray" | "grey" => Colour::Gray,
            "black" => Colour::Black,
            _ => return None,
        })
    }

    /// The nominal sRGB value used by the renderer.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Orange => [245, 140, 20],
            Colour::Yellow => [240, 220, 20],
            Colour::Green => [40, 180, 50],
            Colour::Cyan => [20, 200, 220],
            Colour::Blue => [30, 70, 220],
            Colour::Purple => [140, 50, 200],
            Colour::Pink => [240, 100, 180],
            Colour::White => [245, 245, 245],
            Colour::Gray => [128, 128, 128],
            Colour::Black => [15, 15, 15],
        }
    }

    /// True for white, gray and black.
    pub fn is_achromatic(self) -> bool {
        matches!(self, Colour::White | Colour::Gray | Colour::Black)
    }
}

/// Shape size class. The radius is a fraction of the image side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// Radius 0.16 × image side.
    Small,
    /// Radius 0.22 × image side.
    Medium,
    /// Radius 0.29 × image side.
    Large,
}

impl Size {
    /// All sizes, smallest first.
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }

    /// Parses a caption word or synonym ("tiny", "big", ...).
    pub fn from_word(word: &str) -> Option<Size> {
        Some(match word {
            "small" | "tiny" | "little" => Size::Small,
            "medium" | "mid-sized" => Size::Medium,
            "large" | "big" | "huge" => Size::Large,
            _ => return None,
        })
    }

    /// Nominal radius in units of 1/100 of the image side.
    pub fn radius_percent(self) -> u32 {
        match self {
            Size::Small => 16,
            Size::Medium => 22,
            Size::Large => 29,
        }
    }
}

/// Vertical third of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Row {
    /// Upper third.
    Top,
    /// Middle third.
    Middle,
    /// Lower third.
    Bottom,
}

/// Horizontal third of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Col {
    /// Left third.
    Left,
    /// Middle third.
    Centre,
    /// Right third.
    Right,
}

/// A cell of the 3×3 placement grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Vertical placement.
    pub row: Row,
    /// Horizontal placement.
    pub col: Col,
}

impl Position {
    /// The image centre.
    pub const CENTRE: Position = Position {
        row: Row::Middle,
        col: Col::Centre,
    };

    /// All nine positions, row-major from the top left.
    pub const ALL: [Position; 9] = {
        const fn p(row: Row, col: Col) -> Position {
            Position { row, col }
        }
        [
            p(Row::Top, Col::Left),
            p(Row::Top, Col::Centre),
            p(Row::Top, Col::Right),
            p(Row::Middle, Col::Left),
            p(Row::Middle, Col::Centre),
            p(Row::Middle, Col::Right),
            p(Row::Bottom, Col::Left),
            p(Row::Bottom, Col::Centre),
            p(Row::Bottom, Col::Right),
        ]
    };

    /// The words naming the position, e.g. "top left", "left", "centre", "bottom".
    pub fn words(self) -> &'static str {
        match (self.row, self.col) {
            (Row::Top, Col::Left) => "top left",
            (Row::Top, Col::Centre) => "top",
            (Row::Top, Col::Right) => "top right",
            (Row::Middle, Col::Left) => "left",
            (Row::Middle, Col::Centre) => "centre",
            (Row::Middle, Col::Right) => "right",
            (Row::Bottom, Col::Left) => "bottom left",
            (Row::Bottom, Col::Centre) => "bottom",
            (Row::Bottom, Col::Right) => "bottom right",
        }
    }

    /// The prepositional phrase used in captions, e.g. "in the top left", "at the top",
    /// "on the left", "in the centre".
    pub fn phrase(self) -> String {
        let prep = match (self.row, self.col) {
            (Row::Middle, Col::Centre) => "in the",
            (Row::Middle, _) => "on the",
            (_, Col::Centre) => "at the",
            _ => "in the",
        };
        format!("{prep} {}", self.words())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

/// Function words that captions use besides attribute words.
pub const FUNCTION_WORDS: [&str; 10] = [
    "a",
    "an",
    "the",
    "on",
    "in",
    "at",
    "of",
    "with",
    "background",
    "picture",
];

/// Position words used in captions.
pub const POSITION_WORDS: [&str; 5] = ["top", "bottom", "left", "right", "centre"];

/// The closed caption vocabulary, in a fixed order: function words, sizes, colours,
/// shapes, position words. Every word of every caption produced by
/// [`crate::caption()`] is in this list (tested), so it can back a word-level tokenizer.
pub fn vocabulary() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = FUNCTION_WORDS.to_vec();
    words.extend(Size::ALL.iter().map(|s| s.word()));
    words.extend(Colour::ALL.iter().map(|c| c.word()));
    words.extend(Shape::ALL.iter().map(|s| s.word()));
    words.extend(POSITION_WORDS);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_has_no_duplicates() {
        let v = vocabulary();
        let mut sorted = v.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), v.len());
    }

    #[test]
    fn words_round_trip() {
        for s in Shape::ALL {
            assert_eq!(Shape::from_word(s.word()), Some(s));
            assert_eq!(Shape::ALL[s.index()], s);
        }
        for c in Colour::ALL {
            assert_eq!(Colour::from_word(c.word()), Some(c));
            assert_eq!(Colour::ALL[c.index()], c);
        }
        for s in Size::ALL {
            assert_eq!(Size::from_word(s.word()), Some(s));
        }
    }
}
