//! cgroup readings of many containers: read in a few blocking batches rather
//! than one thread hand-off per file set, and kept for a moment, because
//! kubelet asks for pod stats and container stats back to back and both
//! would otherwise read every container's cgroup again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::cgroup::{CgroupLocation, CgroupStats};
use crate::time::now_nanos;

/// A reading this recent is served again instead of read anew: long enough
/// for the second of two back-to-back listings, short enough that a caller
/// polling on its own sees fresh figures.
const REUSE_WITHIN: Duration = Duration::from_millis(250);
/// Processes read by one blocking task.
const BATCH: usize = 32;
/// Blocking tasks at once: enough to use two cores, few enough to leave the
/// pool to other callers.
const BATCHES_AT_ONCE: usize = 2;

/// One container's cgroup at a moment.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Nanoseconds since the epoch when read: the stats' timestamp.
    pub at: i64,
    /// `None` when the process is gone or its cgroup cannot be read.
    pub stats: Option<CgroupStats>,
}

#[derive(Default)]
pub struct Readings {
    recent: Mutex<HashMap<String, (Instant, i64, Reading)>>,
}

impl Readings {
    /// The readings of `targets` (container ID and main PID), in their
    /// order: a recent reading of the same process is reused.
    pub async fn of(&self, targets: &[(&str, i64)]) -> Vec<Reading> {
        let mut readings: Vec<Option<Reading>> = {
            let recent = self.lock();
            targets
                .iter()
                .map(|(id, pid)| {
                    recent
                        .get(*id)
                        .filter(|(taken, read_pid, _)| read_pid == pid && taken.elapsed() < REUSE_WITHIN)
                        .map(|(_, _, reading)| reading.clone())
                })
                .collect()
        };
        let missing: Vec<usize> = (0..targets.len()).filter(|i| readings[*i].is_none()).collect();
        let pids = missing.iter().map(|i| targets[*i].1).collect();
        let read = in_batches(pids, |pid| Reading { at: now_nanos(), stats: read_full(pid) }).await;
        let mut recent = self.lock();
        // What is no longer recent serves no one: the map holds one round.
        recent.retain(|_, (taken, _, _)| taken.elapsed() < REUSE_WITHIN);
        let taken = Instant::now();
        for (i, reading) in missing.into_iter().zip(read) {
            let (id, pid) = targets[i];
            recent.insert(id.to_string(), (taken, pid, reading.clone()));
            readings[i] = Some(reading);
        }
        readings.into_iter().map(Option::unwrap_or_default).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, i64, Reading)>> {
        // Entries are replaced whole; a panic elsewhere leaves the map usable.
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `read` applied to every PID, in order, on the blocking pool a batch at a
/// time; a batch whose task fails gives `T::default()` for its PIDs.
pub async fn in_batches<T: Default + Send + 'static>(pids: Vec<i64>, read: fn(i64) -> T) -> Vec<T> {
    let batches: Vec<Vec<i64>> = pids.chunks(BATCH).map(<[i64]>::to_vec).collect();
    let read = futures::stream::iter(batches)
        .map(|batch| async move {
            let size = batch.len();
            let task = tokio::task::spawn_blocking(move || batch.into_iter().map(read).collect::<Vec<T>>());
            task.await.unwrap_or_else(|_| (0..size).map(|_| T::default()).collect())
        })
        .buffered(BATCHES_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    read.into_iter().flatten().collect()
}

/// Usage, limits and stalls of the cgroup process `pid` runs in.
fn read_full(pid: i64) -> Option<CgroupStats> {
    read_with(pid, CgroupLocation::read)
}

/// Usage only: for a pod's infra container, whose stalls are not the pod's.
pub fn read_usage(pid: i64) -> Option<CgroupStats> {
    read_with(pid, CgroupLocation::read_usage)
}

fn read_with(pid: i64, read: fn(&CgroupLocation) -> std::io::Result<CgroupStats>) -> Option<CgroupStats> {
    if pid <= 0 {
        return None;
    }
    CgroupLocation::of_pid(pid).and_then(|l| read(&l)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_keep_the_order_of_their_pids() {
        let pids: Vec<i64> = (1..=100).collect();
        let doubled = in_batches(pids, |pid| pid * 2).await;
        assert_eq!(doubled, (1..=100).map(|p| p * 2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_fresh_reading_of_the_same_process_is_served_again() {
        let readings = Readings::default();
        let me = std::process::id() as i64;
        let first = readings.of(&[("c", me), ("gone", -1)]).await;
        assert!(first[1].stats.is_none(), "no process, no reading");
        let again = readings.of(&[("c", me)]).await;
        assert_eq!(again[0].at, first[0].at, "reused while recent");
        let other_pid = readings.of(&[("c", 1)]).await;
        assert_ne!(other_pid[0].at, first[0].at, "a restarted container is read anew");
    }
}
