//! SHA-256 digests as fresco writes them: lower-case hex, as outputs
//! (`Output.sha256`) and model weights (`weights_sha256`) carry them.

use sha2::{Digest, Sha256};

/// The lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Whether `text` is a SHA-256 as fresco writes one: 64 lower-case hex
/// digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A1111's short model hash: the first ten hex digits of the weights'
/// SHA-256, as its `Model hash:` parameter shows it.
pub fn short_model_hash(weights_sha256: &str) -> &str {
    weights_sha256.get(..10).unwrap_or(weights_sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lower_case_hex() {
        let empty = sha256_hex(b"");
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_sha256_hex(&empty));
        assert!(!is_sha256_hex(&empty.to_uppercase()));
        assert!(!is_sha256_hex(&empty[1..]));
        assert_eq!(short_model_hash(&empty), "e3b0c44298");
        assert_eq!(hex(&[0x00, 0xff, 0x1a]), "00ff1a");
    }
}
