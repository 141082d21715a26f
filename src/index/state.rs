//! The index's table and its one ordering rule: every reading carries the
//! ticket taken before it was made, and a reading never replaces one that
//! was started later. Removals leave a tombstone for a while so a slow,
//! earlier reading cannot bring a removed container back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::docker::ContainerDetails;
use crate::labels;

/// Tombstones are kept at least this long; far longer than any reading takes.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// Tombstones are only swept once there are this many.
const TOMBSTONE_SWEEP_AT: usize = 256;

struct Entry {
    ticket: u64,
    details: Arc<ContainerDetails>,
}

#[derive(Default)]
pub struct State {
    /// True once a rebuild succeeded and the event stream is followed.
    live: bool,
    entries: HashMap<String, Entry>,
    tombstones: HashMap<String, (u64, Instant)>,
    /// Containers Docker sent an `oom` event for. Docker 20.10 can lose
    /// the OOM flag of a container whose exit it learnt before the OOM.
    oom_killed: HashSet<String>,
}

impl State {
    pub fn set_live(&mut self, live: bool) {
        self.live = live;
    }

    pub fn snapshot(&self, kind: &str) -> Option<Vec<Arc<ContainerDetails>>> {
        self.live.then(|| self.of_kind(kind).cloned().collect())
    }

    /// The reading of `id` while the index is in step with Docker.
    pub fn current(&self, id: &str) -> Option<Arc<ContainerDetails>> {
        if !self.live {
            return None;
        }
        self.last_known(id)
    }

    /// The latest reading of `id`, whether or not the index is in step.
    pub fn last_known(&self, id: &str) -> Option<Arc<ContainerDetails>> {
        self.entries.get(id).map(|e| e.details.clone())
    }

    pub fn count(&self, kind: &str) -> usize {
        self.of_kind(kind).count()
    }

    pub fn count_all(&self) -> usize {
        self.entries.len()
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Arc<ContainerDetails>> + 'a {
        self.entries.values().map(|e| &e.details).filter(move |d| labels::get(&d.labels, labels::KIND) == kind)
    }

    fn newest_ticket(&self, id: &str) -> Option<u64> {
        self.entries.get(id).map(|e| e.ticket).or_else(|| self.tombstones.get(id).map(|t| t.0))
    }

    /// Records what a reading with `ticket` found for `id` (`None`: gone).
    pub fn apply(&mut self, ticket: u64, id: &str, details: Option<Arc<ContainerDetails>>) {
        if self.newest_ticket(id).is_some_and(|newest| newest > ticket) {
            return;
        }
        match details {
            Some(details) => {
                self.tombstones.remove(id);
                let details = self.with_oom(details);
                self.entries.insert(id.to_string(), Entry { ticket, details });
            }
            None => {
                self.entries.remove(id);
                self.oom_killed.remove(id);
                self.tombstones.insert(id.to_string(), (ticket, Instant::now()));
                self.sweep_tombstones();
            }
        }
    }

    /// Docker reported the container's exit: record it without waiting for
    /// a full reading.
    pub fn mark_exited(&mut self, ticket: u64, id: &str, exit_code: i64, at_nanos: i64) {
        let Some(entry) = self.entries.get(id).filter(|e| e.ticket < ticket) else { return };
        let mut details = ContainerDetails::clone(&entry.details);
        details.state.status = "exited".to_string();
        details.state.running = false;
        details.state.pid = 0;
        details.state.exit_code = exit_code;
        details.state.finished_at = at_nanos;
        let details = self.with_oom(Arc::new(details));
        self.entries.insert(id.to_string(), Entry { ticket, details });
    }

    /// Docker reported an OOM kill in container `id`; its exit, whenever
    /// read, is an OOM kill.
    pub fn mark_oom_killed(&mut self, id: &str) {
        self.oom_killed.insert(id.to_string());
        if let Some(entry) = self.entries.get_mut(id) {
            entry.details = Self::oom_flagged(&self.oom_killed, entry.details.clone());
        }
    }

    pub fn oom_killed(&self, id: &str) -> bool {
        self.oom_killed.contains(id)
    }

    fn with_oom(&self, details: Arc<ContainerDetails>) -> Arc<ContainerDetails> {
        Self::oom_flagged(&self.oom_killed, details)
    }

    fn oom_flagged(oom_killed: &HashSet<String>, details: Arc<ContainerDetails>) -> Arc<ContainerDetails> {
        if details.state.running || details.state.oom_killed || !oom_killed.contains(&details.id) {
            return details;
        }
        let mut flagged = ContainerDetails::clone(&details);
        flagged.state.oom_killed = true;
        Arc::new(flagged)
    }

