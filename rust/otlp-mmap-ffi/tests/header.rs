//! The checked-in header is what cbindgen generates from the current source,
//! and the Go receiver's copy (go/mmapreceiver/internal/ffi/otlp_mmap.h, which
//! makes the Go module build outside this repository) is the same file.
//! Regenerate both with `UPDATE_HEADER=1 cargo test -p otlp-mmap-ffi --test header`
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
    let copies = [
        dir.join("include/otlp_mmap.h"),
        dir.join("../../go/mmapreceiver/internal/ffi/otlp_mmap.h"),
    ];
    for path in &copies {
        if std::env::var_os("UPDATE_HEADER").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let current = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            current == generated,
            "{} is stale: run `make header` (UPDATE_HEADER=1 cargo test -p otlp-mmap-ffi --test header)",
            path.display()
        );
    }
}
