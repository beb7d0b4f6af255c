//! fresco's web dashboard, served by the coordinator on its own HTTP
//! address (`--http-listen`): jobs with live progress, each job's gallery
//! and failures with its actions, the workers and the queues. It is a
//! client of the job API, called in process under the viewer's key, so a
//! page shows exactly what that key may see through gRPC.
//!
//! - [`api`]: the in-process job API client and the viewer's key on it.
//! - [`session`]: signing in with an API key, the cookie that keeps it.
//! - [`error`]: a refused or failed call as a page.
//! - [`layout`]: the page shell and how a job's numbers read.
//! - [`jobs_page`], [`job_page`], [`gallery`], [`image_page`],
//!   [`workers_page`], [`queues_page`]: the pages.
//! - [`actions`]: pause, resume, retry and cancel.
//! - [`outputs`]: images, a job's tar and its manifest, streamed.
//! - [`live`]: server-sent events the pages update themselves from.
//! - [`assets`]: the stylesheet and script, served from the binary.

pub mod actions;
pub mod api;
pub mod assets;
pub mod error;
pub mod gallery;
pub mod image_page;
pub mod job_page;
pub mod jobs_page;
pub mod layout;
pub mod live;
pub mod outputs;
pub mod queues_page;
pub mod session;
pub mod workers_page;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use api::{Api, JobServiceHandle};

/// What every handler shares.
#[derive(Clone)]
pub struct Dashboard {
    pub api: Api,
    /// Whether viewers sign in with an API key (the farm asks for keys).
    pub login_required: bool,
    /// Whether the key cookie is marked `Secure` (served behind HTTPS).
    pub secure_cookies: bool,
    /// Ends the live streams when the dashboard shuts down, so a graceful
    /// shutdown never waits on an open page.
    pub shutdown: CancellationToken,
}

impl Dashboard {
    pub fn new(
        api: Api,
        login_required: bool,
        secure_cookies: bool,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            api,
            login_required,
            secure_cookies,
            shutdown,
        }
    }

    /// Every page and stream.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(jobs_page::jobs))
            .route("/login", get(session::login_page).post(session::login))
            .route("/logout", post(session::logout))
            .route("/jobs/{id}", get(job_page::job))
            .route(
                "/jobs/{id}/cancel",
                get(actions::confirm_cancel).post(actions::cancel),
            )
            .route("/jobs/{id}/pause", post(actions::pause))
            .route("/jobs/{id}/resume", post(actions::resume))
            .route("/jobs/{id}/retry", post(actions::retry))
            .route("/jobs/{id}/images.tar", get(outputs::images_tar))
            .route("/jobs/{id}/manifest.jsonl", get(outputs::manifest))
            .route(
                "/jobs/{job}/tasks/{task}/images/{n}",
                get(image_page::image),
            )
            .route("/outputs/{*key}", get(outputs::output))
            .route("/workers", get(workers_page::workers))
            .route("/queues", get(queues_page::queues))
            .route("/live/jobs", get(live::jobs))
            .route("/live/jobs/{id}", get(live::job))
            .route("/assets/{name}", get(assets::asset))
            .with_state(self)
    }
}

/// Serves the dashboard on `listener` until `shutdown`.
pub async fn serve(dashboard: Dashboard, listener: TcpListener) -> anyhow::Result<()> {
    let shutdown = dashboard.shutdown.clone();
    let addr = listener.local_addr()?;
    info!(%addr, url = %format!("http://{addr}/"), login = dashboard.login_required, "dashboard listening");
    axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
