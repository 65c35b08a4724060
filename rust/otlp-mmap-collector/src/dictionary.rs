//! `DictionaryCache`: resolves dictionary refs into OTLP values, bounded in
//! memory, and charges what it hands out to the record being converted.
//!
//! Values are handed out encoded: the `encode_*` methods append the OTLP
//! fields a ref resolves to (a string, an `AnyValue`, a `KeyValue`, a
//! scope, a resource) to the caller's buffer, copying cached bytes, so a
//! hit allocates nothing. The methods that return prost values (`string`,
//! `value`, `attributes`, `scope`, `resource`) decode those bytes, for
//! callers off the hot path.
//!
//! Entries never change once written, so resolved entries are cached by ref
//! (strings as strings, values, scopes and resources as their encoded OTLP
//! messages).
//! The cache holds at most [`CacheLimits::max_entries`] entries and about
//! [`CacheLimits::max_bytes`] bytes: an insertion that would pass either
//! clears the whole cache first (clear-on-full: a hit costs nothing to
//! maintain, which keeps the hot path as it was; a writer whose working set
//! is larger than the cache pays re-resolution, counted in `clears`). A ref
//! that cannot be resolved (past the end, bad length, bad protobuf) makes
//! that one field empty and is counted in `bad_refs`; it is not cached, so a
//! file full of random refs cannot fill the cache.
//!
//! Record budget: whoever converts one record sets a byte budget with
//! [`begin_record`](DictionaryCache::begin_record). Every string and value
//! the cache hands out is charged to it ([`value_bytes`]: string bytes plus
//! the size of each value and key-value), before anything is copied. Once it
//! is exceeded, every further lookup returns an empty value without resolving
//! anything, and [`end_record`](DictionaryCache::end_record) reports the
//! record as over budget, for the caller to drop and count. So one record
//! never costs more than its budget, however large the entries it refers to.
//! Without `begin_record` the budget is unlimited.

use std::borrow::Cow;

use rustc_hash::FxHashMap as HashMap;

use opentelemetry_proto::tonic::common::v1 as otlp_common;
use opentelemetry_proto::tonic::resource::v1 as otlp_resource;
use otlp_mmap_core::tags::{instrumentation_scope as scope, resource};
use otlp_mmap_core::view::{AnyValueView, Fields, KeyValueRefView, Repeated};
use otlp_mmap_core::{MmapReader, proto};
use prost::Message;

use crate::attribute_cache::AttributeCache;
use crate::attribute_run_memo::{AttributeRunMemo, MAX_RUN, RunResult};
use crate::bytes_hash::bytes_hash;
use crate::canonical;
use crate::encode;

/// Deepest nesting of values followed (arrays, kvlists, value refs); deeper
/// values are cut off and counted as bad refs, so a ref cycle cannot loop.
const MAX_DEPTH: usize = 16;

/// Most units (see [`Measure::units`]) that copies of already resolved value refs may add to one
/// value ref's resolution (refs nested in it included). Beyond it the ref
/// resolves to an empty value and is counted as a bad ref, so refs that
/// multiply each other cannot expand a few bytes of dictionary into
/// gigabytes even without a record budget.
pub const MAX_REF_EXPANSION: usize = 1 << 16;

/// Bytes charged for each value handed out, besides its string or bytes.
pub const VALUE_COST: usize = std::mem::size_of::<otlp_common::AnyValue>();
/// Bytes charged for each key-value handed out, besides its key and value.
pub const KEY_VALUE_COST: usize = std::mem::size_of::<otlp_common::KeyValue>();
/// Bytes a cache entry costs besides its content (key, map slot, header).
const ENTRY_COST: usize = 48;

/// What a value costs in a record budget (about the heap it takes): its
/// strings and bytes plus [`VALUE_COST`] per value and [`KEY_VALUE_COST`] per
/// key-value.
pub fn value_bytes(v: &otlp_common::AnyValue) -> usize {
    use otlp_common::any_value::Value as O;
    VALUE_COST
        + match &v.value {
            Some(O::StringValue(s)) => s.len(),
            Some(O::BytesValue(b)) => b.len(),
            Some(O::ArrayValue(a)) => a.values.iter().map(value_bytes).sum(),
            Some(O::KvlistValue(l)) => l.values.iter().map(key_value_bytes).sum(),
            _ => 0,
        }
}

