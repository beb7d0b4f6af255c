//! Unit-shape geometry shared by the renderer and the analyzer: point-in-shape
//! tests in a frame where the shape's nominal radius is 1, the origin is the
//! centre of its bounding box, `u` points right and `v` points down.
//!
//! Only IEEE-754 basic arithmetic (add, sub, mul, compare) is used and the few
//! trigonometric values needed are literals, so results are bit-identical on
//! every platform Rust supports.

use crate::vocab::Shape;

const COS18: f64 = 0.951_056_516_295_153_5;
const SIN18: f64 = 0.309_016_994_374_947_4;
const COS54: f64 = 0.587_785_252_292_473_1;
const SIN54: f64 = 0.809_016_994_374_947_5;

/// Half side of the square.
const SQUARE_HALF: f64 = 0.82;
/// Half width of the cross arms.
const CROSS_HALF_WIDTH: f64 = 0.34;
/// Squared inner radius of the ring (inner radius 0.6).
const RING_INNER_SQ: f64 = 0.36;
/// Inner/outer radius ratio of the star.
const STAR_INNER: f64 = 0.45;
/// Vertical shift that centres the star's bounding box on the origin.
const STAR_SHIFT: f64 = (1.0 - SIN54) / 2.0;
/// Half height of the triangle's bounding box.
const TRIANGLE_HALF_HEIGHT: f64 = 0.875;

/// Axis-aligned bounding box of a unit shape: `(u_min, u_max, v_min, v_max)`.
pub fn unit_bounds(shape: Shape) -> (f64, f64, f64, f64) {
    match shape {
        Shape::Circle | Shape::Ring | Shape::Diamond | Shape::Cross => (-1.0, 1.0, -1.0, 1.0),
        Shape::Square => (-SQUARE_HALF, SQUARE_HALF, -SQUARE_HALF, SQUARE_HALF),
        Shape::Triangle => (-1.0, 1.0, -TRIANGLE_HALF_HEIGHT, TRIANGLE_HALF_HEIGHT),
        Shape::Star => (-COS18, COS18, -1.0 + STAR_SHIFT, SIN54 + STAR_SHIFT),
    }
}

/// Whether the point `(u, v)` lies inside the unit shape.
pub fn inside(shape: Shape, u: f64, v: f64) -> bool {
    match shape {
        Shape::Circle => u * u + v * v <= 1.0,
        Shape::Ring => {
            let d = u * u + v * v;
            (RING_INNER_SQ..=1.0).contains(&d)
        }
        Shape::Square => u.abs() <= SQUARE_HALF && v.abs() <= SQUARE_HALF,
        Shape::Diamond => u.abs() + v.abs() <= 1.0,
        Shape::Cross => {
            let (au, av) = (u.abs(), v.abs());
            (au <= CROSS_HALF_WIDTH && av <= 1.0) || (av <= CROSS_HALF_WIDTH && au <= 1.0)
        }
        Shape::Triangle => {
            // Apex (0, -h), base corners (±1, h); inside when below both slanted edges.
            let h = TRIANGLE_HALF_HEIGHT;
            v <= h && (v + h) >= u.abs() * (2.0 * h)
        }
        Shape::Star => inside_polygon(&STAR_POINTS, u, v - STAR_SHIFT),
    }
}

/// The star outline (outer and inner vertices alternating), before the centring shift.
const STAR_POINTS: [(f64, f64); 10] = [
    (0.0, -1.0),
    (COS54 * STAR_INNER, -SIN54 * STAR_INNER),
    (COS18, -SIN18),
    (COS18 * STAR_INNER, SIN18 * STAR_INNER),
    (COS54, SIN54),
    (0.0, STAR_INNER),
    (-COS54, SIN54),
    (-COS18 * STAR_INNER, SIN18 * STAR_INNER),
    (-COS18, -SIN18),
    (-COS54 * STAR_INNER, -SIN54 * STAR_INNER),
];

/// Even-odd point-in-polygon test.
fn inside_polygon(points: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = points.len() - 1;
    for i in 0..points.len() {
        let (xi, yi) = points[i];
        let (xj, yj) = points[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_tight_and_centred() {
        for shape in Shape::ALL {
            let (u0, u1, v0, v1) = unit_bounds(shape);
            assert!(
                (u0 + u1).abs() < 1e-9 && (v0 + v1).abs() < 1e-9,
                "{shape:?}"
            );
            // Sample a fine grid: every inside point lies within the bounds and the
            // inside region reaches close to each side.
            let n = 400;
            let (mut mu0, mut mu1, mut mv0, mut mv1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
            for i in 0..=n {
                for j in 0..=n {
                    let u = -1.2 + 2.4 * f64::from(i) / f64::from(n);
                    let v = -1.2 + 2.4 * f64::from(j) / f64::from(n);
                    if inside(shape, u, v) {
                        mu0 = mu0.min(u);
                        mu1 = mu1.max(u);
                        mv0 = mv0.min(v);
                        mv1 = mv1.max(v);
                    }
                }
            }
            let tol = 0.02;
            assert!(mu0 >= u0 - 1e-9 && mu1 <= u1 + 1e-9, "{shape:?}");
            assert!(mv0 >= v0 - 1e-9 && mv1 <= v1 + 1e-9, "{shape:?}");
            assert!(mu0 - u0 < tol && u1 - mu1 < tol, "{shape:?} u {mu0} {mu1}");
            assert!(mv0 - v0 < tol && v1 - mv1 < tol, "{shape:?} v {mv0} {mv1}");
        }
    }
}
