//! The `otlp-mmap` binary: inspect, dump and write-sample, and clear errors.

use std::process::Command;

fn otlp_mmap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_otlp-mmap"))
}

#[test]
fn write_sample_then_inspect_and_dump() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.otlp");
    let out = otlp_mmap()
        .args(["write-sample", "--count", "5"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = otlp_mmap().arg("inspect").arg(&file).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("version:     1"), "{text}");
    assert!(text.contains("writer_index           10"), "{text}");
    assert!(text.contains("entries"), "{text}");

    let out = otlp_mmap().arg("dump").arg(&file).output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "traces, logs, metrics");
    let spans = &lines[0]["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(
        spans.as_array().unwrap().len(),
        5,
        "the never-ended span is not reported"
    );
    assert_eq!(
        lines[1]["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let point =
        &lines[2]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0];
    assert_eq!(point["asInt"], "5");

    let out = otlp_mmap()
        .args(["dump", "--signal", "traces", "--include-incomplete"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("never ends") && text.contains("otlp_mmap.incomplete"),
        "{text}"
    );
}

#[test]
fn bad_files_give_a_clear_error_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.otlp");
    std::fs::write(&short, b"not an otlp-mmap file").unwrap();
    for cmd in ["inspect", "dump"] {
        let out = otlp_mmap().arg(cmd).arg(&short).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("shorter than"), "{err}");
    }
    let mut bad = vec![0u8; 4096];
    bad[0] = 7; // version 7
    let v7 = dir.path().join("v7.otlp");
    std::fs::write(&v7, &bad).unwrap();
    let out = otlp_mmap().arg("inspect").arg(&v7).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unsupported format version 7")
    );
    let out = otlp_mmap()
        .arg("inspect")
        .arg(dir.path().join("missing.otlp"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}
