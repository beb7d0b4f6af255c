//! fresco's public gRPC API (`fresco.v1`), generated at build time from
//! `proto/fresco/v1`: `JobService` for clients, `WorkerService` for workers,
//! and [`FILE_DESCRIPTOR_SET`], the encoded descriptors of both (with their
//! imports) that server reflection serves. This crate holds generated code
//! and nothing else.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fresco.v1");
}

/// The encoded `FileDescriptorSet` of `proto/fresco/v1` and every file it
/// imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fresco_descriptor");
