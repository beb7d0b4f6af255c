//! Files the dashboard streams through the job API, never embedded in a
//! page: an image (`/outputs/{key}`, through `ReadOutput`), all of a job's
//! images as one tar (`/jobs/{id}/images.tar`), and its manifest as JSON
//! Lines (`/jobs/{id}/manifest.jsonl`). Each is read under the viewer's
//! key, so another tenant's output answers as a missing one.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fresco_core::manifest::ManifestRow;
use fresco_proto::v1 as pb;
use tokio_stream::StreamExt;
use tracing::warn;

use crate::api::Client;
use crate::error::PageResult;
use crate::session::Viewer;
use crate::{Dashboard, gallery};

/// Tasks read per `ListTasks` call while a tar is written.
const TAR_PAGE: u32 = 500;

fn with_headers(body: Body, content_type: &'static str, disposition: Option<String>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(value) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /outputs/{key}`: an image's bytes.
pub async fn output(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Path(key): Path<String>,
) -> PageResult {
    let stream = dashboard
        .api
        .client()
        .read_output(viewer.request(pb::ReadOutputRequest { key }))
        .await?
        .into_inner();
    let body = Body::from_stream(stream.map(|chunk| chunk.map(|c| Bytes::from(c.data))));
    let mut response = with_headers(body, "image/png", None);
    // An output never changes once recorded.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(response)
}

/// `GET /jobs/{id}/manifest.jsonl`.
pub async fn manifest(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Path(job_id): Path<String>,
) -> PageResult {
    let rows = dashboard
        .api
        .client()
        .job_manifest(viewer.request(pb::JobManifestRequest {
            job_id: job_id.clone(),
        }))
        .await?
        .into_inner();
    let lines = rows.map(|row| {
        let row = row?;
        let line = ManifestRow::from_proto(&row)
            .jsonl()
            .map_err(|err| tonic::Status::internal(format!("writing a manifest row: {err}")))?;
        Ok::<_, tonic::Status>(Bytes::from(line + "\n"))
    });
    Ok(with_headers(
        Body::from_stream(lines),
        "application/jsonl",
        Some(format!("attachment; filename=\"{job_id}-manifest.jsonl\"")),
    ))
}

/// `GET /jobs/{id}/images.tar`: every image of the job, streamed as one
/// tar a task page at a time.
pub async fn images_tar(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Path(job_id): Path<String>,
) -> PageResult {
    let mut client = dashboard.api.client();
    // Asked first, so a missing or hidden job answers 404, not a broken tar.
    client
        .get_job(viewer.request(pb::GetJobRequest {
            job_id: job_id.clone(),
        }))
        .await?;
    let disposition = format!("attachment; filename=\"{job_id}.tar\"");
    let stream = async_stream::stream! {
        let mut from = 0;
        loop {
            let tasks = match gallery::succeeded_tasks(&mut client, &viewer, &job_id, from, TAR_PAGE).await {
                Ok(tasks) => tasks,
                Err(status) => { yield Err(status); return; }
            };
            let Some(last) = tasks.last() else { break };
            from = last.index + 1;
            for task in &tasks {
                for output in &task.outputs {
                    let name = entry_name(task, output);
                    match read(&mut client, &viewer, &output.key).await {
                        Ok(bytes) => for part in tar_entry(&name, &bytes) { yield Ok(part) },
                        Err(status) => { yield Err(status); return; }
                    }
                }
            }
            if tasks.len() < TAR_PAGE as usize { break }
        }
        // The end of an archive: two empty blocks.
        yield Ok(Bytes::from(vec![0u8; 1024]));
    };
    Ok(with_headers(
        Body::from_stream(stream),
        "application/x-tar",
        Some(disposition),
    ))
}

async fn read(client: &mut Client, viewer: &Viewer, key: &str) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = client
        .read_output(viewer.request(pb::ReadOutputRequest {
            key: key.to_owned(),
        }))
        .await?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?.data);
    }
    Ok(bytes)
}

/// An image's name in the tar: its task's index, then its own, so names
/// sort in task order and never collide.
fn entry_name(task: &pb::Task, output: &pb::Output) -> String {
    format!("task-{:06}-{}.png", task.index, output.index)
}

/// A file's header, its bytes and the padding to the next 512-byte block.
fn tar_entry(name: &str, bytes: &[u8]) -> Vec<Bytes> {
    let mut header = tar::Header::new_ustar();
    if let Err(err) = header.set_path(name) {
        warn!(name, error = %err, "an output name does not fit a tar header; left out");
        return Vec::new();
    }
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let padding = (512 - bytes.len() % 512) % 512;
    vec![
        Bytes::copy_from_slice(header.as_bytes()),
        Bytes::copy_from_slice(bytes),
        Bytes::from(vec![0u8; padding]),
    ]
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn entries_read_back_with_the_tar_reader() {
        let mut archive = Vec::new();
        for (name, bytes) in [("t-0.png", &b"first"[..]), ("t-1.png", &[7u8; 700][..])] {
            for part in tar_entry(name, bytes) {
                archive.extend_from_slice(&part);
            }
        }
        archive.extend_from_slice(&[0u8; 1024]);
        let mut reader = tar::Archive::new(archive.as_slice());
        let mut seen = Vec::new();
        for entry in reader.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read");
            seen.push((name, bytes.len()));
        }
        assert_eq!(
            seen,
            vec![("t-0.png".to_owned(), 5), ("t-1.png".to_owned(), 700)]
        );
    }
}
