//! The deterministic, non-ML image scorer: reads background colour, foreground
//! colour, shape, size and position back from an RGB8 image.
//!
//! Pipeline:
//! 1. **Background** — every border pixel is quantised with [`classify_colour`];
//!    the most common class wins and its pixels' per-channel median is the
//!    background reference colour.
//! 2. **Foreground mask** — Euclidean RGB distance to the reference; the threshold
//!    is half of a robust maximum distance (the k-th largest, k = max(3, N/256)),
//!    at least [`MIN_CONTRAST`]. Only the largest 8-connected component is kept,
//!    so speckle noise and stray blobs are ignored.
//! 3. **Foreground colour** — per-channel median of the half of the component's
//!    pixels farthest from the background, classified by hue (HSV) with chroma and
//!    brightness rules for white, gray and black.
//! 4. **Shape** — a soft coverage map (each pixel's projection onto the
//!    background→foreground colour axis, over the component dilated by one pixel)
//!    gives area and centroid. Each unit shape (shapes are never rotated) is placed
//!    with the same area and centroid and scored by soft intersection-over-union
//!    against the coverage, with 4×4 (small shapes) or 2×2 samples per pixel; the
//!    best IoU wins. Sub-pixel coverage is what keeps 32-px small stars apart from
//!    diamonds. Geometric descriptors (bounding-box fill ratio, hole count) are
//!    reported alongside for diagnostics.
//! 5. **Size / position** — the fitted radius and centre, matched to the nearest
//!    size class and 3×3 grid cell.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::geometry::{inside, unit_bounds};
use crate::render::axis_centre;
use crate::vocab::{Col, Colour, Position, Row, Shape, Size};

/// Minimum RGB distance between foreground and background for a foreground to be
/// reported at all.
pub const MIN_CONTRAST: f64 = 40.0;

/// What the analyzer read from an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Dominant border colour.
    pub background: Colour,
    /// Reference background value (median of the border pixels of that class).
    pub background_rgb: [u8; 3],
    /// Foreground colour; `None` when nothing stands out from the background.
    pub foreground: Option<Colour>,
    /// Representative foreground value.
    pub foreground_rgb: Option<[u8; 3]>,
    /// Best-fitting shape; `None` when there is no foreground.
    pub shape: Option<Shape>,
    /// Soft IoU of the best shape template with the coverage map, in `0..=1`.
    pub shape_score: f64,
    /// IoU of the runner-up shape (confidence margin = `shape_score - runner_up_score`).
    pub runner_up_score: f64,
    /// Size class of the fitted shape.
    pub size: Option<Size>,
    /// Grid cell of the fitted shape.
    pub position: Option<Position>,
    /// Pixels in the kept foreground component.
    pub foreground_pixels: usize,
    /// Pixels in all other foreground components (noise, stray blobs).
    pub stray_pixels: usize,
    /// Component bounding box `(x0, y0, x1, y1)`, inclusive.
    pub bbox: Option<(u32, u32, u32, u32)>,
    /// Component area / bounding-box area.
    pub fill_ratio: f64,
    /// Enclosed background regions of a non-trivial size (1 for a ring).
    pub holes: usize,
}

/// Quantises one RGB value to the nearest named colour: chroma below 60 (of 255)
/// is achromatic (white above mean 185, black below 70, gray between); otherwise
/// the hue decides (red < 15° or ≥ 345°, orange < 42°, yellow < 75°, green < 160°,
/// cyan < 205°, blue < 255°, purple < 300°, pink < 345°).
pub fn classify_colour(rgb: [u8; 3]) -> Colour {
    let [r, g, b] = rgb.map(i32::from);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let chroma = max - min;
    if chroma < 60 {
        let mean = (r + g + b) / 3;
        return if mean > 185 {
            Colour::White
        } else if mean < 70 {
            Colour::Black
        } else {
            Colour::Gray
        };
    }
    let c = f64::from(chroma);
    let hue = if max == r {
        60.0 * f64::from(g - b) / c
    } else if max == g {
        120.0 + 60.0 * f64::from(b - r) / c
    } else {
        240.0 + 60.0 * f64::from(r - g) / c
    };
    let hue = if hue < 0.0 { hue + 360.0 } else { hue };
    match hue {
        h if !(15.0..345.0).contains(&h) => Colour::Red,
        h if h < 42.0 => Colour::Orange,
        h if h < 75.0 => Colour::Yellow,
        h if h < 160.0 => Colour::Green,
        h if h < 205.0 => Colour::Cyan,
        h if h < 255.0 => Colour::Blue,
        h if h < 300.0 => Colour::Purple,
        _ => Colour::Pink,
    }
}

