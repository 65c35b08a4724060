//! `DictionaryCache`: resolves dictionary refs into OTLP values, bounded in
//! memory, and charges what it hands out to the record being converted.
//!
//! Entries never change once written, so decoded entries are cached by ref.
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
/// gigabytes even without a record budget.
pub const MAX_REF_EXPANSION: usize = 1 << 16;

/// Bytes charged for each value handed out, besides its string or bytes.
pub const VALUE_COST: usize = std::mem::size_of::<otlp_common::AnyValue>();
/// Bytes charged for each key-value handed out, besides its key and value.
pub const KEY_VALUE_COST: usize = std::mem::size_of::<otlp_common::KeyValue>();
/// Bytes a cache entry costs besides its content (key, map slot, header).
const ENTRY_COST: usize = 48;

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

#[derive(Debug)]
struct CachedValue {
    value: otlp_common::AnyValue,
    units: usize,
    bytes: usize,
}

/// Decoded dictionary entries of one file, by ref.
#[derive(Debug)]
pub struct DictionaryCache {
    limits: CacheLimits,
    strings: HashMap<i64, Box<str>>,
    /// Resolved value refs; `None` while a ref is being resolved (a cycle
    /// back to it resolves to an empty value).
    values: HashMap<i64, Option<CachedValue>>,
    scopes: HashMap<i64, ScopeEntry>,
    resources: HashMap<i64, otlp_resource::Resource>,
    metrics: HashMap<i64, proto::MetricRef>,
    /// Entries and bytes cached.
    entries: usize,
    bytes: usize,
    /// What copies of cached values may still cost in the current
    /// outermost value-ref resolution, and how deep resolutions are nested.
    ref_budget: usize,
    ref_nesting: usize,
    budget: Budget,
    /// Refs that could not be resolved.
    pub bad_refs: u64,
    /// Times the cache was full and cleared.
    pub clears: u64,
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
            bad_refs: 0,
            clears: 0,
        }
    }

    /// Forgets every entry (the writer started over: refs mean other things now).
    pub fn clear(&mut self) {
        self.strings = HashMap::default();
        self.values = HashMap::default();
        self.scopes = HashMap::default();
        self.resources = HashMap::default();
        self.metrics = HashMap::default();
        self.entries = 0;
        self.bytes = 0;
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
        if reference == 0 || self.budget.over {
            return String::new();
        }
        if let Some(s) = self.strings.get(&reference) {
            return if self.budget.charge(s.len()) {
                String::from(&**s)
            } else {
                String::new()
            };
        }
        let Some(bytes) = self.entry(file, reference) else {
            return String::new();
        };
        let Some(s) = self.lossy(bytes) else {
            return String::new();
        };
        if self.admit(ENTRY_COST + s.len()) {
            self.strings.insert(reference, s.as_str().into());
        }
        s
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

    /// The scope at `reference` (an empty scope for ref 0 or a bad ref).
    pub fn scope(&mut self, file: &MmapReader, reference: i64) -> ScopeEntry {
        if let Some(s) = self.scopes.get(&reference) {
            return s.clone();
        }
        let mut entry = ScopeEntry::default();
        let Some(bytes) = self.entry(file, reference) else {
            return entry;
        };
        let outer = std::mem::replace(&mut self.budget, Budget::new(self.limits.max_entry_bytes));
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
        entry.scope.attributes = self.attributes(file, Repeated::new(bytes, 3));
        let spent = std::mem::replace(&mut self.budget, outer);
        if spent.over {
            self.bad_refs += 1;
        }
        if self.admit(ENTRY_COST + spent.spent) {
            self.scopes.insert(reference, entry.clone());
        }
        entry
    }

    /// The resource at `reference` (an empty resource for ref 0 or a bad ref).
    pub fn resource(&mut self, file: &MmapReader, reference: i64) -> otlp_resource::Resource {
        if let Some(r) = self.resources.get(&reference) {
            return r.clone();
        }
        let mut res = otlp_resource::Resource::default();
        let Some(bytes) = self.entry(file, reference) else {
            return res;
        };
        let outer = std::mem::replace(&mut self.budget, Budget::new(self.limits.max_entry_bytes));
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
        res.attributes = self.attributes(file, Repeated::new(bytes, 1));
        let spent = std::mem::replace(&mut self.budget, outer);
        if spent.over {
            self.bad_refs += 1;
        }
        if self.admit(ENTRY_COST + spent.spent) {
            self.resources.insert(reference, res.clone());
        }
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
        let mut out = Vec::new();
        let mut more = 0u32;
        for entry in entries.iter() {
            if self.budget.over {
                break;
            }
            match KeyValueRefView::parse(entry) {
                Ok(_) if out.len() >= max => more = more.saturating_add(1),
                Ok(kv) => {
                    if let Some(kv) = self.key_value(file, kv, 0) {
                        out.push(kv);
                    }
                }
                Err(_) => self.bad_refs += 1,
            }
        }
        (out, more)
    }

    /// Converts one attribute (None when the budget ran out).
    pub fn key_value_ref(
        &mut self,
        file: &MmapReader,
        kv: KeyValueRefView<'_>,
    ) -> Option<otlp_common::KeyValue> {
        self.key_value(file, kv, 0)
    }

    fn key_value(
        &mut self,
        file: &MmapReader,
        kv: KeyValueRefView<'_>,
        depth: usize,
    ) -> Option<otlp_common::KeyValue> {
        if !self.budget.charge(KEY_VALUE_COST) {
            return None;
        }
        let key = self.string(file, kv.key_ref);
        let value = kv.value.map(|v| self.value_at(file, v, depth));
        (!self.budget.over).then_some(otlp_common::KeyValue {
            key,
            value,
            ..Default::default()
        })
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
        let view = match AnyValueView::parse(bytes) {
            Ok(AnyValueView::Ref(r)) => return self.value_ref(file, r, depth + 1),
            Ok(v) => v,
            Err(_) => {
                self.bad_refs += 1;
                AnyValueView::Empty
            }
        };
        if !self.budget.charge(VALUE_COST) {
            return otlp_common::AnyValue::default();
        }
        let value = match view {
            AnyValueView::Empty | AnyValueView::Ref(_) => None,
            AnyValueView::String(s) => self.lossy(s).map(O::StringValue),
            AnyValueView::Bool(b) => Some(O::BoolValue(b)),
            AnyValueView::Int(i) => Some(O::IntValue(i)),
            AnyValueView::Double(d) => Some(O::DoubleValue(d)),
            AnyValueView::Bytes(b) => self
                .budget
                .charge(b.len())
                .then(|| O::BytesValue(b.to_vec())),
            AnyValueView::Array(a) => {
                let mut values = Vec::new();
                for x in a.iter() {
                    if self.budget.over {
                        break;
                    }
                    values.push(self.value_at(file, x, depth + 1));
                }
                Some(O::ArrayValue(otlp_common::ArrayValue { values }))
            }
            AnyValueView::KvList(l) => {
                let mut values = Vec::new();
                for e in l.iter() {
                    if self.budget.over {
                        break;
                    }
                    match KeyValueRefView::parse(e) {
                        Ok(kv) => values.extend(self.key_value(file, kv, depth + 1)),
                        Err(_) => self.bad_refs += 1,
                    }
                }
                Some(O::KvlistValue(otlp_common::KeyValueList { values }))
            }
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
        match self.values.get(&reference) {
            Some(Some(c)) if c.units > self.ref_budget => {
                // Refs that multiply each other ("billion laughs"): each
                // copy is small, the whole would not fit in memory.
                self.bad_refs += 1;
                return otlp_common::AnyValue::default();
            }
            Some(Some(c)) => {
                if !self.budget.charge(c.bytes) {
                    return otlp_common::AnyValue::default();
                }
                self.ref_budget -= c.units;
                return c.value.clone();
            }
            // Being resolved: a cycle.
            Some(None) => return otlp_common::AnyValue::default(),
            None => {}
        }
        let Some(bytes) = self.entry(file, reference) else {
            return otlp_common::AnyValue::default();
        };
        self.values.insert(reference, None);
        self.ref_nesting += 1;
        let value = self.value_at(file, bytes, depth);
        self.ref_nesting -= 1;
        self.values.remove(&reference);
        if self.budget.over {
            // Cut short by the record's budget: neither cached nor handed out.
            return otlp_common::AnyValue::default();
        }
        let bytes = value_bytes(&value);
        if self.admit(ENTRY_COST + bytes) {
            let units = units(&value);
            self.values.insert(
                reference,
                Some(CachedValue {
                    value: value.clone(),
                    units,
                    bytes,
                }),
            );
        }
        value
    }

    /// `bytes` as a string (invalid UTF-8 replaced), charged to the record
    /// budget before anything is copied; None when it does not fit.
    fn lossy(&mut self, bytes: &[u8]) -> Option<String> {
        if !self.budget.charge(bytes.len()) {
            return None;
        }
        let s = String::from_utf8_lossy(bytes).into_owned();
        // Each invalid byte became three.
        (s.len() == bytes.len() || self.budget.charge(s.len() - bytes.len())).then_some(s)
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
