//! The connection to the coordinator's client API: where it is, the API
//! key sent with every call (`--api-key` / `FRESCO_API_KEY`), and TLS for
//! `https://` with the CA of `--tls-ca` (set once, from the global flags,
//! by [`use_tls`]) or the system's roots.

use std::sync::OnceLock;

use fresco_core::bearer::Bearer;
use fresco_proto::v1::job_service_client::JobServiceClient;
use fresco_tls::ClientFiles;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::Failure;

/// Largest message sent or received: a submission of many prompts is big.
const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// A client of the API, carrying the key.
pub type Client = JobServiceClient<InterceptedService<Channel, Bearer>>;

/// Which coordinator, and the key to call it with.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    /// None: a farm served without keys (`fresco dev`).
    pub api_key: Option<String>,
}

/// The TLS files every connection of this run uses.
static TLS: OnceLock<ClientFiles> = OnceLock::new();

/// Sets the TLS files of this run's connections (the global flags); the
/// first call wins.
pub fn use_tls(files: ClientFiles) {
    let _ = TLS.set(files);
}

/// A client of the coordinator `target` names, over TLS for `https://`.
pub async fn connect(target: &Target) -> Result<Client, Failure> {
    connect_with(target, TLS.get().cloned().unwrap_or_default()).await
}

/// A client of the farm `fresco dev` runs in this process: plain, whatever
/// the TLS flags say.
#[cfg(feature = "dev")]
pub async fn connect_in_process(target: &Target) -> Result<Client, Failure> {
    connect_with(target, ClientFiles::default()).await
}

async fn connect_with(target: &Target, tls: ClientFiles) -> Result<Client, Failure> {
    let endpoint = &target.endpoint;
    let bearer = Bearer::new(target.api_key.as_deref())
        .map_err(|e| Failure::Invalid(format!("--api-key: {e}")))?;
    let channel = fresco_tls::endpoint(endpoint, &tls)
        .map_err(anyhow::Error::from)?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!(fresco_tls::describe_connect_error(endpoint, &e)))?;
    Ok(JobServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}
