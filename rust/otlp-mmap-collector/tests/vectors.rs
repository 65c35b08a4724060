//! Every reference vector dumps to exactly the content its manifest lists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use otlp_mmap_collector::opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::{
    Metric, metric, number_data_point,
};
use otlp_mmap_collector::opentelemetry_proto::tonic::trace::v1::Span;
use otlp_mmap_collector::{DumpOptions, INCOMPLETE_ATTRIBUTE, dump};
use serde_json::{Value, json};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/upstream-v1")
}

fn copy_vector(name: &str) -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join(format!("{name}.otlp"));
    std::fs::copy(vectors_dir().join(format!("{name}.otlp")), &dst).unwrap();
    let manifest =
        std::fs::read_to_string(vectors_dir().join(format!("{name}.expected.json"))).unwrap();
    (dir, dst, serde_json::from_str(&manifest).unwrap())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An OTLP value in the manifests' typed-JSON form.
fn value_json(v: &Option<AnyValue>) -> Value {
    use any_value::Value as V;
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(V::StringValue(s)) => json!({ "stringValue": s }),
        Some(V::BoolValue(b)) => json!({ "boolValue": b }),
        Some(V::IntValue(i)) => json!({ "intValue": i }),
        Some(V::DoubleValue(d)) => json!({ "doubleValue": d }),
        Some(V::BytesValue(b)) => json!({ "bytesValue": hex(b) }),
        Some(V::ArrayValue(a)) => {
            json!({ "arrayValue": a.values.iter().map(|x| value_json(&Some(x.clone()))).collect::<Vec<_>>() })
        }
        Some(V::KvlistValue(l)) => json!({ "kvlistValue": l.values.iter()
            .map(|kv| json!({"key": kv.key, "value": value_json(&kv.value)})).collect::<Vec<_>>() }),
        Some(V::StringValueStrindex(_)) => panic!("not produced"),
    }
}

fn attrs_json(kvs: &[KeyValue]) -> Value {
    let m: serde_json::Map<String, Value> = kvs
        .iter()
        .map(|kv| (kv.key.clone(), value_json(&kv.value)))
        .collect();
    assert_eq!(m.len(), kvs.len(), "duplicate attribute keys in {kvs:?}");
    Value::Object(m)
}

/// Spans by span id, with the resource and scope names they came under.
fn spans_by_id(d: &otlp_mmap_collector::Dump) -> BTreeMap<String, (Value, String, Span)> {
    let mut out = BTreeMap::new();
    for req in &d.traces {
        for rs in &req.resource_spans {
            let res = attrs_json(&rs.resource.as_ref().unwrap().attributes);
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().unwrap().name.clone();
                for s in &ss.spans {
                    assert!(
                        out.insert(hex(&s.span_id), (res.clone(), scope.clone(), s.clone()))
                            .is_none()
                    );
                }
            }
        }
    }
    out
}

fn check_span(got: &Span, want: &Value) {
    let id = want["span_id"].as_str().unwrap();
    assert_eq!(
        hex(&got.trace_id),
        want["trace_id"].as_str().unwrap(),
        "{id}"
    );
    assert_eq!(
        hex(&got.parent_span_id),
        want["parent_span_id"].as_str().unwrap(),
        "{id}"
    );
    assert_eq!(got.flags as u64, want["flags"].as_u64().unwrap(), "{id}");
    assert_eq!(got.name, want["name"].as_str().unwrap(), "{id}");
    assert_eq!(got.kind as i64, want["kind"].as_i64().unwrap(), "{id}");
    assert_eq!(
        got.start_time_unix_nano,
        want["start_time_unix_nano"].as_u64().unwrap(),
        "{id}"
    );
    let links = want["links"].as_array().unwrap();
    assert_eq!(got.links.len(), links.len(), "{id}");
    for (l, w) in got.links.iter().zip(links) {
        assert_eq!(hex(&l.trace_id), w["trace_id"].as_str().unwrap());
        assert_eq!(hex(&l.span_id), w["span_id"].as_str().unwrap());
        assert_eq!(l.trace_state, w["trace_state"].as_str().unwrap());
        assert_eq!(attrs_json(&l.attributes), w["attributes"]);
        assert_eq!(
            l.dropped_attributes_count as u64,
            w["dropped_attributes_count"].as_u64().unwrap()
        );
        assert_eq!(l.flags as u64, w["flags"].as_u64().unwrap());
    }
}

