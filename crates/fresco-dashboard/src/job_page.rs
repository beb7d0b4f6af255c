//! A job's page (`GET /jobs/{id}`): its progress, kept live by
//! `/live/jobs/{id}`; its actions; its gallery, a page of finished tasks
//! at a time, growing as tasks finish; and its failed tasks with every
//! attempt's error.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use fresco_proto::v1 as pb;
use maud::{Markup, html};
use serde::Deserialize;

use crate::error::PageResult;
use crate::layout::{self, Section};
use crate::session::Viewer;
use crate::{Dashboard, gallery};

/// Failed tasks listed on the page (the rest through the CLI).
const FAILED_SHOWN: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct JobQuery {
    /// The gallery page: tasks from this index on.
    #[serde(default)]
    pub from: u32,
}

/// `GET /jobs/{id}`.
pub async fn job(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> PageResult {
    let mut client = dashboard.api.client();
    let job = client
        .get_job(viewer.request(pb::GetJobRequest { job_id: id.clone() }))
        .await?
        .into_inner();
    let page = gallery::page(&mut client, &viewer, &id, query.from).await?;
    let failed = client
        .list_tasks(viewer.request(pb::ListTasksRequest {
            job_id: id.clone(),
            state: pb::TaskState::Failed as i32,
            from_index: 0,
            limit: FAILED_SHOWN,
        }))
        .await?
        .into_inner()
        .tasks;
    let live = format!("/live/jobs/{}?from={}", job.id, query.from);
    let title = if job.name.is_empty() {
        "Job".to_owned()
    } else {
        job.name.clone()
    };
    let body = html! {
        (summary(&job, &title))
        (actions(&job))
        (gallery::section(&job, &page, query.from))
        (failed_tasks(&job, &failed))
    };
    let live = (!job.finished).then_some(live.as_str());
    Ok(layout::page(&viewer, Section::Jobs, &title, live, body).into_response())
}

fn summary(job: &pb::Job, title: &str) -> Markup {
    let state = layout::state(job);
    html! {
        section #job data-job-id=(job.id) aria-labelledby="job-title" {
            h1 #job-title { (title) }
            p { code { (job.id) } }
            (layout::progress(job))
            dl.facts {
                dt { "State" } dd { span.state data-role="state" data-state=(state) { (state) } }
                dt { "Tasks" } dd data-role="counts" { (layout::counts(job)) " of " (job.task_count) }
                dt { "ETA" } dd data-role="eta" { (layout::eta(job)) }
                dt { "Rate" } dd data-role="rate" { (format!("{:.1}", job.images_per_minute)) " images/min" }
                dt { "Model" } dd { (job.model) }
                dt { "Tenant" } dd { (job.tenant) }
                dt { "Owner" } dd { (if job.owner.is_empty() { "–" } else { job.owner.as_str() }) }
                dt { "Priority" } dd { (job.priority) }
                dt { "Labels" } dd { (layout::labels(job)) }
                dt { "Submitted" } dd { (layout::ago(job.created_at.as_ref())) }
            }
            p.waiting data-role="waiting" hidden[job.waiting_reason.is_empty()] {
                "Waiting: " span data-role="waiting-reason" { (job.waiting_reason) }
            }
        }
    }
}

fn actions(job: &pb::Job) -> Markup {
    let counts = job.counts.unwrap_or_default();
    let base = format!("/jobs/{}", job.id);
    html! {
        section.actions aria-label="Actions" {
            @if !job.finished {
                // Hidden by the page script once the job has finished.
                span.while-active data-role="while-active" {
                    @if job.paused {
                        form method="post" action={ (base) "/resume" } { button type="submit" { "Resume" } }
                    } @else {
                        form method="post" action={ (base) "/pause" } { button type="submit" { "Pause" } }
                    }
                    a.button.danger href={ (base) "/cancel" } { "Cancel job…" }
                }
            }
            @if counts.failed > 0 {
                form method="post" action={ (base) "/retry" } { button type="submit" { "Retry failed tasks" } }
            }
            a.button href={ (base) "/images.tar" } download { "Download all images (.tar)" }
            a.button href={ (base) "/manifest.jsonl" } download { "Manifest (JSON lines)" }
        }
    }
}

fn failed_tasks(job: &pb::Job, tasks: &[pb::Task]) -> Markup {
    let failed = job.counts.unwrap_or_default().failed;
    if tasks.is_empty() {
        return html! {};
    }
    html! {
        section #failed aria-labelledby="failed-title" {
            h2 #failed-title { "Failed tasks (" (failed) ")" }
            @if failed > tasks.len() as u64 {
                p { "The first " (tasks.len()) " are shown; " code { "fresco status " (job.id) } " lists all." }
            }
            @for task in tasks {
                article.failed-task data-task-id=(task.id) {
                    h3 { "Task " (task.index) ": " q { (task.prompt) } }
                    table {
                        caption.visually-hidden { "Attempts of task " (task.index) }
                        thead { tr { th scope="col" { "Attempt" } th scope="col" { "Kind" } th scope="col" { "Worker" } th scope="col" { "When" } th scope="col" { "Error" } } }
                        tbody {
                            @for error in &task.errors {
                                tr {
                                    td { (error.attempt) }
                                    td { (error.kind) }
                                    td { (error.worker) }
                                    td { (layout::ago(error.at.as_ref())) }
                                    td.message { (error.message) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
