//! Writable-layer usage per container, measured in the background: a walk
//! of a layer costs time proportional to its files, so stats calls only
//! ever read the last measurement.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::disk_usage::walk;

/// A measurement older than this is refreshed after it is served.
const MAX_AGE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerUsage {
    pub used_bytes: u64,
    pub inodes_used: u64,
    /// Nanoseconds since the epoch when measured.
    pub timestamp: i64,
}

#[derive(Default)]
struct State {
    measured: HashMap<String, (Instant, LayerUsage)>,
    walking: HashSet<String>,
}

#[derive(Default, Clone)]
pub struct LayerMeter {
    state: Arc<Mutex<State>>,
}

impl LayerMeter {
    /// The last measurement of container `id`'s layer at `dir`, if any;
    /// starts a new one in the background when it is missing or stale.
    pub fn usage(&self, id: &str, dir: &str) -> Option<LayerUsage> {
        if dir.is_empty() {
            return None;
        }
        let mut state = self.lock();
        let current = state.measured.get(id).copied();
        let stale = current.is_none_or(|(at, _)| at.elapsed() > MAX_AGE);
        if stale && state.walking.insert(id.to_string()) {
            let (meter, id, dir) = (self.clone(), id.to_string(), PathBuf::from(dir));
            tokio::task::spawn_blocking(move || meter.measure(id, dir));
        }
        current.map(|(_, usage)| usage)
    }

    /// Forgets containers that are no longer running.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().measured.retain(|id, _| live.contains(id));
    }

    fn measure(&self, id: String, dir: PathBuf) {
        let result = walk(&dir);
        let mut state = self.lock();
        state.walking.remove(&id);
        match result {
            Ok((used_bytes, inodes_used)) => {
                let usage = LayerUsage { used_bytes, inodes_used, timestamp: crate::time::now_nanos() };
                state.measured.insert(id, (Instant::now(), usage));
            }
            Err(e) => {
                tracing::debug!(container_id = %id, dir = %dir.display(), error = %e, "cannot measure writable layer")
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Entries are replaced whole; a panic elsewhere leaves the map usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_in_the_background_then_serves_the_result() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![0u8; 100_000]).unwrap();
        let meter = LayerMeter::default();
        let path = dir.path().display().to_string();
        assert_eq!(meter.usage("c", &path), None, "the first call only schedules a walk");
        let mut usage = None;
        for _ in 0..100 {
            usage = meter.usage("c", &path);
            if usage.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let usage = usage.expect("measured");
        assert!(usage.used_bytes >= 100_000 && usage.inodes_used == 1);
        meter.retain(&HashSet::new());
        assert!(meter.lock().measured.is_empty());
    }
}