fn check_spans_manifest(name: &str, m: &Value) {
    let (_d, path, _) = copy_vector(name);
    let d = dump(&path, DumpOptions::default()).unwrap();
    let got = spans_by_id(&d);
    let mut expected = 0;
    for r in m["resources"].as_array().unwrap() {
        for sc in r["scopes"].as_array().unwrap() {
            for want in sc["spans"].as_array().unwrap() {
                expected += 1;
                let (res, scope, span) = got
                    .get(want["span_id"].as_str().unwrap())
                    .unwrap_or_else(|| panic!("span {} missing", want["span_id"]));
                assert_eq!(res, &r["attributes"]);
                assert_eq!(scope, sc["name"].as_str().unwrap());
                check_span(span, want);
                assert_eq!(
                    attrs_json(&span.attributes),
                    want["attributes"],
                    "{}",
                    want["span_id"]
                );
                assert_eq!(
                    span.end_time_unix_nano,
                    want["end_time_unix_nano"].as_u64().unwrap()
                );
                let st = span.status.clone().unwrap_or_default();
                assert_eq!(st.code as i64, want["status"]["code"].as_i64().unwrap());
                assert_eq!(st.message, want["status"]["message"].as_str().unwrap());
            }
        }
    }
    assert_eq!(got.len(), expected, "only the completed spans are reported");
    // Scope metadata.
    for req in &d.traces {
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().unwrap();
                let want = m["resources"][0]["scopes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["name"] == scope.name.as_str())
                    .unwrap();
                assert_eq!(scope.version, want["version"].as_str().unwrap());
                assert_eq!(attrs_json(&scope.attributes), want["attributes"]);
            }
        }
    }
}

#[test]
fn spans_vector() {
    let (_d, _p, m) = copy_vector("spans");
    check_spans_manifest("spans", &m);
}

#[test]
fn spans_vector_unended_span_only_as_incomplete_when_asked() {
    let (_d, path, m) = copy_vector("spans");
    let d = dump(
        &path,
        DumpOptions {
            include_incomplete: true,
            ..DumpOptions::default()
        },
    )
    .unwrap();
    let got = spans_by_id(&d);
    let unended = m["unended_spans"]["spans"].as_array().unwrap();
    assert_eq!(unended.len(), 1);
    assert_eq!(got.len(), 17);
    for want in unended {
        let (_, scope, span) = &got[want["span_id"].as_str().unwrap()];
        assert_eq!(scope, want["scope"].as_str().unwrap());
        check_span(span, want);
        let mut attrs = attrs_json(&span.attributes);
        assert_eq!(
            attrs.as_object_mut().unwrap().remove(INCOMPLETE_ATTRIBUTE),
            Some(json!({"boolValue": true}))
        );
        attrs
            .as_object_mut()
            .unwrap()
            .remove("otlp_mmap.incomplete.reason");
        assert_eq!(attrs, want["attributes"]);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
}

#[test]
fn wrap_vector() {
    let (_d, _p, m) = copy_vector("wrap-2p32");
    check_spans_manifest("wrap-2p32", &m);
    assert_eq!(m["counts"]["completed_spans_in_unread_part"], 24);
}

#[test]
fn logs_vector() {
    let (_d, path, m) = copy_vector("logs");
    let d = dump(&path, DumpOptions::default()).unwrap();
    let mut got = Vec::new();
    for req in &d.logs {
        for rl in &req.resource_logs {
            assert_eq!(
                attrs_json(&rl.resource.as_ref().unwrap().attributes),
                m["resources"][0]["attributes"]
            );
            for sl in &rl.scope_logs {
                for lr in &sl.log_records {
                    got.push((sl.scope.clone().unwrap(), lr.clone()));
                }
            }
        }
    }
    let mut n = 0;
    for sc in m["resources"][0]["scopes"].as_array().unwrap() {
        let recs = sc["log_records"].as_array().unwrap();
        let mine: Vec<_> = got
            .iter()
            .filter(|(s, _)| s.name == sc["name"].as_str().unwrap())
            .collect();
        assert_eq!(mine.len(), recs.len(), "scope {}", sc["name"]);
        for ((scope, lr), w) in mine.iter().zip(recs) {
            n += 1;
            let seq = &w["seq"];
            assert_eq!(scope.version, sc["version"].as_str().unwrap());
            assert_eq!(
                lr.time_unix_nano,
                w["time_unix_nano"].as_u64().unwrap(),
                "seq {seq}"
            );
            assert_eq!(
                lr.severity_number as i64,
                w["severity_number"].as_i64().unwrap(),
                "seq {seq}"
            );
            assert_eq!(
                lr.severity_text,
                w["severity_text"].as_str().unwrap(),
                "seq {seq}"
            );
            assert_eq!(
                lr.body.is_some(),
                w["body_present"].as_bool().unwrap(),
                "seq {seq}"
            );
            if lr.body.is_some() {
                assert_eq!(value_json(&lr.body), w["body"], "seq {seq}");
            }
            assert_eq!(
                lr.event_name,
                w["event_name"].as_str().unwrap(),
                "seq {seq}"
            );
            assert_eq!(
                hex(&lr.trace_id),
                w["trace_id"].as_str().unwrap(),
                "seq {seq}"
            );
            assert_eq!(
                hex(&lr.span_id),
                w["span_id"].as_str().unwrap(),
                "seq {seq}"
            );
            assert_eq!(lr.flags as u64, w["flags"].as_u64().unwrap(), "seq {seq}");
            assert_eq!(attrs_json(&lr.attributes), w["attributes"], "seq {seq}");
        }
    }
    assert_eq!(n, 29);
    assert_eq!(got.len(), 29);
}

fn find_point<'a, T>(points: &'a [T], attrs: impl Fn(&T) -> &[KeyValue], want: &Value) -> &'a T {
    points
        .iter()
        .find(|p| attrs_json(attrs(p)) == want["attributes"])
        .unwrap_or_else(|| panic!("no point for {}", want["attributes"]))
}

