//! `DictionaryCache`: resolves dictionary refs into OTLP values, once per ref.
//!
//! Entries never change once written, so every decoded entry is cached by its
//! ref. A ref that cannot be resolved (past the end, bad length, bad protobuf)
//! makes that one field empty and is counted; it never fails a batch.

use rustc_hash::FxHashMap as HashMap;

use opentelemetry_proto::tonic::common::v1 as otlp_common;
use opentelemetry_proto::tonic::resource::v1 as otlp_resource;
use otlp_mmap_core::tags::{instrumentation_scope as scope, resource};
use otlp_mmap_core::view::{AnyValueView, Fields, KeyValueRefView, Repeated};
use otlp_mmap_core::{MmapReader, proto};
use prost::Message;

/// Deepest nesting of values followed (arrays, kvlists, value refs); deeper
/// values are cut off and counted as bad refs, so a ref cycle cannot loop.
const MAX_DEPTH: usize = 16;

/// Most [`units`] that copies of already resolved value refs may add to one
/// value ref's resolution (refs nested in it included). Beyond it the ref
/// resolves to an empty value and is counted as a bad ref, so refs that
/// multiply each other cannot expand a few bytes of dictionary into
/// gigabytes. The bytes of an entry itself are bounded by the file.
pub const MAX_REF_EXPANSION: usize = 1 << 16;

/// Size of a value: one per value plus one per 64 bytes of string or bytes.
fn units(v: &otlp_common::AnyValue) -> usize {
    use otlp_common::any_value::Value as O;
    1 + match &v.value {
        Some(O::StringValue(s)) => s.len() / 64,
        Some(O::BytesValue(b)) => b.len() / 64,
        Some(O::ArrayValue(a)) => a.values.iter().map(units).sum(),
        Some(O::KvlistValue(l)) => l
            .values
            .iter()
            .map(|kv| 1 + kv.key.len() / 64 + kv.value.as_ref().map_or(0, units))
            .sum(),
        _ => 0,
    }
}

/// A scope as the dictionary describes it: the OTLP scope plus the ref of its resource.
#[derive(Debug, Clone, Default)]
pub struct ScopeEntry {
    pub scope: otlp_common::InstrumentationScope,
    pub resource_ref: i64,
}

/// Decoded dictionary entries of one file, by ref.
#[derive(Debug, Default)]
pub struct DictionaryCache {
    strings: HashMap<i64, Option<String>>,
    /// Resolved value refs with their size in [`units`].
    values: HashMap<i64, Option<(otlp_common::AnyValue, usize)>>,
    /// What copies of cached values may still cost in the current
    /// outermost value-ref resolution, and how deep resolutions are nested.
    ref_budget: usize,
    ref_nesting: usize,
    scopes: HashMap<i64, ScopeEntry>,
    resources: HashMap<i64, otlp_resource::Resource>,
    metrics: HashMap<i64, Option<proto::MetricRef>>,
    /// Refs that could not be resolved.
    pub bad_refs: u64,
}

