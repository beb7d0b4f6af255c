//! Turning decoded VAE output into pictures: `[-1, 1]` → `[0, 1]` (clamped, as diffusers'
//! image processor does) → 8-bit RGB rows (`round(x * 255)`).

use candle_core::{DType, IndexOp, Tensor};

use crate::error::{Result, invalid};

/// One generated picture, 8-bit RGB, row-major (`height` rows of `width * 3` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Index of the image within its run (its noise stream).
    pub index: u64,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub pixels: Vec<u8>,
}

/// Maps VAE output in about `[-1, 1]` to `[0, 1]`, clamped.
pub fn to_unit_range(decoded: &Tensor) -> Result<Tensor> {
    Ok(decoded.affine(0.5, 0.5)?.clamp(0f32, 1f32)?)
}

/// Converts one `[3, h, w]` image in `[0, 1]` to 8-bit RGB.
pub fn to_rgb8(image: &Tensor, index: u64) -> Result<RgbImage> {
    let (c, height, width) = image.dims3()?;
    if c != 3 {
        return Err(invalid("image", format!("{c} channels, expected 3")));
    }
    let hwc = image
        .permute((1, 2, 0))?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let pixels = hwc
        .into_iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    Ok(RgbImage {
        index,
        width,
        height,
        pixels,
    })
}

/// Converts a `[n, 3, h, w]` batch in `[0, 1]` to 8-bit RGB; image `k` is numbered
/// `first_index + k` (its noise stream).
pub fn batch_to_rgb8(images: &Tensor, first_index: u64) -> Result<Vec<RgbImage>> {
    (0..images.dim(0)?)
        .map(|k| to_rgb8(&images.i(k)?, first_index + k as u64))
        .collect()
}
