//! Compiles `proto/mmap.proto` with protox (pure Rust, no `protoc`) and
//! prost-build, and writes `tags.rs`: the field number of every message field,
//! so that the hand-written encoders and borrowed decoders share the schema's
//! numbers instead of copies.
use std::fmt::Write as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary may be reused from another checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let proto_dir = std::path::Path::new(&manifest_dir).join("../../proto");
    let proto = proto_dir.join("mmap.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&proto_dir])?;

    let mut tags = String::new();
    for file in &fds.file {
        for message in &file.message_type {
            write_message(&mut tags, message, message.name(), 0);
        }
    }
    std::fs::write(out_dir.join("tags.rs"), tags)?;

    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}

/// Writes one module per message (named like prost's module for its nested
/// types), with one `u32` constant per field, then the nested messages'
/// modules inside it.
fn write_message(
    out: &mut String,
    message: &prost_types::DescriptorProto,
    path: &str,
    depth: usize,
) {
    let indent = "    ".repeat(depth);
    let _ = writeln!(out, "{indent}/// Field numbers of `{path}`.");
    let _ = writeln!(out, "{indent}pub mod {} {{", snake_case(message.name()));
    for field in &message.field {
        let _ = writeln!(
            out,
            "{indent}    /// `{path}.{}`.\n{indent}    pub const {}: u32 = {};",
            field.name(),
            field.name().to_ascii_uppercase(),
            field.number()
        );
    }
    for nested in &message.nested_type {
        let nested_path = format!("{path}.{}", nested.name());
        write_message(out, nested, &nested_path, depth + 1);
    }
    let _ = writeln!(out, "{indent}}}");
}

/// `ExponentialHistogram` -> `exponential_histogram`.
fn snake_case(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}
