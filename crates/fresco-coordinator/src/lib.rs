//! The fresco coordinator: serves the client API (`JobService`) and the
//! worker API (`WorkerService`), keeps every state change in the
//! [`fresco_store::JobStore`] first, and feeds the dispatch queues.
//!
//! - [`settings`]: lease and loop timings, limits, whether keys are asked.
//! - [`authentication`]: the key a request presents, checked against the
//!   store on every call, into the caller.
//! - [`guard`]: each service's door: authenticates before any handler.
//! - [`keys`]: `keys create | list | revoke`, against any store.
//! - [`tenants`]: `tenants set | list` (weights and limits), against any
//!   store.
//! - [`convert`]: store records → API messages.
//! - [`error`]: why a call fails, answered through `fresco_core::status`.
//! - [`jobs`]: the client API.
//! - [`watch_hub`]: one poll per watched job, shared by every `WatchJob`
//!   stream following it.
//! - [`admission`]: refusing at submit a task no known capability set of
//!   its model admits.
//! - [`control`]: cancelling a task, retrying, pausing and resuming a job.
//! - [`workers`]: the worker API.
//! - [`worker_certs`]: with mutual TLS, the worker API only for
//!   connections that presented a client certificate.
//! - [`downloads`]: presigned URLs for a job's outputs.
//! - [`usage`]: a tenant's consumption and limits.
//! - [`quotas`]: a claim of a tenant at a quota: the task back in the
//!   queues, the tenant held back for a moment.
//! - [`reaper`]: ends leases whose heartbeats stopped.
//! - [`quarantine`]: worker health: failures in a row, quarantine, its
//!   release onto probation after the cool-down or by an operator.
//! - [`requeue`]: pushes requeued tasks once their backoff has passed.
//! - [`reconciler`]: pushes again whatever Postgres holds as queued and the
//!   dispatch queues lost, and publishes the tenants' weights.
//! - [`weights`]: the tenants' weights, from the store to the dispatch
//!   queues, which share each model's workers out by them.
//! - [`deadlines`]: fails tasks still queued past their job's deadline.
//! - [`sweeper`]: deletes output objects of attempts that never recorded
//!   them.
//! - [`retention`]: deletes finished jobs past the retention period, with
//!   their objects (opt-in).
//! - [`manifest`]: a job's manifest rows, built in one place: streamed by
//!   `JobManifest`, and written to the bucket beside a finished job's
//!   images by a pass.
//! - [`dashboard`]: the web dashboard on its own HTTP address, a client
//!   of the guarded client API in process.
//! - [`waiting`]: why a job's queued tasks wait, on every read of a job.
//! - [`tenancy`]: the caller of a request, the role a call needs, and
//!   another tenant's things answering as missing ones.
//! - [`metrics`]: the Prometheus metrics the coordinator exports.
//! - [`gauges`]: the pass that refreshes the task gauges per model.
//! - [`tick`]: the loop the reaper, the reconciler, the quarantine
//!   release and the gauges run their passes in.
//! - [`health`]: `grpc.health.v1.Health`: SERVING while Postgres and
//!   Redis answer a probe every second, NOT_SERVING while either does not.
//! - [`drain`]: `DrainWorker`: a worker finishes its task, claims nothing
//!   more and exits.
//! - [`server`]: wires it all and serves until shutdown, with health and
//!   reflection open to callers without a key.

pub mod admission;
pub mod authentication;
pub mod control;
pub mod convert;
pub mod counts;
pub mod dashboard;
pub mod deadlines;
pub mod downloads;
pub mod drain;
pub mod error;
pub mod gauges;
pub mod guard;
pub mod health;
pub mod jobs;
pub mod keys;
pub mod manifest;
pub mod metrics;
pub mod quarantine;
pub mod quotas;
pub mod reaper;
pub mod reconciler;
pub mod requeue;
pub mod retention;
pub mod server;
pub mod settings;
pub mod sweeper;
pub mod tenancy;
pub mod tenants;
pub mod tick;
pub mod usage;
pub mod waiting;
pub mod watch_hub;
pub mod weights;
pub mod worker_certs;
pub mod workers;

use std::sync::Arc;

use fresco_dispatch::Dispatch;
use fresco_storage::Storage;
use fresco_store::JobStore;

pub use settings::Settings;

/// What the services and loops share.
#[derive(Clone)]
pub struct Coordinator {
    pub store: Arc<dyn JobStore>,
    pub dispatch: Arc<dyn Dispatch>,
    pub storage: Storage,
    pub settings: Arc<Settings>,
    /// The watched jobs' shared polls, one hub per coordinator (the gRPC
    /// server and the dashboard's in-process client share it).
    pub watches: watch_hub::WatchHub,
}
