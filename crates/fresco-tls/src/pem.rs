//! The PEM files TLS is set up from, read and checked before use so that a
//! wrong file is refused naming its flag and path, not at the first
//! handshake.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// The bytes of `path`, given as `flag`.
pub fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        flag,
        path: path.display().to_string(),
        error,
    })
}

/// A PEM file of one or more certificates (a certificate chain, or CA
/// certificates).
pub fn certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = read(flag, path)?;
    let bad = |why: String| TlsError::Pem {
        flag,
        path: path.display().to_string(),
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(bytes)
}

/// A PEM file holding a private key (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        flag,
        path: path.display().to_string(),
        why: format!("holds no PEM private key ({e})"),
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_names_the_flag_and_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        let err = certificates("--tls-ca", &missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--tls-ca {}: cannot read it: ", missing.display())),
            "{err}"
        );

        let text = dir.path().join("text.pem");
        std::fs::write(&text, "not a certificate").expect("writing");
        let err = certificates("--tls-ca", &text).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("--tls-ca {}: holds no PEM certificate", text.display())
        );

        let key = rcgen::KeyPair::generate().expect("a key");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&key_file, key.serialize_pem()).expect("writing");
        private_key("--tls-key", &key_file).expect("a PEM key");
        let err = certificates("--tls-cert", &key_file)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("holds no PEM certificate"), "{err}");
        let err = private_key("--tls-key", &text).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "--tls-key {}: holds no PEM private key",
                text.display()
            )),
            "{err}"
        );
    }
}
