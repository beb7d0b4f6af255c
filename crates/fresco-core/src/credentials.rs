//! API keys and worker tokens as text: their one format
//! (`fresco_<k|w>_<12-hex id>_<43-character base64url secret>`), making a
//! fresh one from the operating system's random source, reading one back
//! from a request, and the SHA-256 digest that is all a store keeps of it.
//!
//! The id names the key in listings, logs and `keys revoke`; the whole key
//! is the secret, shown once when it is made. A presented key is checked by
//! comparing digests in constant time ([`matches`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::CredentialKind;

/// Every key starts so.
const PREFIX: &str = "fresco_";
/// Hex digits of a key's id (6 random bytes).
pub const ID_LEN: usize = 12;
/// Characters of a key's secret (32 random bytes, base64url, no padding).
pub const SECRET_LEN: usize = 43;
/// The whole key: `fresco_`, the kind letter, `_`, the id, `_`, the secret.
pub const KEY_LEN: usize = PREFIX.len() + 2 + ID_LEN + 1 + SECRET_LEN;

/// The letter a key's kind is written with.
fn kind_letter(kind: CredentialKind) -> char {
    match kind {
        CredentialKind::Client => 'k',
        CredentialKind::Worker => 'w',
    }
}

/// A key just made: the whole key is shown once, then only its digest is
/// kept.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedKey {
    pub id: String,
    pub kind: CredentialKind,
    /// The whole key, as a client sends it.
    pub key: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the operating system's random source: {0}")]
pub struct RandomUnavailable(String);

impl IssuedKey {
    /// A fresh key of `kind`, its id and secret from the operating system's
    /// random source.
    pub fn generate(kind: CredentialKind) -> Result<Self, RandomUnavailable> {
        let mut id = [0u8; ID_LEN / 2];
        let mut secret = [0u8; 32];
        let mut rng = rand::rngs::OsRng;
        rng.try_fill_bytes(&mut id)
            .and_then(|()| rng.try_fill_bytes(&mut secret))
            .map_err(|e| RandomUnavailable(e.to_string()))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!(
            "{PREFIX}{}_{id}_{}",
            kind_letter(kind),
            URL_SAFE_NO_PAD.encode(secret)
        );
        Ok(Self { id, kind, key })
    }

    /// The digest a store keeps of this key.
    pub fn sha256(&self) -> [u8; 32] {
        digest(&self.key)
    }
}

/// A key as a request presents it, well formed (not yet checked against
/// the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub id: &'a str,
    pub kind: CredentialKind,
    /// The whole key.
    pub key: &'a str,
}

/// A presented key that is not of fresco's format, saying what is wrong
/// with it without repeating it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed key: {0}")]
pub struct MalformedKey(&'static str);

/// Reads a presented key's kind and id; `MalformedKey` says which part is
/// wrong.
pub fn parse(key: &str) -> Result<PresentedKey<'_>, MalformedKey> {
    let rest = key.strip_prefix(PREFIX).ok_or(MalformedKey(
        "a fresco key starts with fresco_k_ (client key) or fresco_w_ (worker token)",
    ))?;
    let kind = match rest.get(..2) {
        Some("k_") => CredentialKind::Client,
        Some("w_") => CredentialKind::Worker,
        _ => {
            return Err(MalformedKey(
                "a fresco key starts with fresco_k_ (client key) or fresco_w_ (worker token)",
            ));
        }
    };
    if key.len() != KEY_LEN || !key.is_ascii() {
        return Err(MalformedKey(
            "a fresco key is 65 characters: letters, digits, - and _",
        ));
    }
    let id = &rest[2..2 + ID_LEN];
    if !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(MalformedKey("its id is not 12 lowercase hex digits"));
    }
    let secret = &rest[2 + ID_LEN..];
    let Some(secret) = secret.strip_prefix('_') else {
        return Err(MalformedKey("its id is not followed by _"));
    };
    if !secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(MalformedKey("its secret is not base64url"));
    }
    Ok(PresentedKey { id, kind, key })
}

/// The SHA-256 of a whole key.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `key` is the key whose digest the store keeps, compared in
/// constant time.
pub fn matches(key: &str, stored_sha256: &[u8]) -> bool {
    let presented = digest(key);
    stored_sha256.len() == presented.len() && bool::from(presented.ct_eq(stored_sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_matches_its_digest() {
        for kind in [CredentialKind::Client, CredentialKind::Worker] {
            let issued = IssuedKey::generate(kind).expect("random");
            assert_eq!(issued.key.len(), KEY_LEN);
            let parsed = parse(&issued.key).expect("well formed");
            assert_eq!((parsed.id, parsed.kind), (issued.id.as_str(), kind));
            assert!(matches(&issued.key, &issued.sha256()));
            let other = IssuedKey::generate(kind).expect("random");
            assert_ne!(other.id, issued.id);
            assert!(!matches(&other.key, &issued.sha256()));
        }
    }

    #[test]
    fn the_debug_form_never_shows_the_secret() {
        let issued = IssuedKey::generate(CredentialKind::Client).expect("random");
        let shown = format!("{issued:?}");
        assert!(!shown.contains(&issued.key[20..]), "{shown}");
        assert!(shown.contains(&issued.id));
    }

    #[test]
    fn malformed_keys_say_which_part_is_wrong() {
        let good = IssuedKey::generate(CredentialKind::Worker)
            .expect("random")
            .key;
        let cases = [
            (
                "",
                "a fresco key starts with fresco_k_ (client key) or fresco_w_ (worker token)",
            ),
            (
                "sk-abc",
                "a fresco key starts with fresco_k_ (client key) or fresco_w_ (worker token)",
            ),
            (
                "fresco_x_0123",
                "a fresco key starts with fresco_k_ (client key) or fresco_w_ (worker token)",
            ),
            (
                "fresco_w_0123",
                "a fresco key is 65 characters: letters, digits, - and _",
            ),
        ];
        for (key, why) in cases {
            assert_eq!(parse(key), Err(MalformedKey(why)), "{key:?}");
        }
        let upper = good.replacen(&good[9..21], &good[9..21].to_uppercase(), 1);
        if upper != good {
            assert_eq!(
                parse(&upper),
                Err(MalformedKey("its id is not 12 lowercase hex digits"))
            );
        }
        let mut no_separator = good.clone();
        no_separator.replace_range(21..22, "x");
        assert_eq!(
            parse(&no_separator),
            Err(MalformedKey("its id is not followed by _"))
        );
        let mut bad_secret = good.clone();
        bad_secret.replace_range(30..31, "+");
        assert_eq!(
            parse(&bad_secret),
            Err(MalformedKey("its secret is not base64url"))
        );
        // Multi-byte characters of the right byte length are refused, not a
        // panic on a char boundary.
        let wide = format!("fresco_k_ab{}", "é".repeat(27));
        assert_eq!(wide.len(), KEY_LEN);
        assert_eq!(
            parse(&wide),
            Err(MalformedKey(
                "a fresco key is 65 characters: letters, digits, - and _"
            ))
        );
    }

    #[test]
    fn a_digest_of_another_length_never_matches() {
        let issued = IssuedKey::generate(CredentialKind::Client).expect("random");
        assert!(!matches(&issued.key, &issued.sha256()[..31]));
        assert!(!matches(&issued.key, &[]));
    }
}
