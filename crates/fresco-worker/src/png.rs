//! PNG encoding of generated images with text metadata (the worker uploads
//! PNGs); reading it back lives in `fresco_core::png_text`, re-exported here.
//!
//! Each `(key, value)` becomes a tEXt chunk when the value is ASCII, otherwise an
//! iTXt chunk (UTF-8), so prompts like "café ☕" survive intact.

use fresco_pipeline::GeneratedImage;

/// What can go wrong encoding or decoding a PNG.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image handed to the encoder is malformed, or a text chunk is invalid.
    #[error("invalid image: {0}")]
    InvalidImage(String),

    /// PNG encoding failed.
    #[error("png encode: {0}")]
    Encode(#[from] png::EncodingError),
}

/// This module's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Encodes `image` as an RGB8 PNG with `text` entries as tEXt/iTXt chunks.
///
/// Keys must be 1–79 printable Latin-1 characters without leading, trailing or
/// double spaces (the PNG keyword rules).
pub fn encode_png(image: &GeneratedImage, text: &[(&str, String)]) -> Result<Vec<u8>> {
    let expected = image.width as usize * image.height as usize * 3;
    if image.width == 0 || image.height == 0 || image.rgb.len() != expected {
        return Err(Error::InvalidImage(format!(
            "{}x{} RGB image needs {expected} bytes, got {}",
            image.width,
            image.height,
            image.rgb.len()
        )));
    }
    let mut out = Vec::with_capacity(expected / 2 + 1024);
    {
        let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        for (key, value) in text {
            check_keyword(key)?;
            if value.is_ascii() {
                encoder.add_text_chunk((*key).to_owned(), value.clone())?;
            } else {
                encoder.add_itxt_chunk((*key).to_owned(), value.clone())?;
            }
        }
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&image.rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

fn check_keyword(key: &str) -> Result<()> {
    let len = key.chars().count();
    let printable = key
        .chars()
        .all(|c| matches!(c as u32, 0x20..=0x7E | 0xA1..=0xFF));
    if !(1..=79).contains(&len)
        || !printable
        || key.starts_with(' ')
        || key.ends_with(' ')
        || key.contains("  ")
    {
        return Err(Error::InvalidImage(format!(
            "invalid PNG text keyword {key:?} (1-79 printable Latin-1 chars, no edge/double spaces)"
        )));
    }
    Ok(())
}

pub use fresco_core::png_text::{TextEntries, read_png_text};

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use fresco_pipeline::GenerateParams;

    use super::*;

    fn image(w: u32, h: u32) -> GeneratedImage {
        GeneratedImage {
            index: 0,
            seed: 1,
            width: w,
            height: h,
            rgb: (0..w * h * 3).map(|i| (i % 251) as u8).collect(),
        }
    }

    #[test]
    fn round_trip_size_pixels_and_text() {
        let img = image(7, 5);
        let text = vec![
            ("prompt", "café ☕ on a table".to_owned()),
            ("seed", "42".to_owned()),
            ("model", "tiny-random-dit".to_owned()),
        ];
        let bytes = encode_png(&img, &text).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (w, h, got) = read_png_text(&bytes).unwrap();
        assert_eq!((w, h), (7, 5));
        let mut got = got;
        got.sort();
        let mut want: Vec<(String, String)> = text
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        want.sort();
        assert_eq!(got, want);

        // Pixels survive too.
        let mut reader = png::Decoder::new(Cursor::new(&bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&buf[..info.buffer_size()], &img.rgb[..]);
    }

    #[test]
    fn utf8_goes_to_itxt_ascii_to_text() {
        let bytes = encode_png(
            &image(2, 2),
            &[("a", "plain".into()), ("b", "naïve".into())],
        )
        .unwrap();
        let has = |tag: &[u8]| bytes.windows(4).any(|w| w == tag);
        assert!(has(b"tEXt"));
        assert!(has(b"iTXt"));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut img = image(4, 4);
        img.rgb.pop();
        assert!(matches!(encode_png(&img, &[]), Err(Error::InvalidImage(_))));
        assert!(matches!(
            encode_png(&image(2, 2), &[("", "x".into())]),
            Err(Error::InvalidImage(_))
        ));
        assert!(matches!(
            encode_png(&image(2, 2), &[(" lead", "x".into())]),
            Err(Error::InvalidImage(_))
        ));
        assert!(read_png_text(b"not a png").is_err());
    }

    #[test]
    fn a_generated_image_carries_its_parameters() {
        let p = GenerateParams {
            n: 1,
            width: 48,
            height: 32,
            prompt: "café ☕ a red cat".into(),
            seed: 1234,
            steps: 4,
            ..GenerateParams::default()
        };
        let model =
            fresco_dit::builtin::load("tiny-random-dit", &candle_core::Device::Cpu).unwrap();
        let images = model
            .generate(&p, &mut |_| std::ops::ControlFlow::Continue(()))
            .unwrap();
        let img = &images[0];
        let text = vec![
            ("prompt", p.prompt.clone()),
            ("seed", img.seed.to_string()),
            ("steps", p.steps.to_string()),
            ("sampler", p.sampler.clone()),
        ];
        let png = encode_png(img, &text).unwrap();
        let (w, h, got) = read_png_text(&png).unwrap();
        assert_eq!((w, h), (48, 32));
        for (k, v) in &text {
            assert!(
                got.iter().any(|(gk, gv)| gk == k && gv == v),
                "{k}={v} missing from {got:?}"
            );
        }
    }
}
