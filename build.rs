//! Compiles the CRI v1 proto with a pure-Rust protobuf compiler, so a fresh
//! machine needs no system `protoc`.

use std::error::Error;

const PROTO_FILES: &[&str] = &["proto/api.proto"];
const INCLUDE_DIRS: &[&str] = &["proto"];

fn main() -> Result<(), Box<dyn Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors =
        protox::compile(PROTO_FILES, INCLUDE_DIRS).map_err(|e| format!("failed to parse {PROTO_FILES:?}: {e}"))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)
        .map_err(|e| format!("failed to generate code for {PROTO_FILES:?}: {e}"))?;
    Ok(())
}
