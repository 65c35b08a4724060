//! Removing the file of a writer that is gone, once everything in it was
//! delivered (the receiver's `delete_after_drain`).

use otlp_mmap_core::{FileChange, WriterState};

use super::{FileReader, Signal};

/// Why [`FileReader::remove_if_drained`] left the file where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRemoved {
    /// The reader does not consume the file (a tool that only looks).
    NotConsuming,
    /// The writer holds its lock, or was never seen holding it (a writer
    /// that takes no lock, or one that died before this reader opened the
    /// file) and is not presumed gone
    /// ([`FileReader::writer_presumed_gone`]): nothing says it will not
    /// write again.
    WriterNotKnownGone,
    /// The path no longer leads to this stream (the file was removed or
    /// replaced, or the writer started over in place).
    NotThisFile,
    /// Something of the signal is not delivered yet: records in its ring, a
    /// batch not committed, spans in the assembler, or measurements not
    /// collected into a committed batch.
    NotDrained(Signal),
}

impl FileReader {
    /// Removes the file from its path when its writer is gone and every
    /// record of `signals` in it has been delivered: the rings are empty,
    /// no batch waits for its commit, no span is in flight or completed and
    /// not sent, and the metric aggregates were collected after the last
    /// measurement and committed. The writer's state and the path's identity
    /// are checked again just before the file is removed. The reader keeps
    /// its mapping; close it afterwards.
    pub fn remove_if_drained(&mut self, signals: &[Signal]) -> Result<(), RemoveOutcome> {
        if !self.options.consume {
            return Err(RemoveOutcome::Kept(NotRemoved::NotConsuming));
        }
        if self.check_poisoned().is_err() || self.change != FileChange::None {
            return Err(RemoveOutcome::Kept(NotRemoved::NotThisFile));
        }
        for &signal in signals {
            if !self.signal_drained(signal) {
                return Err(RemoveOutcome::Kept(NotRemoved::NotDrained(signal)));
            }
        }
        let gone = match self.stream.file.writer_state() {
            WriterState::Gone => true,
            WriterState::Unknown => self.unlocked.as_ref().is_some_and(|u| u.presumed),
            WriterState::Alive => false,
        };
        if !gone {
            return Err(RemoveOutcome::Kept(NotRemoved::WriterNotKnownGone));
        }
        // The identity of the path last: same inode, same start time.
        if self.stream.file.file_change() != FileChange::None {
            return Err(RemoveOutcome::Kept(NotRemoved::NotThisFile));
        }
        std::fs::remove_file(&self.path).map_err(|e| RemoveOutcome::Failed(e.kind()))?;
        self.change = FileChange::Removed;
        Ok(())
    }

    /// Whether the writer of a file whose liveness lock this reader never
    /// saw held is presumed gone (it died before this reader opened the
    /// file, while no Collector ran): the lock is not held now, the file's
    /// start time is at least `grace_nanos` before `now` (unix nanos), and
    /// nothing was written to it, nor read from it, for `grace_nanos` of
    /// calls to this method (the first call starts the watch). Our writers
    /// take their lock before their file appears at its path, so a writer
    /// starting up is never presumed gone; a writer that takes no lock and
    /// writes nothing for `grace_nanos` is. Once presumed gone, the writer
    /// is handled as gone: the spans in flight are given up when the ring is
    /// empty, and [`remove_if_drained`](Self::remove_if_drained) may
    /// remove the file.
    pub fn writer_presumed_gone(&mut self, now: u64, grace_nanos: u64) -> bool {
        if !self.options.consume
            || self.writer_gone
            || self.stream.file.saw_writer_lock()
            || self.check_poisoned().is_err()
        {
            self.unlocked = None;
            return false;
        }
        if self.stream.file.writer_state() != WriterState::Unknown
            || now.saturating_sub(self.stream.file.start_time_unix_nano()) < grace_nanos
        {
            self.unlocked = None;
            return false;
        }
        let region = self.stream.file.region();
        let mut activity = [0u64; 6];
        for (i, ring) in self.stream.rings.iter().enumerate() {
            activity[i] = ring.unreleased(region);
            activity[3 + i] =
                self.records_consumed([Signal::Traces, Signal::Logs, Signal::Metrics][i]);
        }
        match &mut self.unlocked {
            Some(u) if u.activity == activity && u.generation == self.stream.generation => {
                if now.saturating_sub(u.since) >= grace_nanos {
                    u.presumed = true;
                    self.writer_gone = true;
                }
            }
            _ => {
                self.unlocked = Some(UnlockedWatch {
                    since: now,
                    activity,
                    generation: self.stream.generation,
                    presumed: false,
                })
            }
        }
        self.writer_gone
    }

    fn signal_drained(&self, signal: Signal) -> bool {
        let i = signal as usize;
        let ring = &self.stream.rings[i];
        if self.pending[i].is_some()
            || self.queued_left(signal)
            || ring.unreleased(self.stream.file.region()) != 0
        {
            return false;
        }
        match signal {
            Signal::Traces => {
                self.assembler.in_flight() == 0 && self.assembler.completed_len() == 0
            }
            Signal::Logs => true,
            Signal::Metrics => self.records_consumed(Signal::Metrics) == self.consumed_at_collect,
        }
    }
}

/// What [`FileReader::writer_presumed_gone`] watches.
#[derive(Debug)]
pub(super) struct UnlockedWatch {
    /// When the file was first seen as it is now (unix nanos).
    since: u64,
    /// Per ring: records not released, then records taken.
    activity: [u64; 6],
    generation: u64,
    /// Watched for the grace period: the writer is presumed gone.
    presumed: bool,
}

/// Why a file was not removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// The file stays: it is not (yet) drained, or not this reader's to remove.
    Kept(NotRemoved),
    /// Removing it failed (permissions of the directory, most often).
    Failed(std::io::ErrorKind),
}
