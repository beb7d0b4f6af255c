//! A page the job API refused or failed, answered as a page: a missing
//! job is a 404, a bad filter a 400 naming the field and the rule, a role
//! too small a 403 saying which is needed, a refused key the sign-in form
//! again; anything else a 502 with what the coordinator said.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use tonic::Code;
use tracing::warn;

use crate::layout;

/// A failed page.
#[derive(Debug)]
pub struct PageError {
    pub status: tonic::Status,
}

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        Self { status }
    }
}

/// What a handler answers.
pub type PageResult<T = Response> = Result<T, PageError>;

impl PageError {
    /// A page of the dashboard's own refusing its input.
    pub fn invalid(field: &str, rule: &str) -> Self {
        Self {
            status: tonic::Status::invalid_argument(format!("{field}: {rule}")),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (code, title) = match self.status.code() {
            Code::Unauthenticated => {
                // The key went bad since sign-in (revoked, say): sign in again.
                return Redirect::to("/login").into_response();
            }
            Code::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            Code::InvalidArgument | Code::FailedPrecondition => {
                (StatusCode::BAD_REQUEST, "Not accepted")
            }
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "Not allowed"),
            code => {
                warn!(?code, message = %self.status.message(), "the job API failed a dashboard page");
                (StatusCode::BAD_GATEWAY, "The coordinator failed")
            }
        };
        let body = layout::bare(
            title,
            html! {
                main.narrow {
                    h1 { (title) }
                    p.error role="alert" { (self.status.message()) }
                    p { a href="/" { "Back to the jobs" } }
                }
            },
        );
        (code, body).into_response()
    }
}
