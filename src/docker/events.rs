//! Docker's event stream, reduced to the container life-cycle events the
//! CRI reports.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use futures::{Stream, StreamExt};

use super::{Docker, DockerError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerAction {
    Create,
    Start,
    Die,
    Destroy,
    /// The kernel's OOM killer hit a process of the container.
    Oom,
}

/// One life-cycle event of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEvent {
    pub id: String,
    pub action: ContainerAction,
    /// Nanoseconds since the epoch, as Docker stamped it.
    pub time_nano: i64,
    /// The container's labels, as Docker attaches them to the event.
    pub labels: HashMap<String, String>,
}

impl Docker {
    /// Container events for containers carrying `label`, from `since_nanos`
    /// on (0: from now), until the connection to dockerd ends.
    pub async fn container_events(
        &self,
        label: &str,
        since_nanos: i64,
    ) -> Result<impl Stream<Item = Result<ContainerEvent, DockerError>> + Send + 'static, DockerError> {
        let client = self.client().await?;
        let filters = HashMap::from([
            ("type", vec!["container"]),
            ("event", vec!["create", "start", "die", "destroy", "oom"]),
            ("label", vec![label]),
        ]);
        let mut options = EventsOptionsBuilder::default().filters(&filters);
        let since = format!("{}.{:09}", since_nanos / 1_000_000_000, since_nanos % 1_000_000_000);
        if since_nanos > 0 {
            options = options.since(&since);
        }
        let this = self.clone();
        Ok(client.events(Some(options.build())).filter_map(move |item| {
            let event = match item {
                Ok(message) => {
                    let action = match message.action.as_deref() {
                        Some("create") => Some(ContainerAction::Create),
                        Some("start") => Some(ContainerAction::Start),
                        Some("die") => Some(ContainerAction::Die),
                        Some("destroy") => Some(ContainerAction::Destroy),
                        Some("oom") => Some(ContainerAction::Oom),
                        _ => None,
                    };
                    let actor = message.actor.unwrap_or_default();
                    action.map(|action| {
                        Ok(ContainerEvent {
                            id: actor.id.unwrap_or_default(),
                            action,
                            time_nano: message.time_nano.unwrap_or_default(),
                            labels: actor.attributes.unwrap_or_default(),
                        })
                    })
                }
                Err(e) => {
                    // A stream has no latency to time; its failures still count.
                    crate::metrics::record_docker_error("events");
                    Some(Err(this.error(e)))
                }
            };
            std::future::ready(event)
        }))
    }
}
