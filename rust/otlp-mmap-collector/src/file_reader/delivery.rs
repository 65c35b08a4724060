//! Delivery markers: what the reader delivered since its last checkpoint,
//! small enough to store after every batch, so that a Collector crash
//! duplicates at most the batch it was offering.
//!
//! A checkpoint covers the spans and measurements rings up to where it was
//! taken; the records read after it stay in the rings. After a crash, the
//! next reader restores the checkpoint and reads those records again, which
//! by itself would emit again everything delivered after the checkpoint.
//! The marker stored after each committed batch says how much that was:
//!
//! - spans: how many were committed since the checkpoint. The reader emits
//!   spans in one order, the same when it reads the same records again: the
//!   checkpoint's pending batch, its queued batches (of streams the writer
//!   started over from), its completed spans, then the spans that
//!   complete as the ring is read, first in first out. The restored reader
//!   skips that many from the head of that order instead of emitting them.
//!   While spans are skipped, none is given up for its age (`max_span_age`,
//!   the only part of that order that depends on the clock); the window ends
//!   once the delivered spans were read again. A span of the checkpoint the
//!   restore refuses (corrupt, over the limits) is not emitted: the skip is
//!   shortened by one for each, so such a restore may emit a delivered span
//!   again, never drop an undelivered one.
//! - metrics: how many of the checkpoint's pending and queued batches were
//!   committed (the first ones committed after it), and the
//!   measurements ring position and time of the last collection committed
//!   after the checkpoint. The restored reader aggregates the ring up to that
//!   position and collects without emitting at that time: delta sums start
//!   over where the delivered collection left them, cumulative sums go on.
//!
//! Batches are offered one at a time per file, and the marker is stored
//! after each commit: a crash between a commit and its marker duplicates
//! that one batch. Log records need no marker: their slots are released
//! when their batch is committed.

use otlp_mmap_core::ring::StrandedSlots;
use prost::Message;

use super::{FileReader, INGEST_BUDGET, Signal};
use crate::checkpoint_proto::DeliveryMarker;

/// Most bytes of an encoded [`DeliveryMarker`] (every field at its largest).
pub const DELIVERY_MARKER_MAX_BYTES: usize = 64;

/// Why a delivery marker was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MarkerRejected {
    /// The bytes are not a delivery marker, or it counts more spans than
    /// the restored reader can emit from what it holds.
    #[error("not a delivery marker (corrupt)")]
    Corrupt,
    /// It refers to another checkpoint than the one just restored (an
    /// earlier one: the restored checkpoint covers what it says), or the
    /// reader read on since the restore.
    #[error("it does not follow the checkpoint just restored")]
    NotThisCheckpoint,
}

/// What applying a delivery marker skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Spans the restored reader will not emit (some now, the rest as the
    /// ring is read again and they complete).
    pub spans: u64,
    /// The checkpoint's pending metrics batch (and queued ones, as many as
    /// were delivered) was dropped.
    pub metrics_batch: bool,
    /// Measurements aggregated again up to the last delivered collection.
    pub measurements: u64,
}

/// The reader's bookkeeping of deliveries since its last checkpoint.
#[derive(Debug, Default)]
pub(super) struct Delivery {
    /// Id of the last checkpoint taken (0: none yet).
    checkpoint_id: u64,
    /// What was committed since that checkpoint.
    since: DeliveryMarker,
    /// Spans at the head of the emission order that an earlier reader
    /// delivered: dropped instead of emitted.
    skip_spans: u64,
    /// Measurements ring position and time of the pending metrics batch's
    /// collection, when it was collected after the last checkpoint.
    pending_collection: Option<(i64, u64)>,
    /// Id of the checkpoint restored, while its marker may still be applied.
    restored: Option<u64>,
    /// Id of the checkpoint taken last, until it is confirmed stored
    /// ([`checkpoint_stored`](Self::checkpoint_stored)): deliveries are
    /// counted under the stored one until then.
    taken: Option<u64>,
    /// Spans the restore refused (not emitted by this reader), by which the
    /// marker's skip is shortened.
    refused_spans: u64,
}

