//! Downloads through presigned URLs: the coordinator signs GET URLs for a
//! batch of keys (`OutputUrls`), asked just before they are fetched since
//! they expire within minutes, and the images come straight from the
//! object store over HTTP.

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use fresco_proto::v1 as pb;
use futures::TryStreamExt;
use tonic::Code;

use super::{Wanted, file, for_each};
use crate::Failure;
use crate::client::Client;

/// Keys per `OutputUrls` call.
const BATCH: usize = 64;

/// How a presigned download ended.
#[derive(Debug)]
pub enum Fetched {
    Done,
    /// The coordinator does not sign URLs for this farm (`file://`
    /// storage, or a coordinator without `OutputUrls`): stream instead.
    CannotSign,
}

pub async fn fetch(
    client: &mut Client,
    job_id: &str,
    wanted: &[Wanted],
    jobs: usize,
) -> Result<Fetched, Failure> {
    let http = reqwest::Client::builder()
        .build()
        .context("setting up the HTTP client")?;
    for batch in wanted.chunks(BATCH) {
        let request = pb::OutputUrlsRequest {
            job_id: job_id.to_owned(),
            keys: batch.iter().map(|w| w.key.clone()).collect(),
            expires_seconds: 0,
        };
        let urls = match client.output_urls(request).await {
            Ok(answer) => answer.into_inner().urls,
            Err(status)
                if matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::Unimplemented
                ) =>
            {
                return Ok(Fetched::CannotSign);
            }
            Err(status) => return Err(status.into()),
        };
        let urls: HashMap<String, String> = urls.into_iter().map(|u| (u.key, u.url)).collect();
        for_each(batch, jobs, |wanted| get(&http, &urls, wanted)).await?;
    }
    Ok(Fetched::Done)
}

/// GETs one image from its presigned URL into its file.
async fn get(
    http: &reqwest::Client,
    urls: &HashMap<String, String>,
    wanted: &Wanted,
) -> Result<(), Failure> {
    let url = urls
        .get(&wanted.key)
        .ok_or_else(|| anyhow!("the coordinator signed no URL for {}", wanted.key))?;
    let fetching = || format!("fetching {} from the object store", wanted.key);
    let response = http.get(url).send().await.with_context(fetching)?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(anyhow!("{}: HTTP {status}: {}", fetching(), excerpt(&body)).into());
    }
    let chunks = response
        .bytes_stream()
        .map_err(|e| anyhow::Error::new(e).context(fetching()));
    file::write(wanted, chunks).await
}

/// The start of an error body (S3 answers XML naming the error).
fn excerpt(body: &str) -> &str {
    let body = body.trim();
    match body.char_indices().nth(300) {
        Some((at, _)) => &body[..at],
        None => body,
    }
}
