//! What a stream the writer started over from in place still has to
//! deliver after the reader switched to the new stream: spans it completed
//! (or gave up at the switch) that did not fit into the batch made at the
//! switch, and aggregates it read after its last collection while that
//! collection's batch was still pending.
//!
//! They are kept with the old stream's dictionary cache, which holds the
//! scopes and resources they name (resolved when their records were read,
//! see `DictionaryCache::warm_scope`): the file's dictionary holds the new
//! writer's entries now, at the same refs. The old stream's spans stay at the
//! front of the assembler's completed spans, so each retired stream owns a
//! count of them, in order; its aggregates become the next metrics batch.
//!
//! At most [`MAX_RETIRED_STREAMS`] are kept (a writer that starts over again
//! and again while the pipeline refuses); a stream retired beyond that keeps
//! what it kept before: its spans are encoded with the current stream's
//! dictionary and its aggregates are not collected.

use super::{FileReader, Pending, Signal};
use crate::dictionary::DictionaryCache;
use crate::metrics::MetricAggregator;

/// Retired streams kept at once.
pub(super) const MAX_RETIRED_STREAMS: usize = 4;

/// One stream the writer started over from, with what it still delivers.
#[derive(Debug)]
pub(super) struct RetiredStream {
    pub(super) dict: DictionaryCache,
    /// The assembler's completed spans that are this stream's: the first
    /// ones after those of the retired streams before it.
    pub(super) spans: usize,
    /// Its aggregates, to be collected into the next metrics batch.
    aggregator: Option<MetricAggregator>,
    /// `dict`'s counters when it was retired (counted then).
    bad_refs_at_switch: u64,
    clears_at_switch: u64,
}

impl RetiredStream {
    /// Dictionary counters grown since the stream was retired.
    pub(super) fn counter_growth(&self) -> (u64, u64) {
        (
            self.dict.bad_refs - self.bad_refs_at_switch,
            self.dict.clears - self.clears_at_switch,
        )
    }
}

impl FileReader {
    /// Keeps the stream being switched away from while it has anything left
    /// to deliver: `spans` completed spans not encoded yet, `aggregator` when
    /// its aggregates could not be collected at the switch. False when there
    /// is no room (nothing is kept).
    pub(super) fn retire_stream(
        &mut self,
        dict: DictionaryCache,
        spans: usize,
        aggregator: Option<MetricAggregator>,
    ) -> bool {
        if spans == 0 && aggregator.is_none() {
            return true;
        }
        if self.retired_streams.len() >= MAX_RETIRED_STREAMS {
            return false;
        }
        self.retired_streams.push_back(RetiredStream {
            bad_refs_at_switch: dict.bad_refs,
            clears_at_switch: dict.clears,
            dict,
            spans,
            aggregator,
        });
        true
    }

    /// Completed spans that belong to retired streams.
    pub(super) fn retired_spans(&self) -> usize {
        self.retired_streams.iter().map(|r| r.spans).sum()
    }

    /// `n` completed spans left the front of the assembler (encoded or
    /// skipped): the retired streams they belonged to own fewer.
    pub(super) fn retired_spans_taken(&mut self, mut n: usize) {
        for r in self.retired_streams.iter_mut() {
            let t = n.min(r.spans);
            r.spans -= t;
            n -= t;
        }
        self.drop_finished_retired();
    }

    /// The oldest retired aggregates not collected yet, as a metrics batch
    /// (when no metrics batch is pending).
    pub(super) fn collect_retired_aggregates(&mut self, now: u64) -> Option<Pending> {
        if self.pending[Signal::Metrics as usize].is_some() {
            return None;
        }
        let r = self
            .retired_streams
            .iter_mut()
            .find(|r| r.aggregator.is_some())?;
        let mut aggregator = r.aggregator.take()?;
        let mut bytes = self.spare.pop().unwrap_or_default();
        // A dictionary entry not in the old cache any more is read from the
        // file, which holds the new writer's now; the scopes and metric
        // definitions were cached when their measurements were read.
        let made = aggregator.collect(&self.stream.file, &mut r.dict, now, &mut bytes);
        self.drop_finished_retired();
        let Some(points) = made else {
            self.recycle(bytes);
            return None;
        };
        let token = self.token();
        Some(Pending::request(bytes, token, points))
    }

    /// Whether a retired stream still has aggregates to deliver.
    pub(super) fn retired_aggregates_left(&self) -> bool {
        self.retired_streams.iter().any(|r| r.aggregator.is_some())
    }

    /// Forgets the retired streams that have nothing left, keeping their
    /// counters.
    fn drop_finished_retired(&mut self) {
        while let Some(i) = self
            .retired_streams
            .iter()
            .position(|r| r.spans == 0 && r.aggregator.is_none())
        {
            if let Some(r) = self.retired_streams.remove(i) {
                let (bad_refs, clears) = r.counter_growth();
                self.retired.bad_refs += bad_refs;
                self.retired.cache_clears += clears;
            }
        }
    }
}
