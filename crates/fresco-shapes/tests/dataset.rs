//! Determinism, split and caption tests for the generator.

use fresco_shapes::{
    Dataset, Framing, Position, PromptAttributes, Scene, Shape, Size, Sizing, Split, caption,
    full_caption, parse_prompt, vocabulary,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// FNV-1a over all sample bytes and captions, to pin cross-machine determinism.
fn fingerprint(samples: &[fresco_shapes::Sample]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in samples {
        for &b in s.rgb.iter().chain(s.caption.as_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    for size in [32, 64] {
        let a = Dataset::generate(42, 40, size, Split::Train).unwrap();
        let b = Dataset::generate(42, 40, size, Split::Train).unwrap();
        let c = Dataset::generate(43, 40, size, Split::Train).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|s| s.rgb.len() == (size * size * 3) as usize));
    }
    // Random access agrees with sequential generation.
    let ds = Dataset::new(42, 32, Split::Train).unwrap();
    let seq = Dataset::generate(42, 10, 32, Split::Train).unwrap();
    assert_eq!(ds.sample(7).unwrap(), seq[7]);
    assert_eq!(ds.scene(7), seq[7].scene);
}

#[test]
fn golden_fingerprint_is_stable_across_machines() {
    let a = fingerprint(&Dataset::generate(1, 64, 32, Split::All).unwrap());
    let b = fingerprint(&Dataset::generate(1, 16, 64, Split::All).unwrap());
    assert_eq!((a, b), (GOLDEN_32, GOLDEN_64), "{a:#x} {b:#x}");
}

const GOLDEN_32: u64 = 0xd886_cfd6_38c8_a20a;
const GOLDEN_64: u64 = 0x59e0_6835_ea3e_18e1;

#[test]
fn train_split_never_contains_held_out_combinations() {
    let train = Dataset::new(5, 32, Split::Train).unwrap();
    let held = Dataset::new(5, 32, Split::HeldOut).unwrap();
    let all = Dataset::new(5, 32, Split::All).unwrap();
    let mut all_held = 0;
    for i in 0..20_000 {
        assert!(
            !train.scene(i).is_held_out(),
            "train sample {i} is held out"
        );
        assert!(train.scene(i).is_valid());
        if all.scene(i).is_held_out() {
            all_held += 1;
        }
    }
    for i in 0..2_000 {
        assert!(held.scene(i).is_held_out());
    }
    // The held-out share of the full space (~6.7%) shows up in Split::All.
    assert!((800..2000).contains(&all_held), "{all_held}");
    // Every held-out combination is reachable.
    let combos = Split::HeldOut.combinations();
    assert!(!combos.is_empty());
    assert_eq!(
        combos.len() + Split::Train.combinations().len(),
        Scene::all_combinations().len()
    );
}

#[test]
fn foreground_and_background_always_differ() {
    for s in Scene::all_combinations() {
        assert_ne!(s.colour, s.background);
    }
}

#[test]
fn caption_parse_round_trip_for_every_combination() {
    let vocab = vocabulary();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for scene in Scene::all_combinations() {
        let full = full_caption(&scene);
        assert_eq!(
            parse_prompt(&full),
            PromptAttributes::of_scene(&scene),
            "{full}"
        );
        for _ in 0..3 {
            let c = caption(&scene, &mut rng);
            for word in c.split(' ') {
                assert!(vocab.contains(&word), "{word:?} of {c:?} not in vocabulary");
            }
            let p = parse_prompt(&c);
            assert_eq!(p.shape, Some(scene.shape), "{c}");
            assert_eq!(p.colour, Some(scene.colour), "{c}");
            assert!(p.background.is_none_or(|b| b == scene.background), "{c}");
            assert!(p.size.is_none_or(|s| s == scene.size), "{c}");
            assert!(p.position.is_none_or(|x| x == scene.position), "{c}");
            assert_eq!(c.contains("background"), p.background.is_some(), "{c}");
            let has_pos = Position::ALL.iter().any(|x| c.contains(x.words()));
            assert_eq!(has_pos, p.position.is_some(), "{c}");
        }
    }
}

#[test]
fn captions_vary() {
    let ds = Dataset::new(3, 32, Split::Train).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let s = ds.sample(i).unwrap();
        // Normalise attribute words away to count phrasing templates.
        let t: String = s
            .caption
            .split(' ')
            .map(|w| if w.len() > 3 { "X" } else { w })
            .collect::<Vec<_>>()
            .join(" ");
        seen.insert(t);
    }
    assert!(seen.len() >= 10, "only {} phrasings", seen.len());
}

