//! Compiles `proto/checkpoint.proto` (the Collector's checkpoint of a file)
//! with protox (pure Rust, no `protoc`) and prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary may be reused from another checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let proto_dir = std::path::Path::new(&manifest_dir).join("../../proto");
    let proto = proto_dir.join("checkpoint.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&proto_dir])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
