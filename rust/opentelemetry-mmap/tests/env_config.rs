//! Configuration from environment variables, checked in a child process (the
//! environment of the test process itself is left alone).

use std::process::Command;

use opentelemetry_mmap::MmapExporterFile;
use otlp_mmap_core::RingKind;

const CHILD_ENV: &str = "OPENTELEMETRY_MMAP_ENV_CHILD";

#[test]
fn env_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let file = MmapExporterFile::from_env().unwrap();
    let g = |k| file.writer().ring(k).geometry();
    assert_eq!(file.path().file_name().unwrap(), "from-env.otlp");
    assert_eq!(
        (
            g(RingKind::Spans).num_buffers,
            g(RingKind::Spans).buffer_size
        ),
        (16, 300)
    );
    assert_eq!(
        (
            g(RingKind::Events).num_buffers,
            g(RingKind::Events).buffer_size
        ),
        (32, 400)
    );
    assert_eq!(
        (
            g(RingKind::Measurements).num_buffers,
            g(RingKind::Measurements).buffer_size
        ),
        (64, 128)
    );
    // code wins over the environment
    let dir = std::path::PathBuf::from(std::env::var_os("OTEL_MMAP_FILE").unwrap());
    let file = MmapExporterFile::builder()
        .with_path(dir.with_file_name("from-code.otlp"))
        .with_span_ring(8, 256)
        .build()
        .unwrap();
    let g = file.writer().ring(RingKind::Spans).geometry();
    assert_eq!((g.num_buffers, g.buffer_size), (8, 256));
    assert_eq!(
        file.writer().ring(RingKind::Events).geometry().num_buffers,
        32
    );
}

fn run_child(envs: &[(&str, String)]) -> bool {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "env_child", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env_remove("OTEL_MMAP_FILE")
        .env_remove("SDK_MMAP_EXPORTER_FILE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.status().unwrap().success()
}

#[test]
fn sizes_and_path_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        ("OTEL_MMAP_SPAN_SLOTS", "16".to_string()),
        ("OTEL_MMAP_SPAN_SLOT_SIZE", "300".to_string()),
        ("OTEL_MMAP_LOG_SLOTS", "32".to_string()),
        ("OTEL_MMAP_LOG_SLOT_SIZE", "400".to_string()),
        ("OTEL_MMAP_METRIC_SLOTS", "64".to_string()),
        ("OTEL_MMAP_METRIC_SLOT_SIZE", "128".to_string()),
    ];
    let path = dir.path().join("from-env.otlp").display().to_string();
    let mut envs = sizes.to_vec();
    envs.push(("OTEL_MMAP_FILE", path.clone()));
    assert!(run_child(&envs));
    assert!(dir.path().join("from-code.otlp").exists());
}

#[test]
fn reference_sdk_variable_names_the_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref.otlp");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reference_child", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env_remove("OTEL_MMAP_FILE")
        .env("SDK_MMAP_EXPORTER_FILE", &path)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(path.exists());
}

#[test]
fn reference_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    MmapExporterFile::from_env().unwrap();
}

#[test]
fn writer_lock_is_held_while_the_file_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("lock.otlp"))
        .build()
        .unwrap();
    let f = std::fs::File::open(file.path()).unwrap();
    assert!(otlp_mmap_core::lock::writer_lock_held(&f).unwrap());
}