impl Delivery {
    /// A checkpoint is being taken: returns its id and the spans still to
    /// skip, which it carries. Deliveries are counted under the last stored
    /// checkpoint until this one is stored.
    pub(super) fn checkpoint_taken(&mut self) -> (u64, u64) {
        // Each take gets a new id, after this reader's earlier ones and
        // after the clock: a reader restoring the same checkpoint, or an
        // earlier reader of the path whose marker may still be stored,
        // numbers its checkpoints otherwise. (Wrapping: a restored id may be
        // anything.)
        let last = self.taken.unwrap_or(self.checkpoint_id);
        let id = last
            .wrapping_add(1)
            .max(otlp_mmap_core::now_unix_nano())
            .max(1);
        self.taken = Some(id);
        (id, self.skip_spans)
    }

    /// The checkpoint taken last is stored: deliveries are counted from it
    /// on, under its id.
    pub(super) fn checkpoint_stored(&mut self) {
        let Some(id) = self.taken.take() else {
            return;
        };
        self.checkpoint_id = id;
        self.since = DeliveryMarker {
            checkpoint_id: id,
            ..Default::default()
        };
        // A pending metrics batch now belongs to the checkpoint.
        self.pending_collection = None;
    }

    /// Spans still to skip.
    pub(super) fn skipping(&self) -> u64 {
        self.skip_spans
    }

    /// A checkpoint was restored: markers of it may follow. `refused_spans`:
    /// spans of the checkpoint the restore refused, beyond those the skip
    /// was shortened by.
    pub(super) fn checkpoint_restored(&mut self, id: u64, skip_spans: u64, refused_spans: u64) {
        self.checkpoint_id = id;
        self.since = DeliveryMarker {
            checkpoint_id: id,
            ..Default::default()
        };
        self.skip_spans = skip_spans;
        self.restored = (id != 0).then_some(id);
        self.refused_spans = refused_spans;
        self.taken = None;
    }
}

impl FileReader {
    /// What was delivered since the last checkpoint, as marker bytes (at
    /// most [`DELIVERY_MARKER_MAX_BYTES`]) to store after each committed
    /// traces or metrics batch, beside the checkpoint.
    pub fn delivery_marker(&self) -> Vec<u8> {
        self.delivery.since.encode_to_vec()
    }

    /// Applies the delivery marker stored after the checkpoint just
    /// restored ([`restore`](Self::restore)), before anything is polled:
    /// what it says was delivered is not emitted again. On `Err` nothing
    /// changed.
    pub fn restore_delivered(&mut self, marker: &[u8]) -> Result<Skipped, MarkerRejected> {
        if marker.len() > DELIVERY_MARKER_MAX_BYTES {
            return Err(MarkerRejected::Corrupt);
        }
        let m = DeliveryMarker::decode(marker).map_err(|_| MarkerRejected::Corrupt)?;
        if self.delivery.restored != Some(m.checkpoint_id) || self.stats.records_read != [0; 3] {
            return Err(MarkerRejected::NotThisCheckpoint);
        }
        // The checkpoint's skip and the marker's deliveries are distinct
        // spans of the emission order.
        if self.delivery.skip_spans.saturating_add(m.spans_delivered) > self.emittable_spans() {
            return Err(MarkerRejected::Corrupt);
        }
        let traces = Signal::Traces as usize;
        self.delivery.restored = None;
        let mut skipped = Skipped::default();
        // Spans: the checkpoint's pending batch, then its queued batches and
        // its completed spans (see `skip_delivered_spans`), then those
        // completed later (skipped as they come).
        let mut skip = m.spans_delivered;
        if let Some(p) = &self.pending[traces] {
            // Offered whole: delivered whole, or not at all.
            if skip >= p.items {
                skip -= p.items;
                skipped.spans += p.items;
                self.pending[traces] = None;
            } else {
                skip = 0;
            }
        }
        // Then the queued batches, each whole or not at all, with the whole
        // skip: they come before the spans the restore refused.
        let (queued, ended) = self.skip_queued_spans(skip);
        skipped.spans += queued;
        let skip = if ended { 0 } else { skip - queued };
        // Spans the restore refused are not emitted here: the skip is
        // shortened by as many, so that no undelivered span is skipped.
        let skip = skip.saturating_sub(self.delivery.refused_spans);
        skipped.spans = skipped.spans.saturating_add(skip);
        self.delivery.skip_spans = self.delivery.skip_spans.saturating_add(skip);
        self.skip_delivered_spans();
        // Metrics: the pending and queued batches were the first committed
        // after the checkpoint.
        skipped.metrics_batch =
            self.skip_delivered_metrics_batches(m.metrics_batches_delivered) > 0;
        if m.collection_delivered {
            skipped.measurements =
                self.replay_collection(m.collection_position, m.collection_time_unix_nano);
        }
        self.delivery.since = m;
        Ok(skipped)
    }

