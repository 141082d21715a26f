//! GetContainerEvents: Docker's container events, each with the pod's
//! status and its containers' statuses, as kubelet's evented PLEG expects.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::{ContainerService, status_of};
use crate::api;
use crate::docker::{ContainerAction, ContainerEvent};
use crate::labels;
use crate::sandbox::SandboxError;

/// Events buffered for a slow subscriber before pinshim waits for it.
const DEPTH: usize = 256;
/// Pause before reconnecting to dockerd's event stream.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

impl ContainerService {
    /// Streams container events until the receiver is dropped. After a
    /// broken event stream (e.g. dockerd restarted) it reconnects and asks
    /// Docker for what happened since the last event seen.
    pub fn events(self: &Arc<Self>) -> mpsc::Receiver<api::ContainerEventResponse> {
        let (tx, rx) = mpsc::channel(DEPTH);
        let this = self.clone();
        tokio::spawn(async move {
            let filter = labels::kind_filter(labels::KIND_CONTAINER);
            let mut since = crate::time::now_nanos();
            while !tx.is_closed() {
                let mut events = match this.docker.container_events(&filter, since).await {
                    Ok(events) => Box::pin(events),
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot subscribe to docker events; retrying");
                        tokio::time::sleep(RECONNECT_DELAY).await;
                        continue;
                    }
                };
                loop {
                    let event = tokio::select! {
                        () = tx.closed() => return,
                        event = events.next() => event,
                    };
                    let Some(Ok(event)) = event else { break };
                    since = since.max(event.time_nano + 1);
                    let Some(response) = this.event_response(event).await else { continue };
                    if tx.send(response).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        });
        rx
    }

    /// The CRI event for a Docker event; `None` for those the CRI has no
    /// event for (an OOM kill shows in the exit that follows).
    async fn event_response(&self, event: ContainerEvent) -> Option<api::ContainerEventResponse> {
        let kind = match event.action {
            ContainerAction::Create => api::ContainerEventType::ContainerCreatedEvent,
            ContainerAction::Start => api::ContainerEventType::ContainerStartedEvent,
            ContainerAction::Die => api::ContainerEventType::ContainerStoppedEvent,
            ContainerAction::Destroy => api::ContainerEventType::ContainerDeletedEvent,
            ContainerAction::Oom => return None,
        };
        // The index may not have seen this event yet: bring it up to date
        // first, so a list made on receipt of the event already shows it.
        self.index.refresh(&event.id).await;
        if kind == api::ContainerEventType::ContainerStoppedEvent {
            // Whoever reacts to the exit reads the log file next.
            self.logs.drained(&[&event.id], super::logs::DRAIN_WAIT).await;
        }
        let sandbox_id = labels::get(&event.labels, labels::SANDBOX_ID);
        let pod_sandbox_status = match self.sandboxes.status(&sandbox_id, false).await {
            Ok(response) => response.status,
            Err(SandboxError::NotFound(_)) => None,
            // dockerd going away (its shutdown stops every container):
            // kubelet's evented PLEG drops an event without a pod status.
            Err(e) => {
                tracing::debug!(sandbox_id = %sandbox_id, error = %e, "pod status unreadable; sending the last known");
                self.sandboxes.last_known_status(&sandbox_id).await
            }
        };
        let containers_statuses = self.statuses_in_pod(&sandbox_id).await;
        Some(api::ContainerEventResponse {
            container_id: event.id,
            container_event_type: kind as i32,
            created_at: event.time_nano,
            pod_sandbox_status,
            containers_statuses,
        })
    }

    /// The statuses of the pod's containers, newest first, as events and
    /// PodSandboxStatus carry them (kubelet's Evented PLEG reads them there
    /// rather than asking for each). The index holds every member's full
    /// details, current as of the last event: no inspection per member.
    pub async fn statuses_in_pod(&self, sandbox_id: &str) -> Vec<api::ContainerStatus> {
        let filter = api::ContainerFilter { pod_sandbox_id: sandbox_id.to_string(), ..Default::default() };
        match self.indexed(&filter) {
            Some(mut members) => {
                members.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
                members.iter().map(|d| status_of(d)).collect()
            }
            None => self.statuses_from_docker(&filter).await,
        }
    }

    /// Without the index: list the pod's containers and inspect each.
    async fn statuses_from_docker(&self, filter: &api::ContainerFilter) -> Vec<api::ContainerStatus> {
        let mut statuses = Vec::new();
        // An event still goes out when the pod's other containers cannot be
        // read (e.g. removed meanwhile); the log says why they are missing.
        let members = self.list(Some(filter)).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "event without container statuses");
            Vec::new()
        });
        for container in members {
            match self.status(&container.id, false).await {
                Ok(status) => statuses.extend(status.status),
                Err(e) => {
                    tracing::debug!(container_id = %container.id, error = %e, "container gone before its status was read")
                }
            }
        }
        statuses
    }
}
