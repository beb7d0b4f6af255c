//! `exp` over slices, written so the compiler vectorises it on plain x86-64 (SSE2): range
//! reduction by `ln 2` with the rounding done by the 1.5·2²³ trick instead of a `floor`
//! call, Cephes' degree-6 polynomial for `exp` on `[-ln2/2, ln2/2]`, and the power of two
//! built from its bits. Relative error is within a few ulp of `f32::exp` over
//! `[-87, 88]`; inputs outside are clamped to it.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding this rounds a float of magnitude below 2²² to an integer held in its low bits.
const ROUND: f32 = 12_582_912.0;
const ROUND_BITS: i32 = 0x4B40_0000;
const LOWEST: f32 = -87.0;
const HIGHEST: f32 = 88.0;

/// `e^x` by the method in the module docs.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = if x < LOWEST { LOWEST } else { x };
    let x = if x > HIGHEST { HIGHEST } else { x };
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let power = (shifted.to_bits() as i32).wrapping_sub(ROUND_BITS);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((power + 127) << 23) as u32)
}

/// Replaces each `x` by `e^(x - shift)` and returns their sum (inline: call it inside
/// [`crate::simd::vectorized`]).
#[inline(always)]
pub(crate) fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (x, sum) in chunk.iter_mut().zip(sums.iter_mut()) {
            *x = exp(*x - shift);
            *sum += *x;
        }
    }
    let mut total: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        total += *x;
    }
    total
}

/// `x · sigmoid(x)`.
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// The error function: its Taylor series to x¹¹ for |x| < 1/2 (where the formula below
/// would lose digits to cancellation), else Abramowitz and Stegun 7.1.26. Absolute error
/// below 4·10⁻⁷ in `f32`; both are computed and one selected, so the loop vectorises.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    const TWO_OVER_SQRT_PI: f32 = std::f32::consts::FRAC_2_SQRT_PI;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let magnitude = 1.0 - poly * exp(-a * a);
    let far = if x < 0.0 { -magnitude } else { magnitude };
    let x2 = x * x;
    let series = 1.0 / 216.0 - x2 / 1320.0;
    let series = -1.0 / 42.0 + x2 * series;
    let series = 1.0 / 10.0 + x2 * series;
    let series = -1.0 / 3.0 + x2 * series;
    let near = TWO_OVER_SQRT_PI * x * (1.0 + x2 * series);
    if a < 0.5 { near } else { far }
}

/// GELU with the exact (erf) form: `x · (1 + erf(x / √2)) / 2`.
#[inline(always)]
pub(crate) fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_exp_within_a_few_ulp() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = x.exp();
            let got = exp(x);
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_3;
        }
        assert!(worst < 4.0 * f32::EPSILON, "worst relative error {worst}");
    }

    #[test]
    fn clamps_what_would_overflow_or_underflow() {
        assert_eq!(exp(-1000.0), exp(LOWEST));
        assert!(exp(-1000.0) < 1e-37);
        assert_eq!(exp(1000.0), exp(HIGHEST));
        assert!(exp(1000.0).is_finite());
        assert!(silu(-1000.0).abs() < 1e-30);
    }

    #[test]
    fn erf_is_within_its_stated_error() {
        // Reference values of erf from the series to double precision.
        let series = |x: f64| -> f64 {
            let mut term = x;
            let mut sum = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let mut x = -4.0f32;
        while x <= 4.0 {
            let gap = (f64::from(erf(x)) - series(f64::from(x))).abs();
            assert!(gap < 4e-7, "erf({x}) off by {gap}");
            x += 0.01;
        }
        assert_eq!(erf(30.0), 1.0);
        assert_eq!(erf(-30.0), -1.0);
    }

    #[test]
    fn the_shifted_sum_is_the_sum_it_writes() {
        let mut xs: Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 3.0).collect();
        let expected: Vec<f32> = xs.iter().map(|x| (x - 1.5).exp()).collect();
        let sum = exp_shifted_sum(&mut xs, 1.5);
        for (got, want) in xs.iter().zip(&expected) {
            assert!(((got - want) / want).abs() < 4.0 * f32::EPSILON);
        }
        let want_sum: f32 = expected.iter().sum();
        assert!(((sum - want_sum) / want_sum).abs() < 1e-6);
    }
}
