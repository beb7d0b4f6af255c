//! The job API as the dashboard calls it: the coordinator's own guarded
//! `JobService`, called in process, so every page is answered under the
//! same keys, roles and tenancy as a gRPC client (a tenant's key sees its
//! tenant's jobs only; a revoked key is refused on its next page).

use std::convert::Infallible;

use fresco_proto::v1::job_service_client::JobServiceClient;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::metadata::MetadataValue;
use tower::util::BoxCloneSyncService;

/// The service the dashboard sends its calls through: any
/// `JobService` server, boxed (the coordinator hands in its guarded one).
pub type JobServiceHandle =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// A client of the job API.
pub type Client = JobServiceClient<JobServiceHandle>;

/// The dashboard's way into the job API.
#[derive(Clone)]
pub struct Api {
    service: JobServiceHandle,
}

impl Api {
    pub fn new(service: JobServiceHandle) -> Self {
        Self { service }
    }

    /// A client for one page's calls.
    pub fn client(&self) -> Client {
        JobServiceClient::new(self.service.clone())
    }
}

/// A request carrying the viewer's key (none when the farm asks for
/// none).
pub fn request<T>(key: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = key
        && let Ok(value) = MetadataValue::try_from(format!("Bearer {key}"))
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