fn pixel(rgb: &[u8], i: usize) -> [u8; 3] {
    [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]]
}

fn median_rgb(pixels: &[[u8; 3]]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        let mut v: Vec<u8> = pixels.iter().map(|p| p[ch]).collect();
        v.sort_unstable();
        *o = v.get(v.len() / 2).copied().unwrap_or(0);
    }
    out
}

fn distance(a: [u8; 3], b: [u8; 3]) -> f64 {
    let d: i32 = (0..3)
        .map(|c| {
            let x = i32::from(a[c]) - i32::from(b[c]);
            x * x
        })
        .sum();
    f64::from(d).sqrt()
}

/// Labels 8-connected components of `mask`; returns the pixel indices of each.
fn components(mask: &[bool], w: usize, h: usize) -> Vec<Vec<usize>> {
    let mut seen = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        let mut comp = Vec::new();
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            comp.push(i);
            let (x, y) = (i % w, i / w);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(comp);
    }
    out
}

/// Counts 4-connected background regions inside the bounding box that do not reach
/// the box's edge and have at least `min_area` pixels.
fn count_holes(
    mask: &[bool],
    w: usize,
    bbox: (usize, usize, usize, usize),
    min_area: usize,
) -> usize {
    let (x0, y0, x1, y1) = bbox;
    let bw = x1 - x0 + 1;
    let bh = y1 - y0 + 1;
    let mut seen = vec![false; bw * bh];
    let mut holes = 0;
    let mut stack = Vec::new();
    for start in 0..bw * bh {
        let (sx, sy) = (start % bw, start / bw);
        if seen[start] || mask[(y0 + sy) * w + x0 + sx] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut area = 0;
        let mut touches_edge = false;
        while let Some(i) = stack.pop() {
            area += 1;
            let (x, y) = (i % bw, i / bw);
            if x == 0 || y == 0 || x == bw - 1 || y == bh - 1 {
                touches_edge = true;
            }
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < bw).then(|| i + 1),
                (y > 0).then(|| i - bw),
                (y + 1 < bh).then(|| i + bw),
            ];
            for j in neighbours.into_iter().flatten() {
                let (jx, jy) = (j % bw, j / bw);
                if !seen[j] && !mask[(y0 + jy) * w + x0 + jx] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        if !touches_edge && area >= min_area {
            holes += 1;
        }
    }
    holes
}

struct Fit {
    shape: Shape,
    iou: f64,
    radius: f64,
    cx: f64,
    cy: f64,
}

/// Area and centroid `(area, cu, cv)` of each unit shape, by fine sampling.
fn unit_moments() -> &'static [(f64, f64, f64); 7] {
    static MOMENTS: OnceLock<[(f64, f64, f64); 7]> = OnceLock::new();
    MOMENTS.get_or_init(|| {
        let mut out = [(0.0, 0.0, 0.0); 7];
        for (slot, &shape) in out.iter_mut().zip(Shape::ALL.iter()) {
            let (u0, u1, v0, v1) = unit_bounds(shape);
            let n = 400;
            let (du, dv) = ((u1 - u0) / f64::from(n), (v1 - v0) / f64::from(n));
            let (mut count, mut su, mut sv) = (0u32, 0.0, 0.0);
            for j in 0..n {
                for i in 0..n {
                    let u = u0 + (f64::from(i) + 0.5) * du;
                    let v = v0 + (f64::from(j) + 0.5) * dv;
                    if inside(shape, u, v) {
                        count += 1;
                        su += u;
                        sv += v;
                    }
                }
            }
            let c = f64::from(count.max(1));
            *slot = (c * du * dv, su / c, sv / c);
        }
        out
    })
}

/// Soft foreground coverage of the region around the component.
struct Coverage {
    /// Per image pixel, in `0..=1`.
    alpha: Vec<f64>,
    w: usize,
    h: usize,
    /// Sum of alpha.
    area: f64,
    /// Alpha-weighted centroid (pixel units, pixel centres at +0.5).
    cx: f64,
    cy: f64,
    /// Rectangle holding every non-zero alpha `(x0, y0, x1, y1)`, inclusive.
    rect: (usize, usize, usize, usize),
}

