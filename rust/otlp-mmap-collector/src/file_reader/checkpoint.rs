//! The reader's state as a checkpoint ([`crate::checkpoint_proto`]) that the
//! Collector keeps in its storage extension across a restart, and back.
//!
//! A checkpoint holds the spans in flight, the completed spans not sent, the
//! batches read and not committed (and those queued behind them, made from
//! streams the writer started over from), the metric aggregates with the start time
//! of the cumulative series, the file's identity (device, inode, start time)
//! and the positions of the spans and measurements rings it covers. It is
//! restored only into a fresh reader of the same file whose rings stand
//! exactly where the checkpoint left them; anything else (another file, a
//! writer that started over, a reader that went on after the checkpoint,
//! bytes that do not decode, another format version) is refused as a whole,
//! with the reason. Within an accepted checkpoint, a span or metric that
//! does not fit the reader's limits is refused alone and counted.

use otlp_mmap_core::{FileChange, FormatError};
use prost::Message;

use super::{FileReader, Pending, Signal};
use crate::checkpoint_proto::{CheckpointMetric, CheckpointSpan, QueuedBatch, ReaderCheckpoint};

/// Format version of the checkpoints that hold queued batches (of a stream
/// the writer started over from). A checkpoint without any is written as
/// version 1, which readers from before queued batches read too; one with
/// them as this version, which such readers refuse rather than misread
/// (they would drop the batches, and apply a delivery marker that counts
/// them to other spans). This reader reads both.
pub const CHECKPOINT_VERSION: u32 = 2;

/// Format version of a checkpoint without queued batches.
const CHECKPOINT_VERSION_WITHOUT_QUEUED: u32 = 1;

/// Most queued batches a checkpoint may hold (a writer starting over in
/// place makes a handful; the bytes are bounded too, see `restore`).
const MAX_RESTORED_QUEUED_BATCHES: usize = 1 << 16;

/// Why a checkpoint was not restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointRejected {
    /// The bytes are not a checkpoint (corrupt), or one of another version.
    #[error("not a checkpoint of version 1 or {CHECKPOINT_VERSION} (corrupt or foreign)")]
    Corrupt,
    /// It is another file's (device, inode or start time differ).
    #[error("it belongs to another file or to an earlier writer of this one")]
    OtherFile,
    /// The rings moved since it was taken (another reader read the file, or
    /// this one already read from it).
    #[error("the file's rings are no longer where the checkpoint left them")]
    Stale,
    /// Larger than what a reader with these options can hold.
    #[error("larger than a reader with these limits can hold")]
    TooLarge,
}

/// What a restore put back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Spans put back in flight.
    pub in_flight_spans: u64,
    /// Completed spans and pending batch items put back.
    pub completed_spans: u64,
    /// Metric series put back.
    pub series: u64,
    /// Spans and metrics of the checkpoint refused (over the limits, not
    /// decodable, or not matching the file's definitions).
    pub refused: u64,
}

impl FileReader {
    /// Keeps span events and measurements in their rings, once read, until
    /// a checkpoint that covers them was stored
    /// ([`checkpoint_stored`](Self::checkpoint_stored)), so that a crash of
    /// the Collector loses nothing the last checkpoint did not cover: the
    /// next reader restores it and reads on from where it was taken. The
    /// rings then hold what was read since the last checkpoint.
    pub fn set_hold_until_checkpoint(&mut self, hold: bool) {
        self.hold_until_checkpoint = hold;
    }

