//! When the config history stores a full snapshot.
//!
//! Each history entry holds the changes of one revision; some also hold the
//! whole config (a checkpoint), from which any later revision is rebuilt by
//! replaying changes. A checkpoint is due once the changes written since the
//! last one add up to that checkpoint's size (and at least
//! [`MIN_CHECKPOINT_BYTES`]): history storage stays within about twice the
//! changes themselves, rebuilding a revision parses at most about two
//! configs' worth of JSON, and a write to a large config rarely pays for
//! serialising all of it.
//!
//! The counts live in memory, per store handle: writes by other processes
//! on the same database are not counted, which only makes checkpoints rarer.

use std::sync::atomic::{AtomicU64, Ordering};

/// The fewest bytes of changes between two checkpoints.
pub(crate) const MIN_CHECKPOINT_BYTES: u64 = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Checkpoints {
    /// Bytes of changes written since the last checkpoint.
    since: AtomicU64,
    /// Size of the last checkpoint.
    last: AtomicU64,
}

impl Checkpoints {
    /// Counts from the history as stored: the last checkpoint's size and the
    /// bytes of changes after it.
    pub(crate) fn new(last_checkpoint_bytes: u64, since_bytes: u64) -> Self {
        Checkpoints {
            since: AtomicU64::new(since_bytes),
            last: AtomicU64::new(last_checkpoint_bytes),
        }
    }

    /// Whether the write whose changes take `change_bytes` should store a
    /// snapshot too.
    pub(crate) fn due(&self, change_bytes: usize) -> bool {
        let since = self.since.load(Ordering::Relaxed) + change_bytes as u64;
        since >= self.last.load(Ordering::Relaxed).max(MIN_CHECKPOINT_BYTES)
    }

    /// Records a written entry: its changes' size and, for a checkpoint, the
    /// snapshot's.
    pub(crate) fn record(&self, change_bytes: usize, snapshot_bytes: Option<usize>) {
        match snapshot_bytes {
            Some(n) => {
                self.since.store(0, Ordering::Relaxed);
                self.last.store(n as u64, Ordering::Relaxed);
            }
            None => {
                self.since.fetch_add(change_bytes as u64, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_changes_reach_the_last_checkpoint_size() {
        let c = Checkpoints::new(200_000, 0);
        assert!(!c.due(1_000));
        for _ in 0..199 {
            c.record(1_000, None);
        }
        assert!(!c.due(999));
        assert!(c.due(1_000));
        c.record(1_000, Some(300_000));
        assert!(!c.due(299_999));
        assert!(c.due(300_000));
    }

    #[test]
    fn small_configs_still_checkpoint_at_the_minimum() {
        let c = Checkpoints::new(100, 0);
        assert!(!c.due(1_000));
        assert!(c.due(MIN_CHECKPOINT_BYTES as usize));
    }
}