/// Places `shape` by matching the coverage's area and centroid, then scores it by
/// soft intersection-over-union.
fn fit(shape: Shape, cov: &Coverage) -> Fit {
    let (area, cu, cv) = unit_moments()[shape.index()];
    let r = (cov.area / area).sqrt().max(0.5);
    let (cx, cy) = (cov.cx - r * cu, cov.cy - r * cv);
    let (u0, u1, v0, v1) = unit_bounds(shape);
    let clamp_lo = |v: f64| if v <= 0.0 { 0 } else { v as usize };
    let x0 = cov.rect.0.min(clamp_lo(cx + u0 * r - 1.0));
    let y0 = cov.rect.1.min(clamp_lo(cy + v0 * r - 1.0));
    let x1 = cov.rect.2.max(clamp_lo(cx + u1 * r + 1.0)).min(cov.w - 1);
    let y1 = cov.rect.3.max(clamp_lo(cy + v1 * r + 1.0)).min(cov.h - 1);
    let sub: u32 = if r < 10.0 { 4 } else { 2 };
    let inv = 1.0 / f64::from(sub * sub);
    let mut inter = 0.0;
    let mut union = 0.0;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let mut t = 0u32;
            for sy in 0..sub {
                for sx in 0..sub {
                    let px = x as f64 + (f64::from(sx) + 0.5) / f64::from(sub);
                    let py = y as f64 + (f64::from(sy) + 0.5) / f64::from(sub);
                    if inside(shape, (px - cx) / r, (py - cy) / r) {
                        t += 1;
                    }
                }
            }
            let t = f64::from(t) * inv;
            let a = cov.alpha[y * cov.w + x];
            inter += a.min(t);
            union += a.max(t);
        }
    }
    let iou = if union > 0.0 { inter / union } else { 0.0 };
    Fit {
        shape,
        iou,
        radius: r,
        cx,
        cy,
    }
}

fn nearest_slot(value: f64, r: f64, extent: u32) -> usize {
    let mut best = 0;
    let mut best_d = f64::MAX;
    for slot in 0..3 {
        let d = (axis_centre(slot, r, extent) - value).abs();
        if d < best_d {
            best_d = d;
            best = slot;
        }
    }
    best
}

fn size_class(radius: f64, side: u32) -> Size {
    let pct = radius * 100.0 / f64::from(side);
    let mut best = Size::Small;
    let mut best_d = f64::MAX;
    for s in Size::ALL {
        let d = (pct - f64::from(s.radius_percent())).abs();
        if d < best_d {
            best_d = d;
            best = s;
        }
    }
    best
}

/// Analyses a row-major RGB8 image of `width`×`height` pixels.
pub fn analyze(rgb: &[u8], width: u32, height: u32) -> Result<Analysis> {
    check_buffer(rgb, width, height)?;
    let image = Image {
        rgb,
        w: width as usize,
        h: height as usize,
    };
    let (background, background_rgb) = background(&image);
    let mut result = Analysis::background_only(background, background_rgb);
    let Some(component) = foreground_component(&image, background_rgb) else {
        return Ok(result);
    };
    let fg_rgb = foreground_colour(&image, &component);
    result.foreground = Some(classify_colour(fg_rgb));
    result.foreground_rgb = Some(fg_rgb);
    result.foreground_pixels = component.pixels.len();
    result.stray_pixels = component.stray;
    let outline = outline(&image, &component);
    let (x0, y0, x1, y1) = outline.bbox;
    result.bbox = Some((x0 as u32, y0 as u32, x1 as u32, y1 as u32));
    result.fill_ratio = outline.fill_ratio;
    result.holes = outline.holes;
    if let Some(cov) = coverage(&image, &outline, background_rgb, fg_rgb) {
        fit_best_shape(&mut result, &cov, width, height);
    }
    Ok(result)
}

/// Refuses a buffer that does not hold `width`×`height` RGB8 pixels, or an
/// image too small to have a border and an inside.
fn check_buffer(rgb: &[u8], width: u32, height: u32) -> Result<()> {
    let (w, h) = (width as usize, height as usize);
    let expected = w * h * 3;
    if rgb.len() != expected {
        return Err(Error::BufferSize {
            width,
            height,
            expected,
            actual: rgb.len(),
        });
    }
    if w < 8 || h < 8 {
        return Err(Error::TooSmall { width, height });
    }
    Ok(())
}