    /// The reader's state as checkpoint bytes: it covers every span event
    /// and measurement read so far.
    pub fn checkpoint(&mut self) -> Vec<u8> {
        // A traces batch handed out flat: the checkpoint keeps its request.
        self.encode_pending_spans();
        let rings = &self.stream.rings;
        let positions = [
            rings[Signal::Traces as usize]
                .next_sequence()
                .wrapping_sub(1),
            rings[Signal::Metrics as usize]
                .next_sequence()
                .wrapping_sub(1),
        ];
        self.checkpoint_positions = Some((self.stream.generation, positions));
        let (checkpoint_id, spans_delivered_ahead) = self.delivery.checkpoint_taken();
        let file = &self.stream.file;
        let (dev, ino) = file.dev_ino();
        let mut cp = ReaderCheckpoint {
            version: CHECKPOINT_VERSION_WITHOUT_QUEUED,
            dev,
            ino,
            start_time_unix_nano: file.start_time_unix_nano(),
            spans_released: positions[0],
            measurements_released: positions[1],
            metrics_start_time_unix_nano: self.aggregator.stream_start(),
            saw_writer_lock: file.saw_writer_lock(),
            checkpoint_id,
            spans_delivered_ahead,
            ..Default::default()
        };
        self.assembler.export_in_flight(|scope_ref, seen_at, span| {
            cp.in_flight.push(CheckpointSpan {
                scope_ref,
                seen_at,
                span: span.to_vec(),
            })
        });
        self.assembler.export_completed(|scope_ref, span| {
            cp.completed.push(CheckpointSpan {
                scope_ref,
                seen_at: 0,
                span: span.to_vec(),
            })
        });
        if let Some(p) = &self.pending[Signal::Traces as usize] {
            cp.pending_traces = p.bytes.clone();
            cp.pending_traces_items = p.items;
        }
        if let Some(p) = &self.pending[Signal::Metrics as usize] {
            cp.pending_metrics = p.bytes.clone();
            cp.pending_metrics_items = p.items;
        }
        // Queued batches are export requests (laid out flat only once pending).
        let queued = |signal: Signal| -> Vec<QueuedBatch> {
            self.queued[signal as usize]
                .iter()
                .map(|p| QueuedBatch {
                    request: p.bytes.clone(),
                    items: p.items,
                })
                .collect()
        };
        cp.queued_traces = queued(Signal::Traces);
        cp.queued_metrics = queued(Signal::Metrics);
        if !cp.queued_traces.is_empty() || !cp.queued_metrics.is_empty() {
            cp.version = CHECKPOINT_VERSION;
        }
        self.aggregator
            .export_metrics(|metric_ref, interval_start, metric| {
                cp.metrics.push(CheckpointMetric {
                    metric_ref,
                    metric: metric.to_vec(),
                    interval_start_unix_nano: interval_start,
                })
            });
        cp.encode_to_vec()
    }

    /// The last checkpoint taken is stored: the span events and
    /// measurements it covers are given back to the writers.
    pub fn checkpoint_stored(&mut self) -> Result<(), FormatError> {
        self.delivery.checkpoint_stored();
        let Some((generation, positions)) = self.checkpoint_positions.take() else {
            return Ok(());
        };
        // The writer started over since: the positions are the old stream's.
        if !self.options.consume
            || generation != self.stream.generation
            || self.change == FileChange::Restarted
        {
            return Ok(());
        }
        self.check_poisoned()?;
        for (signal, seq) in [
            (Signal::Traces, positions[0]),
            (Signal::Metrics, positions[1]),
        ] {
            let i = signal as usize;
            if seq > self.stream.rings[i].released() && self.stream.release_to(i, seq).is_err() {
                // reader_index moved under us: the writer started over.
                self.change = FileChange::Restarted;
            }
        }
        Ok(())
    }