/// What a key-value costs in a record budget (see [`value_bytes`]).
pub fn key_value_bytes(kv: &otlp_common::KeyValue) -> usize {
    KEY_VALUE_COST + kv.key.len() + kv.value.as_ref().map_or(0, value_bytes)
}

/// Bounds of a [`DictionaryCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most cached entries (strings, values, scopes, resources, metrics).
    pub max_entries: usize,
    /// Most bytes of cached entries (as [`value_bytes`] counts them, plus a
    /// fixed cost per entry). An entry larger than a quarter of it is not cached.
    pub max_bytes: usize,
    /// Budget of one scope or resource: its attributes past it come out
    /// empty, counted as bad refs.
    pub max_entry_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: 65_536,
            max_bytes: 16 << 20,
            max_entry_bytes: 1 << 20,
        }
    }
}

/// What converting one record cost (see [`DictionaryCache::begin_record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCost {
    /// Bytes charged.
    pub bytes: usize,
    /// The budget was exceeded: what was handed out after that is empty.
    pub over_budget: bool,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    left: usize,
    spent: usize,
    over: bool,
}

impl Budget {
    fn new(limit: usize) -> Self {
        Budget {
            left: limit,
            spent: 0,
            over: false,
        }
    }

    /// Charges `n` bytes; false (and over budget from now on) when they do not fit.
    fn charge(&mut self, n: usize) -> bool {
        if self.over || n > self.left {
            self.over = true;
            return false;
        }
        self.left -= n;
        self.spent += n;
        true
    }
}

/// A scope as the dictionary describes it: the OTLP scope plus the ref of its resource.
#[derive(Debug, Clone, Default)]
pub struct ScopeEntry {
    /// The scope's name, version, attributes and dropped-attributes count,
    /// resolved from the dictionary.
    pub scope: otlp_common::InstrumentationScope,
    /// Dictionary ref of the Resource the scope belongs to (0: none, an empty
    /// resource).
    pub resource_ref: i64,
}

/// A value ref resolved: the encoded `AnyValue` message (without key and length).
#[derive(Debug)]
struct CachedValue {
    body: Box<[u8]>,
    units: usize,
    bytes: usize,
}

/// A scope resolved: the encoded `InstrumentationScope` message and its resource's ref.
#[derive(Debug)]
struct CachedScope {
    body: Box<[u8]>,
    resource_ref: i64,
}

/// What an encoded value holds: its units, and its bytes as [`value_bytes`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// Its size in units: one per value and per key-value, plus one per
    /// 64 bytes of string, bytes or key (what [`MAX_REF_EXPANSION`] counts).
    pub units: usize,
    /// [`value_bytes`] of the value.
    pub bytes: usize,
}

impl Measure {
    /// An `AnyValue` holding nothing.
    const EMPTY: Measure = Measure {
        units: 1,
        bytes: VALUE_COST,
    };
}

/// Decoded dictionary entries of one file, by ref.
#[derive(Debug)]
pub struct DictionaryCache {
    limits: CacheLimits,
    strings: HashMap<i64, Box<str>>,
    /// Resolved value refs; `None` while a ref is being resolved (a cycle
    /// back to it resolves to an empty value).
    values: HashMap<i64, Option<CachedValue>>,
    scopes: HashMap<i64, CachedScope>,
    /// Encoded `Resource` messages.
    resources: HashMap<i64, Box<[u8]>>,
    metrics: HashMap<i64, proto::MetricRef>,
    /// Entries and bytes cached.
    entries: usize,
    bytes: usize,
    /// What copies of cached values may still cost in the current
    /// outermost value-ref resolution, and how deep resolutions are nested.
    ref_budget: usize,
    ref_nesting: usize,
    budget: Budget,
    /// Span attributes resolved, by their encoded `KeyValueRef`.
    pub(crate) attributes: AttributeCache,
    /// Runs of span attributes resolved, by their encoded bytes.
    pub(crate) attribute_runs: AttributeRunMemo<crate::spans::Attribute>,
    /// Log record attributes resolved, by their encoded `KeyValueRef`
    /// (`value_bytes`: what the whole key-value costs).
    pub(crate) log_attributes: AttributeCache,
    /// Runs of log record attributes resolved, by their encoded bytes
    /// (`bytes`: what they charged to the record budget).
    pub(crate) log_attribute_runs: AttributeRunMemo<()>,
    /// Refs that could not be resolved.
    pub bad_refs: u64,
    /// Times the cache was full and cleared.
    pub clears: u64,
    /// The scope ref [`warm_scope`](Self::warm_scope) looked at last (spans
    /// mostly come in runs of one scope: no lookup for those).
    last_warm_scope: i64,
}

