//! `MmapLayer` beyond the example's request (`tests/tracing.rs`): the
//! `otel.*` fields, links, parents given explicitly or by an OpenTelemetry
//! span, value types, long messages, and a span left open by a crash; read
//! back with the collector crate's dump.

use std::collections::HashMap;

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_mmap::tracing_layer::MAX_FORMATTED_VALUE;
use opentelemetry_mmap::{MmapExporterFile, MmapLayer, MmapLoggerProvider, MmapTracerProvider};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use otlp_mmap_collector::INCOMPLETE_ATTRIBUTE;
use otlp_mmap_collector::dump::{Dump, DumpOptions, dump};
use tracing_subscriber::layer::SubscriberExt;

fn attrs(kvs: &[KeyValue]) -> HashMap<String, Value> {
    kvs.iter()
        .filter_map(|kv| {
            let v = kv.value.as_ref().and_then(|v: &AnyValue| v.value.clone())?;
            Some((kv.key.clone(), v))
        })
        .collect()
}

fn spans(d: &Dump) -> Vec<&Span> {
    d.traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect()
}

fn logs(d: &Dump) -> Vec<&LogRecord> {
    d.logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .collect()
}

/// Runs `f` with an `MmapLayer` over a new file, and dumps the file.
fn with_layer(f: impl FnOnce(&MmapExporterFile)) -> Dump {
    with_layer_dump(f, DumpOptions::default())
}

fn with_layer_dump(f: impl FnOnce(&MmapExporterFile), options: DumpOptions) -> Dump {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("layer.otlp"))
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(MmapLayer::new(&file));
    tracing::subscriber::with_default(subscriber, || f(&file));
    assert_eq!(file.drop_stats(), Default::default());
    dump(file.path(), options).unwrap()
}

#[test]
fn otel_fields_name_kind_and_status_the_span_and_are_not_attributes() {
    let d = with_layer(|_| {
        let span = tracing::info_span!(
            "handler",
            otel.name = "GET /items",
            otel.kind = "Server",
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            route = "/items",
        );
        span.record("otel.status_description", "no such item");
        span.record("otel.status_code", "ERROR");
    });
    let spans = spans(&d);
    assert_eq!(spans.len(), 1);
    let s = spans[0];
    assert_eq!(s.name, "GET /items");
    assert_eq!(s.kind, SpanKind::Server as i32);
    let status = s.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "no such item");
    let a = attrs(&s.attributes);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a["route"], Value::StringValue("/items".into()));
}

#[test]
fn follows_from_is_a_link_and_an_explicit_parent_is_the_parent() {
    let d = with_layer(|_| {
        let first = tracing::info_span!("first");
        let other = tracing::info_span!("other");
        let _inside_other = other.enter();
        // Created inside `other`, but its parent is `first`.
        let child = tracing::info_span!(parent: &first, "child");
        child.follows_from(&other);
    });
    let spans = spans(&d);
    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), *s)).collect();
    let (first, other, child) = (by_name["first"], by_name["other"], by_name["child"]);
    assert_eq!(child.parent_span_id, first.span_id);
    assert_eq!(child.trace_id, first.trace_id);
    assert_ne!(other.trace_id, first.trace_id, "two roots, two traces");
    assert_eq!(child.links.len(), 1);
    assert_eq!(child.links[0].span_id, other.span_id);
    assert_eq!(child.links[0].trace_id, other.trace_id);
}

#[test]
fn a_tracing_span_inside_an_opentelemetry_span_is_its_child() {
    let d = with_layer(|file| {
        let tracer = MmapTracerProvider::new(file).tracer("api");
        tracer.in_span("api-span", |cx| {
            let api = cx.span().span_context().clone();
            let span = tracing::info_span!("tracing-span");
            let _entered = span.enter();
            tracing::info!("inside");
            drop(api);
        });
    });
    let spans = spans(&d);
    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), *s)).collect();
    let (api, inner) = (by_name["api-span"], by_name["tracing-span"]);
    assert_eq!(inner.parent_span_id, api.span_id);
    assert_eq!(inner.trace_id, api.trace_id);
    let logs = logs(&d);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].span_id, inner.span_id);
}

/// OpenTelemetry API work inside and after an entered `tracing` span: an
/// API span and a log record inside it, an API span after it.
fn api_work_inside_an_entered_span(file: &MmapExporterFile) {
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    let tracer = MmapTracerProvider::new(file).tracer("api");
    let logger = MmapLoggerProvider::new(file).logger("api");
    let span = tracing::info_span!("tracing-span");
    {
        let _entered = span.enter();
        tracer.start("api-inside").end();
        let mut record = logger.create_log_record();
        record.set_body("api log inside".into());
        logger.emit(record);
    }
    tracer.start("api-after").end();
}

