//! Reading the text chunks of a PNG (tEXt, zTXt and iTXt): how the CLI
//! learns what made a downloaded image, and how tests read back what a
//! worker wrote.

use std::io::Cursor;

/// `(keyword, text)` pairs read from a PNG.
pub type TextEntries = Vec<(String, String)>;

/// A PNG that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PngTextError {
    #[error("png decode: {0}")]
    Decode(#[from] png::DecodingError),
    #[error("PNG too large to decode")]
    TooLarge,
}

/// Decodes `bytes` and returns `(width, height, text entries)`; entries from
/// tEXt, zTXt and iTXt chunks are all returned (in that order of chunk type).
pub fn read_png_text(bytes: &[u8]) -> Result<(u32, u32, TextEntries), PngTextError> {
    let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info()?;
    // Text chunks may follow the image data, so decode the frame first.
    let size = reader.output_buffer_size().ok_or(PngTextError::TooLarge)?;
    let mut buf = vec![0; size];
    reader.next_frame(&mut buf)?;
    reader.finish()?;
    let info = reader.info();
    let mut text: TextEntries = info
        .uncompressed_latin1_text
        .iter()
        .map(|c| (c.keyword.clone(), c.text.clone()))
        .collect();
    for c in &info.compressed_latin1_text {
        text.push((c.keyword.clone(), c.get_text()?));
    }
    for c in &info.utf8_text {
        text.push((c.keyword.clone(), c.get_text()?));
    }
    Ok((info.width, info.height, text))
}