impl Default for DictionaryCache {
    fn default() -> Self {
        DictionaryCache::new(CacheLimits::default())
    }
}

impl DictionaryCache {
    /// An empty cache within `limits`.
    pub fn new(limits: CacheLimits) -> Self {
        DictionaryCache {
            limits,
            strings: HashMap::default(),
            values: HashMap::default(),
            scopes: HashMap::default(),
            resources: HashMap::default(),
            metrics: HashMap::default(),
            entries: 0,
            bytes: 0,
            ref_budget: 0,
            ref_nesting: 0,
            budget: Budget::new(usize::MAX),
            attributes: AttributeCache::default(),
            attribute_runs: AttributeRunMemo::default(),
            log_attributes: AttributeCache::default(),
            log_attribute_runs: AttributeRunMemo::default(),
            bad_refs: 0,
            clears: 0,
            last_warm_scope: 0,
        }
    }

    /// Forgets every entry (the writer started over: refs mean other things now).
    pub fn clear(&mut self) {
        self.strings = HashMap::default();
        self.values = HashMap::default();
        self.scopes = HashMap::default();
        self.resources = HashMap::default();
        self.metrics = HashMap::default();
        self.attributes.clear();
        self.attribute_runs.clear();
        self.log_attributes.clear();
        self.log_attribute_runs.clear();
        self.entries = 0;
        self.bytes = 0;
        self.last_warm_scope = 0;
    }

    /// Entries cached now.
    pub fn cached_entries(&self) -> usize {
        self.entries
    }

    /// Bytes cached now (as the limits count them).
    pub fn cached_bytes(&self) -> usize {
        self.bytes
    }

    /// Starts converting one record: what is handed out until
    /// [`end_record`](Self::end_record) may cost at most `max_bytes`.
    pub fn begin_record(&mut self, max_bytes: usize) {
        self.budget = Budget::new(max_bytes);
    }

    /// Ends the record begun with [`begin_record`](Self::begin_record) and
    /// says what it cost; the budget is unlimited again.
    pub fn end_record(&mut self) -> RecordCost {
        let b = std::mem::replace(&mut self.budget, Budget::new(usize::MAX));
        RecordCost {
            bytes: b.spent,
            over_budget: b.over,
        }
    }

    /// Adds `n` bytes to the current record's budget (unless it is over already).
    pub fn raise_budget(&mut self, n: usize) {
        if !self.budget.over {
            self.budget.left = self.budget.left.saturating_add(n);
        }
    }

    /// Charges `n` bytes to the current record (what a string or value
    /// resolved from the cache costs; see [`crate::attribute_cache`]):
    /// false, and over budget from now on, when they do not fit.
    pub(crate) fn charge(&mut self, n: usize) -> bool {
        self.budget.charge(n)
    }

    /// Whether the current record went over its budget.
    pub fn over_budget(&self) -> bool {
        self.budget.over
    }

    /// Makes room for an entry of `cost` bytes; false when it is not to be
    /// cached (too large). Clears the cache when it is full, except inside a
    /// value-ref resolution (whose in-progress marks must stay): the cache
    /// then overshoots by at most what one resolution produced, and the next
    /// outermost insertion clears it.
    fn admit(&mut self, cost: usize) -> bool {
        if cost > self.limits.max_bytes / 4 {
            return false;
        }
        let full = self.entries >= self.limits.max_entries
            || self.bytes.saturating_add(cost) > self.limits.max_bytes;
        if full && self.ref_nesting == 0 {
            self.clear();
            self.clears += 1;
        }
        self.entries += 1;
        self.bytes += cost;
        true
    }

