//! Containers in a pod as kubelet drives them: create, start, status, list
//! filters, stop (graceful and forced), exit codes and reasons (Error,
//! Completed, OOMKilled), idempotent stop and remove, and what stopping and
//! removing the pod does to its containers.

mod common;

use std::path::Path;

use common::Shim;
use common::pods::{self, IDLE, Pod, Rt, container_config};
use pinshim::api::{ContainerFilter, ContainerState, ContainerStateValue};
use tonic::Code;

const MIB: i64 = 1024 * 1024;

fn by_state(pod: &Pod, state: ContainerState) -> ContainerFilter {
    ContainerFilter {
        pod_sandbox_id: pod.id.clone(),
        state: Some(ContainerStateValue { state: state as i32 }),
        ..Default::default()
    }
}

async fn listed_ids(rt: &Rt, filter: ContainerFilter) -> Vec<String> {
    pods::list_containers(rt, filter).await.into_iter().map(|c| c.id).collect()
}

async fn assert_gone(rt: &Rt, id: &str) {
    let err = pods::try_status(rt, id, false).await.expect_err("removed container has no status");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let filter = ContainerFilter { id: id.to_string(), ..Default::default() };
    assert!(pods::list_containers(rt, filter).await.is_empty(), "removed container {id} is not listed");
}

