//! Server push for the pages (server-sent events): `/live/jobs` sends the
//! listed jobs' progress each time it changes; `/live/jobs/{id}` follows
//! the job through `WatchJob`, sends its progress on every change and its
//! gallery page's images as tasks finish, then `done` once it has
//! finished. The page script applies them; no page reloads itself.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use fresco_proto::v1 as pb;
use futures::Stream;
use serde_json::{Value, json};
use tokio_stream::StreamExt;

use crate::error::PageResult;
use crate::job_page::JobQuery;
use crate::jobs_page::JobsQuery;
use crate::layout;
use crate::session::Viewer;
use crate::{Dashboard, gallery};

/// How often the jobs list is read again for its live stream.
const LIST_INTERVAL: Duration = Duration::from_secs(1);

/// A job's progress as the page script applies it.
pub fn job_json(job: &pb::Job) -> Value {
    json!({
        "id": job.id,
        "state": layout::state(job),
        "percent": layout::percent(job),
        "counts": layout::counts(job),
        "eta": layout::eta(job),
        "rate": format!("{:.1}", job.images_per_minute),
        "waiting": job.waiting_reason,
        "finished": job.finished,
    })
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

fn sse(
    dashboard: &Dashboard,
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    let shutdown = dashboard.shutdown.clone().cancelled_owned();
    Sse::new(futures::StreamExt::take_until(stream, shutdown))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /live/jobs?…`: the jobs list's progress, under the page's filter.
pub async fn jobs(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Query(query): Query<JobsQuery>,
) -> PageResult {
    let request = query.request()?;
    let mut client = dashboard.api.client();
    let stream = async_stream::stream! {
        let mut last = Value::Null;
        let mut tick = tokio::time::interval(LIST_INTERVAL);
        loop {
            tick.tick().await;
            let jobs = match client.list_jobs(viewer.request(request.clone())).await {
                Ok(page) => page.into_inner().jobs,
                Err(status) => {
                    yield Ok(event("error", &json!(status.message())));
                    return;
                }
            };
            let now = Value::Array(jobs.iter().map(job_json).collect());
            if now != last {
                yield Ok(event("jobs", &now));
                last = now;
            }
        }
    };
    Ok(sse(&dashboard, stream))
}

/// `GET /live/jobs/{id}?from=N`: one job's progress and its gallery page.
pub async fn job(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> PageResult {
    let mut client = dashboard.api.client();
    let mut updates = client
        .watch_job(viewer.request(pb::WatchJobRequest { job_id: id.clone() }))
        .await?
        .into_inner();
    let stream = async_stream::stream! {
        let mut shown = None;
        while let Some(update) = updates.next().await {
            let job = match update {
                Ok(job) => job,
                Err(status) => {
                    yield Ok(event("error", &json!(status.message())));
                    return;
                }
            };
            yield Ok(event("job", &job_json(&job)));
            let succeeded = job.counts.unwrap_or_default().succeeded;
            if shown != Some(succeeded) {
                match gallery::page(&mut client, &viewer, &id, query.from).await {
                    Ok(tasks) => {
                        let thumbs: Vec<Value> = gallery::thumbs(&tasks).iter().map(|t| t.json()).collect();
                        yield Ok(event("images", &Value::Array(thumbs)));
                        shown = Some(succeeded);
                    }
                    Err(err) => {
                        yield Ok(event("error", &json!(err.status.message())));
                        return;
                    }
                }
            }
        }
        yield Ok(event("done", &json!(id)));
    };
    Ok(sse(&dashboard, stream))
}