    /// The string at `reference` ("" for ref 0, a bad ref, or over budget).
    pub fn string(&mut self, file: &MmapReader, reference: i64) -> String {
        let mut out = Vec::new();
        let len = self.encode_string(file, reference, 1, &mut out);
        encode::lossy(&out[out.len() - len..]).into_owned()
    }

    /// Writes the string at `reference` as field `field` of `out` (nothing
    /// when it is empty: ref 0, a bad ref, over budget) and returns its
    /// length, charged to the record budget. Nothing is allocated once the
    /// string is cached.
    pub fn encode_string(
        &mut self,
        file: &MmapReader,
        reference: i64,
        field: u32,
        out: &mut Vec<u8>,
    ) -> usize {
        if reference == 0 || self.budget.over {
            return 0;
        }
        if let Some(s) = self.strings.get(&reference) {
            if !self.budget.charge(s.len()) {
                return 0;
            }
            encode::bytes(out, field, s.as_bytes());
            return s.len();
        }
        let Some(bytes) = self.entry(file, reference) else {
            return 0;
        };
        let Some(s) = self.lossy(bytes) else {
            return 0;
        };
        encode::bytes(out, field, s.as_bytes());
        let len = s.len();
        if self.admit(ENTRY_COST + len) {
            self.strings.insert(reference, s.into());
        }
        len
    }

    /// The metric definition at `reference`. A definition larger than what
    /// is left of the record budget is not decoded: the record goes over
    /// budget (it is tried again, uncached, by the next record that needs it).
    pub fn metric(&mut self, file: &MmapReader, reference: i64) -> Option<proto::MetricRef> {
        if let Some(m) = self.metrics.get(&reference) {
            return Some(m.clone());
        }
        let bytes = self.entry(file, reference)?;
        if bytes.len() > self.budget.left {
            self.budget.over = true;
            return None;
        }
        let Ok(m) = proto::MetricRef::decode(bytes) else {
            self.bad_refs += 1;
            return None;
        };
        if self.admit(ENTRY_COST + bytes.len()) {
            self.metrics.insert(reference, m.clone());
        }
        Some(m)
    }

    /// Resolves the scope at `reference` and its resource into the cache now
    /// (if the cache has room), while the dictionary still holds what the
    /// record naming it was written with: spans and aggregates are encoded
    /// later, possibly after the writer started over in place and wrote a new
    /// dictionary over the old one. A ref that does not resolve is counted in
    /// `bad_refs` when it is encoded, not here.
    #[inline]
    pub(crate) fn warm_scope(&mut self, file: &MmapReader, reference: i64) {
        if reference == self.last_warm_scope {
            return;
        }
        self.last_warm_scope = reference;
        if reference != 0 && !self.scopes.contains_key(&reference) {
            self.resolve_scope(file, reference);
        }
    }

    /// [`warm_scope`](Self::warm_scope) of a scope not cached.
    #[cold]
    fn resolve_scope(&mut self, file: &MmapReader, reference: i64) {
        // Bad refs met here are kept for what ends up cached (its encoding
        // hits the cache and counts nothing); what is not cached is
        // resolved, and counted, when it is encoded.
        let before = self.bad_refs;
        let mut body = Vec::new();
        let resource_ref = self.encode_scope(file, reference, &mut body);
        let scope_bad = self.bad_refs - before;
        let mut resource_bad = 0;
        if resource_ref != 0 && !self.resources.contains_key(&resource_ref) {
            body.clear();
            let at = self.bad_refs;
            self.encode_resource(file, resource_ref, &mut body);
            if self.resources.contains_key(&resource_ref) {
                resource_bad = self.bad_refs - at;
            }
        }
        let scope_bad = if self.scopes.contains_key(&reference) {
            scope_bad
        } else {
            0
        };
        self.bad_refs = before + scope_bad + resource_bad;
    }

    /// The scope at `reference` (an empty scope for ref 0 or a bad ref).
    pub fn scope(&mut self, file: &MmapReader, reference: i64) -> ScopeEntry {
        let mut body = Vec::new();
        let resource_ref = self.encode_scope(file, reference, &mut body);
        ScopeEntry {
            scope: otlp_common::InstrumentationScope::decode(&body[..]).unwrap_or_default(),
            resource_ref,
        }
    }