impl DictionaryCache {
    /// The string at `reference` ("" for ref 0 or a bad ref).
    pub fn string(&mut self, file: &MmapReader, reference: i64) -> String {
        self.string_ref(file, reference)
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// The string at `reference`, borrowed from the cache.
    pub fn string_ref(&mut self, file: &MmapReader, reference: i64) -> Option<&str> {
        if reference == 0 {
            return None;
        }
        if !self.strings.contains_key(&reference) {
            let s = match file.entry(reference) {
                Ok(b) => match std::str::from_utf8(b) {
                    Ok(s) => Some(s.to_owned()),
                    Err(_) => Some(String::from_utf8_lossy(b).into_owned()),
                },
                Err(_) => None,
            };
            if s.is_none() {
                self.bad_refs += 1;
            }
            self.strings.insert(reference, s);
        }
        self.strings.get(&reference).and_then(|s| s.as_deref())
    }

    /// The metric definition at `reference`.
    pub fn metric(&mut self, file: &MmapReader, reference: i64) -> Option<&proto::MetricRef> {
        if !self.metrics.contains_key(&reference) {
            let m = self.decode::<proto::MetricRef>(file, reference);
            self.metrics.insert(reference, m);
        }
        self.metrics.get(&reference).and_then(|m| m.as_ref())
    }

    /// The scope at `reference` (an empty scope for ref 0 or a bad ref).
    pub fn scope(&mut self, file: &MmapReader, reference: i64) -> ScopeEntry {
        if let Some(s) = self.scopes.get(&reference) {
            return s.clone();
        }
        let mut entry = ScopeEntry::default();
        if let Some(bytes) = self.entry(file, reference) {
            let (mut name, mut version) = (0, 0);
            for f in Fields::new(bytes) {
                match f {
                    Ok((scope::NAME_REF, w)) => name = w.varint() as i64,
                    Ok((scope::VERSION_REF, w)) => version = w.varint() as i64,
                    Ok((scope::DROPPED_ATTRIBUTES_COUNT, w)) => {
                        entry.scope.dropped_attributes_count = w.varint() as u32
                    }
                    Ok((scope::RESOURCE_REF, w)) => entry.resource_ref = w.varint() as i64,
                    Ok(_) => {}
                    Err(_) => {
                        self.bad_refs += 1;
                        break;
                    }
                }
            }
            entry.scope.name = self.string(file, name);
            entry.scope.version = self.string(file, version);
            entry.scope.attributes = self.attributes(file, Repeated::new(bytes, scope::ATTRIBUTES));
        }
        self.scopes.insert(reference, entry.clone());
        entry
    }

    /// The resource at `reference` (an empty resource for ref 0 or a bad ref).
    pub fn resource(&mut self, file: &MmapReader, reference: i64) -> otlp_resource::Resource {
        if let Some(r) = self.resources.get(&reference) {
            return r.clone();
        }
        let mut res = otlp_resource::Resource::default();
        if let Some(bytes) = self.entry(file, reference) {
            for f in Fields::new(bytes) {
                match f {
                    Ok((resource::DROPPED_ATTRIBUTES_COUNT, w)) => {
                        res.dropped_attributes_count = w.varint() as u32
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.bad_refs += 1;
                        break;
                    }
                }
            }
            res.attributes = self.attributes(file, Repeated::new(bytes, resource::ATTRIBUTES));
        }
        self.resources.insert(reference, res.clone());
        res
    }

    /// Converts encoded attributes (borrowed from a slot or an entry),
    /// resolving key and value refs. An entry that does not decode is skipped
    /// and counted.
    pub fn attributes(
        &mut self,
        file: &MmapReader,
        entries: Repeated<'_>,
    ) -> Vec<otlp_common::KeyValue> {
        let mut out = Vec::new();
        for entry in entries.iter() {
            match KeyValueRefView::parse(entry) {
                Ok(kv) => out.push(otlp_common::KeyValue {
                    key: self.string(file, kv.key_ref),
                    value: kv.value.map(|v| self.value_at(file, v, 0)),
                    ..Default::default()
                }),
                Err(_) => self.bad_refs += 1,
            }
        }
        out
    }

    /// Converts an encoded value (borrowed from a slot or an entry), resolving value refs.
    pub fn value(&mut self, file: &MmapReader, bytes: &[u8]) -> otlp_common::AnyValue {
        self.value_at(file, bytes, 0)
    }

    fn value_at(&mut self, file: &MmapReader, bytes: &[u8], depth: usize) -> otlp_common::AnyValue {
        use otlp_common::any_value::Value as O;
        if depth >= MAX_DEPTH {
            self.bad_refs += 1;
            return otlp_common::AnyValue { value: None };
        }
        let value = match AnyValueView::parse(bytes) {
            Err(_) => {
                self.bad_refs += 1;
                None
            }
            Ok(AnyValueView::Empty) => None,
            Ok(AnyValueView::String(s)) => {
                Some(O::StringValue(String::from_utf8_lossy(s).into_owned()))
            }
            Ok(AnyValueView::Bool(b)) => Some(O::BoolValue(b)),
            Ok(AnyValueView::Int(i)) => Some(O::IntValue(i)),
            Ok(AnyValueView::Double(d)) => Some(O::DoubleValue(d)),
            Ok(AnyValueView::Bytes(b)) => Some(O::BytesValue(b.to_vec())),
            Ok(AnyValueView::Array(a)) => Some(O::ArrayValue(otlp_common::ArrayValue {
                values: a
                    .iter()
                    .map(|x| self.value_at(file, x, depth + 1))
                    .collect(),
            })),
            Ok(AnyValueView::KvList(l)) => Some(O::KvlistValue(otlp_common::KeyValueList {
                values: l
                    .iter()
                    .filter_map(|e| KeyValueRefView::parse(e).ok())
                    .map(|kv| otlp_common::KeyValue {
                        key: self.string(file, kv.key_ref),
                        value: kv.value.map(|v| self.value_at(file, v, depth + 1)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            Ok(AnyValueView::Ref(r)) => return self.value_ref(file, r, depth + 1),
        };
        otlp_common::AnyValue { value }
    }

    fn value_ref(
        &mut self,
        file: &MmapReader,
        reference: i64,
        depth: usize,
    ) -> otlp_common::AnyValue {
        if self.ref_nesting == 0 {
            self.ref_budget = MAX_REF_EXPANSION;
        }
        if let Some(v) = self.values.get(&reference) {
            return match v {
                Some((v, size)) if *size <= self.ref_budget => {
                    self.ref_budget -= size;
                    v.clone()
                }
                Some(_) => {
                    // Refs that multiply each other ("billion laughs"): each
                    // copy is small, the whole would not fit in memory.
                    self.bad_refs += 1;
                    otlp_common::AnyValue::default()
                }
                None => otlp_common::AnyValue::default(),
            };
        }
        // Not cached yet: mark it as in progress (empty) so that a cycle ends.
        self.values.insert(reference, None);
        self.ref_nesting += 1;
        let resolved = self
            .entry(file, reference)
            .map(|bytes| self.value_at(file, bytes, depth));
        self.ref_nesting -= 1;
        let resolved = resolved.map(|v| {
            let size = units(&v);
            (v, size)
        });
        let out = resolved
            .as_ref()
            .map(|(v, _)| v.clone())
            .unwrap_or_default();
        self.values.insert(reference, resolved);
        out
    }

    /// The raw bytes of the entry at `reference` (None, counted, when it does not resolve).
    fn entry<'f>(&mut self, file: &'f MmapReader, reference: i64) -> Option<&'f [u8]> {
        if reference == 0 {
            return None;
        }
        let got = file.entry(reference).ok();
        if got.is_none() {
            self.bad_refs += 1;
        }
        got
    }

    fn decode<M: Message + Default>(&mut self, file: &MmapReader, reference: i64) -> Option<M> {
        if reference == 0 {
            return None;
        }
        let got = file.entry(reference).ok().and_then(|b| M::decode(b).ok());
        if got.is_none() {
            self.bad_refs += 1;
        }
        got
    }
}
