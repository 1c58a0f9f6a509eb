//! Compiles every .proto under the workspace's `proto/` with protox (pure Rust, no system `protoc`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "gaen/export.proto",
        "cwa/submission_payload.proto",
        "openwarn/testresult/v1/testresult.proto",
        "openwarn/verification/v1/verification.proto",
        "openwarn/submission/v1/submission.proto",
        "openwarn/config/v1/app_config.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