    /// Appends the encoded `InstrumentationScope` message at `reference` (its
    /// content, without key and length; nothing for ref 0 or a bad ref) to
    /// `out`, and returns the ref of its resource.
    pub fn encode_scope(&mut self, file: &MmapReader, reference: i64, out: &mut Vec<u8>) -> i64 {
        if let Some(s) = self.scopes.get(&reference) {
            out.extend_from_slice(&s.body);
            return s.resource_ref;
        }
        let Some(bytes) = self.entry(file, reference) else {
            return 0;
        };
        let outer = std::mem::replace(&mut self.budget, Budget::new(self.limits.max_entry_bytes));
        let (mut name, mut version, mut dropped, mut resource_ref) = (0, 0, 0u32, 0);
        for f in Fields::new(bytes) {
            match f {
                Ok((scope::NAME_REF, w)) => name = w.varint() as i64,
                Ok((scope::VERSION_REF, w)) => version = w.varint() as i64,
                Ok((scope::DROPPED_ATTRIBUTES_COUNT, w)) => dropped = w.varint() as u32,
                Ok((scope::RESOURCE_REF, w)) => resource_ref = w.varint() as i64,
                Ok(_) => {}
                Err(_) => {
                    self.bad_refs += 1;
                    break;
                }
            }
        }
        let start = out.len();
        self.encode_string(file, name, 1, out);
        self.encode_string(file, version, 2, out);
        self.encode_attributes(file, Repeated::new(bytes, 3), 3, usize::MAX, out);
        encode::varint(out, 4, dropped.into());
        let spent = std::mem::replace(&mut self.budget, outer);
        if spent.over {
            self.bad_refs += 1;
        }
        if self.admit(ENTRY_COST + spent.spent) {
            let body = out[start..].into();
            self.scopes
                .insert(reference, CachedScope { body, resource_ref });
        }
        resource_ref
    }

    /// The resource at `reference` (an empty resource for ref 0 or a bad ref).
    pub fn resource(&mut self, file: &MmapReader, reference: i64) -> otlp_resource::Resource {
        let mut body = Vec::new();
        self.encode_resource(file, reference, &mut body);
        otlp_resource::Resource::decode(&body[..]).unwrap_or_default()
    }

    /// Appends the encoded `Resource` message at `reference` (its content,
    /// without key and length; nothing for ref 0 or a bad ref) to `out`.
    pub fn encode_resource(&mut self, file: &MmapReader, reference: i64, out: &mut Vec<u8>) {
        if let Some(r) = self.resources.get(&reference) {
            out.extend_from_slice(r);
            return;
        }
        let Some(bytes) = self.entry(file, reference) else {
            return;
        };
        let outer = std::mem::replace(&mut self.budget, Budget::new(self.limits.max_entry_bytes));
        let mut dropped = 0u32;
        for f in Fields::new(bytes) {
            match f {
                Ok((resource::DROPPED_ATTRIBUTES_COUNT, w)) => dropped = w.varint() as u32,
                Ok(_) => {}
                Err(_) => {
                    self.bad_refs += 1;
                    break;
                }
            }
        }
        let start = out.len();
        self.encode_attributes(file, Repeated::new(bytes, 1), 1, usize::MAX, out);
        encode::varint(out, 2, dropped.into());
        let spent = std::mem::replace(&mut self.budget, outer);
        if spent.over {
            self.bad_refs += 1;
        }
        if self.admit(ENTRY_COST + spent.spent) {
            self.resources.insert(reference, out[start..].into());
        }
    }

    /// Converts encoded attributes (borrowed from a slot or an entry),
    /// resolving key and value refs. An entry that does not decode is skipped
    /// and counted.
    pub fn attributes(
        &mut self,
        file: &MmapReader,
        entries: Repeated<'_>,
    ) -> Vec<otlp_common::KeyValue> {
        self.attributes_capped(file, entries, usize::MAX).0
    }

