//! Compiles `proto/mmap.proto` with protox (pure Rust, no `protoc`) and prost-build.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let proto = proto_dir.join("mmap.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&proto_dir])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