#[tokio::test]
async fn container_is_created_started_stopped_and_removed() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "ctrlife").await;
    let pod = pods::run_pod(rt, "ctrlife").await;
    // sleep as PID 1 ignores SIGTERM, so the stop has to kill it after the grace period.
    let config = container_config(&pod, "sleeper", &image, &["sleep", "86400"]);
    let id = pods::create(rt, &pod, config.clone()).await;

    let created = pods::status(rt, &id).await;
    assert_eq!(created.id, id);
    assert_eq!(created.metadata, config.metadata);
    assert_eq!(created.state, ContainerState::ContainerCreated as i32);
    assert!(created.created_at > 0);
    assert_eq!((created.started_at, created.finished_at), (0, 0));
    assert_eq!(created.image, config.image.as_ref().map(pods::reported_image_spec), "the image the user asked for");
    assert_eq!(created.image_id, image.id);
    assert_eq!(created.labels, config.labels);
    assert_eq!(created.annotations, config.annotations);
    let log_path = Path::new(&pod.config.log_directory).join(&config.log_path);
    assert_eq!(created.log_path, log_path.display().to_string(), "kubelet reads the log at this absolute path");
    assert_eq!(listed_ids(rt, by_state(&pod, ContainerState::ContainerCreated)).await, vec![id.clone()]);

    pods::start(rt, &id).await;
    let running = pods::wait_for_state(rt, &id, ContainerState::ContainerRunning).await;
    assert!(running.started_at >= created.created_at, "{running:?}");
    assert_eq!(running.finished_at, 0);
    assert_eq!(running.created_at, created.created_at);

    // ListContainers and its filters.
    let listed = pods::containers_of(rt, &pod.id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let entry = &listed[0];
    assert_eq!((&entry.id, &entry.pod_sandbox_id), (&id, &pod.id));
    assert_eq!(entry.metadata, config.metadata);
    assert_eq!(entry.state, ContainerState::ContainerRunning as i32);
    assert_eq!(entry.created_at, created.created_at);
    assert_eq!(entry.labels, config.labels);
    assert_eq!(entry.annotations, config.annotations);
    assert_eq!(entry.image_id, image.id);
    assert_eq!(listed_ids(rt, ContainerFilter { id: id.clone(), ..Default::default() }).await, vec![id.clone()]);
    assert_eq!(
        listed_ids(rt, ContainerFilter { id: id[..12].to_string(), ..Default::default() }).await,
        vec![id.clone()]
    );
    assert_eq!(listed_ids(rt, by_state(&pod, ContainerState::ContainerRunning)).await, vec![id.clone()]);
    assert!(listed_ids(rt, by_state(&pod, ContainerState::ContainerExited)).await.is_empty());
    let mut by_label = ContainerFilter { label_selector: config.labels.clone(), ..Default::default() };
    assert_eq!(listed_ids(rt, by_label.clone()).await, vec![id.clone()]);
    by_label.label_selector.insert("io.kubernetes.container.name".to_string(), "other".to_string());
    assert!(listed_ids(rt, by_label).await.is_empty());

    pods::stop(rt, &id, 1).await;
    let exited = pods::wait_for_state(rt, &id, ContainerState::ContainerExited).await;
    assert_eq!(exited.exit_code, 137, "killed after the grace period: {exited:?}");
    assert_eq!(exited.reason, "Error");
    assert!(exited.finished_at >= running.started_at, "{exited:?}");
    assert_eq!(exited.started_at, running.started_at);
    assert_eq!(listed_ids(rt, by_state(&pod, ContainerState::ContainerExited)).await, vec![id.clone()]);
    pods::stop(rt, &id, 1).await;
    assert_eq!(pods::status(rt, &id).await, exited, "stopping an exited container changes nothing");

    pods::remove(rt, &id).await;
    assert_gone(rt, &id).await;
    pods::remove(rt, &id).await;
    pods::stop(rt, &id, 1).await;

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn stop_sends_sigterm_before_the_grace_period_ends() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "graceful").await;
    let pod = pods::run_pod(rt, "graceful").await;
    let id = pods::create_and_start(rt, &pod, container_config(&pod, "trapper", &image, IDLE)).await;
    pods::wait_for_state(rt, &id, ContainerState::ContainerRunning).await;

    pods::stop(rt, &id, 30).await;
    let exited = pods::wait_for_state(rt, &id, ContainerState::ContainerExited).await;
    assert_eq!(exited.exit_code, 0, "the TERM trap ran: {exited:?}");
    assert_eq!(exited.reason, "Completed");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn exit_codes_map_to_error_and_completed() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "exits").await;
    let pod = pods::run_pod(rt, "exits").await;
    let failing =
        pods::create_and_start(rt, &pod, container_config(&pod, "fails", &image, &["sh", "-c", "exit 1"])).await;
    let passing =
        pods::create_and_start(rt, &pod, container_config(&pod, "passes", &image, &["sh", "-c", "exit 0"])).await;

    // Not finished_at >= started_at: for a process that exits at once Docker
    // may record its start a moment after its exit.
    let failed = pods::wait_for_state(rt, &failing, ContainerState::ContainerExited).await;
    assert_eq!((failed.exit_code, failed.reason.as_str()), (1, "Error"), "{failed:?}");
    assert!(failed.started_at >= failed.created_at && failed.finished_at >= failed.created_at, "{failed:?}");
    let passed = pods::wait_for_state(rt, &passing, ContainerState::ContainerExited).await;
    assert_eq!((passed.exit_code, passed.reason.as_str()), (0, "Completed"), "{passed:?}");
    assert!(passed.started_at >= passed.created_at && passed.finished_at >= passed.created_at, "{passed:?}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn memory_limit_ends_in_oomkilled() {
    if !pods::docker_has_memory_limits().await {
        println!("skipped: dockerd reports no memory limit support on this host");
        return;
    }
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "oom").await;
    let pod = pods::run_pod(rt, "oom").await;
    let mut config = container_config(&pod, "hog", &image, &["tail", "/dev/zero"]);
    let resources = config.linux.as_mut().and_then(|l| l.resources.as_mut()).expect("resources");
    resources.memory_limit_in_bytes = 16 * MIB;
    // What kubelet sends on a node without swap.
    resources.memory_swap_limit_in_bytes = 16 * MIB;
    let id = pods::create_and_start(rt, &pod, config).await;

    let exited = pods::wait_for_state(rt, &id, ContainerState::ContainerExited).await;
    assert_eq!(exited.reason, "OOMKilled", "{exited:?}");
    assert_eq!(exited.exit_code, 137, "{exited:?}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn stopping_the_pod_stops_its_containers_and_removing_it_removes_them() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "podstop").await;
    let pod = pods::run_pod(rt, "podstop").await;
    let running = pods::create_and_start(rt, &pod, container_config(&pod, "running", &image, IDLE)).await;
    let created = pods::create(rt, &pod, container_config(&pod, "created", &image, IDLE)).await;

    pods::stop_pod(rt, &pod.id).await;
    let stopped = pods::wait_for_state(rt, &running, ContainerState::ContainerExited).await;
    assert!(stopped.finished_at > 0, "{stopped:?}");
    assert_ne!(pods::status(rt, &created).await.state, ContainerState::ContainerRunning as i32);

    pods::remove_pod(rt, &pod.id).await;
    assert_gone(rt, &running).await;
    assert_gone(rt, &created).await;
    assert!(pods::containers_of(rt, &pod.id).await.is_empty());
    assert_eq!(pods::docker_leftovers(pod.name()).await, Vec::<String>::new());

    pods::remove_pod(rt, &pod.id).await;
    pods::remove_image(&shim.images, &image.id).await;
}
