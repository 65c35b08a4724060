//! The checked-in header is what cbindgen generates from the current source.
//! Regenerate with `UPDATE_HEADER=1 cargo test -p otlp-mmap-ffi --test header`
//! (or `make header`).

use std::path::PathBuf;

#[test]
fn header_is_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = dir.join("include/otlp_mmap.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "include/otlp_mmap.h is stale: run `make header` (UPDATE_HEADER=1 cargo test -p otlp-mmap-ffi --test header)"
    );
}