#[test]
fn an_entered_tracing_span_is_the_opentelemetry_context_inside_it() {
    let d = with_layer(api_work_inside_an_entered_span);
    let spans = spans(&d);
    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), *s)).collect();
    let (outer, inside, after) = (
        by_name["tracing-span"],
        by_name["api-inside"],
        by_name["api-after"],
    );
    assert_eq!(inside.parent_span_id, outer.span_id);
    assert_eq!(inside.trace_id, outer.trace_id);
    // Exited: the context before it is current again.
    assert!(after.parent_span_id.is_empty());
    assert_ne!(after.trace_id, outer.trace_id);
    let logs = logs(&d);
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (&logs[0].trace_id, &logs[0].span_id),
        (&outer.trace_id, &outer.span_id)
    );
}

#[test]
fn without_context_activation_api_work_does_not_see_the_tracing_span() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("off.otlp"))
        .build()
        .unwrap();
    let layer = MmapLayer::new(&file).with_context_activation(false);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || api_work_inside_an_entered_span(&file));
    let d = dump(file.path(), DumpOptions::default()).unwrap();
    let spans = spans(&d);
    let inside = spans.iter().find(|s| s.name == "api-inside").unwrap();
    assert!(inside.parent_span_id.is_empty());
    assert!(logs(&d)[0].span_id.is_empty());
}

#[test]
fn spans_exited_out_of_order_restore_the_context_before_them() {
    use opentelemetry::Context;
    use opentelemetry::trace::TraceContextExt as _;
    let current_span = || {
        let cx = Context::current();
        cx.has_active_span()
            .then(|| cx.span().span_context().span_id().to_bytes().to_vec())
    };
    let mut seen = Vec::new();
    let d = with_layer(|_| {
        let (a, b) = (tracing::info_span!("a"), tracing::info_span!("b"));
        let entered_a = a.enter();
        seen.push(("a", current_span()));
        let entered_b = b.enter();
        seen.push(("a, b", current_span()));
        drop(entered_a);
        seen.push(("b", current_span()));
        drop(entered_b);
        seen.push(("none", current_span()));
        // Entered again: its context again.
        a.in_scope(|| seen.push(("a again", current_span())));
    });
    let spans = spans(&d);
    let id = |name: &str| {
        Some(
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap()
                .span_id
                .clone(),
        )
    };
    assert_eq!(
        seen,
        vec![
            ("a", id("a")),
            ("a, b", id("b")),
            ("b", id("b")),
            ("none", None),
            ("a again", id("a")),
        ]
    );
}

#[test]
fn a_span_with_an_explicit_parent_takes_the_parents_context_not_the_current_one() {
    use opentelemetry::Context;
    use opentelemetry::baggage::BaggageExt as _;
    use opentelemetry::trace::TraceContextExt as _;
    let user =
        || Context::map_current(|cx| cx.baggage().get("user").map(|v| v.as_str().to_string()));
    let mut seen = Vec::new();
    let d = with_layer(|_| {
        let request_b = {
            let _b =
                Context::current_with_baggage([opentelemetry::KeyValue::new("user", "B")]).attach();
            tracing::info_span!("request b")
        };
        // Another request's context is current on this thread.
        let _a =
            Context::current_with_baggage([opentelemetry::KeyValue::new("user", "A")]).attach();
        let notify = tracing::info_span!(parent: &request_b, "notify");
        notify.in_scope(|| {
            let id = Context::current().span().span_context().span_id();
            seen.push((user(), id.to_bytes().to_vec()));
        });
        request_b.in_scope(|| seen.push((user(), vec![])));
    });
    let spans = spans(&d);
    let notify = spans.iter().find(|s| s.name == "notify").unwrap();
    assert_eq!(seen[0], (Some("B".to_string()), notify.span_id.clone()));
    assert_eq!(seen[1].0.as_deref(), Some("B"));
}

#[test]
fn a_child_span_keeps_what_was_attached_inside_its_entered_parent() {
    use opentelemetry::Context;
    use opentelemetry::baggage::BaggageExt as _;
    let user =
        || Context::map_current(|cx| cx.baggage().get("user").map(|v| v.as_str().to_string()));
    let mut seen = None;
    with_layer(|_| {
        let request = tracing::info_span!("request");
        request.in_scope(|| {
            let _user =
                Context::current_with_baggage([opentelemetry::KeyValue::new("user", "x")]).attach();
            tracing::info_span!("db").in_scope(|| seen = Some(user()));
        });
    });
    assert_eq!(seen, Some(Some("x".to_string())));
}

