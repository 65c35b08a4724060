//! The C ABI mirrors the library's own types field for field: `OmStats` is
//! `ReaderStats`, `OmReaderOptions` is `ReaderOptions` (less `consume`, which
//! a Collector always sets), and the C defaults are the library's defaults.
//! (go/mmapreceiver/internal/ffi checks the Go side against the header.)

use otlp_mmap_collector::{ReaderOptions, ReaderStats};
use otlp_mmap_ffi::{OmReaderOptions, OmStats, om_reader_options_default};

/// The field names of a `{:?}`-printed struct, in order.
fn field_names(debug: &str) -> Vec<String> {
    let body = &debug[debug.find('{').expect("a struct") + 1..debug.rfind('}').expect("a struct")];
    let mut names = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in body.char_indices() {
        match c {
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                names.push(body[start..i].to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    names.push(body[start..].to_owned());
    names
        .iter()
        .filter_map(|f| f.split(':').next())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

#[test]
fn om_stats_has_every_reader_stats_field_in_order() {
    let rust = field_names(&format!("{:?}", ReaderStats::default()));
    let c = field_names(&format!("{:?}", OmStats::default()));
    assert!(rust.len() > 10, "{rust:?}");
    assert_eq!(c, rust);
}

#[test]
fn om_reader_options_mirror_reader_options_and_their_defaults() {
    let d = ReaderOptions::default();
    let rust: Vec<String> = field_names(&format!("{d:?}"))
        .into_iter()
        .filter(|n| n != "consume")
        .collect();
    let mut o = OmReaderOptions::default();
    // SAFETY: `o` is valid for writes.
    #[allow(unsafe_code)]
    unsafe {
        om_reader_options_default(&mut o)
    };
    assert_eq!(field_names(&format!("{o:?}")), rust);
    // Every default crosses unchanged (the Go receiver takes its defaults
    // from here); a flag is 0 or 1 in C.
    let values = |s: &str| -> Vec<String> {
        s[s.find('{').unwrap() + 1..s.rfind('}').unwrap()]
            .split(',')
            .filter(|f| !f.contains("consume"))
            .map(|f| match f.split(':').nth(1).unwrap_or("").trim() {
                "false" => "0".to_owned(),
                "true" => "1".to_owned(),
                v => v.to_owned(),
            })
            .collect()
    };
    assert_eq!(values(&format!("{o:?}")), values(&format!("{d:?}")));
}
