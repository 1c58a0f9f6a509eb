//! Compiles every .proto under the workspace's `proto/` with protox (pure Rust, no system `protoc`).

use std::path::PathBuf;

#[allow(
    clippy::disallowed_methods,
    reason = "a build script: cargo passes its inputs as environment variables"
)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): the same compiled build script may run for a copy of the
    // workspace elsewhere (CI's stand-alone check shares the target directory).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?;
    let root = PathBuf::from(manifest_dir).join("../../proto");
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
