//! The connection to the coordinator's client API.

use anyhow::Context;
use fresco_proto::v1::job_service_client::JobServiceClient;
use tonic::transport::Channel;

/// Largest message sent or received: a submission of many prompts is big.
const MAX_MESSAGE_BYTES: usize = 512 << 20;

pub async fn connect(endpoint: &str) -> anyhow::Result<JobServiceClient<Channel>> {
    let channel = Channel::from_shared(endpoint.to_owned())
        .with_context(|| format!("--coordinator {endpoint:?} is not a valid URL"))?
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {endpoint}"))?;
    Ok(JobServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}
