//! One lock per sandbox: the spec forbids parallel operations on the same
//! container, while different sandboxes proceed in parallel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OwnedMutexGuard;

type SandboxLock = tokio::sync::Mutex<()>;

/// Async locks keyed by sandbox ID, dropped once nobody holds or waits.
#[derive(Debug, Default)]
pub(crate) struct SandboxLocks {
    locks: Mutex<HashMap<String, Weak<SandboxLock>>>,
}

impl SandboxLocks {
    /// Waits until no other operation runs for `id`.
    pub(crate) async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        self.entry(id).lock_owned().await
    }

    /// The lock for `id` if no other operation holds it now.
    pub(crate) fn try_lock(&self, id: &str) -> Option<OwnedMutexGuard<()>> {
        self.entry(id).try_lock_owned().ok()
    }

    fn entry(&self, id: &str) -> Arc<SandboxLock> {
        // The map stays consistent even if a holder panicked, so poisoning is harmless.
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = locks.get(id).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(SandboxLock::default());
        locks.insert(id.to_string(), Arc::downgrade(&lock));
        lock
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn same_id_waits_and_other_ids_do_not() {
        let locks = SandboxLocks::default();
        let held = locks.lock("a").await;
        assert!(tokio::time::timeout(Duration::from_millis(50), locks.lock("b")).await.is_ok());
        assert!(tokio::time::timeout(Duration::from_millis(50), locks.lock("a")).await.is_err());
        drop(held);
        assert!(tokio::time::timeout(Duration::from_millis(50), locks.lock("a")).await.is_ok());
    }

    #[tokio::test]
    async fn released_locks_are_forgotten() {
        let locks = SandboxLocks::default();
        drop(locks.lock("a").await);
        let _held = locks.lock("b").await;
        let ids: Vec<String> = locks.locks.lock().unwrap().keys().cloned().collect();
        assert_eq!(ids, ["b"]);
    }
}
