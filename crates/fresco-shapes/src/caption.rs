//! English captions for scenes (with seeded variety) and the reverse direction:
//! [`parse_prompt`] recovers the attributes a free-form prompt asks for.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::scene::{Scene, is_held_out_combination};
use crate::vocab::{Col, Colour, Position, Row, Shape, Size};

/// Uniform integer in `0..n` (n > 0) from raw RNG output, by rejection, so the
/// mapping from RNG stream to values never depends on the `rand` version.
pub(crate) fn below<R: RngCore + ?Sized>(rng: &mut R, n: u32) -> u32 {
    debug_assert!(n > 0);
    let n = n.max(1);
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let x = rng.next_u32();
        if x < zone {
            return x % n;
        }
    }
}

/// True with probability `percent`/100.
pub(crate) fn chance<R: RngCore + ?Sized>(rng: &mut R, percent: u32) -> bool {
    below(rng, 100) < percent
}

fn article(next_word: &str) -> &'static str {
    if next_word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Builds a caption from the pieces to mention.
fn compose(
    scene: &Scene,
    with_size: bool,
    background: Option<&str>,
    position: bool,
    position_first: bool,
    picture_of: bool,
) -> String {
    let mut noun = String::new();
    if with_size {
        noun.push_str(scene.size.word());
        noun.push(' ');
    }
    noun.push_str(scene.colour.word());
    noun.push(' ');
    noun.push_str(scene.shape.word());
    let mut out = String::new();
    if picture_of {
        out.push_str("a picture of ");
    }
    out.push_str(article(&noun));
    out.push(' ');
    out.push_str(&noun);
    let bg = background.map(|prep| {
        format!(
            "{prep} {} {} background",
            article(scene.background.word()),
            scene.background.word()
        )
    });
    let pos = position.then(|| scene.position.phrase());
    let parts: Vec<String> = if position_first {
        pos.into_iter().chain(bg).collect()
    } else {
        bg.into_iter().chain(pos).collect()
    };
    for part in parts {
        out.push(' ');
        out.push_str(&part);
    }
    out
}

/// A caption naming every attribute, e.g.
/// "a large green square on a black background in the centre". Deterministic.
pub fn full_caption(scene: &Scene) -> String {
    compose(scene, true, Some("on"), true, false, false)
}

/// A varied caption for `scene`: colour and shape are always named; size,
/// background and position are each mentioned with some probability, in varying
/// order and phrasing. All words come from [`crate::vocabulary`].
pub fn caption<R: RngCore + ?Sized>(scene: &Scene, rng: &mut R) -> String {
    caption_naming(scene, rng).text
}

/// A caption and which optional attributes it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    /// The English caption.
    pub text: String,
    /// Whether it names the position.
    pub names_position: bool,
    /// Whether it names the size.
    pub names_size: bool,
}

/// How often, in percent, a varied caption names the size, and separately
/// the position: the mix of [`caption`] and [`caption_naming`].
pub const DEFAULT_LAYOUT_PERCENT: u32 = 50;

/// [`caption`], telling also whether the caption names the position and the
/// size (same random draws, so the same text).
pub fn caption_naming<R: RngCore + ?Sized>(scene: &Scene, rng: &mut R) -> Caption {
    caption_naming_with(scene, rng, DEFAULT_LAYOUT_PERCENT)
}

/// [`caption_naming`] naming the size with probability `layout_percent`/100,
/// and the position with the same probability, independently (100 and above:
/// always). It makes the same random draws whatever the percentage, so
/// everything else about the caption is the same as under the default mix.
pub fn caption_naming_with<R: RngCore + ?Sized>(
    scene: &Scene,
    rng: &mut R,
    layout_percent: u32,
) -> Caption {
    let with_size = chance(rng, layout_percent);
    let background = if chance(rng, 60) {
        Some(if chance(rng, 25) { "with" } else { "on" })
    } else {
        None
    };
    let position = chance(rng, layout_percent);
    let position_first = chance(rng, 30);
    let picture_of = chance(rng, 15);
    let text = compose(
        scene,
        with_size,
        background,
        position,
        position_first,
        picture_of,
    );
    Caption {
        text,
        names_position: position,
        names_size: with_size,
    }
}

