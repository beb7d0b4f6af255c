//! The connection to the coordinator's client API: where it is, and the API
//! key sent with every call (`--api-key` / `FRESCO_API_KEY`).

use anyhow::Context;
use fresco_core::bearer::Bearer;
use fresco_proto::v1::job_service_client::JobServiceClient;
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

pub async fn connect(target: &Target) -> Result<Client, Failure> {
    let endpoint = &target.endpoint;
    let bearer = Bearer::new(target.api_key.as_deref())
        .map_err(|e| Failure::Invalid(format!("--api-key: {e}")))?;
    let channel = Channel::from_shared(endpoint.clone())
        .with_context(|| format!("--coordinator {endpoint:?} is not a valid URL"))?
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {endpoint}"))?;
    Ok(JobServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}