    /// Puts the state of `checkpoint` back into this reader, which must not
    /// have read anything yet. On `Err` nothing changed, except when the
    /// writer starts over in place while the rings are moved: the reader
    /// then follows that restart, as at any other time.
    pub fn restore(&mut self, checkpoint: &[u8]) -> Result<Restored, CheckpointRejected> {
        let o = &self.options;
        // Spans in flight and completed, the aggregates, the pending and
        // the queued batches (see `queued_batches.rs`), twice over.
        let most = o
            .max_in_flight_span_bytes
            .saturating_add(o.max_metric_bytes.saturating_mul(2))
            .saturating_add(o.max_batch_bytes.saturating_mul(4))
            .saturating_mul(2)
            .saturating_add(16 << 20);
        if checkpoint.len() > most {
            return Err(CheckpointRejected::TooLarge);
        }
        let cp = ReaderCheckpoint::decode(checkpoint).map_err(|_| CheckpointRejected::Corrupt)?;
        let has_queued = !cp.queued_traces.is_empty() || !cp.queued_metrics.is_empty();
        match cp.version {
            CHECKPOINT_VERSION_WITHOUT_QUEUED if !has_queued => {}
            CHECKPOINT_VERSION => {}
            _ => return Err(CheckpointRejected::Corrupt),
        }
        // Queued batches: what the queue may hold, and no more.
        let queued = cp.queued_traces.iter().chain(&cp.queued_metrics);
        let queued_bytes = queued.clone().map(|q| q.request.len()).sum::<usize>();
        if queued.count() > MAX_RESTORED_QUEUED_BATCHES
            || queued_bytes > self.most_queued_bytes_restored()
        {
            return Err(CheckpointRejected::TooLarge);
        }
        let file = &self.stream.file;
        if (cp.dev, cp.ino) != file.dev_ino()
            || cp.start_time_unix_nano != file.start_time_unix_nano()
        {
            return Err(CheckpointRejected::OtherFile);
        }
        let fresh = self.pending.iter().all(Option::is_none)
            && self.stats.records_read == [0; 3]
            && self.assembler.in_flight() == 0
            && self.assembler.completed_len() == 0
            && self.queued.iter().all(std::collections::VecDeque::is_empty);
        // The rings may stand behind the checkpoint (a crash before the
        // release that follows storing it), never past it.
        let rings = &self.stream.rings;
        if !fresh
            || cp.spans_released < rings[Signal::Traces as usize].released()
            || cp.measurements_released < rings[Signal::Metrics as usize].released()
        {
            return Err(CheckpointRejected::Stale);
        }
        let region = self.stream.file.region();
        let positions = [
            (Signal::Traces, cp.spans_released),
            (Signal::Metrics, cp.measurements_released),
        ];
        // Both rings checked before either moves: a refused restore changes
        // nothing (a ring moved would release slots in the shared file).
        let skippable = |(signal, seq): &(Signal, i64)| {
            let ring = &self.stream.rings[*signal as usize];
            *seq == ring.released() || ring.skippable_to(region, *seq).is_some()
        };
        if !positions.iter().all(skippable) {
            return Err(CheckpointRejected::Stale);
        }
        for (signal, seq) in positions {
            let ring = &mut self.stream.rings[signal as usize];
            if seq != ring.released() && !ring.skip_to(region, seq) {
                // Only when the writer started over in place (or another
                // reader released) since the check: an earlier ring may
                // have moved. The stream is then the old one's, followed as
                // a restart.
                self.change = FileChange::Restarted;
                return Err(CheckpointRejected::Stale);
            }
        }
        let mut r = Restored::default();
        let mut refused_spans = 0u64;
        // Each restored span's scope is resolved now, as for a span read
        // from the ring (see `DictionaryCache::warm_scope`).
        for s in cp.in_flight {
            match self
                .assembler
                .import_in_flight(s.scope_ref, s.seen_at, &s.span)
            {
                Ok(()) => {
                    r.in_flight_spans += 1;
                    self.stream.dict.warm_scope(&self.stream.file, s.scope_ref);
                }
                Err(_) => refused_spans += 1,
            }
        }
        for s in cp.completed {
            match self.assembler.import_completed(s.scope_ref, &s.span) {
                Ok(()) => {
                    r.completed_spans += 1;
                    self.stream.dict.warm_scope(&self.stream.file, s.scope_ref);
                }
                Err(_) => refused_spans += 1,
            }
        }
        r.refused += refused_spans;
        for (signal, bytes, items) in [
            (Signal::Traces, cp.pending_traces, cp.pending_traces_items),
            (
                Signal::Metrics,
                cp.pending_metrics,
                cp.pending_metrics_items,
            ),
        ] {
            if !bytes.is_empty() {
                let token = self.token();
                r.completed_spans += (signal == Signal::Traces) as u64 * items;
                self.pending[signal as usize] = Some(Pending::request(bytes, token, items));
            }
        }
        for (signal, batches) in [
            (Signal::Traces, cp.queued_traces),
            (Signal::Metrics, cp.queued_metrics),
        ] {
            for q in batches.into_iter().filter(|q| !q.request.is_empty()) {
                if signal == Signal::Traces {
                    r.completed_spans = r.completed_spans.saturating_add(q.items);
                }
                self.queue(signal, q.request, q.items);
            }
        }
        self.aggregator
            .set_stream_start(cp.metrics_start_time_unix_nano);
        let s = &mut self.stream;
        for m in cp.metrics {
            match self.aggregator.import_metric(
                &s.file,
                &mut s.dict,
                m.metric_ref,
                m.interval_start_unix_nano,
                &m.metric,
            ) {
                Ok(n) => r.series += n as u64,
                Err(_) => r.refused += 1,
            }
        }
        if cp.saw_writer_lock {
            s.file.note_writer_lock_seen();
        }
        self.consumed_at_collect = u64::MAX;
        // The spans still to skip are untrusted too: never more than this
        // reader can emit, or it would silence every span from now on. A
        // span refused above is not emitted: each shortens the skip by one
        // (at worst a delivered span comes again; none is lost).
        // Queued batches come before the refused spans in the emission
        // order: skipped whole (or not at all) with the whole skip first.
        let (queued_skipped, ended) = self.skip_queued_spans(cp.spans_delivered_ahead);
        let ahead = if ended {
            0
        } else {
            cp.spans_delivered_ahead - queued_skipped
        };
        let skip_spans = ahead
            .saturating_sub(refused_spans)
            .min(self.emittable_spans());
        self.delivery.checkpoint_restored(
            cp.checkpoint_id,
            skip_spans,
            refused_spans.saturating_sub(ahead),
        );
        Ok(r)
    }
}