    /// The most spans this reader can emit from what it holds: each is held
    /// now (pending, completed, in flight) or starts or ends with a span
    /// event still in the ring.
    pub(super) fn emittable_spans(&self) -> u64 {
        let traces = Signal::Traces as usize;
        self.pending[traces]
            .as_ref()
            .map_or(0, |p| p.items)
            .saturating_add(self.queued_spans())
            .saturating_add(self.assembler.completed_len() as u64)
            .saturating_add(self.assembler.in_flight() as u64)
            .saturating_add(self.stream.rings[traces].unreleased(self.stream.file.region()))
    }

    /// Drops, without emitting them, the completed spans an earlier reader
    /// delivered; called before each traces batch is made.
    pub(super) fn skip_delivered_spans(&mut self) {
        if self.delivery.skip_spans == 0 {
            return;
        }
        // Queued batches first, where they are in the order.
        let (queued, ended) = self.skip_queued_spans(self.delivery.skip_spans);
        self.delivery.skip_spans -= queued;
        if ended {
            // A batch partly delivered is offered whole again, and the
            // spans after it were not delivered.
            self.delivery.skip_spans = 0;
            return;
        }
        let n = usize::try_from(self.delivery.skip_spans).unwrap_or(usize::MAX);
        let taken = self.assembler.drop_completed(n);
        self.delivery.skip_spans -= taken as u64;
    }

    /// A batch of `signal` with `items` was committed.
    pub(super) fn note_delivered(&mut self, signal: Signal, items: u64) {
        let since = &mut self.delivery.since;
        match signal {
            Signal::Traces => since.spans_delivered = since.spans_delivered.saturating_add(items),
            Signal::Metrics => {
                since.metrics_batches_delivered += 1;
                if let Some((position, time)) = self.delivery.pending_collection.take() {
                    since.collection_delivered = true;
                    since.collection_position = position;
                    since.collection_time_unix_nano = time;
                }
            }
            Signal::Logs => {}
        }
    }

    /// The aggregates were collected at `now` into the pending metrics batch.
    pub(super) fn note_collection(&mut self, now: u64) {
        let position = self.stream.rings[Signal::Metrics as usize]
            .next_sequence()
            .wrapping_sub(1);
        self.delivery.pending_collection = Some((position, now));
    }

    /// Aggregates the measurements up to `position` (read by the earlier
    /// reader, so published or abandoned: an unpublished one is skipped),
    /// then collects at `time` without emitting, as the delivered
    /// collection did. Returns the measurements read.
    fn replay_collection(&mut self, position: i64, time: u64) -> u64 {
        let before = self.records_consumed(Signal::Metrics);
        if self.check_poisoned().is_ok() {
            // Each pass reads at most INGEST_BUDGET measurements; the ring
            // holds at most its capacity of them past the checkpoint.
            let ring = &self.stream.rings[Signal::Metrics as usize];
            let passes = ring.geometry().num_buffers / INGEST_BUDGET as u64 + 2;
            for _ in 0..passes {
                let at = self.stream.rings[Signal::Metrics as usize].next_sequence();
                self.ingest_measurements_upto(time, StrandedSlots::WriterDead, position);
                let next = self.stream.rings[Signal::Metrics as usize].next_sequence();
                if next > position || next == at {
                    break;
                }
            }
            let s = &mut self.stream;
            let mut discard = Vec::new();
            self.aggregator
                .collect(&s.file, &mut s.dict, time, &mut discard);
        }
        self.records_consumed(Signal::Metrics) - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_marker_fits_its_bound() {
        let m = DeliveryMarker {
            checkpoint_id: u64::MAX,
            spans_delivered: u64::MAX,
            metrics_batches_delivered: u64::MAX,
            collection_delivered: true,
            collection_position: -1,
            collection_time_unix_nano: u64::MAX,
        };
        assert!(m.encoded_len() <= DELIVERY_MARKER_MAX_BYTES);
    }
}