/// What a prompt asks for. Attributes the prompt does not mention are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PromptAttributes {
    /// Requested shape.
    pub shape: Option<Shape>,
    /// Requested foreground colour.
    pub colour: Option<Colour>,
    /// Requested background colour.
    pub background: Option<Colour>,
    /// Requested size.
    pub size: Option<Size>,
    /// Requested position.
    pub position: Option<Position>,
}

impl PromptAttributes {
    /// The attributes of a scene (all present).
    pub fn of_scene(scene: &Scene) -> PromptAttributes {
        PromptAttributes {
            shape: Some(scene.shape),
            colour: Some(scene.colour),
            background: Some(scene.background),
            size: Some(scene.size),
            position: Some(scene.position),
        }
    }

    /// Whether the requested combination falls under the held-out rule.
    pub fn is_held_out(&self) -> bool {
        is_held_out_combination(self.shape, self.colour, self.background)
    }
}

/// Parses a free-form English prompt into the attributes it requests.
///
/// Understands the caption vocabulary plus common synonyms ("grey", "center",
/// "middle", "big", "tiny", "plus", ...). A colour word directly followed by
/// "background"/"backdrop", or following "on" after the foreground colour has
/// been seen, is the background; the first other colour word is the foreground.
pub fn parse_prompt(prompt: &str) -> PromptAttributes {
    let lower = prompt.to_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    let mut attrs = PromptAttributes::default();
    let (mut top, mut bottom, mut left, mut right, mut centre) =
        (false, false, false, false, false);
    for (i, &tok) in tokens.iter().enumerate() {
        if let Some(colour) = Colour::from_word(tok) {
            let next = tokens.get(i + 1).copied();
            let prev = i.checked_sub(1).and_then(|j| tokens.get(j)).copied();
            let is_bg = matches!(next, Some("background" | "backdrop" | "bg"))
                || (attrs.colour.is_some()
                    && prev == Some("on")
                    && next.is_none_or(|n| Shape::from_word(n).is_none()));
            if is_bg {
                attrs.background.get_or_insert(colour);
            } else {
                attrs.colour.get_or_insert(colour);
            }
        } else if let Some(shape) = Shape::from_word(tok) {
            attrs.shape.get_or_insert(shape);
        } else if let Some(size) = Size::from_word(tok) {
            attrs.size.get_or_insert(size);
        } else {
            match tok {
                "top" | "upper" => top = true,
                "bottom" | "lower" => bottom = true,
                "left" => left = true,
                "right" => right = true,
                "centre" | "center" | "middle" | "centered" | "centred" => centre = true,
                _ => {}
            }
        }
    }
    if top || bottom || left || right || centre {
        let row = if top {
            Row::Top
        } else if bottom {
            Row::Bottom
        } else {
            Row::Middle
        };
        let col = if left {
            Col::Left
        } else if right {
            Col::Right
        } else {
            Col::Centre
        };
        attrs.position = Some(Position { row, col });
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn examples() {
        let s = Scene::new(
            Shape::Square,
            Colour::Green,
            Colour::Black,
            Size::Large,
            Position::CENTRE,
        );
        assert_eq!(
            full_caption(&s),
            "a large green square on a black background in the centre"
        );
        let s = Scene::new(
            Shape::Star,
            Colour::Orange,
            Colour::White,
            Size::Small,
            Position {
                row: Row::Top,
                col: Col::Left,
            },
        );
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let c = caption(&s, &mut rng);
            assert!(c.contains("orange star"), "{c}");
            assert!(!c.contains(" a orange"), "{c}");
        }
    }

    #[test]
    fn parses_free_form_prompts() {
        let a = parse_prompt("A big grey plus on white, in the upper right corner");
        assert_eq!(a.shape, Some(Shape::Cross));
        assert_eq!(a.colour, Some(Colour::Gray));
        assert_eq!(a.background, Some(Colour::White));
        assert_eq!(a.size, Some(Size::Large));
        assert_eq!(
            a.position,
            Some(Position {
                row: Row::Top,
                col: Col::Right
            })
        );
        let b = parse_prompt("white background with a pink ring");
        assert_eq!(b.colour, Some(Colour::Pink));
        assert_eq!(b.background, Some(Colour::White));
        assert_eq!(b.position, None);
        assert!(parse_prompt("a purple triangle").is_held_out());
        assert!(!parse_prompt("a purple square").is_held_out());
    }
}
