//! `RequestEncoder`: writes one OTLP export request (traces, logs or metrics)
//! from items already encoded (spans, log records, metrics), grouped by
//! InstrumentationScope and then Resource as the dictionary describes them,
//! in first-seen order.
//!
//! The three export requests have the same shape: field 1 holds one message
//! per resource, whose field 1 is the Resource and field 2 one message per
//! scope, whose field 1 is the InstrumentationScope and field 2 the items.
//! Sizes are computed from the items' lengths first, so the request is
//! written in one pass, straight into the output buffer. The encoder's
//! buffers are kept across batches: a batch allocates nothing once they
//! have grown to the batch size.

use std::ops::Range;

use rustc_hash::FxHashMap as HashMap;

use otlp_mmap_core::MmapReader;

use crate::dictionary::DictionaryCache;
use crate::encode;

#[derive(Debug, Clone, Copy)]
struct Item {
    scope: usize,
    at: usize,
    len: usize,
}

#[derive(Debug, Clone)]
struct ScopeGroup {
    scope_ref: i64,
    /// The encoded InstrumentationScope, in `meta`.
    scope: Range<usize>,
    resource: usize,
    /// Length of the Scope* message.
    len: usize,
    /// Its items, in `members`.
    members: Range<usize>,
}

#[derive(Debug, Clone)]
struct ResourceGroup {
    resource_ref: i64,
    /// The encoded Resource, in `meta`.
    resource: Range<usize>,
    /// Length of the Resource* message.
    len: usize,
}

/// Builds export requests from encoded items (see the module docs).
#[derive(Debug, Default)]
pub struct RequestEncoder {
    items: Vec<Item>,
    scopes: Vec<ScopeGroup>,
    index: HashMap<i64, usize>,
    /// (scope group, item) pairs, sorted.
    members: Vec<(usize, usize)>,
    /// Where each scope's items start in `members` (while sorting).
    starts: Vec<usize>,
    resources: Vec<ResourceGroup>,
    meta: Vec<u8>,
}

impl RequestEncoder {
    /// Adds an item of the scope at `scope_ref`: a message (a Span,
    /// LogRecord or Metric) of `len` bytes, which [`encode`](Self::encode)
    /// asks its writer for by `at` (the caller's name for it, e.g. where it
    /// is in an arena).
    pub fn push(&mut self, scope_ref: i64, at: usize, len: usize) {
        let next = self.scopes.len();
        let scope = *self.index.entry(scope_ref).or_insert(next);
        if scope == next {
            self.scopes.push(ScopeGroup {
                scope_ref,
                scope: 0..0,
                resource: 0,
                len: 0,
                members: 0..0,
            });
        }
        self.items.push(Item { scope, at, len });
    }

    /// Items pushed since the last [`encode`](Self::encode).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item was pushed since the last [`encode`](Self::encode).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// [`encode`](Self::encode) of items that are ranges of `arena`
    /// (pushed with their start as `at`).
    pub fn encode_from(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        arena: &[u8],
        out: &mut Vec<u8>,
    ) {
        self.encode(file, dict, out, |at, len, out| {
            out.extend_from_slice(&arena[at..at + len])
        });
    }

    /// Appends the export request holding every item pushed to `out`,
    /// resolving scopes and resources, and starts over. `write(at, len, out)`
    /// appends the message of the item pushed with `at` and `len` (its
    /// content, without key and length): exactly the `len` bytes announced.
    pub fn encode(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        out: &mut Vec<u8>,
        write: impl FnMut(usize, usize, &mut Vec<u8>),
    ) {
        self.group(file, dict);
        self.write_request(out, write);
        self.finish();
    }

