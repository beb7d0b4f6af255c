//! Presigned GET URLs for a job's outputs, so a client downloads straight
//! from the object store instead of through the coordinator.
//!
//! Only a job the caller may see, and only its recorded outputs: a key of
//! another job, or of no output, answers `NotFound`. The URLs are signed
//! here with the storage's credentials and expire after a short while
//! (`expires_seconds`, default [`DEFAULT_EXPIRY_SECONDS`]). Storage that
//! cannot sign (`file://`) answers `FAILED_PRECONDITION`: its outputs are
//! read through `ReadOutput`.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use fresco_core::{Caller, FieldError, JobId, Role};
use fresco_proto::v1 as pb;
use fresco_store::OutputRecord;
use tracing::info;

use crate::error::{ApiError, ApiResult};
use crate::{Coordinator, convert, tenancy};

/// How long the URLs stay valid when the request names no expiry.
pub const DEFAULT_EXPIRY_SECONDS: u32 = 300;
/// The longest expiry a request may ask for.
pub const MAX_EXPIRY_SECONDS: u32 = 3600;
/// The most keys one request may name.
pub const MAX_KEYS: usize = 10_000;

/// The `OutputUrls` call.
pub async fn output_urls(
    app: &Coordinator,
    caller: &Caller,
    request: pb::OutputUrlsRequest,
) -> ApiResult<pb::OutputUrlsResponse> {
    tenancy::client(caller, Role::Viewer, "OutputUrls")?;
    let job = JobId::parse_field("job_id", &request.job_id)?;
    let expires_in = expiry(request.expires_seconds)?;
    if request.keys.len() > MAX_KEYS {
        return Err(FieldError::new(
            "keys",
            format!(
                "must name at most {MAX_KEYS} keys (got {})",
                request.keys.len()
            ),
        )
        .into());
    }
    tenancy::visible_job(app, caller, job).await?;
    if !app.storage.can_sign() {
        return Err(ApiError::CannotSignUrls);
    }
    let outputs = app.store.job_outputs(job, &request.keys).await?;
    if let Some(missing) = first_unrecorded(&request.keys, &outputs) {
        return Err(ApiError::OutputNotFound(missing.to_owned()));
    }
    // Taken before signing: no URL expires before the time answered.
    let expires_at = Utc::now() + expires_in;
    let mut urls = Vec::with_capacity(outputs.len());
    for output in outputs {
        urls.push(sign(app, output, expires_in).await?);
    }
    info!(job_id = %job, urls = urls.len(), expires_in_s = expires_in.as_secs(), "output URLs signed");
    Ok(pb::OutputUrlsResponse {
        urls,
        expires_at: Some(convert::timestamp(expires_at)),
    })
}

/// The expiry a request asks for: 0 is the default, 1 to
/// [`MAX_EXPIRY_SECONDS`] as asked, anything else refused.
fn expiry(seconds: u32) -> Result<Duration, FieldError> {
    match seconds {
        0 => Ok(Duration::from_secs(u64::from(DEFAULT_EXPIRY_SECONDS))),
        1..=MAX_EXPIRY_SECONDS => Ok(Duration::from_secs(u64::from(seconds))),
        n => Err(FieldError::new(
            "expires_seconds",
            format!(
                "must be between 1 and {MAX_EXPIRY_SECONDS} (0: {DEFAULT_EXPIRY_SECONDS}) (got {n})"
            ),
        )),
    }
}

/// The first key asked for that is not among the job's recorded outputs.
fn first_unrecorded<'a>(keys: &'a [String], outputs: &[OutputRecord]) -> Option<&'a str> {
    let recorded: HashSet<&str> = outputs.iter().map(|o| o.key.as_str()).collect();
    keys.iter()
        .map(String::as_str)
        .find(|key| !recorded.contains(key))
}

async fn sign(
    app: &Coordinator,
    output: OutputRecord,
    expires_in: Duration,
) -> ApiResult<pb::OutputUrl> {
    match app.storage.signed_get_url(&output.key, expires_in).await {
        Ok(url) => Ok(pb::OutputUrl {
            key: output.key,
            url: url.to_string(),
            bytes: output.bytes,
        }),
        Err(source) => Err(ApiError::UrlNotSigned {
            key: output.key,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_the_default_or_within_an_hour() {
        assert_eq!(expiry(0), Ok(Duration::from_secs(300)));
        assert_eq!(expiry(1), Ok(Duration::from_secs(1)));
        assert_eq!(expiry(3600), Ok(Duration::from_secs(3600)));
        assert_eq!(
            expiry(3601).unwrap_err().to_string(),
            "expires_seconds: must be between 1 and 3600 (0: 300) (got 3601)"
        );
    }

    #[test]
    fn a_key_asked_for_must_be_recorded() {
        let recorded = |key: &str| OutputRecord {
            index: 0,
            key: key.into(),
            width: 8,
            height: 8,
            seed: 1,
            bytes: 1,
            sha256: String::new(),
        };
        let outputs = [recorded("a"), recorded("b")];
        let keys = |k: &[&str]| k.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(first_unrecorded(&keys(&[]), &outputs), None);
        assert_eq!(first_unrecorded(&keys(&["b", "a", "b"]), &outputs), None);
        assert_eq!(first_unrecorded(&keys(&["a", "c"]), &outputs), Some("c"));
    }
}
