//! Batches made from a stream the writer started over from in place,
//! waiting behind their signal's pending batch.
//!
//! Once the writer started over in place, the file's dictionary holds the
//! new writer's entries, at the same refs as the old ones. So what the old
//! stream still holds when the reader switches (the spans it completed or
//! gave up, and its aggregates) is encoded at the switch, with the old
//! stream's dictionary cache, which holds the scopes and resources those
//! records name (resolved when they were read, see
//! `DictionaryCache::warm_scope`). The first batch becomes the pending one
//! when none is pending; the others wait here, in order, and each becomes
//! the pending batch in turn, before anything the new stream makes. A
//! checkpoint keeps them as they are (an export request each), so that a
//! Collector restart delivers them too.
//!
//! The queue is bounded: at most [`QUEUED_BATCH_BYTES_FACTOR`] times
//! `max_batch_bytes` wait at once over every signal, and one batch more per
//! signal whose queue is empty (a metrics batch may be up to about
//! `max_metric_bytes`): a writer that starts over again and again while the
//! pipeline refuses cannot grow it further.
//! What does not fit is not lost silently: the old stream's spans stay with
//! the reader's completed spans and are encoded later with the current
//! stream's dictionary (their scopes as the new writer's dictionary names
//! them), and its aggregates are counted in
//! [`ReaderStats::measurements_lost_at_restart`](super::ReaderStats::measurements_lost_at_restart).

use super::{FileReader, Pending, Signal};

/// The queue's bound, in multiples of `max_batch_bytes`.
pub(super) const QUEUED_BATCH_BYTES_FACTOR: usize = 4;

impl FileReader {
    /// Whether a batch of `signal` of about `bytes` bytes fits in the queue.
    fn queue_has_room(&self, signal: Signal, bytes: usize) -> bool {
        let most = self
            .options
            .max_batch_bytes
            .saturating_mul(QUEUED_BATCH_BYTES_FACTOR);
        self.queued_bytes.saturating_add(bytes) <= most || self.queued[signal as usize].is_empty()
    }

    /// The most bytes of queued batches a checkpoint may give back: what
    /// the queue holds at most (see the module's documentation), with a
    /// traces batch's one span over `max_batch_bytes`.
    pub(super) fn most_queued_bytes_restored(&self) -> usize {
        let o = &self.options;
        o.max_batch_bytes
            .saturating_mul(QUEUED_BATCH_BYTES_FACTOR + 2)
            .saturating_add(o.max_metric_bytes)
            .saturating_add(o.max_in_flight_span_bytes)
    }

    /// Queues an export request of `items` for `signal` (in order; a
    /// checkpoint's are bounded by `restore` before they are put back).
    pub(super) fn queue(&mut self, signal: Signal, bytes: Vec<u8>, items: u64) {
        self.queued_bytes += bytes.len();
        let token = self.token();
        self.queued[signal as usize].push_back(Pending::request(bytes, token, items));
    }

    /// Makes the oldest queued batch of `signal` its pending batch, when
    /// none is pending.
    pub(super) fn take_queued(&mut self, signal: Signal) {
        let i = signal as usize;
        if self.pending[i].is_some() {
            return;
        }
        if let Some(p) = self.queued[i].pop_front() {
            self.queued_bytes = self.queued_bytes.saturating_sub(p.bytes.len());
            self.pending[i] = Some(p);
        }
    }

    /// Whether batches of `signal` wait in the queue.
    pub(super) fn queued_left(&self, signal: Signal) -> bool {
        !self.queued[signal as usize].is_empty()
    }

    /// Spans in the queued traces batches.
    pub(super) fn queued_spans(&self) -> u64 {
        self.queued[Signal::Traces as usize]
            .iter()
            .fold(0u64, |n, p| n.saturating_add(p.items))
    }

    /// Drops, unsent, the queued traces batches an earlier reader delivered
    /// (`skip` spans from the head of the emission order, where they are):
    /// each is skipped whole, or not at all, which ends the skip (a batch
    /// is offered whole). Returns the spans skipped and whether the skip
    /// ended.
    pub(super) fn skip_queued_spans(&mut self, skip: u64) -> (u64, bool) {
        let i = Signal::Traces as usize;
        let mut skipped = 0;
        while let Some(front) = self.queued[i].front() {
            if skip - skipped < front.items {
                return (skipped, true);
            }
            skipped += front.items;
            if let Some(p) = self.queued[i].pop_front() {
                self.queued_bytes = self.queued_bytes.saturating_sub(p.bytes.len());
                self.recycle(p.bytes);
            }
        }
        (skipped, false)
    }

    /// Drops up to `n` metrics batches an earlier reader delivered: the
    /// pending one, then the queued ones. Returns how many.
    pub(super) fn skip_delivered_metrics_batches(&mut self, n: u64) -> u64 {
        let i = Signal::Metrics as usize;
        let mut dropped = 0;
        while dropped < n {
            if self.pending[i].take().is_none() {
                self.take_queued(Signal::Metrics);
                if self.pending[i].take().is_none() {
                    break;
                }
            }
            dropped += 1;
        }
        dropped
    }

    /// At a switch to the writer's new stream: the old stream's aggregates,
    /// collected now with its dictionary cache, into the pending metrics
    /// batch or the queue. False when they had to be dropped (no room).
    pub(super) fn queue_old_aggregates(&mut self, now: u64) -> bool {
        if self.pending[Signal::Metrics as usize].is_none() && !self.queued_left(Signal::Metrics) {
            self.collect_aggregates(now);
            return true;
        }
        let mut bytes = self.spare.pop().unwrap_or_default();
        let s = &mut self.stream;
        let Some(points) = self
            .aggregator
            .collect(&s.file, &mut s.dict, now, &mut bytes)
        else {
            self.recycle(bytes);
            return true;
        };
        if !self.queue_has_room(Signal::Metrics, bytes.len()) {
            self.recycle(bytes);
            return false;
        }
        self.queue(Signal::Metrics, bytes, points);
        true
    }

    /// At a switch to the writer's new stream: the old stream's completed
    /// spans, encoded now with its dictionary cache, into the pending traces
    /// batch and the queue, as far as there is room.
    pub(super) fn queue_old_spans(&mut self) {
        let traces = Signal::Traces as usize;
        while self.assembler.completed_len() > 0
            && self.pending[traces].is_none()
            && self.queued[traces].is_empty()
        {
            let made = self.encode_traces();
            self.pending[traces] = made;
        }
        while self.assembler.completed_len() > 0 {
            self.skip_delivered_spans();
            let next = self
                .assembler
                .completed_bytes()
                .min(self.options.max_batch_bytes);
            if next == 0 || !self.queue_has_room(Signal::Traces, next) {
                return;
            }
            let mut bytes = self.spare.pop().unwrap_or_default();
            let s = &mut self.stream;
            let items = self.assembler.encode_completed(
                self.options.max_batch_spans,
                self.options.max_batch_bytes,
                &s.file,
                &mut s.dict,
                &mut self.request,
                &mut bytes,
            );
            if items == 0 {
                self.recycle(bytes);
                return;
            }
            self.queue(Signal::Traces, bytes, items as u64);
        }
    }
}