#[test]
fn metrics_vector() {
    let (_d, path, m) = copy_vector("metrics");
    let start = m["layout"]["header"]["start_time_unix_nano"]
        .as_u64()
        .unwrap();
    let d = dump(&path, DumpOptions::default()).unwrap();
    assert_eq!(d.metrics.len(), 1);
    let mut metrics: Vec<(String, Metric)> = Vec::new();
    for rm in &d.metrics[0].resource_metrics {
        assert_eq!(
            attrs_json(&rm.resource.as_ref().unwrap().attributes),
            m["resources"][0]["attributes"]
        );
        for sm in &rm.scope_metrics {
            for mt in &sm.metrics {
                metrics.push((sm.scope.as_ref().unwrap().name.clone(), mt.clone()));
            }
        }
    }
    let mut checked = 0;
    for sc in m["resources"][0]["scopes"].as_array().unwrap() {
        for w in sc["metrics"].as_array().unwrap() {
            let (scope, got) = metrics
                .iter()
                .find(|(_, g)| g.name == w["name"].as_str().unwrap())
                .unwrap();
            assert_eq!(scope, sc["name"].as_str().unwrap());
            assert_eq!(got.description, w["description"].as_str().unwrap());
            assert_eq!(got.unit, w["unit"].as_str().unwrap());
            let wpoints = w["data_points"].as_array().unwrap();
            match got.data.as_ref().unwrap() {
                metric::Data::Sum(s) => {
                    assert_eq!(w["type"], "sum");
                    assert_eq!(
                        s.aggregation_temporality as i64,
                        w["aggregation_temporality"].as_i64().unwrap()
                    );
                    assert_eq!(s.is_monotonic, w["is_monotonic"].as_bool().unwrap());
                    assert_eq!(s.data_points.len(), wpoints.len());
                    for wp in wpoints {
                        let p = find_point(&s.data_points, |p| &p.attributes, wp);
                        if s.aggregation_temporality == 2 {
                            assert_eq!(p.start_time_unix_nano, start);
                        }
                        match (p.value.unwrap(), w["value_type"].as_str().unwrap()) {
                            (number_data_point::Value::AsInt(i), "int") => {
                                assert_eq!(i, wp["sum"].as_i64().unwrap())
                            }
                            (number_data_point::Value::AsDouble(x), "double") => {
                                assert_eq!(x, wp["sum"].as_f64().unwrap())
                            }
                            other => panic!("{}: wrong value type {other:?}", w["name"]),
                        }
                        checked += 1;
                    }
                }
                metric::Data::Gauge(g) => {
                    assert_eq!(w["type"], "gauge");
                    for wp in wpoints {
                        let p = find_point(&g.data_points, |p| &p.attributes, wp);
                        let v = match p.value.unwrap() {
                            number_data_point::Value::AsDouble(x) => x,
                            number_data_point::Value::AsInt(i) => i as f64,
                        };
                        assert_eq!(v, wp["last_value"].as_f64().unwrap());
                        assert_eq!(
                            p.time_unix_nano,
                            wp["last_time_unix_nano"].as_u64().unwrap()
                        );
                        checked += 1;
                    }
                }
                metric::Data::Histogram(h) => {
                    assert_eq!(w["type"], "histogram");
                    for wp in wpoints {
                        let p = find_point(&h.data_points, |p| &p.attributes, wp);
                        assert_eq!(p.count, wp["count"].as_u64().unwrap());
                        assert_eq!(p.sum, wp["sum"].as_f64());
                        assert_eq!(p.min, wp["min"].as_f64());
                        assert_eq!(p.max, wp["max"].as_f64());
                        let counts: Vec<u64> = wp["bucket_counts"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_u64().unwrap())
                            .collect();
                        assert_eq!(p.bucket_counts, counts);
                        assert_eq!(json!(p.explicit_bounds), w["bucket_boundaries"]);
                        checked += 1;
                    }
                }
                metric::Data::ExponentialHistogram(h) => {
                    assert_eq!(w["type"], "exponential_histogram");
                    for wp in wpoints {
                        let p = find_point(&h.data_points, |p| &p.attributes, wp);
                        assert_eq!(p.count, wp["count"].as_u64().unwrap());
                        assert_eq!(p.sum, wp["sum"].as_f64());
                        assert_eq!(p.min, wp["min"].as_f64());
                        assert_eq!(p.max, wp["max"].as_f64());
                        assert_eq!(p.zero_count, wp["zero_count"].as_u64().unwrap());
                        let pos: u64 = p.positive.as_ref().unwrap().bucket_counts.iter().sum();
                        let neg: u64 = p.negative.as_ref().unwrap().bucket_counts.iter().sum();
                        assert_eq!(pos, wp["positive_count"].as_u64().unwrap());
                        assert_eq!(neg, wp["negative_count"].as_u64().unwrap());
                        assert!(
                            p.positive.as_ref().unwrap().bucket_counts.len()
                                <= w["max_buckets"].as_u64().unwrap() as usize
                        );
                        assert!(p.scale <= w["max_scale"].as_i64().unwrap() as i32);
                        checked += 1;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(checked, 18);
    assert_eq!(metrics.len(), 6);
}

#[test]
fn dump_does_not_consume_unless_asked() {
    let (_d, path, _m) = copy_vector("logs");
    let strip = |mut d: otlp_mmap_collector::Dump| {
        for r in &mut d.logs {
            for rl in &mut r.resource_logs {
                for sl in &mut rl.scope_logs {
                    sl.log_records
                        .iter_mut()
                        .for_each(|l| l.observed_time_unix_nano = 0);
                }
            }
        }
        d
    };
    let first = strip(dump(&path, DumpOptions::default()).unwrap());
    let second = strip(dump(&path, DumpOptions::default()).unwrap());
    assert!(!first.logs.is_empty());
    assert_eq!(first.logs, second.logs);
    let consumed = dump(
        &path,
        DumpOptions {
            consume: true,
            ..DumpOptions::default()
        },
    )
    .unwrap();
    assert_eq!(consumed.logs.len(), first.logs.len());
    assert!(dump(&path, DumpOptions::default()).unwrap().logs.is_empty());
    // The JSON form: camelCase names, hex ids, 64-bit integers as strings.
    let (_d2, spans, _) = copy_vector("spans");
    let text = dump(&spans, DumpOptions::default())
        .unwrap()
        .to_json_lines()
        .unwrap();
    assert!(
        text.contains("\"traceId\":\"76656374726163659a0b31c4"),
        "{}",
        &text[..300]
    );
    assert!(text.contains("\"startTimeUnixNano\":\"1712345678"));
}