/// A checked row-major RGB8 image.
struct Image<'a> {
    rgb: &'a [u8],
    w: usize,
    h: usize,
}

impl Image<'_> {
    fn len(&self) -> usize {
        self.w * self.h
    }

    fn pixel(&self, i: usize) -> [u8; 3] {
        pixel(self.rgb, i)
    }
}

impl Analysis {
    /// The analysis of an image in which nothing stands out from its
    /// background.
    fn background_only(background: Colour, background_rgb: [u8; 3]) -> Self {
        Self {
            background,
            background_rgb,
            foreground: None,
            foreground_rgb: None,
            shape: None,
            shape_score: 0.0,
            runner_up_score: 0.0,
            size: None,
            position: None,
            foreground_pixels: 0,
            stray_pixels: 0,
            bbox: None,
            fill_ratio: 0.0,
            holes: 0,
        }
    }
}

/// Step 1: the most common colour class of the border pixels, and the
/// per-channel median of the border pixels of that class.
fn background(image: &Image<'_>) -> (Colour, [u8; 3]) {
    let (w, h) = (image.w, image.h);
    let border: Vec<[u8; 3]> = (0..image.len())
        .filter(|i| {
            let (x, y) = (i % w, i / w);
            x == 0 || y == 0 || x == w - 1 || y == h - 1
        })
        .map(|i| image.pixel(i))
        .collect();
    let mut counts = [0usize; Colour::ALL.len()];
    for p in &border {
        counts[classify_colour(*p).index()] += 1;
    }
    let mut background = Colour::ALL[0];
    for c in Colour::ALL {
        if counts[c.index()] > counts[background.index()] {
            background = c;
        }
    }
    let bg_pixels: Vec<[u8; 3]> = border
        .iter()
        .copied()
        .filter(|p| classify_colour(*p) == background)
        .collect();
    (background, median_rgb(&bg_pixels))
}

/// The foreground kept by step 2.
struct Component {
    /// Each image pixel's RGB distance to the background reference.
    dist: Vec<f64>,
    /// Pixel indices of the largest 8-connected foreground component.
    pixels: Vec<usize>,
    /// Foreground pixels outside it.
    stray: usize,
}

/// Step 2: thresholds each pixel's distance to the background reference and
/// keeps the largest 8-connected component; `None` when nothing stands out
/// by at least [`MIN_CONTRAST`].
fn foreground_component(image: &Image<'_>, background_rgb: [u8; 3]) -> Option<Component> {
    let n = image.len();
    let dist: Vec<f64> = (0..n)
        .map(|i| distance(image.pixel(i), background_rgb))
        .collect();
    let mut sorted = dist.clone();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let k = (n / 256).clamp(3, n);
    let d_ref = sorted[k - 1];
    if d_ref < MIN_CONTRAST {
        return None;
    }
    let threshold = (d_ref / 2.0).max(MIN_CONTRAST / 2.0);
    let mask: Vec<bool> = dist.iter().map(|&d| d > threshold).collect();
    let comps = components(&mask, image.w, image.h);
    let total_fg: usize = comps.iter().map(Vec::len).sum();
    let pixels = comps
        .into_iter()
        .enumerate()
        .max_by(|(ia, a), (ib, b)| a.len().cmp(&b.len()).then(ib.cmp(ia)))
        .map(|(_, c)| c)?;
    Some(Component {
        stray: total_fg - pixels.len(),
        dist,
        pixels,
    })
}

/// Step 3: the per-channel median of the half of the component's pixels
/// farthest from the background.
fn foreground_colour(image: &Image<'_>, component: &Component) -> [u8; 3] {
    let dist = &component.dist;
    let mut by_dist: Vec<usize> = component.pixels.clone();
    by_dist.sort_unstable_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
    let core: Vec<[u8; 3]> = by_dist[..by_dist.len().div_ceil(2)]
        .iter()
        .map(|&i| image.pixel(i))
        .collect();
    median_rgb(&core)
}

/// Where the component lies, and the geometric descriptors reported for
/// diagnostics.
struct Outline {
    /// Whether each image pixel belongs to the component.
    mask: Vec<bool>,
    /// Bounding box `(x0, y0, x1, y1)`, inclusive.
    bbox: (usize, usize, usize, usize),
    fill_ratio: f64,
    holes: usize,
}

