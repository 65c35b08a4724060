//! `Grouper`: groups records by InstrumentationScope and then Resource, as the
//! dictionary describes them, in first-seen order.

use rustc_hash::FxHashMap as HashMap;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use otlp_mmap_core::MmapReader;

use crate::dictionary::DictionaryCache;

/// The scopes of one resource, each with its records.
pub type ScopeGroups<T> = Vec<(InstrumentationScope, Vec<T>)>;

/// Records of one export request, by scope ref.
#[derive(Debug)]
pub struct Grouper<T> {
    scopes: Vec<(i64, Vec<T>)>,
    index: HashMap<i64, usize>,
}

impl<T> Default for Grouper<T> {
    fn default() -> Self {
        Grouper {
            scopes: Vec::new(),
            index: HashMap::default(),
        }
    }
}

impl<T> Grouper<T> {
    /// Adds a record of the scope at `scope_ref`.
    pub fn push(&mut self, scope_ref: i64, item: T) {
        let i = *self.index.entry(scope_ref).or_insert_with(|| {
            self.scopes.push((scope_ref, Vec::new()));
            self.scopes.len() - 1
        });
        self.scopes[i].1.push(item);
    }

    /// Resolves scopes and resources and builds one `R` per resource.
    pub fn build<R>(
        self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        mut make: impl FnMut(Resource, ScopeGroups<T>) -> R,
    ) -> Vec<R> {
        let mut resources: Vec<(i64, ScopeGroups<T>)> = Vec::new();
        for (scope_ref, items) in self.scopes {
            let entry = dict.scope(file, scope_ref);
            match resources.iter_mut().find(|(r, _)| *r == entry.resource_ref) {
                Some((_, scopes)) => scopes.push((entry.scope, items)),
                None => resources.push((entry.resource_ref, vec![(entry.scope, items)])),
            }
        }
        resources
            .into_iter()
            .map(|(resource_ref, scopes)| make(dict.resource(file, resource_ref), scopes))
            .collect()
    }
}
