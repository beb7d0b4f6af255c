//! The worker's side of the worker API, with the retry policy for calls
//! whose loss would throw work away.

use std::time::Duration;

use fresco_core::bearer::Bearer;
use fresco_core::status::{ErrorCode, classify};
use fresco_proto::v1 as pb;
use fresco_proto::v1::worker_service_client::WorkerServiceClient;
use fresco_tls::ClientFiles;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tracing::warn;

/// A connected client.
#[derive(Clone)]
pub struct CoordinatorClient {
    inner: WorkerServiceClient<InterceptedService<Channel, Bearer>>,
}

/// Whether the coordinator answered that the task is not this worker's to
/// run or report (any more): it has ended or was cancelled, another attempt
/// holds it (a stale fencing token), or it does not exist.
pub fn task_not_ours(status: &Status) -> bool {
    matches!(
        classify(status).code,
        ErrorCode::Conflict | ErrorCode::NotFound
    )
}

impl CoordinatorClient {
    /// A lazily connecting client sending `token` with every call: calls
    /// fail with UNAVAILABLE while the coordinator is down, and reconnect
    /// when it is back. An `https://` endpoint connects over TLS with `tls`.
    pub fn new(endpoint: &str, token: Option<&str>, tls: &ClientFiles) -> anyhow::Result<Self> {
        let bearer = Bearer::new(token).map_err(|e| anyhow::anyhow!("--token: {e}"))?;
        let channel = fresco_tls::endpoint(endpoint, tls)?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        Ok(Self {
            inner: WorkerServiceClient::with_interceptor(channel, bearer),
        })
    }

    pub async fn register(
        &self,
        req: pb::RegisterWorkerRequest,
    ) -> Result<pb::RegisterWorkerResponse, Status> {
        Ok(self.inner.clone().register_worker(req).await?.into_inner())
    }

    pub async fn claim(&self, req: pb::ClaimTaskRequest) -> Result<pb::ClaimTaskResponse, Status> {
        Ok(self
            .inner
            .clone()
            .claim_task(traced(req))
            .await?
            .into_inner())
    }

    pub async fn heartbeat(
        &self,
        req: pb::HeartbeatRequest,
    ) -> Result<pb::HeartbeatResponse, Status> {
        Ok(self
            .inner
            .clone()
            .heartbeat(traced(req))
            .await?
            .into_inner())
    }

    pub async fn ping(&self, req: pb::PingRequest) -> Result<pb::PingResponse, Status> {
        Ok(self.inner.clone().ping(req).await?.into_inner())
    }

    pub async fn complete(&self, req: pb::CompleteTaskRequest) -> Result<(), Status> {
        self.inner.clone().complete_task(traced(req)).await?;
        Ok(())
    }

    pub async fn fail(&self, req: pb::FailTaskRequest) -> Result<pb::FailTaskResponse, Status> {
        Ok(self
            .inner
            .clone()
            .fail_task(traced(req))
            .await?
            .into_inner())
    }
}

/// `message` as a request carrying the current span's trace context, so
/// the coordinator's span of the call joins the task's trace.
fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    fresco_telemetry::traces::inject(request.metadata_mut());
    request
}

/// Calls `call` until it succeeds, fails for a reason retrying cannot fix
/// (what `fresco_core::status::classify` calls not retryable: a refusal, or
/// a fault inside the coordinator such as a database error), or `patience`
/// runs out; waits grow from 200 ms to 5 s.
pub async fn with_retries<T, F, Fut>(
    what: &str,
    patience: Duration,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut wait = Duration::from_millis(200);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(status)
                if classify(&status).retryable && tokio::time::Instant::now() + wait < deadline =>
            {
                warn!(call = what, code = ?status.code(), error = %fresco_tls::describe_cause(&status), retry_in_ms = wait.as_millis() as u64, "coordinator call failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(status) => return Err(status),
        }
    }
}
