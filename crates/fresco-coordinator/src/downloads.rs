//! Presigned GET URLs for a job's outputs, so a client downloads straight
//! from the object store instead of through the coordinator.

use fresco_core::Caller;
use fresco_proto::v1 as pb;

use crate::Coordinator;
use crate::error::{ApiError, ApiResult};

/// The `OutputUrls` call.
pub async fn output_urls(
    _app: &Coordinator,
    _caller: &Caller,
    _request: pb::OutputUrlsRequest,
) -> ApiResult<pb::OutputUrlsResponse> {
    Err(ApiError::Forbidden("OutputUrls is not served yet".into()))
}
