//! Pixel-format helpers for model code (RGB8 ↔ planar `f32` in `[-1, 1]`) and PNG
//! output (single images and contact-sheet grids).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::error::{Error, Result};

/// RGB8 (interleaved) → planar CHW `f32` in `[-1, 1]`, the usual diffusion input.
pub fn rgb_to_chw(rgb: &[u8], width: u32, height: u32) -> Result<Vec<f32>> {
    let n = width as usize * height as usize;
    check_len(rgb.len(), width, height)?;
    let mut out = vec![0f32; n * 3];
    for i in 0..n {
        for c in 0..3 {
            out[c * n + i] = f32::from(rgb[i * 3 + c]) / 127.5 - 1.0;
        }
    }
    Ok(out)
}

/// Planar CHW `f32` in `[-1, 1]` → RGB8, clamping and rounding (for analysing
/// model samples).
pub fn chw_to_rgb(chw: &[f32], width: u32, height: u32) -> Result<Vec<u8>> {
    let n = width as usize * height as usize;
    check_len(chw.len(), width, height)?;
    let mut out = vec![0u8; n * 3];
    for i in 0..n {
        for c in 0..3 {
            let v = ((chw[c * n + i] + 1.0) * 127.5).round().clamp(0.0, 255.0);
            // In 0..=255 after the clamp (NaN saturates to 0).
            out[i * 3 + c] = v as u8;
        }
    }
    Ok(out)
}

fn check_len(actual: usize, width: u32, height: u32) -> Result<()> {
    let expected = width as usize * height as usize * 3;
    if actual == expected {
        Ok(())
    } else {
        Err(Error::BufferSize {
            width,
            height,
            expected,
            actual,
        })
    }
}

/// Writes an RGB8 image as PNG.
pub fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    check_len(rgb.len(), width, height)?;
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io_err)?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

/// Tiles equally sized square RGB8 images into a grid with `columns` columns
/// and a `gap`-pixel dark separator. Returns `(rgb, width, height)`.
pub fn grid(images: &[&[u8]], side: u32, columns: u32, gap: u32) -> Result<(Vec<u8>, u32, u32)> {
    if images.is_empty() || columns == 0 {
        return Err(Error::Grid("no images".into()));
    }
    for img in images {
        check_len(img.len(), side, side)?;
    }
    let count = u32::try_from(images.len()).map_err(|_| Error::Grid("too many images".into()))?;
    let cols = columns.min(count);
    let rows = count.div_ceil(cols);
    let width = cols * side + (cols + 1) * gap;
    let height = rows * side + (rows + 1) * gap;
    let mut out = vec![40u8; width as usize * height as usize * 3];
    let s = side as usize;
    for (k, img) in images.iter().enumerate() {
        let k = k as u32;
        let ox = (gap + (k % cols) * (side + gap)) as usize;
        let oy = (gap + (k / cols) * (side + gap)) as usize;
        for y in 0..s {
            let dst = ((oy + y) * width as usize + ox) * 3;
            out[dst..dst + s * 3].copy_from_slice(&img[y * s * 3..(y + 1) * s * 3]);
        }
    }
    Ok((out, width, height))
}

/// Nearest-neighbour upscaling by an integer `factor` (for viewing tiny images).
pub fn upscale(rgb: &[u8], width: u32, height: u32, factor: u32) -> Result<Vec<u8>> {
    check_len(rgb.len(), width, height)?;
    let (w, f) = (width as usize, factor.max(1) as usize);
    let mut out = Vec::with_capacity(rgb.len() * f * f);
    for y in 0..height as usize * f {
        for x in 0..w * f {
            let i = ((y / f) * w + x / f) * 3;
            out.extend_from_slice(&rgb[i..i + 3]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_round_trip() {
        let rgb: Vec<u8> = (0..16 * 16 * 3).map(|i| (i % 256) as u8).collect();
        let chw = rgb_to_chw(&rgb, 16, 16).unwrap();
        assert_eq!(chw_to_rgb(&chw, 16, 16).unwrap(), rgb);
    }

    #[test]
    fn grid_dimensions() {
        let a = vec![1u8; 16 * 16 * 3];
        let (g, w, h) = grid(&[&a, &a, &a], 16, 2, 2).unwrap();
        assert_eq!((w, h), (2 * 16 + 3 * 2, 2 * 16 + 3 * 2));
        assert_eq!(g.len(), (w * h * 3) as usize);
    }
}
