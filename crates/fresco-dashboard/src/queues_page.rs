//! The queues page (`GET /queues`): per model, how many tasks wait and
//! run, and each waiting job with why it waits. An admin key sees every
//! tenant's jobs, any other key its own tenant's.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::IntoResponse;
use fresco_proto::v1 as pb;
use maud::html;
use tonic::Code;

use crate::Dashboard;
use crate::api::Client;
use crate::error::PageResult;
use crate::layout::{self, Section};
use crate::session::Viewer;

/// Active jobs read for the page.
const ACTIVE_JOBS: u32 = 1000;

/// Depth of one model's queue.
#[derive(Default)]
struct Depth {
    queued: u64,
    running: u64,
    jobs: usize,
}

async fn active_jobs(client: &mut Client, viewer: &Viewer) -> Result<Vec<pb::Job>, tonic::Status> {
    let request = |all_tenants| pb::ListJobsRequest {
        limit: ACTIVE_JOBS,
        all_tenants,
        state: pb::JobState::Active as i32,
        ..Default::default()
    };
    match client.list_jobs(viewer.request(request(true))).await {
        Ok(page) => Ok(page.into_inner().jobs),
        Err(status) if status.code() == Code::PermissionDenied => Ok(client
            .list_jobs(viewer.request(request(false)))
            .await?
            .into_inner()
            .jobs),
        Err(status) => Err(status),
    }
}

/// `GET /queues`.
pub async fn queues(State(dashboard): State<Dashboard>, viewer: Viewer) -> PageResult {
    let jobs = active_jobs(&mut dashboard.api.client(), &viewer).await?;
    let mut depths: BTreeMap<&str, Depth> = BTreeMap::new();
    for job in &jobs {
        let counts = job.counts.unwrap_or_default();
        let depth = depths.entry(job.model.as_str()).or_default();
        depth.queued += counts.queued;
        depth.running += counts.running;
        depth.jobs += 1;
    }
    let waiting: Vec<&pb::Job> = jobs
        .iter()
        .filter(|j| j.counts.unwrap_or_default().queued > 0)
        .collect();
    let body = html! {
        h1 { "Queues" }
        @if depths.is_empty() {
            p #queues-empty { "Nothing is queued or running." }
        } @else {
            table #depths {
                caption { "Tasks per model" }
                thead { tr { th scope="col" { "Model" } th scope="col" { "Queued" } th scope="col" { "Running" } th scope="col" { "Active jobs" } } }
                tbody {
                    @for (model, depth) in &depths {
                        tr data-model=(model) {
                            th scope="row" { (model) }
                            td data-role="queued" { (depth.queued) }
                            td { (depth.running) }
                            td { (depth.jobs) }
                        }
                    }
                }
            }
        }
        @if !waiting.is_empty() {
            h2 { "Waiting jobs" }
            table #waiting {
                caption.visually-hidden { "Jobs with queued tasks and why they wait" }
                thead { tr { th scope="col" { "Job" } th scope="col" { "Model" } th scope="col" { "Tenant" } th scope="col" { "Queued" } th scope="col" { "Why" } } }
                tbody {
                    @for job in &waiting {
                        tr data-job-id=(job.id) {
                            td { a href={ "/jobs/" (job.id) } { code { (job.id) } } " " (job.name) }
                            td { (job.model) }
                            td { (job.tenant) }
                            td { (job.counts.unwrap_or_default().queued) }
                            td { (if job.waiting_reason.is_empty() { "next in line for a free worker" } else { job.waiting_reason.as_str() }) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&viewer, Section::Queues, "Queues", None, body).into_response())
}
