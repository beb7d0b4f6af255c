//! Rasterises one [`Scene`] into an RGB8 buffer: placement of the shape on the
//! 3×3 grid, 4×4 supersampled anti-aliasing of its edge pixels and integer colour
//! blending. Output is bit-identical on every platform.

use crate::error::{Error, Result};
use crate::geometry::{inside, unit_bounds};
use crate::scene::Scene;
use crate::vocab::{Col, Colour, Row, Size};

/// Smallest supported image side.
pub const MIN_IMAGE_SIZE: u32 = 16;
/// Largest supported image side.
pub const MAX_IMAGE_SIZE: u32 = 1024;

/// Gap between a shape at the edge of the grid and the image border, as a
/// fraction of the image side.
pub(crate) const MARGIN: f64 = 0.06;

/// Supersampling grid per axis for edge pixels.
const SUBSAMPLES: u32 = 4;

/// Checks that `size` is within [`MIN_IMAGE_SIZE`]..=[`MAX_IMAGE_SIZE`].
pub fn check_image_size(size: u32) -> Result<()> {
    if (MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Error::InvalidImageSize {
            size,
            min: MIN_IMAGE_SIZE,
            max: MAX_IMAGE_SIZE,
        })
    }
}

/// Nominal radius in pixels for a size class at the given image side.
pub(crate) fn nominal_radius(size: Size, image_size: u32) -> f64 {
    f64::from(image_size) * f64::from(size.radius_percent()) / 100.0
}

/// Centre coordinate (in pixels) of a shape of radius `r` along one axis, for the
/// low (left/top), middle or high (right/bottom) placement.
pub(crate) fn axis_centre(slot: usize, r: f64, image_size: u32) -> f64 {
    let s = f64::from(image_size);
    match slot {
        0 => MARGIN * s + r,
        1 => s / 2.0,
        _ => s - MARGIN * s - r,
    }
}

pub(crate) fn row_slot(row: Row) -> usize {
    match row {
        Row::Top => 0,
        Row::Middle => 1,
        Row::Bottom => 2,
    }
}

pub(crate) fn col_slot(col: Col) -> usize {
    match col {
        Col::Left => 0,
        Col::Centre => 1,
        Col::Right => 2,
    }
}

/// Where the shape goes: `(centre_x, centre_y, radius)` in pixels.
pub fn placement(scene: &Scene, image_size: u32) -> (f64, f64, f64) {
    let s = f64::from(image_size);
    let j = scene.jitter;
    let r = nominal_radius(scene.size, image_size) * (100.0 + f64::from(j.scale_percent)) / 100.0;
    let cx = axis_centre(col_slot(scene.position.col), r, image_size) + f64::from(j.dx) * s / 64.0;
    let cy = axis_centre(row_slot(scene.position.row), r, image_size) + f64::from(j.dy) * s / 64.0;
    (cx, cy, r)
}

fn jittered(colour: Colour, offsets: [i8; 3]) -> [u8; 3] {
    let base = colour.rgb();
    let mut out = [0u8; 3];
    for ((o, b), d) in out.iter_mut().zip(base).zip(offsets) {
        *o = b.saturating_add_signed(d);
    }
    out
}

/// Renders `scene` as a `image_size`×`image_size` RGB8 buffer (row-major, 3 bytes
/// per pixel).
pub fn render(scene: &Scene, image_size: u32) -> Result<Vec<u8>> {
    check_image_size(image_size)?;
    let fg = jittered(scene.colour, scene.jitter.fg);
    let bg = jittered(scene.background, scene.jitter.bg);
    let n = image_size as usize;
    let mut rgb = Vec::with_capacity(n * n * 3);
    for _ in 0..n * n {
        rgb.extend_from_slice(&bg);
    }
    let (cx, cy, r) = placement(scene, image_size);
    let (u0, u1, v0, v1) = unit_bounds(scene.shape);
    let clamp = |x: f64| -> usize {
        if x <= 0.0 {
            0
        } else if x >= f64::from(image_size) {
            n
        } else {
            // Truncation of a value already known to be in range.
            x as usize
        }
    };
    let (x_lo, x_hi) = (clamp(cx + u0 * r - 1.0), clamp(cx + u1 * r + 2.0));
    let (y_lo, y_hi) = (clamp(cy + v0 * r - 1.0), clamp(cy + v1 * r + 2.0));
    let test = |x: f64, y: f64| inside(scene.shape, (x - cx) / r, (y - cy) / r);
    let total = SUBSAMPLES * SUBSAMPLES;
    for py in y_lo..y_hi {
        for px in x_lo..x_hi {
            let (x, y) = (px as f64, py as f64);
            let probes = [
                test(x + 0.5, y + 0.5),
                test(x, y),
                test(x + 1.0, y),
                test(x, y + 1.0),
                test(x + 1.0, y + 1.0),
            ];
            let covered = if probes.iter().all(|&p| p) {
                total
            } else if probes.iter().all(|&p| !p) {
                0
            } else {
                let mut c = 0;
                for sy in 0..SUBSAMPLES {
                    for sx in 0..SUBSAMPLES {
                        let ox = (f64::from(sx) + 0.5) / f64::from(SUBSAMPLES);
                        let oy = (f64::from(sy) + 0.5) / f64::from(SUBSAMPLES);
                        if test(x + ox, y + oy) {
                            c += 1;
                        }
                    }
                }
                c
            };
            if covered == 0 {
                continue;
            }
            let i = (py * n + px) * 3;
            for ch in 0..3 {
                let v = (u32::from(bg[ch]) * (total - covered)
                    + u32::from(fg[ch]) * covered
                    + total / 2)
                    / total;
                // v is a weighted mean of two u8 values, so it fits.
                rgb[i + ch] = u8::try_from(v).unwrap_or(u8::MAX);
            }
        }
    }
    Ok(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{Position, Shape};

    #[test]
    fn rejects_bad_sizes() {
        let s = Scene::new(
            Shape::Circle,
            Colour::Red,
            Colour::White,
            Size::Small,
            Position::CENTRE,
        );
        assert!(render(&s, 8).is_err());
        assert!(render(&s, 32).is_ok());
    }

    #[test]
    fn shape_stays_inside_image() {
        for scene in Scene::all_combinations() {
            if scene.colour != Colour::Red || scene.background != Colour::White {
                continue;
            }
            for (dx, ds) in [(-2i8, 6i8), (2, 6)] {
                let mut s = scene;
                s.jitter.dx = dx;
                s.jitter.dy = dx;
                s.jitter.scale_percent = ds;
                let (cx, cy, r) = placement(&s, 32);
                let (u0, u1, v0, v1) = unit_bounds(s.shape);
                assert!(cx + u0 * r > 0.5 && cx + u1 * r < 31.5, "{s:?}");
                assert!(cy + v0 * r > 0.5 && cy + v1 * r < 31.5, "{s:?}");
            }
        }
    }
}
