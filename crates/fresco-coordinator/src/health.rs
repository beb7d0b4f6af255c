//! The coordinator's `grpc.health.v1.Health`: a probe asks the store
//! (Postgres) and the dispatch queues (Redis) every [`PROBE_INTERVAL`]
//! whether they answer, and the coordinator reports SERVING only while
//! both do: NOT_SERVING, for the whole server (`""`) and each of its
//! services, while either is unreachable, SERVING again once both answer.
//! Load balancers and Kubernetes probes call it without a key.

use std::time::Duration;

use fresco_proto::v1::{job_service_server, worker_service_server};
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::Coordinator;

/// How often the store and the dispatch queues are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long one probe may take before it counts as unreachable (a pool
/// waiting for a connection to a database that does not answer would
/// otherwise wait for its own, longer timeout).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The names health is reported under: the whole server and each service.
const SERVICES: [&str; 3] = [
    "",
    job_service_server::SERVICE_NAME,
    worker_service_server::SERVICE_NAME,
];

/// What one probe found unreachable (nothing: serving).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probe {
    pub store: Option<String>,
    pub dispatch: Option<String>,
}

impl Probe {
    pub fn status(&self) -> ServingStatus {
        if self.store.is_none() && self.dispatch.is_none() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }
}

/// Asks the store and the dispatch queues once, both at the same time,
/// each within [`PROBE_TIMEOUT`].
pub async fn probe(app: &Coordinator) -> Probe {
    let store = within(PROBE_TIMEOUT, async { app.store.ping().await });
    let dispatch = within(PROBE_TIMEOUT, async { app.dispatch.ping().await });
    let (store, dispatch) = tokio::join!(store, dispatch);
    Probe { store, dispatch }
}

/// Why `check` failed, or none when it answered in time.
async fn within<E: std::fmt::Display>(
    timeout: Duration,
    check: impl Future<Output = Result<(), E>>,
) -> Option<String> {
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(_) => Some(format!("no answer within {timeout:?}")),
    }
}

/// Reports `status` for the server and each service.
async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Probes every [`PROBE_INTERVAL`] until `shutdown`, reporting through
/// `reporter` and logging each change; reports NOT_SERVING once shutdown
/// begins.
pub async fn run(app: Coordinator, reporter: HealthReporter, shutdown: CancellationToken) {
    let mut last = None;
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let found = probe(&app).await;
        let status = found.status();
        if last != Some(status) {
            log_change(&found, status);
            report(&reporter, status).await;
            last = Some(status);
        }
    }
    report(&reporter, ServingStatus::NotServing).await;
}

fn log_change(found: &Probe, status: ServingStatus) {
    match status {
        ServingStatus::Serving => info!("health: SERVING (Postgres and Redis answer)"),
        _ => warn!(
            postgres = found.store.as_deref().unwrap_or("ok"),
            redis = found.dispatch.as_deref().unwrap_or("ok"),
            "health: NOT_SERVING"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_only_while_both_answer() {
        assert_eq!(Probe::default().status(), ServingStatus::Serving);
        let down = |store: bool, dispatch: bool| Probe {
            store: store.then(|| "down".to_owned()),
            dispatch: dispatch.then(|| "down".to_owned()),
        };
        assert_eq!(down(true, false).status(), ServingStatus::NotServing);
        assert_eq!(down(false, true).status(), ServingStatus::NotServing);
        assert_eq!(down(true, true).status(), ServingStatus::NotServing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_does_not_answer_in_time_is_unreachable() {
        let hangs = std::future::pending::<Result<(), String>>();
        let why = within(Duration::from_secs(2), hangs).await;
        assert!(why.is_some_and(|why| why.contains("no answer")));
        let fails = async { Err::<(), _>("refused") };
        assert_eq!(
            within(Duration::from_secs(2), fails).await.as_deref(),
            Some("refused")
        );
        assert_eq!(
            within(Duration::from_secs(2), async { Ok::<(), String>(()) }).await,
            None
        );
    }
}
