//! A job's gallery: its finished tasks' images as thumbnails, a page of
//! tasks at a time (a job of 100,000 tasks is read a page at a time, never
//! whole), each opening the image's own page. The live stream sends the
//! same page's images again as tasks finish; the page script adds those it
//! lacks.

use fresco_proto::v1 as pb;
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::api::Client;
use crate::error::PageResult;
use crate::session::Viewer;

/// Tasks on one gallery page.
pub const PAGE_TASKS: u32 = 60;

/// Up to `limit` of a job's succeeded tasks, from task index `from` on.
pub async fn succeeded_tasks(
    client: &mut Client,
    viewer: &Viewer,
    job_id: &str,
    from: u32,
    limit: u32,
) -> Result<Vec<pb::Task>, tonic::Status> {
    Ok(client
        .list_tasks(viewer.request(pb::ListTasksRequest {
            job_id: job_id.to_owned(),
            state: pb::TaskState::Succeeded as i32,
            from_index: from,
            limit,
        }))
        .await?
        .into_inner()
        .tasks)
}

/// One gallery page of a job's finished tasks, from task index `from`.
pub async fn page(
    client: &mut Client,
    viewer: &Viewer,
    job_id: &str,
    from: u32,
) -> PageResult<Vec<pb::Task>> {
    Ok(succeeded_tasks(client, viewer, job_id, from, PAGE_TASKS).await?)
}

/// One image of a gallery page.
pub struct Thumb<'a> {
    pub task: &'a pb::Task,
    pub output: &'a pb::Output,
}

impl Thumb<'_> {
    pub fn href(&self) -> String {
        format!(
            "/jobs/{}/tasks/{}/images/{}",
            self.task.job_id, self.task.id, self.output.index
        )
    }

    pub fn src(&self) -> String {
        format!("/outputs/{}", self.output.key)
    }

    pub fn alt(&self) -> String {
        format!(
            "Task {}, image {}: {}",
            self.task.index, self.output.index, self.task.prompt
        )
    }

    /// Where it sorts in the gallery: task, then image.
    pub fn order(&self) -> u64 {
        u64::from(self.task.index) * 1024 + u64::from(self.output.index)
    }

    /// As the live stream sends it.
    pub fn json(&self) -> Value {
        json!({
            "key": self.output.key,
            "href": self.href(),
            "src": self.src(),
            "alt": self.alt(),
            "order": self.order(),
            "caption": format!("#{}.{} seed {}", self.task.index, self.output.index, self.output.seed),
        })
    }
}

/// Every image of `tasks`, in order.
pub fn thumbs(tasks: &[pb::Task]) -> Vec<Thumb<'_>> {
    tasks
        .iter()
        .flat_map(|task| {
            task.outputs
                .iter()
                .map(move |output| Thumb { task, output })
        })
        .collect()
}

/// The gallery section of a job's page.
pub fn section(job: &pb::Job, tasks: &[pb::Task], from: u32) -> Markup {
    let thumbs = thumbs(tasks);
    let next = tasks.last().map(|t| t.index + 1);
    let full = tasks.len() as u32 == PAGE_TASKS;
    html! {
        section aria-labelledby="gallery-title" {
            h2 #gallery-title { "Images" }
            p data-role="gallery-empty" hidden[!thumbs.is_empty()] { "No image yet." }
            ul.gallery #gallery data-full=(full) {
                @for thumb in &thumbs {
                    li data-key=(thumb.output.key) data-order=(thumb.order()) {
                        a href=(thumb.href()) {
                            img src=(thumb.src()) alt=(thumb.alt()) loading="lazy" width="128" height="128";
                        }
                        span.caption { "#" (thumb.task.index) "." (thumb.output.index) " seed " (thumb.output.seed) }
                    }
                }
            }
            nav.pager aria-label="Gallery pages" {
                @if from > 0 {
                    a href={ "/jobs/" (job.id) } { "First images" }
                }
                @if let (true, Some(next)) = (full, next) {
                    a href={ "/jobs/" (job.id) "?from=" (next) } rel="next" { "More images" }
                }
            }
        }
    }
}
