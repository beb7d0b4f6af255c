//! Compiles `proto/fresco/v1/*.proto` with protox (no `protoc` needed) and
//! generates the tonic clients and servers.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with `env!`: a second checkout sharing the
    // target directory must compile its own proto files.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let proto_root = PathBuf::from(manifest_dir).join("../../proto");
    let files = [
        proto_root.join("fresco/v1/jobs.proto"),
        proto_root.join("fresco/v1/workers.proto"),
    ];
    println!("cargo:rerun-if-changed={}", proto_root.display());
    let descriptors = protox::compile(&files, [&proto_root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
