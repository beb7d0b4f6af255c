//! The workers page (`GET /workers`, for admin keys as `ListWorkers` is):
//! each worker's name, device, state (working, idle, quarantined with its
//! last errors, on probation, draining), the models it serves and has
//! loaded, its current task with the step it is on, its recent
//! throughput, and when it was last seen.

use axum::extract::State;
use axum::response::IntoResponse;
use fresco_proto::v1 as pb;
use maud::{Markup, html};

use crate::Dashboard;
use crate::api::Client;
use crate::error::PageResult;
use crate::layout::{self, Section};
use crate::session::Viewer;

/// A worker's state in one word.
pub fn state(worker: &pb::Worker) -> &'static str {
    if worker.quarantined_at.is_some() {
        "quarantined"
    } else if worker.draining_at.is_some() {
        "draining"
    } else if worker.probation {
        "probation"
    } else if !worker.running_tasks.is_empty() {
        "working"
    } else {
        "idle"
    }
}

/// `GET /workers`.
pub async fn workers(State(dashboard): State<Dashboard>, viewer: Viewer) -> PageResult {
    let mut client = dashboard.api.client();
    let workers = client
        .list_workers(viewer.request(pb::ListWorkersRequest { limit: 0 }))
        .await?
        .into_inner()
        .workers;
    let mut rows = Vec::with_capacity(workers.len());
    for worker in &workers {
        let tasks = running(&mut client, &viewer, worker).await;
        rows.push(row(worker, &tasks));
    }
    let body = html! {
        h1 { "Workers" }
        @if workers.is_empty() {
            p { "No worker has registered." }
        } @else {
            table.workers #workers {
                caption.visually-hidden { "Registered workers" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Device" } th scope="col" { "State" }
                    th scope="col" { "Models served" } th scope="col" { "Loaded" }
                    th scope="col" { "Current task" } th scope="col" { "Throughput" }
                    th scope="col" { "Last seen" }
                } }
                tbody { @for row in rows { (row) } }
            }
        }
    };
    Ok(layout::page(&viewer, Section::Workers, "Workers", None, body).into_response())
}

/// The tasks a worker runs now, as far as they can be read.
async fn running(client: &mut Client, viewer: &Viewer, worker: &pb::Worker) -> Vec<pb::Task> {
    let mut tasks = Vec::new();
    for task_id in &worker.running_tasks {
        if let Ok(task) = client
            .get_task(viewer.request(pb::GetTaskRequest {
                task_id: task_id.clone(),
            }))
            .await
        {
            tasks.push(task.into_inner());
        }
    }
    tasks
}

fn row(worker: &pb::Worker, tasks: &[pb::Task]) -> Markup {
    let state = state(worker);
    html! {
        tr data-worker=(worker.name) data-state=(state) {
            th scope="row" { (worker.name) br; small { code { (worker.id) } } }
            td { (worker.device) }
            td {
                span.state data-state=(state) { (state) }
                @if state == "quarantined" {
                    (reasons(worker))
                }
            }
            td { (worker.models.join(", ")) }
            td { (worker.loaded_models.join(", ")) }
            td {
                @for task in tasks {
                    a href={ "/jobs/" (task.job_id) } { "task " (task.index) } " step " (task.progress_step) "/" (task.steps)
                    br;
                }
            }
            td data-role="throughput" {
                (format!("{:.1}", worker.tasks_per_minute)) " tasks/min"
                br; small { "over " (layout::span(u64::from(worker.rate_window_seconds))) }
            }
            td { (layout::ago(worker.last_seen_at.as_ref())) }
        }
    }
}

/// Why a worker was quarantined: its last failures.
fn reasons(worker: &pb::Worker) -> Markup {
    html! {
        details {
            summary { (worker.consecutive_failures) " failures in a row" }
            ul.errors {
                @for error in &worker.recent_errors {
                    li { (error.kind) ": " (error.message) }
                }
            }
        }
    }
}
