//! A tenant's consumption and limits, for `GetUsage`.

use fresco_core::Caller;
use fresco_proto::v1 as pb;

use crate::Coordinator;
use crate::error::{ApiError, ApiResult};

/// The `GetUsage` call.
pub async fn get_usage(
    _app: &Coordinator,
    _caller: &Caller,
    _request: pb::GetUsageRequest,
) -> ApiResult<pb::Usage> {
    Err(ApiError::Forbidden("GetUsage is not served yet".into()))
}