/// How a dataset option fills in one attribute that a caption leaves unnamed.
struct UnnamedDefault<T> {
    /// The attribute as the caption names it.
    named: fn(&PromptAttributes) -> Option<T>,
    /// The attribute as the scene draws it.
    drawn: fn(&Scene) -> T,
    /// Sets the attribute of a scene.
    set: fn(&mut Scene, T),
    /// The value an unnamed attribute takes.
    default: T,
}

/// Compares samples `0..400` of `base` and `changed`, which differ by one
/// option filling in an unnamed attribute: captions and the rest of each scene
/// are equal, a named attribute is kept, an unnamed one takes the default (and
/// the image is redrawn when that changed it). Returns how many captions named
/// the attribute and how many samples the option changed.
fn check_unnamed_default<T: Copy + PartialEq + std::fmt::Debug>(
    base: &Dataset,
    changed: &Dataset,
    rule: &UnnamedDefault<T>,
) -> (usize, usize) {
    let (mut named, mut moved) = (0, 0);
    for i in 0..400 {
        let a = base.sample(i).expect("the base sample renders");
        let c = changed.sample(i).expect("the changed sample renders");
        assert_eq!(a.caption, c.caption, "sample {i}");
        assert_eq!(changed.scene(i), c.scene, "sample {i}");
        match (rule.named)(&parse_prompt(&c.caption)) {
            Some(value) => {
                named += 1;
                assert_eq!(c.scene, a.scene, "{}", c.caption);
                assert_eq!(value, (rule.drawn)(&c.scene), "{}", c.caption);
            }
            None => {
                let mut expected = a.scene;
                (rule.set)(&mut expected, rule.default);
                assert_eq!(c.scene, expected, "{}", c.caption);
                if (rule.drawn)(&a.scene) != rule.default {
                    moved += 1;
                    assert_ne!(a.rgb, c.rgb, "sample {i} was not redrawn");
                }
            }
        }
    }
    (named, moved)
}

/// Under `CentreUnlessNamed`, a caption without a position word shows a centred
/// shape, a caption with one keeps its drawn cell, and everything but that
/// position equals the default framing's sample.
#[test]
fn centre_framing_centres_only_the_shapes_whose_caption_names_no_position() {
    let anywhere = Dataset::new(8, 32, Split::Train).unwrap();
    let centred = anywhere.clone().with_framing(Framing::CentreUnlessNamed);
    assert_eq!(anywhere.framing(), Framing::Anywhere);
    let (named, moved) = check_unnamed_default(
        &anywhere,
        &centred,
        &UnnamedDefault {
            named: |asked| asked.position,
            drawn: |scene| scene.position,
            set: |scene, position| scene.position = position,
            default: Position::CENTRE,
        },
    );
    // About half the captions name a position; most of the others were moved.
    assert!(
        (150..250).contains(&named),
        "{named} captions name a position"
    );
    assert!(moved > 120, "only {moved} shapes were moved to the centre");
}

/// Under `LargeUnlessNamed`, a caption without a size word shows a large shape,
/// a caption with one keeps its drawn size, and the sizing composes with the
/// framing: everything but the size equals the centred dataset's sample, so a
/// caption that names neither shows a large centred shape.
#[test]
fn large_sizing_enlarges_only_the_shapes_whose_caption_names_no_size() {
    let centred = Dataset::new(8, 32, Split::Train)
        .unwrap()
        .with_framing(Framing::CentreUnlessNamed);
    let canonical = centred.clone().with_sizing(Sizing::LargeUnlessNamed);
    assert_eq!(centred.sizing(), Sizing::Any);
    assert_eq!(canonical.framing(), Framing::CentreUnlessNamed);
    let (named, grown) = check_unnamed_default(
        &centred,
        &canonical,
        &UnnamedDefault {
            named: |asked| asked.size,
            drawn: |scene| scene.size,
            set: |scene, size| scene.size = size,
            default: Size::Large,
        },
    );
    // About half the captions name a size; two thirds of the others were grown.
    assert!((150..250).contains(&named), "{named} captions name a size");
    assert!(grown > 100, "only {grown} shapes were enlarged");
    let mut canonical_count = 0;
    for i in 0..400 {
        let c = canonical.sample(i).unwrap();
        let asked = parse_prompt(&c.caption);
        if asked.size.is_none() && asked.position.is_none() {
            canonical_count += 1;
            assert_eq!(c.scene.size, Size::Large, "{}", c.caption);
            assert_eq!(c.scene.position, Position::CENTRE, "{}", c.caption);
        }
    }
    // About a quarter of the captions name neither.
    assert!(
        (60..140).contains(&canonical_count),
        "{canonical_count} captions name neither size nor position"
    );
}

