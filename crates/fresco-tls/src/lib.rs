//! TLS for fresco's gRPC connections, with rustls and the ring crypto
//! provider (no OpenSSL).
//!
//! - [`server`]: the coordinator's TLS from PEM files (`--tls-cert`,
//!   `--tls-key`), optionally verifying client certificates against a CA
//!   (`--tls-client-ca`) while still admitting clients without one.
//! - [`client`]: an `Endpoint` for a coordinator URL: `http://` plain,
//!   `https://` over TLS trusting `--tls-ca` or the system's roots, with a
//!   client certificate (`--tls-cert`, `--tls-key`) when given; and a
//!   readable account of a failed connection.
//! - [`pem`]: reading and checking the PEM files, each error naming the
//!   flag and the file.

pub mod client;
pub mod pem;
pub mod server;

pub use client::{ClientFiles, describe_cause, describe_connect_error, endpoint};
pub use server::{ServerFiles, ServerTls};

/// Why TLS could not be set up from what was given.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The I/O error is told in the message, not chained as a source, so
    /// it is said once however the error is printed.
    #[error("{flag} {path}: cannot read it: {error}")]
    Read {
        flag: &'static str,
        path: String,
        error: std::io::Error,
    },
    #[error("{flag} {path}: {why}")]
    Pem {
        flag: &'static str,
        path: String,
        why: String,
    },
    #[error("{given} needs {missing} too")]
    Incomplete {
        given: &'static str,
        missing: &'static str,
    },
    #[error("{flag} is given but the coordinator URL {url} is not https://")]
    NotHttps { flag: &'static str, url: String },
    #[error("the coordinator URL {url:?} is not valid: {why}")]
    BadUrl { url: String, why: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// Makes ring the process's rustls crypto provider unless one is already
/// installed. The tree holds two providers (object_store's reqwest brings
/// aws-lc-rs), so rustls cannot choose one by itself; the server's config
/// needs a process default.
pub fn install_crypto_provider() {
    // An error means a provider is installed already: that one serves.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