#[test]
fn a_span_entered_where_telemetry_is_suppressed_keeps_it_suppressed() {
    use opentelemetry::Context;
    let mut inside = None;
    let d = with_layer(|_| {
        let span = tracing::info_span!("made before");
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        span.in_scope(|| {
            inside = Some(Context::is_current_telemetry_suppressed());
            tracing::info!("not written: an exporter's own work");
        });
    });
    assert_eq!(inside, Some(true));
    assert!(logs(&d).is_empty());
}

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`
struct Item {
    id: u32,
}

#[test]
fn values_keep_their_types_and_formatted_ones_are_bounded() {
    let long = "é".repeat(MAX_FORMATTED_VALUE); // 2 bytes each
    let err = std::io::Error::other("disk full");
    let d = with_layer(|_| {
        tracing::warn!(
            small = 7_u64,
            big = u64::MAX,
            ratio = 0.5,
            ok = false,
            item = ?Item { id: 3 },
            error = &err as &(dyn std::error::Error + 'static),
            "{long}"
        );
    });
    let logs = logs(&d);
    assert_eq!(logs.len(), 1);
    let l = logs[0];
    assert_eq!(l.severity_number, 13);
    assert_eq!(l.severity_text, "WARN");
    let body = match l.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    // Cut at a character boundary, within the bound.
    assert_eq!(body, "é".repeat(MAX_FORMATTED_VALUE / 2));
    let a = attrs(&l.attributes);
    assert_eq!(a["small"], Value::IntValue(7));
    assert_eq!(a["big"], Value::StringValue(u64::MAX.to_string()));
    assert_eq!(a["ratio"], Value::DoubleValue(0.5));
    assert_eq!(a["ok"], Value::BoolValue(false));
    assert_eq!(a["item"], Value::StringValue("Item { id: 3 }".into()));
    assert_eq!(a["error"], Value::StringValue("disk full".into()));
    assert!(!a.contains_key("message"));
}

#[test]
fn a_span_left_open_by_a_crash_is_in_the_file_from_its_start() {
    let d = with_layer_dump(
        |_| {
            let span = tracing::info_span!("in flight", job = 1_i64);
            let entered = span.enter();
            tracing::info!("working");
            // The process dies here: the span never closes.
            std::mem::forget(entered);
            std::mem::forget(span);
        },
        DumpOptions {
            include_incomplete: true,
            ..DumpOptions::default()
        },
    );
    let spans = spans(&d);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "in flight");
    let a = attrs(&spans[0].attributes);
    assert_eq!(a["job"], Value::IntValue(1));
    // Never ended: the reader reports it as an incomplete span.
    assert_eq!(a[INCOMPLETE_ATTRIBUTE], Value::BoolValue(true), "{a:?}");
    assert_eq!(logs(&d)[0].span_id, spans[0].span_id);
}

/// A `Debug` that panics, or fails, after writing a little.
struct Faulty {
    panics: bool,
}

impl std::fmt::Debug for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("partial")?;
        if self.panics {
            panic!("a Debug that panics");
        }
        Err(std::fmt::Error)
    }
}

#[test]
fn a_debug_that_panics_or_fails_never_reaches_the_application() {
    let d = with_layer(|_| {
        let span = tracing::info_span!(
            "s",
            bad = ?Faulty { panics: true },
            otel.status_code = "error",
            otel.status_description = ?Faulty { panics: false },
            late = tracing::field::Empty,
        );
        span.record("late", tracing::field::debug(Faulty { panics: true }));
        drop(span);
        tracing::info!(bad = ?Faulty { panics: true }, "{:?}", Faulty { panics: false });
    });
    let spans = spans(&d);
    assert_eq!(spans.len(), 1);
    let a = attrs(&spans[0].attributes);
    assert_eq!(a["bad"], Value::StringValue("partial".into()));
    assert_eq!(a["late"], Value::StringValue("partial".into()));
    let status = spans[0].status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "partial");
    let logs = logs(&d);
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].body.as_ref().and_then(|b| b.value.clone()),
        Some(Value::StringValue("partial".into()))
    );
}

#[test]
fn a_description_alone_is_an_error_and_other_otel_fields_are_attributes() {
    let d = with_layer(|_| {
        let _s = tracing::info_span!("s", otel.status_description = "gone", otel.library = "mine",);
        tracing::info!(otel.name = "kept on an event", "e");
    });
    let spans = spans(&d);
    let status = spans[0].status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "gone");
    let a = attrs(&spans[0].attributes);
    assert_eq!(a["otel.library"], Value::StringValue("mine".into()));
    assert!(!a.contains_key("otel.status_description"));
    assert_eq!(
        attrs(&logs(&d)[0].attributes)["otel.name"],
        Value::StringValue("kept on an event".into())
    );
}

#[test]
fn two_layers_in_one_subscriber_keep_their_own_ids() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| {
        MmapExporterFile::builder()
            .with_path(dir.path().join(name))
            .build()
            .unwrap()
    };
    let (a, b) = (file("a.otlp"), file("b.otlp"));
    let subscriber = tracing_subscriber::registry()
        .with(MmapLayer::new(&a))
        .with(MmapLayer::new(&b));
    tracing::subscriber::with_default(subscriber, || {
        let parent = tracing::info_span!("parent");
        let _p = parent.enter();
        let child = tracing::info_span!("child");
        let _c = child.enter();
        tracing::info!("inside");
    });
    let mut ids = vec![];
    for f in [&a, &b] {
        assert_eq!(f.drop_stats(), Default::default());
        let d = dump(f.path(), DumpOptions::default()).unwrap();
        let spans = spans(&d);
        let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), *s)).collect();
        let (parent, child) = (by_name["parent"], by_name["child"]);
        assert_eq!(child.parent_span_id, parent.span_id);
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(logs(&d)[0].span_id, child.span_id);
        ids.push(child.span_id.clone());
    }
    assert_ne!(ids[0], ids[1], "each file has its own ids");
}

#[test]
fn records_too_large_for_their_slots_keep_the_span_and_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("small.otlp"))
        .with_span_ring(64, 512)
        .with_log_ring(64, 512)
        .build()
        .unwrap();
    let long = |c: char| format!("{:?}", c.to_string().repeat(400));
    let subscriber = tracing_subscriber::registry().with(MmapLayer::new(&file));
    tracing::subscriber::with_default(subscriber, || {
        // Three values of 256 bytes each: not in one 512-byte slot.
        let span = tracing::info_span!("big", a = %long('a'), b = %long('b'), c = %long('c'));
        drop(span);
        tracing::info!(a = %long('a'), b = %long('b'), "the message");
    });
    // Written again smaller, nothing was lost: nothing is counted.
    assert_eq!(file.drop_stats(), Default::default());
    let d = dump(file.path(), DumpOptions::default()).unwrap();
    let spans = spans(&d);
    assert_eq!(spans.len(), 1);
    let a = attrs(&spans[0].attributes);
    assert_eq!(a.len(), 3, "each attribute in a record of its own: {a:?}");
    let logs = logs(&d);
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].body.as_ref().and_then(|b| b.value.clone()),
        Some(Value::StringValue("the message".into()))
    );
}

#[test]
fn a_per_layer_filter_gives_a_span_its_nearest_enabled_ancestor() {
    use tracing_subscriber::Layer;
    let d = with_layer_dump(
        |file| {
            let layer =
                MmapLayer::new(file).with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    m.name() != "hidden"
                }));
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                let root = tracing::info_span!("root");
                let hidden = tracing::info_span!(parent: &root, "hidden");
                let _child = tracing::info_span!(parent: &hidden, "child");
            });
        },
        DumpOptions::default(),
    );
    let spans = spans(&d);
    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), *s)).collect();
    assert!(!by_name.contains_key("hidden"));
    assert_eq!(by_name["child"].parent_span_id, by_name["root"].span_id);
}

#[test]
fn a_remote_parent_is_marked_remote_and_suppressed_telemetry_is_not_written() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let d = with_layer(|_| {
        let remote = SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        );
        let _cx = opentelemetry::Context::current()
            .with_remote_span_context(remote)
            .attach();
        let _s = tracing::info_span!("from a remote parent");
        {
            let _quiet = opentelemetry::Context::enter_telemetry_suppressed_scope();
            let _t = tracing::info_span!("suppressed");
            tracing::info!("suppressed");
        }
    });
    let spans = spans(&d);
    assert_eq!(spans.len(), 1, "{spans:?}");
    let s = spans[0];
    assert_eq!(s.parent_span_id, 9u64.to_be_bytes());
    assert_eq!(s.trace_id, 7u128.to_be_bytes());
    assert_eq!(s.flags & 0x300, 0x300, "parent known to be remote");
    assert!(logs(&d).is_empty());
}