    /// [`attributes`](Self::attributes), at most `max` of them: returns them
    /// and how many more there were (those are not resolved).
    pub fn attributes_capped(
        &mut self,
        file: &MmapReader,
        entries: Repeated<'_>,
        max: usize,
    ) -> (Vec<otlp_common::KeyValue>, u32) {
        // Encoded as the entries of a KeyValueList, which decodes into them.
        let mut out = Vec::new();
        let (_, more) = self.encode_attributes(file, entries, 1, max, &mut out);
        let list = otlp_common::KeyValueList::decode(&out[..]).unwrap_or_default();
        (list.values, more)
    }

    /// Writes encoded attributes (borrowed from a slot or an entry) as
    /// repeated `KeyValue` field `field` of `out`, resolving key and value
    /// refs, at most `max` of them. Returns how many were written and how
    /// many more there were (those are not resolved). An entry that does not
    /// decode is skipped and counted; once the record budget is exceeded
    /// nothing more is written.
    pub fn encode_attributes(
        &mut self,
        file: &MmapReader,
        entries: Repeated<'_>,
        field: u32,
        max: usize,
        out: &mut Vec<u8>,
    ) -> (usize, u32) {
        let (mut written, mut more) = (0usize, 0u32);
        for entry in entries.iter() {
            if self.budget.over {
                break;
            }
            match canonical::key_value_ref(entry) {
                Ok(_) if written >= max => more = more.saturating_add(1),
                Ok(kv) => {
                    if self.encode_key_value(file, kv, field, out).is_some() {
                        written += 1;
                    }
                }
                Err(_) => self.bad_refs += 1,
            }
        }
        (written, more)
    }

    /// [`encode_attributes`](Self::encode_attributes) of a log record's
    /// attributes (all of them, as field `field`), each resolved once per
    /// encoding: what an encoded `KeyValueRef` resolved to is kept in the
    /// log attribute cache (see [`crate::attribute_cache`]) and copied for
    /// the next records, the record budget charged the same. A run of
    /// attributes whose every attribute came from that cache, all kept, is
    /// memoised whole (see [`crate::attribute_run_memo`]) and taken in one
    /// step by the next records that have the budget it charged. (`field`
    /// is the same for every call, as the log attribute cache assumes.)
    pub(crate) fn encode_log_attributes(
        &mut self,
        file: &MmapReader,
        entries: Repeated<'_>,
        field: u32,
        out: &mut Vec<u8>,
    ) {
        // The entries are a function of their message's bytes (for the
        // usual event, only their run) and field number.
        let (run, number) = entries.message();
        let memo = run.len() <= MAX_RUN;
        let run_hash = if memo { bytes_hash(run) } else { 0 };
        if memo
            && let Some(hit) = self.log_attribute_runs.get(run, number, run_hash)
            && hit.bytes <= self.budget.left
            && self.budget.charge(hit.bytes)
        {
            // Each charge of the run fits when their sum does.
            encode::raw(out, hit.fields);
            return;
        }
        // While the run can be memoised: every attribute from the cache,
        // kept, and the message only their run (`run_fields`: the bytes of
        // their fields).
        let (mut memoisable, run_start, mut charged, mut run_fields) = (memo, out.len(), 0, 0);
        for entry in entries.iter() {
            run_fields += encode::field_len(number, entry.len());
            if self.budget.over {
                memoisable = false;
                break;
            }
            let raw_hash = bytes_hash(entry);
            if let Some(hit) = self.log_attributes.get(entry, raw_hash) {
                // What encode_key_value charges, one after the other.
                if self.budget.charge(hit.value_bytes) {
                    encode::raw(out, self.log_attributes.field(&hit));
                    charged += hit.value_bytes;
                } else {
                    memoisable = false;
                }
                continue;
            }
            memoisable = false;
            let Ok(kv) = canonical::key_value_ref(entry) else {
                self.bad_refs += 1;
                continue;
            };
            let (bad_refs, start) = (self.bad_refs, out.len());
            let Some(bytes) = self.encode_key_value(file, kv, field, out) else {
                continue;
            };
            let plain = kv.value.is_none_or(|v| {
                !matches!(
                    canonical::any_value(v),
                    Ok(AnyValueView::Ref(_) | AnyValueView::Array(_) | AnyValueView::KvList(_))
                )
            });
            if plain && self.bad_refs == bad_refs {
                self.log_attributes.insert(
                    entry,
                    raw_hash,
                    &out[start..],
                    0,
                    0,
                    0,
                    bytes,
                    kv.value.is_some(),
                );
            }
        }
        if memoisable && run_fields == run.len() && !run.is_empty() {
            self.log_attribute_runs.insert(
                run,
                number,
                run_hash,
                RunResult {
                    fields: &out[run_start..],
                    attributes: &[],
                    bytes: charged,
                    headroom: charged,
                },
            );
        }
    }

