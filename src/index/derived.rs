//! Values computed from index entries and kept while the entry stays the
//! same reading: kubelet lists every container each second, and turning a
//! container's labels back into its CRI view (JSON maps among them) each
//! time cost more than the rest of the listing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use crate::docker::ContainerDetails;

type Memo<T> = HashMap<String, (Arc<ContainerDetails>, T)>;

pub struct Derived<T> {
    memo: Mutex<Memo<T>>,
}

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Derived { memo: Mutex::default() }
    }
}

impl<T: Clone> Derived<T> {
    /// `make(entries[i])` for each entry, in order: made again only for an
    /// entry the index has replaced since. Entries not among `entries` are
    /// forgotten, so pass the index's whole snapshot of a kind.
    pub fn all(&self, entries: &[Arc<ContainerDetails>], make: impl Fn(&ContainerDetails) -> T) -> Vec<T> {
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        let values = entries
            .iter()
            .map(|d| match memo.get(&d.id) {
                Some((seen, value)) if Arc::ptr_eq(seen, d) => value.clone(),
                _ => {
                    let value = make(d);
                    memo.insert(d.id.clone(), (d.clone(), value.clone()));
                    value
                }
            })
            .collect();
        if memo.len() > entries.len() {
            let live: HashSet<&str> = entries.iter().map(|d| d.id.as_str()).collect();
            memo.retain(|id, _| live.contains(id.as_str()));
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn entry(id: &str) -> Arc<ContainerDetails> {
        Arc::new(ContainerDetails { id: id.to_string(), ..Default::default() })
    }

    #[test]
    fn made_once_per_reading_and_forgotten_with_the_entry() {
        let derived = Derived::default();
        let made = AtomicUsize::new(0);
        let make = |d: &ContainerDetails| {
            made.fetch_add(1, Ordering::SeqCst);
            d.id.clone()
        };
        let (a, b) = (entry("a"), entry("b"));
        assert_eq!(derived.all(&[a.clone(), b.clone()], make), ["a", "b"]);
        assert_eq!(derived.all(&[a.clone(), b.clone()], make), ["a", "b"]);
        assert_eq!(made.load(Ordering::SeqCst), 2, "the same readings are not made again");
        let a_again = entry("a");
        derived.all(&[a_again, b.clone()], make);
        assert_eq!(made.load(Ordering::SeqCst), 3, "a new reading of a is made again");
        derived.all(&[b], make);
        assert_eq!(derived.memo.lock().unwrap().len(), 1, "a is forgotten");
    }
}
