//! A job's manifest: one row per image and one per task that made none
//! ([`fresco_core::manifest::ManifestRow`]). The rows are built here and
//! nowhere else ([`rows`]), from the store's records, a page of tasks at a
//! time ([`job_rows`]), for both of their readers:
//!
//! - `JobManifest` streams them ([`job_manifest`]), under the same rules
//!   as `GetJob`: another tenant's job answers as a missing one.
//! - The manifest pass ([`write_due_once`], every `--manifest-interval-seconds`)
//!   writes `{prefix}/{job}/manifest.jsonl` beside the images of each
//!   finished job whose manifest is due (never written, or a retry reopened
//!   the job since), then marks it written in the store. A pass cut short
//!   leaves the job due for the next one; a job deleted by retention while
//!   its manifest was written has that manifest deleted again. Retention
//!   deletes the manifest with the job's other objects.

use bytes::Bytes;
use fresco_core::manifest::{ManifestError, ManifestRow};
use fresco_core::status::{ErrorCode, ServiceError};
use fresco_core::{Caller, JobId, Role, keys};
use fresco_proto::v1 as pb;
use fresco_store::{JobSummary, ManifestDue, StoreError, TaskQuery, TaskRecord};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::ApiResult;
use crate::{Coordinator, tenancy, tick};

/// Tasks read from the store at once.
const PAGE: u32 = 500;
/// Manifests written per pass at most; the next pass takes the rest.
const BATCH: u32 = 20;
/// Bytes of JSON Lines gathered before they go to the object writer.
const CHUNK_BYTES: usize = 1 << 20;

/// The rows of one task: one per image, in image order, or one without
/// image fields when it made none (failed, cancelled, not finished).
pub fn rows(job: &JobSummary, task: &TaskRecord) -> Vec<ManifestRow> {
    let base = task_row(job, task);
    if task.outputs.is_empty() {
        return vec![base];
    }
    task.outputs
        .iter()
        .map(|output| ManifestRow {
            image_index: Some(output.index),
            // The image seed the worker rendered it from: the task's seed
            // plus the image's index.
            seed: Some(output.seed),
            key: Some(output.key.clone()),
            bytes: Some(output.bytes),
            sha256: given(&output.sha256),
            ..base.clone()
        })
        .collect()
}

/// What every row of `task` says.
fn task_row(job: &JobSummary, task: &TaskRecord) -> ManifestRow {
    let spec = &task.spec;
    let made = task.completion.as_ref();
    let mut row = ManifestRow {
        job_id: job.id.to_string(),
        job_name: job.name.clone(),
        task_id: task.id.to_string(),
        task_index: task.index,
        state: task.state.as_str().to_owned(),
        prompt: spec.prompt.clone(),
        negative_prompt: spec.negative_prompt.clone(),
        task_seed: spec.seed,
        steps: spec.steps,
        width: spec.width,
        height: spec.height,
        guidance: spec.guidance,
        n: spec.n,
        sampler: spec.sampler.clone(),
        model: task.model.clone(),
        weights_sha256: made.and_then(|c| given(&c.weights_sha256)),
        worker_id: task.worker.map(|w| w.to_string()),
        worker_name: made.map(|c| c.worker_name.clone()),
        worker_device: made.map(|c| c.worker_device.clone()),
        attempt: task.attempt,
        queued_at: Some(task.created_at),
        started_at: task.started_at,
        finished_at: task.finished_at,
        sampling_seconds: made.map(|c| c.device_ms as f64 / 1000.0),
        errors: task
            .errors
            .iter()
            .map(|e| ManifestError {
                attempt: e.attempt,
                worker: e.worker.clone(),
                kind: e.kind.as_str().to_owned(),
                message: e.message.clone(),
                at: Some(e.at),
            })
            .collect(),
        ..ManifestRow::default()
    };
    row.set_schedule(&spec.schedule);
    if let Some(at) = &task.coordinates {
        row.set_coordinates(at);
    }
    row
}

