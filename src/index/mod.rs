//! The in-memory view of pinshim's containers (pause and workload) that the
//! list and stats calls are served from, instead of asking Docker each time.
//!
//! It is rebuilt from Docker at start and after every gap in Docker's event
//! stream, kept current by those events, and refreshed by pinshim's own
//! mutations before they return (read-your-writes). While it is not in step
//! with Docker (dockerd down, stream broken) `snapshot` answers `None` and
//! callers ask Docker directly, so a list is never served from a stale view.

mod derived;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::docker::{ContainerAction, ContainerDetails, ContainerEvent, Docker, DockerError};
use crate::labels;
pub use derived::Derived;
use state::State;

/// Inspections in flight at once during a rebuild or a burst of events.
const INSPECT_CONCURRENCY: usize = 16;
/// Pause before resubscribing after the event stream broke.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// How far back a new subscription replays Docker's events: covers the
/// rebuild that runs between taking the timestamp and the stream opening.
const REPLAY_MARGIN_NANOS: i64 = 1_000_000_000;

/// See `ContainerIndex::ticket`.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

pub struct ContainerIndex {
    docker: Docker,
    state: std::sync::Mutex<State>,
    /// Orders snapshots: a reading taken later never loses to an earlier one.
    tickets: AtomicU64,
    /// Asks the watcher to rebuild (a refresh failed, so an update may be lost).
    resync: Notify,
    inspect_slots: Semaphore,
}

impl ContainerIndex {
    pub fn new(docker: Docker) -> Arc<Self> {
        Arc::new(ContainerIndex {
            docker,
            state: Default::default(),
            tickets: AtomicU64::new(1),
            resync: Notify::new(),
            inspect_slots: Semaphore::new(INSPECT_CONCURRENCY),
        })
    }

    /// Keeps the index in step with Docker until `stop` is cancelled.
    pub fn spawn(self: &Arc<Self>, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move { stop.run_until_cancelled(this.watch()).await });
    }

    /// The containers of `kind` (`labels::KIND_SANDBOX` or `KIND_CONTAINER`),
    /// or `None` while the index is not known to match Docker.
    pub fn snapshot(&self, kind: &str) -> Option<Vec<Arc<ContainerDetails>>> {
        self.lock().snapshot(kind)
    }

    /// The latest reading of container `id` (its full ID), possibly stale:
    /// for reports that must say something while Docker cannot be asked.
    pub fn last_known(&self, id: &str) -> Option<Arc<ContainerDetails>> {
        self.lock().last_known(id)
    }

    /// Container `id` (its full ID) as the index has it while it follows
    /// Docker's events: what a caller may use instead of an inspect.
    pub fn current(&self, id: &str) -> Option<Arc<ContainerDetails>> {
        self.lock().current(id)
    }

    /// Whether Docker reported an OOM kill in container `id` (its full
    /// ID) while the index followed it.
    pub fn oom_killed(&self, id: &str) -> bool {
        self.lock().oom_killed(id)
    }

    /// Re-reads one container from Docker. pinshim calls this after each of
    /// its own changes, so the next list call sees them.
    pub async fn refresh(&self, id: &str) {
        if id.is_empty() {
            return;
        }
        let ticket = self.next_ticket();
        match self.docker.inspect_container(id).await {
            // Keyed by Docker's full ID even when called with a name or prefix.
            Ok(Some(details)) if is_ours(&details) => {
                self.lock().apply(ticket, &details.id.clone(), Some(Arc::new(details)))
            }
            Ok(_) => self.lock().apply(ticket, id, None),
            Err(e) => return self.lost_track(id, &e),
        }
        self.publish_size();
    }

    /// Marks the moment before a caller inspects a container itself, to
    /// hand the reading to `record` instead of having `refresh` read it again.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.next_ticket())
    }

    /// Files a reading taken after `ticket`, as `refresh` would have.
    pub fn record(&self, ticket: Ticket, details: &ContainerDetails) {
        if !is_ours(details) {
            return;
        }
        self.lock().apply(ticket.0, &details.id.clone(), Some(Arc::new(details.clone())));
        self.publish_size();
    }

    fn lost_track(&self, id: &str, e: &DockerError) {
        tracing::debug!(container_id = %id, error = %e, "cannot refresh container; index will rebuild");
        self.lock().set_live(false);
        self.resync.notify_one();
    }

    fn next_ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::SeqCst)
    }

    /// Reports the index's size to the metrics endpoint.
    fn publish_size(&self) {
        let state = self.lock();
        crate::metrics::set_index_size(labels::KIND_SANDBOX, state.count(labels::KIND_SANDBOX));
        crate::metrics::set_index_size(labels::KIND_CONTAINER, state.count(labels::KIND_CONTAINER));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribe, rebuild, follow events; on any gap start over.
    async fn watch(self: Arc<Self>) {
        loop {
            let since = crate::time::now_nanos() - REPLAY_MARGIN_NANOS;
            if let Err(e) = self.rebuild().await {
                tracing::debug!(error = %e, "cannot rebuild the container index; retrying");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
            let events = match self.docker.container_events(labels::KIND, since).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot subscribe to docker events; retrying");
                    self.lock().set_live(false);
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            };
            let mut events = std::pin::pin!(events);
            loop {
                tokio::select! {
                    () = self.resync.notified() => break,
                    event = events.next() => match event {
                        Some(Ok(event)) => self.on_event(event),
                        _ => break,
                    },
                }
            }
            self.lock().set_live(false);
            tracing::info!("docker event stream interrupted; rebuilding the container index");
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }

    /// Reads every pinshim container from Docker and replaces the view.
    async fn rebuild(&self) -> Result<(), DockerError> {
        let ticket = self.next_ticket();
        let listed = self.docker.list_containers(&[labels::KIND]).await?;
        let inspected = futures::stream::iter(listed)
            .map(|summary| async move { (self.docker.inspect_container(&summary.id).await, summary.id) })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut found = Vec::with_capacity(inspected.len());
        for (details, id) in inspected {
            found.push((id, details?.filter(is_ours).map(Arc::new)));
        }
        let mut state = self.lock();
        state.replace_all(ticket, found);
        state.set_live(true);
        tracing::debug!(containers = state.count_all(), "container index rebuilt");
        drop(state);
        self.publish_size();
        Ok(())
    }

    /// An exit or removal is applied at once from the event itself, so a
    /// change made behind pinshim's back shows without waiting for Docker;
    /// every event is then followed by a full re-read of the container.
    fn on_event(self: &Arc<Self>, event: ContainerEvent) {
        let ticket = self.next_ticket();
        match event.action {
            ContainerAction::Die => {
                let exit_code = event.labels.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or_default();
                self.lock().mark_exited(ticket, &event.id, exit_code, event.time_nano);
            }
            ContainerAction::Destroy => self.lock().apply(ticket, &event.id, None),
            ContainerAction::Oom => self.lock().mark_oom_killed(&event.id),
            ContainerAction::Create | ContainerAction::Start => {}
        }
        if event.action == ContainerAction::Destroy {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(_slot) = this.inspect_slots.acquire().await else { return };
            this.refresh(&event.id).await;
        });
    }
}

fn is_ours(d: &ContainerDetails) -> bool {
    d.labels.contains_key(labels::KIND)
}
