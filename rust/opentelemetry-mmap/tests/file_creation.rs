//! Creating files: concurrent builds at one path, and sizes past what can
//! be mapped.

mod common;

use common::run_child_test;
use opentelemetry_mmap::MmapExporterFile;

/// Set in the child process of
/// `two_threads_building_files_at_the_same_path_neither_crash_nor_fail`.
const SAME_PATH_CHILD: &str = "OTLP_MMAP_TEST_SAME_PATH_CHILD";

/// The child: two threads build files at the same path, again and again.
/// (Each used to prepare its file under the same temporary name, so one's
/// open emptied the file the other had mapped: a `SIGBUS` at its next store.)
#[test]
fn same_path_child() {
    if std::env::var_os(SAME_PATH_CHILD).is_none() {
        return;
    }
    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let path = dir.path().join("app.otlp");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                for _ in 0..100 {
                    barrier.wait();
                    if let Err(e) = MmapExporterFile::builder()
                        .with_path(&path)
                        .with_span_ring(256, 512)
                        .build()
                    {
                        errors.push(e.to_string());
                    }
                }
                errors
            })
        })
        .collect();
    let errors: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        errors.is_empty(),
        "builds at the same path failed: {errors:?}"
    );
    // Only the file itself is left: no temporary file.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["app.otlp"]);
}

/// Two libraries of one process may each build the file named in
/// `OTEL_MMAP_FILE`: building files at one path from two threads must
/// neither crash the process nor fail (the last build's file is the path's).
#[test]
fn two_threads_building_files_at_the_same_path_neither_crash_nor_fail() {
    run_child_test("same_path_child", SAME_PATH_CHILD);
}

/// A dictionary limit past any address space (`u64::MAX`, "no limit") is a
/// configuration error, not an arithmetic overflow.
#[test]
fn a_dictionary_max_size_past_the_address_space_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let Err(e) = MmapExporterFile::builder()
        .with_path(dir.path().join("f.otlp"))
        .with_dictionary_max_size(u64::MAX)
        .build()
    else {
        panic!("built a file with an unmappable dictionary");
    };
    assert!(e.to_string().contains("dictionary_max_size"), "{e}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file left"
    );
}
