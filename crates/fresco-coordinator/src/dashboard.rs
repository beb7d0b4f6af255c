//! The web dashboard beside the gRPC API (`--http-listen`): the
//! [`fresco_dashboard`] pages, calling this coordinator's own guarded
//! client API in process, so a page answers exactly as a gRPC call with
//! the viewer's key would (keys, roles, tenancy). Viewers sign in with an
//! API key when the farm asks for keys, and not at all when it does not.

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::util::BoxCloneSyncService;

use crate::authentication::Access;
use crate::{Coordinator, server};

/// Serves the dashboard on `listener` until `shutdown`.
pub fn spawn(
    app: &Coordinator,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let service = BoxCloneSyncService::new(server::job_service(app, &shutdown));
    let dashboard = fresco_dashboard::Dashboard::new(
        fresco_dashboard::Api::new(service),
        app.settings.access == Access::Keys,
        false,
        shutdown,
    );
    tokio::spawn(fresco_dashboard::serve(dashboard, listener))
}
