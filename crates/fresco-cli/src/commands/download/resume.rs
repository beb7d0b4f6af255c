//! What a download may skip: an image whose file is already there with the
//! bytes the coordinator recorded (its SHA-256; its size alone for outputs
//! recorded without a hash), so an interrupted or repeated download
//! fetches only the rest.

use fresco_core::digest::sha256_hex;

use super::Wanted;

/// Whether `wanted.to` already holds `wanted`'s bytes. A file that is
/// missing, unreadable or different is fetched again (and replaced).
pub async fn present(wanted: &Wanted) -> bool {
    match tokio::fs::metadata(&wanted.to).await {
        Ok(meta) if meta.is_file() && meta.len() == wanted.bytes => {}
        _ => return false,
    }
    if wanted.sha256.is_empty() {
        return true;
    }
    match tokio::fs::read(&wanted.to).await {
        Ok(bytes) => sha256_hex(&bytes) == wanted.sha256,
        Err(_) => false,
    }
}
