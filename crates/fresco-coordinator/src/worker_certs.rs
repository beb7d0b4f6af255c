//! Mutual TLS for workers: when the coordinator verifies client
//! certificates (`--tls-client-ca`), a worker API call must come over a
//! connection that presented one. The handshake has already checked that
//! the CA signed it (a certificate that does not verify never gets this
//! far); clients without a certificate (the CLI) reach the client API only.

use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing::warn;

use crate::error::ApiError;

/// The check in front of `WorkerService`.
#[derive(Debug, Clone, Copy)]
pub struct WorkerCertGate {
    /// Whether a verified client certificate is needed.
    pub required: bool,
}

/// What a worker without a certificate is told.
pub const NO_CLIENT_CERTIFICATE: &str = "the worker API needs a client certificate signed by the \
     coordinator's --tls-client-ca: start the worker with --tls-cert and --tls-key";

impl Interceptor for WorkerCertGate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if !self.required || request.peer_certs().is_some_and(|certs| !certs.is_empty()) {
            return Ok(request);
        }
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        warn!(%peer, "worker API call refused: no client certificate");
        Err(ApiError::Unauthenticated(NO_CLIENT_CERTIFICATE.to_owned()).into())
    }
}
