//! fresco's public gRPC API (`fresco.v1`), generated at build time from
//! `proto/fresco/v1`: `JobService` for clients, `WorkerService` for workers.
//! This crate holds generated code and nothing else.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fresco.v1");
}
