//! A client's connection to the coordinator: an `Endpoint` for its URL
//! (`https://` over TLS, `http://` plain) and, when connecting fails, an
//! account of why that names the flag to fix.

use std::error::Error as StdError;
use std::path::PathBuf;

use rustls::{CertificateError, Error as RustlsError};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{TlsError, pem};

/// The PEM files a client connects with; all optional.
#[derive(Debug, Clone, Default)]
pub struct ClientFiles {
    /// `--tls-ca`: the CA(s) to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// `--tls-cert`: a client certificate (chain) to present.
    pub cert: Option<PathBuf>,
    /// `--tls-key`: its private key.
    pub key: Option<PathBuf>,
}

impl ClientFiles {
    fn identity(&self) -> Result<Option<Identity>, TlsError> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(Identity::from_pem(
                pem::certificates("--tls-cert", cert)?,
                pem::private_key("--tls-key", key)?,
            ))),
            (Some(_), None) => Err(TlsError::Incomplete {
                given: "--tls-cert",
                missing: "--tls-key",
            }),
            (None, Some(_)) => Err(TlsError::Incomplete {
                given: "--tls-key",
                missing: "--tls-cert",
            }),
            (None, None) => Ok(None),
        }
    }

    /// The first flag given, for refusing them on a plain URL.
    fn first_given(&self) -> Option<&'static str> {
        [
            ("--tls-ca", self.ca.is_some()),
            ("--tls-cert", self.cert.is_some()),
            ("--tls-key", self.key.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// The endpoint for `url`: TLS for `https://` (trusting `files.ca`, or the
/// system's roots without it; presenting `files.cert` when given), plain
/// for `http://`. TLS files given with an `http://` URL are refused rather
/// than ignored.
pub fn endpoint(url: &str, files: &ClientFiles) -> Result<Endpoint, TlsError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| TlsError::BadUrl {
        url: url.to_owned(),
        why: chain(&e),
    })?;
    if endpoint.uri().scheme_str() != Some("https") {
        return match files.first_given() {
            Some(flag) => Err(TlsError::NotHttps {
                flag,
                url: url.to_owned(),
            }),
            None => Ok(endpoint),
        };
    }
    let mut tls = match &files.ca {
        Some(ca) => ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pem::certificates("--tls-ca", ca)?)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    if let Some(identity) = files.identity()? {
        tls = tls.identity(identity);
    }
    endpoint.tls_config(tls).map_err(|e| {
        TlsError::Setup(format!(
            "{} (no system CA certificates? pass --tls-ca)",
            chain(&e)
        ))
    })
}

/// Why connecting to (or calling) the coordinator at `url` failed, from the
/// error's whole chain: a TLS handshake failure says what the certificate
/// check found and which flag fixes it; plain `http://` that reached a
/// server but broke says TLS may be what it speaks.
pub fn describe_connect_error(url: &str, err: &(dyn StdError + 'static)) -> String {
    if find_rustls_error(err).is_some() {
        return format!(
            "TLS handshake with the coordinator at {url} failed: {}",
            describe_cause(err)
        );
    }
    let mut message = format!("cannot reach the coordinator at {url}: {}", chain(err));
    if url.starts_with("http://") && !refused(err) {
        message.push_str(
            " (if the coordinator serves TLS, use an https:// URL and, for a private CA, --tls-ca)",
        );
    }
    message
}

/// What went wrong, from the error's whole chain: for a TLS failure what
/// the certificate check found and which flag fixes it, else every message
/// of the chain.
pub fn describe_cause(err: &(dyn StdError + 'static)) -> String {
    match find_rustls_error(err) {
        Some(tls) => tls_hint(tls),
        None => chain(err),
    }
}

fn tls_hint(err: &RustlsError) -> String {
    match err {
        RustlsError::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "its certificate is not signed by a CA this client trusts ({err}); \
             pass --tls-ca with the CA certificate that signed it"
        ),
        RustlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("its certificate does not name the host of this URL ({err})"),
        RustlsError::AlertReceived(_) => format!(
            "the coordinator refused the connection ({err}); if it verifies client \
             certificates, present one its --tls-client-ca signed (--tls-cert, --tls-key)"
        ),
        other => other.to_string(),
    }
}

/// Every message of the chain, joined by `: `, repeats left out (a gRPC
/// status by its message alone).
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = match e.downcast_ref::<tonic::Status>() {
            Some(status) => status.message().to_owned(),
            None => e.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The rustls error somewhere in the chain (tokio-rustls wraps it in an
/// I/O error).
fn find_rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a RustlsError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<RustlsError>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<RustlsError>())
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// Whether nothing listened: the connection itself was refused.
fn refused(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_with_a_plain_url_are_refused() {
        let files = ClientFiles {
            ca: Some("ca.pem".into()),
            ..ClientFiles::default()
        };
        let err = endpoint("http://127.0.0.1:50051", &files).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--tls-ca is given but the coordinator URL http://127.0.0.1:50051 is not https://"
        );
        endpoint("http://127.0.0.1:50051", &ClientFiles::default()).expect("plain");
    }

    #[test]
    fn an_unreadable_ca_is_named() {
        let files = ClientFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            ..ClientFiles::default()
        };
        let err = endpoint("https://127.0.0.1:50051", &files)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--tls-ca /nonexistent/ca.pem: cannot read it: "),
            "{err}"
        );
    }

    #[test]
    fn a_handshake_error_names_the_flag_to_fix() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            RustlsError::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let message = describe_connect_error("https://farm:50051", &io);
        assert!(
            message.starts_with("TLS handshake with the coordinator at https://farm:50051 failed: its certificate is not signed by a CA this client trusts"),
            "{message}"
        );
        assert!(message.contains("pass --tls-ca"), "{message}");
    }
}
