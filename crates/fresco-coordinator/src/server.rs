//! Serves both APIs on one address, plain or over TLS, each behind its
//! [`Guarded`] door (the caller's key checked before any handler runs),
//! with the reaper, the reconciler, the quarantine release pass, the
//! deadline pass, the sweeper, the retention pass, the manifest pass, the
//! gauges pass, the task-count fold and the health probe beside them, until the shutdown token is cancelled. On the
//! same address, open to callers without a key (load balancers, Kubernetes
//! probes, `grpcurl`): `grpc.health.v1.Health` (see [`health`]) and server
//! reflection (v1 and v1alpha) of both APIs and of health.

use std::net::SocketAddr;

use anyhow::Context;
use fresco_core::CredentialKind;
use fresco_proto::v1::job_service_server::JobServiceServer;
use fresco_proto::v1::worker_service_server::WorkerServiceServer;
use fresco_tls::ServerTls;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_reflection::server::{v1, v1alpha};
use tracing::info;

use crate::authentication::{Access, Authenticator};
use crate::guard::Guarded;
use crate::jobs::JobApi;
use crate::worker_certs::WorkerCertGate;
use crate::workers::WorkerApi;
use crate::{
    Coordinator, counts, deadlines, gauges, health, manifest, quarantine, reaper, reconciler,
    retention, sweeper,
};

/// The largest request accepted: a submission of many prompts is big.
const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// Serves plain gRPC on `listener` until `shutdown`; returns once
/// in-flight calls end.
pub async fn serve(
    app: Coordinator,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with_tls(app, listener, None, shutdown).await
}

/// As [`serve`], over TLS when `tls` is given; when it verifies client
/// certificates, the worker API needs one ([`WorkerCertGate`]).
pub async fn serve_with_tls(
    app: Coordinator,
    listener: TcpListener,
    tls: Option<ServerTls>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let loops = [
        tokio::spawn(health::run(app.clone(), reporter, shutdown.clone())),
        tokio::spawn(reaper::run(app.clone(), shutdown.clone())),
        tokio::spawn(reconciler::run(app.clone(), shutdown.clone())),
        tokio::spawn(deadlines::run(app.clone(), shutdown.clone())),
        tokio::spawn(counts::run(app.clone(), shutdown.clone())),
        tokio::spawn(sweeper::run(app.clone(), shutdown.clone())),
        tokio::spawn(retention::run(app.clone(), shutdown.clone())),
        tokio::spawn(manifest::run(app.clone(), shutdown.clone())),
        tokio::spawn(quarantine::run(app.clone(), shutdown.clone())),
        tokio::spawn(gauges::run(app.clone(), shutdown.clone())),
    ];
    let access = app.settings.access;
    let authenticator = Authenticator::new(app.store.clone(), access);
    let jobs = job_service(&app, &shutdown);
    let gate = WorkerCertGate {
        required: tls.as_ref().is_some_and(ServerTls::verifies_clients),
    };
    let workers = tonic::service::interceptor::InterceptedService::new(
        Guarded::new(
            WorkerServiceServer::new(WorkerApi { app }),
            authenticator,
            CredentialKind::Worker,
        ),
        gate,
    );
    let (reflection_v1, reflection_v1alpha) = reflection()?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        builder = builder.tls_config(tls.config())?;
    }
    info!(
        %addr,
        tls = tls.is_some(),
        worker_certificates = gate.required,
        keys = access == Access::Keys,
        "coordinator listening"
    );
    builder
        .add_service(jobs)
        .add_service(workers)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            shutdown.clone().cancelled_owned(),
        )
        .await?;
    shutdown.cancel();
    for task in loops {
        task.await?;
    }
    info!("coordinator stopped");
    Ok(())
}

/// The client API behind its door, as the gRPC server serves it and the
/// dashboard calls it in process.
pub fn job_service(
    app: &Coordinator,
    shutdown: &CancellationToken,
) -> Guarded<JobServiceServer<JobApi>> {
    let authenticator = Authenticator::new(app.store.clone(), app.settings.access);
    let jobs = JobServiceServer::new(JobApi {
        app: app.clone(),
        shutdown: shutdown.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Guarded::new(jobs, authenticator, CredentialKind::Client)
}

/// Server reflection, in both versions clients speak (`grpcurl` asks v1
/// and falls back to v1alpha), describing both APIs and health.
fn reflection() -> anyhow::Result<(
    v1::ServerReflectionServer<impl v1::ServerReflection>,
    v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(fresco_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder()
        .build_v1()
        .context("building server reflection (v1)")?;
    let v1alpha = builder()
        .build_v1alpha()
        .context("building server reflection (v1alpha)")?;
    Ok((v1, v1alpha))
}