/// The component's mask, bounding box, bounding-box fill ratio and hole
/// count.
fn outline(image: &Image<'_>, component: &Component) -> Outline {
    let (w, h) = (image.w, image.h);
    let best = &component.pixels;
    let mut mask = vec![false; image.len()];
    for &i in best {
        mask[i] = true;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for &i in best {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let bbox = (x0, y0, x1, y1);
    let box_area = (x1 - x0 + 1) * (y1 - y0 + 1);
    let holes = count_holes(&mask, w, bbox, (best.len() / 50).max(2));
    Outline {
        mask,
        bbox,
        fill_ratio: best.len() as f64 / box_area as f64,
        holes,
    }
}

/// Step 4's soft coverage: the projection of each pixel onto the
/// background→foreground colour axis, over the component dilated by one
/// pixel (to include faint edges); `None` when it covers nothing.
fn coverage(
    image: &Image<'_>,
    outline: &Outline,
    background_rgb: [u8; 3],
    fg_rgb: [u8; 3],
) -> Option<Coverage> {
    let (w, h) = (image.w, image.h);
    let (x0, y0, x1, y1) = outline.bbox;
    let axis = [0, 1, 2].map(|c| f64::from(fg_rgb[c]) - f64::from(background_rgb[c]));
    let axis_len2: f64 = axis.iter().map(|a| a * a).sum();
    let mut alpha = vec![0.0; image.len()];
    let (rx0, ry0) = (x0.saturating_sub(1), y0.saturating_sub(1));
    let (rx1, ry1) = ((x1 + 1).min(w - 1), (y1 + 1).min(h - 1));
    let (mut area, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for y in ry0..=ry1 {
        for x in rx0..=rx1 {
            let near = (y.saturating_sub(1)..=(y + 1).min(h - 1)).any(|yy| {
                (x.saturating_sub(1)..=(x + 1).min(w - 1)).any(|xx| outline.mask[yy * w + xx])
            });
            if !near {
                continue;
            }
            let p = image.pixel(y * w + x);
            let dot: f64 = (0..3)
                .map(|c| (f64::from(p[c]) - f64::from(background_rgb[c])) * axis[c])
                .sum();
            let a = if axis_len2 > 0.0 {
                (dot / axis_len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            alpha[y * w + x] = a;
            area += a;
            sx += a * (x as f64 + 0.5);
            sy += a * (y as f64 + 0.5);
        }
    }
    (area > 0.0).then(|| Coverage {
        alpha,
        w,
        h,
        area,
        cx: sx / area,
        cy: sy / area,
        rect: (rx0, ry0, rx1, ry1),
    })
}

/// Steps 4 and 5: fits every shape to the coverage, keeps the best (and the
/// runner-up's score), and reads its size class and grid cell.
fn fit_best_shape(result: &mut Analysis, cov: &Coverage, width: u32, height: u32) {
    let mut fits: Vec<Fit> = Shape::ALL.iter().map(|&s| fit(s, cov)).collect();
    fits.sort_by(|a, b| b.iou.total_cmp(&a.iou).then(a.shape.cmp(&b.shape)));
    let Some(top) = fits.first() else {
        return;
    };
    result.shape = Some(top.shape);
    result.shape_score = top.iou;
    result.runner_up_score = fits.get(1).map_or(0.0, |f| f.iou);
    let side = width.min(height);
    result.size = Some(size_class(top.radius, side));
    let col = match nearest_slot(top.cx, top.radius, width) {
        0 => Col::Left,
        1 => Col::Centre,
        _ => Col::Right,
    };
    let row = match nearest_slot(top.cy, top.radius, height) {
        0 => Row::Top,
        1 => Row::Middle,
        _ => Row::Bottom,
    };
    result.position = Some(Position { row, col });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_classifies_to_itself() {
        for c in Colour::ALL {
            assert_eq!(classify_colour(c.rgb()), c, "{c:?}");
        }
    }

    #[test]
    fn blank_image_has_no_foreground() {
        let rgb = vec![128u8; 32 * 32 * 3];
        let a = analyze(&rgb, 32, 32).unwrap();
        assert_eq!(a.background, Colour::Gray);
        assert_eq!(a.shape, None);
        assert_eq!(a.foreground, None);
    }

    #[test]
    fn rejects_bad_buffers() {
        assert!(analyze(&[0u8; 10], 32, 32).is_err());
        assert!(analyze(&[0u8; 4 * 4 * 3], 4, 4).is_err());
    }
}