    /// Groups the items pushed by scope and resource, resolving scopes and
    /// resources: the batch as [`write_request`](Self::write_request)
    /// writes it and the accessors ([`resources`](Self::resources) ...)
    /// give it, until [`finish`](Self::finish).
    pub(crate) fn group(&mut self, file: &MmapReader, dict: &mut DictionaryCache) {
        // Items by scope, each scope's in the order pushed (a counting sort).
        self.members.clear();
        self.members.resize(self.items.len(), (0, 0));
        self.starts.clear();
        self.starts.resize(self.scopes.len() + 1, 0);
        for it in &self.items {
            self.starts[it.scope + 1] += 1;
        }
        for g in 0..self.scopes.len() {
            self.starts[g + 1] += self.starts[g];
        }
        for (i, it) in self.items.iter().enumerate() {
            self.members[self.starts[it.scope]] = (it.scope, i);
            self.starts[it.scope] += 1;
        }
        self.meta.clear();
        self.resources.clear();
        let mut next_member = 0;
        for (gi, g) in self.scopes.iter_mut().enumerate() {
            let at = self.meta.len();
            let resource_ref = dict.encode_scope(file, g.scope_ref, &mut self.meta);
            g.scope = at..self.meta.len();
            g.resource = match self
                .resources
                .iter()
                .position(|r| r.resource_ref == resource_ref)
            {
                Some(r) => r,
                None => {
                    self.resources.push(ResourceGroup {
                        resource_ref,
                        resource: 0..0,
                        len: 0,
                    });
                    self.resources.len() - 1
                }
            };
            let first = next_member;
            while next_member < self.members.len() && self.members[next_member].0 == gi {
                next_member += 1;
            }
            g.members = first..next_member;
        }
        for r in &mut self.resources {
            let at = self.meta.len();
            dict.encode_resource(file, r.resource_ref, &mut self.meta);
            r.resource = at..self.meta.len();
        }
        self.measure();
    }

    /// Gives the items of the batch [`group`](Self::group) made the
    /// lengths `len(at)` (of the item pushed with `at`), for
    /// [`write_request`](Self::write_request): for items pushed before
    /// their lengths were known.
    pub(crate) fn relength(&mut self, len: impl Fn(usize) -> usize) {
        for it in &mut self.items {
            it.len = len(it.at);
        }
        self.measure();
    }

    /// The lengths of the Scope* and Resource* messages, from their items'.
    fn measure(&mut self) {
        for g in &mut self.scopes {
            let mut len = encode::field_len(1, g.scope.len());
            for &(_, i) in &self.members[g.members.clone()] {
                len += encode::field_len(2, self.items[i].len);
            }
            g.len = len;
        }
        for r in &mut self.resources {
            r.len = encode::field_len(1, r.resource.len());
        }
        for g in &self.scopes {
            self.resources[g.resource].len += encode::field_len(2, g.len);
        }
    }

    /// Appends the export request of the batch [`group`](Self::group)
    /// made to `out` (`write` as for [`encode`](Self::encode)).
    pub(crate) fn write_request(
        &self,
        out: &mut Vec<u8>,
        mut write: impl FnMut(usize, usize, &mut Vec<u8>),
    ) {
        let total: usize = self
            .resources
            .iter()
            .map(|r| encode::field_len(1, r.len))
            .sum();
        out.reserve_exact(total);
        for (ri, r) in self.resources.iter().enumerate() {
            encode::header(out, 1, r.len);
            encode::bytes_always(out, 1, &self.meta[r.resource.clone()]);
            for g in self.scopes.iter().filter(|g| g.resource == ri) {
                encode::header(out, 2, g.len);
                encode::bytes_always(out, 1, &self.meta[g.scope.clone()]);
                for &(_, i) in &self.members[g.members.clone()] {
                    let it = self.items[i];
                    encode::header(out, 2, it.len);
                    let start = out.len();
                    write(it.at, it.len, out);
                    debug_assert_eq!(out.len() - start, it.len, "item length as announced");
                }
            }
        }
    }

    /// Forgets the batch: the next items make the next one.
    pub(crate) fn finish(&mut self) {
        self.items.clear();
        self.scopes.clear();
        self.index.clear();
        encode::reuse(&mut self.meta, encode::KEEP_MAX);
    }

    /// Resources of the batch [`group`](Self::group) made.
    pub(crate) fn resources(&self) -> usize {
        self.resources.len()
    }

    /// The encoded `Resource` of resource `r`.
    pub(crate) fn resource(&self, r: usize) -> &[u8] {
        &self.meta[self.resources[r].resource.clone()]
    }

    /// The scopes of resource `r`, in the order the request holds them.
    pub(crate) fn scopes_of(&self, r: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.scopes.len()).filter(move |&g| self.scopes[g].resource == r)
    }

    /// The encoded `InstrumentationScope` of scope `g`.
    pub(crate) fn scope(&self, g: usize) -> &[u8] {
        &self.meta[self.scopes[g].scope.clone()]
    }

    /// The items of scope `g` as pushed (`at`, `len`), in the order the
    /// request holds them.
    pub(crate) fn items_of(&self, g: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.members[self.scopes[g].members.clone()]
            .iter()
            .map(|&(_, i)| (self.items[i].at, self.items[i].len))
    }
}