    /// A complete listing taken with `ticket`: containers it did not see are
    /// gone, unless a later reading has seen them since.
    pub fn replace_all(&mut self, ticket: u64, found: Vec<(String, Option<Arc<ContainerDetails>>)>) {
        let seen: HashSet<String> = found.iter().map(|(id, _)| id.clone()).collect();
        for (id, details) in found {
            self.apply(ticket, &id, details);
        }
        let vanished: Vec<String> = self
            .entries
            .iter()
            .filter(|(id, e)| e.ticket < ticket && !seen.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in vanished {
            self.apply(ticket, &id, None);
        }
    }

    fn sweep_tombstones(&mut self) {
        if self.tombstones.len() >= TOMBSTONE_SWEEP_AT {
            self.tombstones.retain(|_, (_, at)| at.elapsed() < TOMBSTONE_TTL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, status: &str) -> Option<Arc<ContainerDetails>> {
        let mut d = ContainerDetails { id: id.to_string(), ..Default::default() };
        d.labels.insert(labels::KIND.to_string(), labels::KIND_CONTAINER.to_string());
        d.state.status = status.to_string();
        d.state.running = status == "running";
        Some(Arc::new(d))
    }

    fn status_of(state: &State, id: &str) -> Option<String> {
        state.entries.get(id).map(|e| e.details.state.status.clone())
    }

    #[test]
    fn an_oom_event_marks_the_exit_whenever_it_is_read() {
        let mut state = State::default();
        state.apply(1, "a", container("a", "running"));
        state.mark_oom_killed("a");
        assert!(!state.entries["a"].details.state.oom_killed, "a running container is not OOM-killed yet");
        state.mark_exited(2, "a", 137, 5);
        assert!(state.entries["a"].details.state.oom_killed);
        state.apply(3, "a", container("a", "exited"));
        assert!(state.entries["a"].details.state.oom_killed, "a later reading without the flag keeps it");
        state.apply(4, "a", None);
        assert!(!state.oom_killed("a"), "forgotten with the container");
    }

    #[test]
    fn nothing_is_served_until_live() {
        let mut state = State::default();
        state.apply(1, "a", container("a", "running"));
        assert!(state.snapshot(labels::KIND_CONTAINER).is_none());
        state.set_live(true);
        assert_eq!(state.snapshot(labels::KIND_CONTAINER).map(|s| s.len()), Some(1));
        assert_eq!(state.snapshot(labels::KIND_SANDBOX).map(|s| s.len()), Some(0));
    }

    #[test]
    fn an_earlier_reading_never_wins() {
        let mut state = State::default();
        state.apply(5, "a", container("a", "exited"));
        state.apply(3, "a", container("a", "running"));
        assert_eq!(status_of(&state, "a").as_deref(), Some("exited"));
        state.apply(6, "a", None);
        state.apply(4, "a", container("a", "running"));
        assert_eq!(status_of(&state, "a"), None, "a tombstone keeps a removed container out");
        state.apply(7, "a", container("a", "created"));
        assert_eq!(status_of(&state, "a").as_deref(), Some("created"));
    }

    #[test]
    fn exit_events_apply_only_over_older_readings() {
        let mut state = State::default();
        state.apply(1, "a", container("a", "running"));
        state.mark_exited(2, "a", 137, 42);
        let d = state.entries.get("a").map(|e| e.details.clone()).unwrap();
        assert_eq!(
            (d.state.status.as_str(), d.state.running, d.state.exit_code, d.state.finished_at),
            ("exited", false, 137, 42)
        );
        state.apply(4, "a", container("a", "running"));
        state.mark_exited(3, "a", 1, 1);
        assert_eq!(status_of(&state, "a").as_deref(), Some("running"));
        state.mark_exited(9, "unknown", 1, 1);
        assert!(!state.entries.contains_key("unknown"));
    }

    #[test]
    fn a_listing_drops_what_it_did_not_see_unless_seen_later() {
        let mut state = State::default();
        state.apply(1, "old", container("old", "running"));
        state.apply(3, "new", container("new", "created"));
        state.replace_all(2, vec![("kept".to_string(), container("kept", "running"))]);
        assert!(!state.entries.contains_key("old"));
        assert!(state.entries.contains_key("new"), "created after the listing began");
        assert!(state.entries.contains_key("kept"));
    }

    #[test]
    fn tombstones_are_swept_only_when_old() {
        let mut state = State::default();
        for i in 0..TOMBSTONE_SWEEP_AT + 10 {
            state.apply(i as u64 + 1, &format!("c{i}"), None);
        }
        assert_eq!(state.tombstones.len(), TOMBSTONE_SWEEP_AT + 10, "fresh tombstones stay");
    }
}
