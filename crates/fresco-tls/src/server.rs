//! The coordinator's TLS: its certificate and key, and optionally a CA
//! whose client certificates it verifies. Client certificates stay
//! optional at the handshake, so clients without one (the CLI) still
//! connect; a certificate that is presented must verify, or the handshake
//! fails. Which calls need a verified certificate is the coordinator's
//! choice (`Request::peer_certs` holds it).

use std::path::PathBuf;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::{TlsError, install_crypto_provider, pem};

/// The PEM files a coordinator serves TLS with.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// `--tls-cert`: the server's certificate chain.
    pub cert: PathBuf,
    /// `--tls-key`: its private key.
    pub key: PathBuf,
    /// `--tls-client-ca`: the CA that signs client certificates.
    pub client_ca: Option<PathBuf>,
}

impl ServerFiles {
    /// The files of the flags as given: none (serve plain), or a
    /// certificate and its key; one without the other is refused.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> Result<Option<Self>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert,
                key,
                client_ca,
            })),
            (Some(_), None) => Err(TlsError::Incomplete {
                given: "--tls-cert",
                missing: "--tls-key",
            }),
            (None, Some(_)) => Err(TlsError::Incomplete {
                given: "--tls-key",
                missing: "--tls-cert",
            }),
            (None, None) if client_ca.is_some() => Err(TlsError::Incomplete {
                given: "--tls-client-ca",
                missing: "--tls-cert and --tls-key",
            }),
            (None, None) => Ok(None),
        }
    }
}

/// A server's TLS, its files read and checked.
#[derive(Clone)]
pub struct ServerTls {
    config: ServerTlsConfig,
    verifies_clients: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("verifies_clients", &self.verifies_clients)
            .finish()
    }
}

impl ServerTls {
    /// Reads the files; installs the crypto provider the config needs.
    pub fn load(files: &ServerFiles) -> Result<Self, TlsError> {
        install_crypto_provider();
        let identity = Identity::from_pem(
            pem::certificates("--tls-cert", &files.cert)?,
            pem::private_key("--tls-key", &files.key)?,
        );
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &files.client_ca {
            let ca = Certificate::from_pem(pem::certificates("--tls-client-ca", ca)?);
            config = config.client_ca_root(ca).client_auth_optional(true);
        }
        Ok(Self {
            config,
            verifies_clients: files.client_ca.is_some(),
        })
    }

    /// The config to hand tonic's server builder.
    pub fn config(&self) -> ServerTlsConfig {
        self.config.clone()
    }

    /// Whether client certificates are verified against a CA (a
    /// connection's peer certificates are then ones that CA signed).
    pub fn verifies_clients(&self) -> bool {
        self.verifies_clients
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_needs_its_key_and_a_client_ca_needs_both() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert!(ServerFiles::from_flags(None, None, None).unwrap().is_none());
        let err = |r: Result<Option<ServerFiles>, TlsError>| r.unwrap_err().to_string();
        assert_eq!(
            err(ServerFiles::from_flags(p("c"), None, None)),
            "--tls-cert needs --tls-key too"
        );
        assert_eq!(
            err(ServerFiles::from_flags(None, p("k"), None)),
            "--tls-key needs --tls-cert too"
        );
        assert_eq!(
            err(ServerFiles::from_flags(None, None, p("ca"))),
            "--tls-client-ca needs --tls-cert and --tls-key too"
        );
        let files = ServerFiles::from_flags(p("c"), p("k"), p("ca"))
            .unwrap()
            .unwrap();
        assert_eq!(files.client_ca, p("ca"));
    }
}
