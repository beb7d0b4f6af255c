//! The jobs list (`GET /`): newest first, filtered by state, model and
//! label, searched by id, name or prompt text, a page at a time, with each
//! row's progress kept live by `/live/jobs` under the same filter.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use fresco_core::JobState;
use fresco_proto::v1 as pb;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use crate::Dashboard;
use crate::error::{PageError, PageResult};
use crate::layout::{self, Section};
use crate::session::Viewer;

/// Jobs on one page.
pub const PAGE_SIZE: u32 = 50;

/// The list's filter, as the form and the links carry it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct JobsQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// `key=value`, several separated by commas.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Text a job's id starts with, or its name or a prompt contains.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub page: String,
    /// `on`: every tenant's jobs (an admin key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub all_tenants: String,
}

impl JobsQuery {
    /// The `ListJobs` request this filter asks for; a malformed filter is
    /// refused naming its field.
    pub fn request(&self) -> Result<pb::ListJobsRequest, PageError> {
        let state = match self.state.as_str() {
            "" | "all" => pb::JobState::Unspecified,
            name => name
                .parse::<JobState>()
                .map_err(|rule| PageError::invalid("state", &rule))?
                .to_proto(),
        };
        Ok(pb::ListJobsRequest {
            limit: PAGE_SIZE,
            labels: labels(&self.label)?,
            state: state as i32,
            model: self.model.trim().to_owned(),
            search: self.q.trim().to_owned(),
            page_token: self.page.clone(),
            all_tenants: !self.all_tenants.is_empty(),
            ..Default::default()
        })
    }

    /// This filter as a query string, on another page.
    pub fn with_page(&self, page: &str) -> String {
        let query = JobsQuery {
            page: page.to_owned(),
            ..self.clone()
        };
        encode(&query)
    }
}

/// A query as its `a=b&c=d` string, encoded as axum's `Query` decodes it.
pub fn encode<T: Serialize>(query: &T) -> String {
    serde_urlencoded::to_string(query).unwrap_or_default()
}

/// `a=b,c=d` into labels; the API checks keys and values.
fn labels(text: &str) -> Result<HashMap<String, String>, PageError> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| {
                    PageError::invalid("label", "must be key=value, several separated by commas")
                })
        })
        .collect()
}

/// `GET /`.
pub async fn jobs(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Query(query): Query<JobsQuery>,
) -> PageResult {
    let request = query.request()?;
    let page = dashboard
        .api
        .client()
        .list_jobs(viewer.request(request))
        .await?
        .into_inner();
    let live = format!("/live/jobs?{}", encode(&query));
    let body = html! {
        h1 { "Jobs" }
        (filter_form(&query))
        (table(&page.jobs))
        (pager(&query, &page.next_page_token))
    };
    Ok(layout::page(&viewer, Section::Jobs, "Jobs", Some(&live), body).into_response())
}

fn filter_form(query: &JobsQuery) -> Markup {
    html! {
        form.filters method="get" action="/" role="search" aria-label="Filter jobs" {
            label for="q" { "Search" }
            input #q type="search" name="q" value=(query.q) placeholder="id, name or prompt text";
            label for="state" { "State" }
            select #state name="state" {
                option value="" selected[query.state.is_empty()] { "all" }
                @for state in JobState::ALL {
                    option value=(state.as_str()) selected[query.state == state.as_str()] { (state.as_str()) }
                }
            }
            label for="model" { "Model" }
            input #model type="text" name="model" value=(query.model);
            label for="label" { "Label" }
            input #label type="text" name="label" value=(query.label) placeholder="key=value";
            label for="all_tenants" { "All tenants" }
            input #all_tenants type="checkbox" name="all_tenants" value="on" checked[!query.all_tenants.is_empty()];
            button type="submit" { "Filter" }
        }
    }
}

fn table(jobs: &[pb::Job]) -> Markup {
    if jobs.is_empty() {
        return html! { p #no-jobs { "No jobs match." } };
    }
    html! {
        table.jobs #jobs {
            caption.visually-hidden { "Jobs, newest first" }
            thead {
                tr {
                    th scope="col" { "Job" }
                    th scope="col" { "State" }
                    th scope="col" { "Progress" }
                    th scope="col" { "Tasks" }
                    th scope="col" { "ETA" }
                    th scope="col" { "Model" }
                    th scope="col" { "Tenant" }
                    th scope="col" { "Labels" }
                    th scope="col" { "Age" }
                }
            }
            tbody {
                @for job in jobs { (row(job)) }
            }
        }
    }
}

fn row(job: &pb::Job) -> Markup {
    let state = layout::state(job);
    html! {
        tr data-job-id=(job.id) {
            td {
                a href={ "/jobs/" (job.id) } { code { (job.id) } }
                @if !job.name.is_empty() { " " span.name { (job.name) } }
            }
            td { span.state data-role="state" data-state=(state) { (state) } }
            td { (layout::progress(job)) }
            td data-role="counts" { (layout::counts(job)) }
            td data-role="eta" { (layout::eta(job)) }
            td { (job.model) }
            td { (job.tenant) }
            td { (layout::labels(job)) }
            td { (layout::ago(job.created_at.as_ref())) }
        }
    }
}

fn pager(query: &JobsQuery, next: &str) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if !query.page.is_empty() {
                a href={ "/?" (query.with_page("")) } { "First page" }
            }
            @if !next.is_empty() {
                a href={ "/?" (query.with_page(next)) } rel="next" { "Next page" }
            }
        }
    }
}
