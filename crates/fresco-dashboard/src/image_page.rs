//! One image's page (`GET /jobs/{job}/tasks/{task}/images/{n}`): the full
//! image with the prompt, seed and every parameter that made it, and the
//! command that renders it again.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use fresco_proto::v1 as pb;
use maud::html;

use crate::Dashboard;
use crate::error::{PageError, PageResult};
use crate::layout::{self, Section};
use crate::session::Viewer;

/// `GET /jobs/{job}/tasks/{task}/images/{n}`.
pub async fn image(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Path((job_id, task_id, index)): Path<(String, String, u32)>,
) -> PageResult {
    let task = dashboard
        .api
        .client()
        .get_task(viewer.request(pb::GetTaskRequest { task_id }))
        .await?
        .into_inner();
    let output = task
        .outputs
        .iter()
        .find(|o| o.index == index)
        .filter(|_| task.job_id == job_id)
        .ok_or_else(|| {
            PageError::from(tonic::Status::not_found(format!(
                "task {} of job {job_id} has no image {index}",
                task.id
            )))
        })?;
    let src = format!("/outputs/{}", output.key);
    let title = format!("Task {} image {}", task.index, output.index);
    let body = html! {
        p { a href={ "/jobs/" (job_id) } { "← Job " (job_id) } }
        h1 { (title) }
        figure.full {
            img #image src=(src) alt=(task.prompt) width=(output.width) height=(output.height);
            figcaption { a href=(src) { "Open the PNG (" (output.width) "×" (output.height) ", " (output.bytes) " bytes)" } }
        }
        dl.facts #params {
            dt { "Prompt" } dd #prompt { (task.prompt) }
            dt { "Negative prompt" } dd { (if task.negative_prompt.is_empty() { "–" } else { task.negative_prompt.as_str() }) }
            dt { "Seed" } dd #seed { (output.seed) }
            dt { "Model" } dd { (task.model) }
            dt { "Steps" } dd { (task.steps) }
            dt { "Size" } dd { (task.width) "×" (task.height) }
            dt { "Guidance" } dd { (task.guidance) }
            dt { "Sampler" } dd { (task.sampler) }
            dt { "Worker" } dd { (task.worker_name) " (" (task.worker_device) ")" }
            dt { "Sampling time" } dd { (task.sampling_seconds.map_or("–".into(), |s| format!("{s:.2} s"))) }
            dt { "Finished" } dd { (layout::ago(task.finished_at.as_ref())) }
            dt { "SHA-256" } dd { code { (output.sha256) } }
        }
        p { "Render it again: " code { "fresco regen " (job_id) " " (task.id) " " (output.index) } }
    };
    Ok(layout::page(&viewer, Section::Jobs, &title, None, body).into_response())
}