/// The layout mix changes only whether a caption names the size and the
/// position: the scene is the same sample for sample, 0 names neither, 100
/// names both, and a caption that already named neither (or both) is left as
/// it was. With the centred, large defaults, 0 gives only large centred shapes.
#[test]
fn layout_percent_changes_only_how_often_captions_name_size_and_position() {
    let base = Dataset::new(8, 32, Split::Train).unwrap();
    assert_eq!(base.layout_percent(), 50);
    let none = base.clone().with_layout_percent(0).unwrap();
    let both = base.clone().with_layout_percent(100).unwrap();
    let (mut kept_plain, mut kept_full) = (0, 0);
    for i in 0..400 {
        let a = base.sample(i).unwrap();
        let (n, b) = (none.sample(i).unwrap(), both.sample(i).unwrap());
        assert_eq!((n.scene, b.scene), (a.scene, a.scene), "sample {i}");
        assert_eq!((&n.rgb, &b.rgb), (&a.rgb, &a.rgb), "sample {i}");
        let asked = parse_prompt(&a.caption);
        let plain = parse_prompt(&n.caption);
        assert_eq!((plain.size, plain.position), (None, None), "{}", n.caption);
        assert_eq!((plain.shape, plain.colour), (asked.shape, asked.colour));
        let full = parse_prompt(&b.caption);
        assert_eq!(full.size, Some(a.scene.size), "{}", b.caption);
        assert_eq!(full.position, Some(a.scene.position), "{}", b.caption);
        assert_eq!(full.background, asked.background, "{}", b.caption);
        if asked.size.is_none() && asked.position.is_none() {
            kept_plain += 1;
            assert_eq!(n.caption, a.caption);
        }
        if asked.size.is_some() && asked.position.is_some() {
            kept_full += 1;
            assert_eq!(b.caption, a.caption);
        }
    }
    assert!(
        kept_plain > 60 && kept_full > 60,
        "{kept_plain} / {kept_full}"
    );

    let canonical = base
        .with_framing(Framing::CentreUnlessNamed)
        .with_sizing(Sizing::LargeUnlessNamed)
        .with_layout_percent(0)
        .unwrap();
    for i in 0..100 {
        let s = canonical.scene(i);
        assert_eq!((s.size, s.position), (Size::Large, Position::CENTRE));
    }
    let err = Dataset::new(8, 32, Split::Train)
        .unwrap()
        .with_layout_percent(101)
        .unwrap_err();
    assert!(err.to_string().contains("0..=100"), "{err}");
}

/// A shape weight changes how often that shape is drawn and nothing else: at
/// weight 1 the dataset is the unweighted one sample for sample; at weight 3
/// stars make about 3/9 of the samples instead of 1/7, the held-out rule still
/// holds, and every caption still names the scene's own shape.
#[test]
fn shape_weight_draws_a_shape_more_often_and_keeps_the_split() {
    let base = Dataset::new(9, 32, Split::Train).unwrap();
    assert_eq!(base.shape_weight(Shape::Star), 1);
    let same = base.clone().with_shape_weight(Shape::Star, 1).unwrap();
    for i in 0..200 {
        assert_eq!(
            same.sample(i).unwrap(),
            base.sample(i).unwrap(),
            "sample {i}"
        );
    }

    let stars = base.clone().with_shape_weight(Shape::Star, 3).unwrap();
    assert_eq!(stars.shape_weight(Shape::Star), 3);
    assert_eq!(stars.shape_weight(Shape::Circle), 1);
    let n = 7_000;
    let (mut weighted, mut plain) = (0, 0);
    for i in 0..n {
        let s = stars.sample(i).unwrap();
        assert!(!s.scene.is_held_out(), "sample {i} is held out");
        assert_eq!(
            parse_prompt(&s.caption).shape,
            Some(s.scene.shape),
            "{}",
            s.caption
        );
        weighted += usize::from(s.scene.shape == Shape::Star);
        plain += usize::from(base.scene(i).shape == Shape::Star);
    }
    // Stars have one held-out colour, so their share is a little under 3/9 and 1/7.
    let (weighted, plain) = (weighted as f64 / n as f64, plain as f64 / n as f64);
    assert!(
        (0.29..0.35).contains(&weighted),
        "weighted star share {weighted}"
    );
    assert!((0.12..0.16).contains(&plain), "plain star share {plain}");

    for bad in [0, Dataset::MAX_SHAPE_WEIGHT + 1] {
        let err = base
            .clone()
            .with_shape_weight(Shape::Star, bad)
            .unwrap_err();
        assert!(
            err.to_string().contains("star") && err.to_string().contains("1..=16"),
            "{err}"
        );
    }
}