    /// Converts one attribute (None when the budget ran out).
    pub fn key_value_ref(
        &mut self,
        file: &MmapReader,
        kv: KeyValueRefView<'_>,
    ) -> Option<otlp_common::KeyValue> {
        let mut out = Vec::new();
        self.encode_key_value(file, kv, 1, &mut out)?;
        let list = otlp_common::KeyValueList::decode(&out[..]).ok()?;
        list.values.into_iter().next()
    }

    /// Writes one attribute as `KeyValue` field `field` of `out`; returns
    /// what it holds as [`key_value_bytes`] counts it, or None (nothing
    /// written) when the budget ran out.
    pub fn encode_key_value(
        &mut self,
        file: &MmapReader,
        kv: KeyValueRefView<'_>,
        field: u32,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let start = out.len();
        let at = encode::begin(out, field);
        match self.key_value_at(file, kv, 0, out) {
            Some(m) => {
                encode::end(out, at);
                Some(m.bytes)
            }
            None => {
                out.truncate(start);
                None
            }
        }
    }

    /// Writes the content of one `KeyValue` message; None when the budget ran out.
    fn key_value_at(
        &mut self,
        file: &MmapReader,
        kv: KeyValueRefView<'_>,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Option<Measure> {
        if !self.budget.charge(KEY_VALUE_COST) {
            return None;
        }
        let key_len = self.encode_string(file, kv.key_ref, 1, out);
        let value = kv.value.map(|v| {
            let at = encode::begin(out, 2);
            let m = self.value_at(file, v, depth, out);
            encode::end(out, at);
            m
        });
        (!self.budget.over).then(|| Measure {
            units: 1 + key_len / 64 + value.map_or(0, |m| m.units),
            bytes: KEY_VALUE_COST + key_len + value.map_or(0, |m| m.bytes),
        })
    }

    /// Converts an encoded value (borrowed from a slot or an entry), resolving value refs.
    pub fn value(&mut self, file: &MmapReader, bytes: &[u8]) -> otlp_common::AnyValue {
        let mut out = Vec::new();
        self.value_at(file, bytes, 0, &mut out);
        otlp_common::AnyValue::decode(&out[..]).unwrap_or_default()
    }

    /// Appends the content of the `AnyValue` message an encoded value
    /// (borrowed from a slot or an entry) resolves to, value refs resolved;
    /// returns what it holds.
    pub fn encode_value(&mut self, file: &MmapReader, bytes: &[u8], out: &mut Vec<u8>) -> Measure {
        self.value_at(file, bytes, 0, out)
    }

