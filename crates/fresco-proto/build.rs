//! Compiles `proto/fresco/v1/*.proto` with protox (no `protoc` needed),
//! generates the tonic clients and servers, and writes the encoded file
//! descriptor set (every file and its imports) that server reflection
//! serves.

use std::path::PathBuf;

use prost::Message;

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
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("fresco_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
