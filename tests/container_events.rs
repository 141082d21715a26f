//! GetContainerEvents and the streamed lists.

mod common;

use std::time::Duration;

use common::docker_proxy::DockerProxy;
use common::pods::{self, IDLE};
use common::{Shim, ShimOptions};
use futures::StreamExt;
use pinshim::api::{self, ContainerEventType as Kind};
use tonic::Streaming;

/// The next event for `container`, skipping other tests' containers.
async fn next_for(events: &mut Streaming<api::ContainerEventResponse>, container: &str) -> api::ContainerEventResponse {
    loop {
        let event = tokio::time::timeout(pods::WAIT, events.next()).await.expect("event in time");
        let event = event.expect("stream open").expect("event");
        if event.container_id == container {
            return event;
        }
    }
}

#[tokio::test]
async fn life_cycle_events_arrive_in_order_with_pod_status() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "events").await;
    let pod = pods::run_pod(rt, "events").await;
    let mut events = rt.clone().get_container_events(api::GetEventsRequest {}).await.expect("subscribe").into_inner();
    // Let the subscription reach dockerd before anything happens.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let id = pods::create(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;
    let created = next_for(&mut events, &id).await;
    assert_eq!(created.container_event_type, Kind::ContainerCreatedEvent as i32);
    assert_eq!(created.pod_sandbox_status.as_ref().map(|s| s.id.as_str()), Some(pod.id.as_str()));
    assert!(created.created_at > 0);
    assert!(created.containers_statuses.iter().any(|s| s.id == id));

    pods::start(rt, &id).await;
    assert_eq!(next_for(&mut events, &id).await.container_event_type, Kind::ContainerStartedEvent as i32);
    pods::stop(rt, &id, 10).await;
    let stopped = next_for(&mut events, &id).await;
    assert_eq!(stopped.container_event_type, Kind::ContainerStoppedEvent as i32);
    pods::remove(rt, &id).await;
    let deleted = next_for(&mut events, &id).await;
    assert_eq!(deleted.container_event_type, Kind::ContainerDeletedEvent as i32);
    assert!(deleted.containers_statuses.iter().all(|s| s.id != id), "a deleted container has no status");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn a_kill_behind_pinshims_back_is_reported() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "events-kill").await;
    let pod = pods::run_pod(rt, "events-kill").await;
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;
    let mut events = rt.clone().get_container_events(api::GetEventsRequest {}).await.expect("subscribe").into_inner();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let kill = bollard::query_parameters::KillContainerOptionsBuilder::default().signal("KILL").build();
    common::docker().kill_container(&id, Some(kill)).await.expect("docker kill");
    let stopped = next_for(&mut events, &id).await;
    assert_eq!(stopped.container_event_type, Kind::ContainerStoppedEvent as i32);
    let status = stopped.containers_statuses.iter().find(|s| s.id == id).expect("status in the event");
    assert_eq!(status.state, api::ContainerState::ContainerExited as i32);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn streamed_lists_match_the_plain_lists() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "stream-list").await;
    let pod = pods::run_pod(rt, "stream-list").await;
    let id = pods::create(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;

    let filter = api::ContainerFilter { pod_sandbox_id: pod.id.clone(), ..Default::default() };
    let request = api::StreamContainersRequest { filter: Some(filter.clone()) };
    let streamed: Vec<api::Container> = rt
        .clone()
        .stream_containers(request)
        .await
        .expect("stream containers")
        .into_inner()
        .flat_map(|batch| futures::stream::iter(batch.expect("batch").containers))
        .collect()
        .await;
    assert_eq!(streamed, pods::list_containers(rt, filter).await);
    assert_eq!(streamed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![id.as_str()]);

    let pod_filter = api::PodSandboxFilter { id: pod.id.clone(), ..Default::default() };
    let request = api::StreamPodSandboxesRequest { filter: Some(pod_filter.clone()) };
    let pods_streamed: Vec<api::PodSandbox> = rt
        .clone()
        .stream_pod_sandboxes(request)
        .await
        .expect("stream pods")
        .into_inner()
        .flat_map(|batch| futures::stream::iter(batch.expect("batch").pod_sandboxes))
        .collect()
        .await;
    assert_eq!(pods_streamed, pods::list_pods(rt, Some(pod_filter)).await);
    assert_eq!(pods_streamed.len(), 1);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// While dockerd shuts down it stops every container and cannot be asked
/// for anything: the stop events still carry the pod's last known status,
/// since kubelet's evented PLEG drops events without one.
#[tokio::test]
async fn events_while_dockerd_goes_down_carry_the_last_pod_status() {
    let proxy = DockerProxy::start();
    let args = vec!["--docker-endpoint".to_string(), proxy.endpoint()];
    let shim = Shim::start_with(ShimOptions { args, env: Vec::new() }).await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "events-down").await;
    let pod = pods::run_pod(rt, "events-down").await;
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;
    let mut events = rt.clone().get_container_events(api::GetEventsRequest {}).await.expect("subscribe").into_inner();
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.go_down();
    let kill = bollard::query_parameters::KillContainerOptionsBuilder::default().signal("KILL").build();
    common::docker().kill_container(&id, Some(kill)).await.expect("docker kill");
    let stopped = next_for(&mut events, &id).await;
    assert_eq!(stopped.container_event_type, Kind::ContainerStoppedEvent as i32);
    let status = stopped.pod_sandbox_status.expect("the pod's last known status");
    assert_eq!(status.id, pod.id);
    assert_eq!(status.metadata.map(|m| m.name), pod.config.metadata.clone().map(|m| m.name));

    drop(events);
    // Clean up through a pinshim that can reach dockerd.
    let cleaner = Shim::start().await;
    pods::cleanup(&cleaner.runtime, &cleaner.images, &[&pod], &[&image.id]).await;
}
