//! Certificates made in the test: a CA of the test's own, the coordinator's
//! server certificate (for `127.0.0.1` and `localhost`) and a worker's
//! client certificate it signed, written as PEM files to a temporary
//! directory; and client certificates of another CA, which a coordinator
//! verifying workers must refuse.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA and the certificates a TLS farm uses, as PEM files.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate: clients trust it (`--tls-ca`); with
    /// `verify_workers`, the coordinator checks workers against it too.
    pub ca: PathBuf,
    /// The coordinator's certificate (`--tls-cert`, `--tls-key`).
    pub server: CertFiles,
    /// A worker's client certificate the CA signed.
    pub worker: CertFiles,
    /// Whether the coordinator verifies workers (`--tls-client-ca`).
    pub verify_workers: bool,
    dir: Arc<tempfile::TempDir>,
}

impl TestPki {
    /// A fresh CA with a server and a worker certificate; the coordinator
    /// does not verify workers.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let ca = TestCa::new("fresco test CA");
        let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem);
        let server = ca.issue(
            dir.path(),
            "server",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let worker = ca.issue(
            dir.path(),
            "worker",
            &["fresco-worker"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Self {
            ca: ca_file,
            server,
            worker,
            verify_workers: false,
            dir: Arc::new(dir),
        }
    }

    /// The same, with the coordinator verifying workers' certificates.
    pub fn verifying_workers() -> Self {
        Self {
            verify_workers: true,
            ..Self::new()
        }
    }

    /// A client certificate of another CA, made now.
    pub fn foreign_client(&self) -> CertFiles {
        let other = TestCa::new("another CA");
        write(self.dir.path(), "other-ca.pem", &other.cert_pem);
        other.issue(
            self.dir.path(),
            "foreign-worker",
            &["fresco-worker"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// The coordinator's TLS flags.
    pub fn coordinator_args(&self) -> Vec<String> {
        let mut args = vec![
            "--tls-cert".to_owned(),
            path(&self.server.cert),
            "--tls-key".to_owned(),
            path(&self.server.key),
        ];
        if self.verify_workers {
            args.extend(["--tls-client-ca".to_owned(), path(&self.ca)]);
        }
        args
    }

    /// A worker's TLS flags: the CA, and its certificate when the
    /// coordinator verifies workers.
    pub fn worker_args(&self) -> Vec<String> {
        let mut args = vec!["--tls-ca".to_owned(), path(&self.ca)];
        if self.verify_workers {
            args.extend(Self::cert_args(&self.worker));
        }
        args
    }

    /// `--tls-cert` and `--tls-key` of `files`.
    pub fn cert_args(files: &CertFiles) -> Vec<String> {
        vec![
            "--tls-cert".to_owned(),
            path(&files.cert),
            "--tls-key".to_owned(),
            path(&files.key),
        ]
    }

    /// The CLI's TLS flags.
    pub fn cli_args(&self) -> Vec<String> {
        vec!["--tls-ca".to_owned(), path(&self.ca)]
    }

    /// The files a client in the test process connects with.
    pub fn client_files(&self) -> fresco_tls::ClientFiles {
        fresco_tls::ClientFiles {
            ca: Some(self.ca.clone()),
            ..fresco_tls::ClientFiles::default()
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// A self-signed CA that issues certificates.
struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` with `usage`, written as `{stem}.pem` and
    /// `{stem}.key`.
    fn issue(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, stem);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signing");
        CertFiles {
            cert: write(dir, &format!("{stem}.pem"), &cert.pem()),
            key: write(dir, &format!("{stem}.key"), &key.serialize_pem()),
        }
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, pem).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    file
}

fn path(file: &Path) -> String {
    file.to_str().expect("a UTF-8 temp path").to_owned()
}
