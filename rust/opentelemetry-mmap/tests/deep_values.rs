//! Values nested deeper than the encoder writes (`AnyValue` arrays and maps
//! inside each other, as an application may hand over) are cut, not a crash.

mod common;

use common::{read_all, run_child_test};
use opentelemetry::Key;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider};
use opentelemetry_mmap::{MmapExporterFile, MmapLoggerProvider};
use otlp_mmap_core::proto::any_value::Value as V;

/// Set in the child process of the test below.
const DEEP_CHILD: &str = "OTLP_MMAP_TEST_DEEP_VALUE_CHILD";

/// A value `depth` levels deep: lists and maps in turn around an integer.
fn nested(depth: usize) -> AnyValue {
    let mut v = AnyValue::Int(7);
    for level in 0..depth {
        v = if level % 2 == 0 {
            AnyValue::ListAny(Box::new(vec![v]))
        } else {
            AnyValue::Map(Box::new([(Key::from("k"), v)].into_iter().collect()))
        };
    }
    v
}

/// A value `depth` lists deep around an integer (the application's own drop
/// of it recurses too, through less stack than a map's).
fn lists(depth: usize) -> AnyValue {
    let mut v = AnyValue::Int(7);
    for _ in 0..depth {
        v = AnyValue::ListAny(Box::new(vec![v]));
    }
    v
}

/// Levels of arrays and maps in a decoded value.
fn depth_of(v: &Option<V>) -> usize {
    match v {
        Some(V::ArrayValue(a)) => 1 + a.values.first().map_or(0, |v| depth_of(&v.value)),
        Some(V::KvlistValue(m)) => {
            1 + m
                .values
                .first()
                .map_or(0, |kv| kv.value.as_ref().map_or(0, |v| depth_of(&v.value)))
        }
        _ => 0,
    }
}

/// The child: a log record whose body is 5,000 lists deep, emitted on a
/// thread with a 2 MiB stack (the application's own drop of the value
/// copes with that depth; the encoder used to recurse past the stack), and
/// attributes of lists and maps 40 and 3 levels deep.
#[test]
fn deep_value_child() {
    if std::env::var_os(DEEP_CHILD).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("f.otlp"))
        .build()
        .unwrap();
    let logger = MmapLoggerProvider::new(&file).logger("l");
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut rec = logger.create_log_record();
            rec.set_body(lists(5_000));
            rec.add_attribute("maps", nested(40));
            rec.add_attribute("shallow", nested(3));
            logger.emit(rec);
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(file.drop_stats(), Default::default());
    let r = read_all(file.path());
    assert_eq!(r.events.len(), 1);
    let body = r.events[0].body.as_ref().unwrap();
    // The top level and 32 more: arrays and maps deeper are written empty.
    assert_eq!(depth_of(&body.value), 33);
    let maps = r.events[0].attributes[0].value.as_ref().unwrap();
    assert_eq!(depth_of(&maps.value), 33);
    // A value within the limit is written whole.
    let shallow = r.events[0].attributes[1].value.as_ref().unwrap();
    assert_eq!(depth_of(&shallow.value), 3);
}

#[test]
fn a_value_nested_thousands_deep_is_cut_not_a_crash() {
    run_child_test("deep_value_child", DEEP_CHILD);
}
