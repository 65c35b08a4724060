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
    /// file): nothing says it will not write again.
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
        if self.stream.file.writer_state() != WriterState::Gone {
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

    fn signal_drained(&self, signal: Signal) -> bool {
        let i = signal as usize;
        let ring = &self.stream.rings[i];
        if self.pending[i].is_some() || ring.unreleased(self.stream.file.region()) != 0 {
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

/// Why a file was not removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// The file stays: it is not (yet) drained, or not this reader's to remove.
    Kept(NotRemoved),
    /// Removing it failed (permissions of the directory, most often).
    Failed(std::io::ErrorKind),
}