    fn value_at(
        &mut self,
        file: &MmapReader,
        bytes: &[u8],
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Measure {
        if depth >= MAX_DEPTH {
            self.bad_refs += 1;
            return Measure::EMPTY;
        }
        let view = match canonical::any_value(bytes) {
            Ok(AnyValueView::Ref(r)) => return self.value_ref(file, r, depth + 1, out),
            Ok(v) => v,
            Err(_) => {
                self.bad_refs += 1;
                AnyValueView::Empty
            }
        };
        if !self.budget.charge(VALUE_COST) {
            return Measure::EMPTY;
        }
        let sized = |len: usize| Measure {
            units: 1 + len / 64,
            bytes: VALUE_COST + len,
        };
        match view {
            AnyValueView::Empty | AnyValueView::Ref(_) => Measure::EMPTY,
            AnyValueView::String(s) => match self.lossy_bytes(s) {
                Some(s) => {
                    encode::bytes_always(out, 1, &s);
                    sized(s.len())
                }
                None => Measure::EMPTY,
            },
            AnyValueView::Bool(b) => {
                encode::varint_always(out, 2, b.into());
                Measure::EMPTY
            }
            AnyValueView::Int(i) => {
                encode::varint_always(out, 3, i as u64);
                Measure::EMPTY
            }
            AnyValueView::Double(d) => {
                encode::fixed64_always(out, 4, d.to_bits());
                Measure::EMPTY
            }
            AnyValueView::Bytes(b) => {
                if self.budget.charge(b.len()) {
                    encode::bytes_always(out, 7, b);
                    sized(b.len())
                } else {
                    Measure::EMPTY
                }
            }
            AnyValueView::Array(a) => {
                let list = encode::begin(out, 5);
                let mut m = Measure::EMPTY;
                for x in a.iter() {
                    if self.budget.over {
                        break;
                    }
                    let at = encode::begin(out, 1);
                    let v = self.value_at(file, x, depth + 1, out);
                    encode::end(out, at);
                    m.units += v.units;
                    m.bytes += v.bytes;
                }
                encode::end(out, list);
                m
            }
            AnyValueView::KvList(l) => {
                let list = encode::begin(out, 6);
                let mut m = Measure::EMPTY;
                for e in l.iter() {
                    if self.budget.over {
                        break;
                    }
                    match canonical::key_value_ref(e) {
                        Ok(kv) => {
                            let start = out.len();
                            let at = encode::begin(out, 1);
                            match self.key_value_at(file, kv, depth + 1, out) {
                                Some(v) => {
                                    encode::end(out, at);
                                    m.units += v.units;
                                    m.bytes += v.bytes;
                                }
                                None => out.truncate(start),
                            }
                        }
                        Err(_) => self.bad_refs += 1,
                    }
                }
                encode::end(out, list);
                m
            }
        }
    }

    fn value_ref(
        &mut self,
        file: &MmapReader,
        reference: i64,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Measure {
        if self.ref_nesting == 0 {
            self.ref_budget = MAX_REF_EXPANSION;
        }
        match self.values.get(&reference) {
            Some(Some(c)) if c.units > self.ref_budget => {
                // Refs that multiply each other ("billion laughs"): each
                // copy is small, the whole would not fit in memory.
                self.bad_refs += 1;
                return Measure::EMPTY;
            }
            Some(Some(c)) => {
                if !self.budget.charge(c.bytes) {
                    return Measure::EMPTY;
                }
                self.ref_budget -= c.units;
                encode::raw(out, &c.body);
                return Measure {
                    units: c.units,
                    bytes: c.bytes,
                };
            }
            // Being resolved: a cycle.
            Some(None) => return Measure::EMPTY,
            None => {}
        }
        let Some(bytes) = self.entry(file, reference) else {
            return Measure::EMPTY;
        };
        self.values.insert(reference, None);
        self.ref_nesting += 1;
        let start = out.len();
        let m = self.value_at(file, bytes, depth, out);
        self.ref_nesting -= 1;
        self.values.remove(&reference);
        if self.budget.over {
            // Cut short by the record's budget: neither cached nor handed out.
            out.truncate(start);
            return Measure::EMPTY;
        }
        if self.admit(ENTRY_COST + m.bytes) {
            let body = out[start..].into();
            self.values.insert(
                reference,
                Some(CachedValue {
                    body,
                    units: m.units,
                    bytes: m.bytes,
                }),
            );
        }
        m
    }

    /// `bytes` as a string (invalid UTF-8 replaced), charged to the record
    /// budget before anything is copied; None when it does not fit. Valid
    /// UTF-8 is borrowed, not copied.
    fn lossy<'b>(&mut self, bytes: &'b [u8]) -> Option<Cow<'b, str>> {
        if !self.budget.charge(bytes.len()) {
            return None;
        }
        let s = encode::lossy(bytes);
        // Each invalid byte became three.
        (s.len() == bytes.len() || self.budget.charge(s.len() - bytes.len())).then_some(s)
    }

    /// [`lossy`](Self::lossy) as the bytes of the string (what an encoder
    /// writes): ASCII, the common case, is taken as it is without looking further.
    fn lossy_bytes<'b>(&mut self, bytes: &'b [u8]) -> Option<Cow<'b, [u8]>> {
        if bytes.is_ascii() {
            return self
                .budget
                .charge(bytes.len())
                .then_some(Cow::Borrowed(bytes));
        }
        let lossy = self.lossy(bytes)?;
        Some(match lossy {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        })
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
}
