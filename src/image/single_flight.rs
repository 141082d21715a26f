//! Concurrent identical requests share one execution and its result.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

/// Runs at most one job per key at a time; callers that arrive while it
/// runs wait for it and get a clone of its result. If the caller driving
/// the job goes away, a waiting caller takes over.
pub struct SingleFlight<T> {
    inflight: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight { inflight: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> SingleFlight<T> {
    pub async fn run<F, Fut>(&self, key: &str, job: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cell = self.lock().entry(key.to_string()).or_default().clone();
        let result = cell.get_or_init(job).await.clone();
        let mut inflight = self.lock();
        if inflight.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(key);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<T>>>> {
        // The map stays consistent even if a holder panicked: entries are only inserted or removed whole.
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_run() {
        let flight = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (flight, runs) = (flight.clone(), runs.clone());
                tokio::spawn(async move {
                    flight
                        .run("k", || async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            runs.fetch_add(1, Ordering::SeqCst) + 1
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Once finished, the next call runs afresh.
        assert_eq!(flight.run("k", || async { 7 }).await, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_run_separately() {
        let flight = SingleFlight::<&str>::default();
        let (a, b) = tokio::join!(flight.run("a", || async { "a" }), flight.run("b", || async { "b" }));
        assert_eq!((a, b), ("a", "b"));
    }
}
