//! What the job page's buttons do: pause, resume, retry and cancel, each
//! one call of the job API under the viewer's key, then back to the job.
//! Cancelling asks first, on a page of its own, so it works without a
//! script and by keyboard.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use fresco_proto::v1 as pb;
use maud::html;
use tracing::info;

use crate::Dashboard;
use crate::error::{PageError, PageResult};
use crate::layout::{self, Section};
use crate::session::Viewer;

/// A job action a button asks for.
#[derive(Debug, Clone, Copy)]
enum Action {
    Pause,
    Resume,
    Retry,
    Cancel,
}

/// A form posted from another site is refused: the browser names the
/// page's origin, which must be this host.
fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if origin_host == host {
        Ok(())
    } else {
        Err(PageError::from(tonic::Status::permission_denied(
            "a form posted from another site is refused",
        )))
    }
}

async fn act(dashboard: &Dashboard, viewer: &Viewer, job_id: String, action: Action) -> PageResult {
    let mut client = dashboard.api.client();
    match action {
        Action::Pause => drop(
            client
                .pause_job(viewer.request(pb::PauseJobRequest {
                    job_id: job_id.clone(),
                }))
                .await?,
        ),
        Action::Resume => drop(
            client
                .resume_job(viewer.request(pb::ResumeJobRequest {
                    job_id: job_id.clone(),
                }))
                .await?,
        ),
        Action::Retry => drop(
            client
                .retry_job(viewer.request(pb::RetryJobRequest {
                    job_id: job_id.clone(),
                }))
                .await?,
        ),
        Action::Cancel => drop(
            client
                .cancel_job(viewer.request(pb::CancelJobRequest {
                    job_id: job_id.clone(),
                }))
                .await?,
        ),
    }
    info!(job_id = %job_id, ?action, "job action from the dashboard");
    Ok(Redirect::to(&format!("/jobs/{job_id}")).into_response())
}

macro_rules! action_handler {
    ($name:ident, $action:expr) => {
        pub async fn $name(
            State(dashboard): State<Dashboard>,
            viewer: Viewer,
            headers: HeaderMap,
            Path(job_id): Path<String>,
        ) -> PageResult {
            same_origin(&headers)?;
            act(&dashboard, &viewer, job_id, $action).await
        }
    };
}

action_handler!(pause, Action::Pause);
action_handler!(resume, Action::Resume);
action_handler!(retry, Action::Retry);
action_handler!(cancel, Action::Cancel);

/// `GET /jobs/{id}/cancel`: asks before cancelling.
pub async fn confirm_cancel(
    State(dashboard): State<Dashboard>,
    viewer: Viewer,
    Path(job_id): Path<String>,
) -> PageResult<Response> {
    let job = dashboard
        .api
        .client()
        .get_job(viewer.request(pb::GetJobRequest {
            job_id: job_id.clone(),
        }))
        .await?
        .into_inner();
    let counts = job.counts.unwrap_or_default();
    let body = html! {
        h1 { "Cancel job " (job.id) "?" }
        p { "Its " (counts.queued) " queued and " (counts.running) " running tasks stop; the "
            (counts.succeeded) " finished images stay. This cannot be undone." }
        form method="post" action={ "/jobs/" (job.id) "/cancel" } {
            button.danger type="submit" autofocus { "Yes, cancel the job" }
            " "
            a href={ "/jobs/" (job.id) } { "No, keep it" }
        }
    };
    Ok((
        StatusCode::OK,
        layout::page(&viewer, Section::Jobs, "Cancel job", None, body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_form_from_another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&headers).is_ok(),
            "no origin: not a cross-site form"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(same_origin(&headers).is_err());
    }
}
