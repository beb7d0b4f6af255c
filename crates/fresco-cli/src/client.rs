//! The connection to the coordinator's client API: plain for `http://`,
//! TLS for `https://` with the CA of `--tls-ca` (set once, from the global
//! flags, by [`use_tls`]) or the system's roots.

use std::sync::OnceLock;

use fresco_proto::v1::job_service_client::JobServiceClient;
use fresco_tls::ClientFiles;
use tonic::transport::Channel;

/// Largest message sent or received: a submission of many prompts is big.
const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// The TLS files every connection of this run uses.
static TLS: OnceLock<ClientFiles> = OnceLock::new();

/// Sets the TLS files of this run's connections (the global flags); the
/// first call wins.
pub fn use_tls(files: ClientFiles) {
    let _ = TLS.set(files);
}

/// A client of the coordinator at `endpoint`, over TLS for `https://`.
pub async fn connect(endpoint: &str) -> anyhow::Result<JobServiceClient<Channel>> {
    connect_with(endpoint, TLS.get().cloned().unwrap_or_default()).await
}

/// A client of the farm `fresco dev` runs in this process: plain, whatever
/// the TLS flags say.
#[cfg(feature = "dev")]
pub async fn connect_in_process(endpoint: &str) -> anyhow::Result<JobServiceClient<Channel>> {
    connect_with(endpoint, ClientFiles::default()).await
}

async fn connect_with(
    endpoint: &str,
    tls: ClientFiles,
) -> anyhow::Result<JobServiceClient<Channel>> {
    let channel = fresco_tls::endpoint(endpoint, &tls)?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!(fresco_tls::describe_connect_error(endpoint, &e)))?;
    Ok(JobServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}