/// An empty string as absent.
fn given(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Every row of `job`, in task then image order, reading [`PAGE`] tasks at
/// a time: memory stays flat however many tasks it has.
pub fn job_rows(
    app: Coordinator,
    job: JobSummary,
) -> impl Stream<Item = ApiResult<ManifestRow>> + Send + 'static {
    async_stream::try_stream! {
        let mut from_index = 0;
        loop {
            let query = TaskQuery {
                job: Some(job.id),
                state: None,
                from_index,
                limit: PAGE,
            };
            let tasks = app.store.list_tasks(&query).await?;
            for task in &tasks {
                for row in rows(&job, task) {
                    yield row;
                }
            }
            match tasks.last() {
                Some(last) if tasks.len() == PAGE as usize => from_index = last.index + 1,
                _ => break,
            }
        }
    }
}

/// The `JobManifest` call: the rows of a job the caller may see.
pub async fn job_manifest(
    app: &Coordinator,
    caller: &Caller,
    request: &pb::JobManifestRequest,
) -> ApiResult<impl Stream<Item = ApiResult<pb::ManifestRow>> + Send + 'static> {
    tenancy::client(caller, Role::Viewer, "JobManifest")?;
    let id = JobId::parse_field("job_id", &request.job_id)?;
    let job = tenancy::visible_job(app, caller, id).await?;
    info!(job_id = %id, "job manifest streamed");
    Ok(job_rows(app.clone(), job).map(|row| row.map(|row| row.to_proto())))
}

/// Writes the job's manifest to the bucket as JSON Lines, streamed into
/// the object; returns how many rows it holds.
async fn write_manifest(app: &Coordinator, job: JobSummary, key: &str) -> anyhow::Result<usize> {
    let mut writer = app.storage.writer(key)?;
    let mut chunk = Vec::with_capacity(CHUNK_BYTES);
    let mut written = 0;
    let rows = job_rows(app.clone(), job);
    tokio::pin!(rows);
    while let Some(row) = rows.next().await {
        chunk.extend_from_slice(row?.jsonl()?.as_bytes());
        chunk.push(b'\n');
        written += 1;
        if chunk.len() >= CHUNK_BYTES {
            writer.put(Bytes::from(std::mem::take(&mut chunk))).await?;
        }
    }
    writer.put(Bytes::from(chunk)).await?;
    writer.finish().await?;
    Ok(written)
}

/// Writes the manifest `due` asks for; whether the job was still there to
/// mark it written.
async fn write_due(app: &Coordinator, due: ManifestDue) -> anyhow::Result<bool> {
    let job = match app.store.get_job(due.job).await {
        Ok(job) => job,
        Err(StoreError::NotFound(_)) => return Ok(false),
        Err(err) => return Err(err.into()),
    };
    let key = keys::manifest_key(app.storage.prefix(), due.job);
    let rows = write_manifest(app, job, &key).await?;
    if !app.store.mark_manifest_written(due).await? {
        // Retention deleted the job meanwhile: its manifest goes too.
        match app.storage.delete(&key).await {
            Err(err) if err.error_code() != ErrorCode::NotFound => return Err(err.into()),
            _ => return Ok(false),
        }
    }
    info!(job_id = %due.job, rows, key = %key, "job manifest written");
    Ok(true)
}

/// One pass: writes up to [`BATCH`] due manifests; returns how many. A
/// manifest that cannot be written now (storage away) is logged and left
/// for the next pass.
pub async fn write_due_once(app: &Coordinator) -> anyhow::Result<usize> {
    let mut written = 0;
    for due in app.store.manifests_due(BATCH).await? {
        match write_due(app, due).await {
            Ok(true) => written += 1,
            Ok(false) => {}
            Err(err) => {
                warn!(job_id = %due.job, error = %format!("{err:#}"), "could not write the job manifest; the next pass tries again");
            }
        }
    }
    Ok(written)
}

/// Writes due manifests every `manifest_interval` until `shutdown`; never
/// when it is zero.
pub async fn run(app: Coordinator, shutdown: CancellationToken) {
    let interval = app.settings.manifest_interval;
    if interval.is_zero() {
        info!("job manifests are not written to the bucket (--manifest-interval-seconds 0)");
        return;
    }
    tick::every("manifests", interval, &shutdown, &app, write_due_once).await;
}
