//! Analyzer accuracy on generated data (clean and noisy) and evaluation-report
//! behaviour.

use fresco_shapes::{
    Dataset, Evaluator, Split, add_noise, analyze, full_caption, mean_abs_distance, parse_prompt,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

struct Acc {
    n: usize,
    colour: usize,
    shape: usize,
    background: usize,
}

fn measure(seed: u64, count: usize, size: u32, split: Split, noise: u8) -> Acc {
    let ds = Dataset::new(seed, size, split).expect("dataset");
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1000);
    let mut acc = Acc {
        n: 0,
        colour: 0,
        shape: 0,
        background: 0,
    };
    for i in 0..count as u64 {
        let mut s = ds.sample(i).expect("sample");
        add_noise(&mut s.rgb, noise, &mut rng);
        let a = analyze(&s.rgb, size, size).expect("analysis");
        acc.n += 1;
        acc.colour += usize::from(a.foreground == Some(s.scene.colour));
        acc.shape += usize::from(a.shape == Some(s.scene.shape));
        acc.background += usize::from(a.background == s.scene.background);
    }
    acc
}

fn assert_at_least(acc: &Acc, min: f64, what: &str) {
    let n = acc.n as f64;
    for (name, v) in [
        ("colour", acc.colour),
        ("shape", acc.shape),
        ("background", acc.background),
    ] {
        let a = v as f64 / n;
        assert!(a >= min, "{what}: {name} accuracy {a:.4} < {min}");
    }
}

#[test]
fn analyzer_is_accurate_on_clean_data_32() {
    let acc = measure(11, 1000, 32, Split::All, 0);
    assert_at_least(&acc, 0.99, "clean 32");
    let acc = measure(12, 200, 32, Split::HeldOut, 0);
    assert_at_least(&acc, 0.99, "clean 32 held-out");
}

#[test]
fn analyzer_is_accurate_on_clean_data_64() {
    let acc = measure(13, 300, 64, Split::All, 0);
    assert_at_least(&acc, 0.99, "clean 64");
}

#[test]
fn analyzer_is_robust_to_mild_noise() {
    let acc = measure(14, 400, 32, Split::All, NOISE);
    assert_at_least(&acc, 0.95, "noisy 32");
    let acc = measure(15, 150, 64, Split::All, NOISE);
    assert_at_least(&acc, 0.95, "noisy 64");
}

/// Noise amplitude: per-channel standard deviation ≈ 10.5 of 255.
const NOISE: u8 = 10;

#[test]
fn evaluator_reports_seen_and_held_out() {
    let mut ev = Evaluator::new();
    for split in [Split::Train, Split::HeldOut] {
        for s in Dataset::generate(21, 60, 32, split).unwrap() {
            ev.add(&full_caption(&s.scene), &s.rgb, 32, 32).unwrap();
        }
    }
    let r = ev.report();
    assert_eq!(r.seen.images, 60);
    assert_eq!(r.held_out.images, 60);
    assert!(r.seen.shape.accuracy().unwrap() > 0.95);
    assert!(r.held_out.colour.accuracy().unwrap() > 0.95);
    let table = r.to_string();
    assert!(table.contains("| held-out | 60 |"), "{table}");
}

#[test]
fn diversity_is_zero_for_identical_images_and_positive_otherwise() {
    let samples = Dataset::generate(8, 2, 32, Split::Train).unwrap();
    let (a, b) = (&samples[0].rgb, &samples[1].rgb);
    assert_eq!(mean_abs_distance(a, a), Some(0.0));
    assert!(mean_abs_distance(a, b).unwrap() > 0.0);

    let mut same = Evaluator::new();
    same.add("a red circle", a, 32, 32).unwrap();
    same.add("a red circle", a, 32, 32).unwrap();
    assert_eq!(same.report().diversity, Some(0.0));

    let mut diff = Evaluator::new();
    diff.add("a red circle", a, 32, 32).unwrap();
    diff.add("a red circle", b, 32, 32).unwrap();
    assert!(diff.report().diversity.unwrap() > 0.0);

    let mut single = Evaluator::new();
    single.add("a red circle", a, 32, 32).unwrap();
    assert_eq!(single.report().diversity, None);
    assert_eq!(
        parse_prompt("a red circle").shape,
        Some(fresco_shapes::Shape::Circle)
    );
}
