//! pinshim keeps no state Docker does not hold: a graceful restart changes no
//! field of any pod or container, and after a SIGKILL in the middle of
//! creating pods every Docker container it made is listed again, so kubelet
//! can finish or clean up what was half done.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::pods::{self, CrashableShim, IDLE, Pod, Rt, Sweep, TestImage, container_config};
use common::{Shim, unique};
use futures::StreamExt;
use pinshim::api::{self, ContainerFilter, ContainerState, PodSandboxFilter};

/// Everything the CRI says about one pod and its containers.
#[derive(Debug, PartialEq)]
struct Snapshot {
    listed_pods: Vec<api::PodSandbox>,
    pod_status: api::PodSandboxStatusResponse,
    pod_status_verbose: api::PodSandboxStatusResponse,
    listed_containers: Vec<api::Container>,
    statuses: Vec<api::ContainerStatusResponse>,
    statuses_verbose: Vec<api::ContainerStatusResponse>,
}

async fn pod_status(rt: &Rt, id: &str, verbose: bool) -> api::PodSandboxStatusResponse {
    let request = api::PodSandboxStatusRequest { pod_sandbox_id: id.to_string(), verbose };
    let mut response = rt.clone().pod_sandbox_status(request).await.expect("pod sandbox status").into_inner();
    // When the statuses were collected: the one field that moves with the clock.
    response.timestamp = 0;
    response
}

async fn snapshot(rt: &Rt, pod: &Pod) -> Snapshot {
    let filter = PodSandboxFilter { id: pod.id.clone(), ..Default::default() };
    let listed_containers = pods::containers_of(rt, &pod.id).await;
    let mut statuses = Vec::new();
    let mut statuses_verbose = Vec::new();
    for c in &listed_containers {
        statuses.push(pods::try_status(rt, &c.id, false).await.expect("container status"));
        statuses_verbose.push(pods::try_status(rt, &c.id, true).await.expect("container status"));
    }
    Snapshot {
        listed_pods: pods::list_pods(rt, Some(filter)).await,
        pod_status: pod_status(rt, &pod.id, false).await,
        pod_status_verbose: pod_status(rt, &pod.id, true).await,
        listed_containers,
        statuses,
        statuses_verbose,
    }
}

#[tokio::test]
async fn restart_changes_nothing_about_pods_and_containers() {
    let mut shim = Shim::start().await;
    let name = unique("restart");
    let image = pods::push_and_pull(&shim.images, &name, "v1").await;
    let pod = pods::run_pod(&shim.runtime, "restart").await;
    let rt = &shim.runtime;
    let running = pods::create_and_start(rt, &pod, container_config(&pod, "running", &image, IDLE)).await;
    let exited =
        pods::create_and_start(rt, &pod, container_config(&pod, "exited", &image, &["sh", "-c", "exit 7"])).await;
    pods::wait_for_state(rt, &exited, ContainerState::ContainerExited).await;
    let created = pods::create(rt, &pod, container_config(&pod, "created", &image, IDLE)).await;
    // Move the tag: what the containers report must come from their own records.
    let moved = pods::push_and_pull(&shim.images, &name, "v1").await;

    let before = snapshot(&shim.runtime, &pod).await;
    assert_eq!(before.listed_containers.len(), 3, "{:?}", before.listed_containers);
    shim.restart().await;
    let after = snapshot(&shim.runtime, &pod).await;
    assert_eq!(before, after);

    let rt = &shim.runtime;
    for id in [&running, &exited, &created] {
        assert_eq!(pods::status(rt, id).await.canonical_image_id, image.canonical(), "{id}");
    }
    assert_eq!(pods::status(rt, &running).await.state, ContainerState::ContainerRunning as i32);
    assert_eq!(pods::exec_ok(rt, &running, &["echo", "still here"]).await, "still here\n");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id, &moved.id]).await;
}

/// Epoch seconds with nanoseconds, as Docker's event filters take it.
fn docker_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

type Made = Arc<Mutex<Vec<String>>>;

/// Runs RunPodSandbox, CreateContainer, StartContainer for pods
/// `<prefix>-00`, `<prefix>-01`, … until a call fails; records every id the
/// CRI handed out. Returns the failure, or None if it never failed.
async fn create_pods(rt: Rt, prefix: String, image: TestImage, logs: PathBuf, made: Made) -> Option<tonic::Status> {
    let record = |id: &str| made.lock().expect("lock").push(id.to_string());
    for i in 0..20 {
        let config = pods::sandbox_config(&format!("{prefix}-{i:02}"), &logs);
        let pod = match pods::run_pod_in(&rt, config).await {
            Ok(pod) => pod,
            Err(e) => return Some(e),
        };
        record(&pod.id);
        let id = match pods::try_create(&rt, &pod, container_config(&pod, "main", &image, IDLE)).await {
            Ok(id) => id,
            Err(e) => return Some(e),
        };
        record(&id);
        let request = api::StartContainerRequest { container_id: id };
        if let Err(e) = rt.clone().start_container(request).await {
            return Some(e);
        }
    }
    None
}

/// Waits for Docker to report the creation of a container whose name
/// contains `target`; panics if the loop ends first.
async fn kill_when_docker_creates(
    shim: &mut CrashableShim,
    target: &str,
    since: String,
    mut events: impl futures::Stream<Item = Result<bollard::models::EventMessage, bollard::errors::Error>> + Unpin,
    task: &mut tokio::task::JoinHandle<Option<tonic::Status>>,
) {
    let seen = async {
        while let Some(event) = events.next().await {
            let event = event.expect("docker event");
            let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
            if attributes.get("name").is_some_and(|n| n.contains(target)) {
                return;
            }
        }
        panic!("docker event stream since {since} ended");
    };
    tokio::select! {
        biased;
        ended = &mut *task => panic!("the loop ended before Docker created {target}: {ended:?}\n{}", tail(&shim.logs())),
        () = seen => shim.kill_hard(),
        () = tokio::time::sleep(pods::WAIT) => panic!("Docker created no {target} within {:?}", pods::WAIT),
    }
}

/// The last lines of pinshim's log, for a failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A Docker container name as cri-dockerd and pinshim make them:
/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>[_<suffix>]`, with
/// `POD` as the container of a sandbox (and the pod's attempt as attempt).
struct DockerName {
    container: String,
    pod: String,
    namespace: String,
    uid: String,
    attempt: u32,
}

impl DockerName {
    fn parse(name: &str) -> DockerName {
        let parts: Vec<&str> = name.strip_prefix("k8s_").map(|rest| rest.split('_').collect()).unwrap_or_default();
        assert!(parts.len() >= 5, "Docker container {name} is named k8s_<container>_<pod>_<namespace>_<uid>_<attempt>");
        DockerName {
            container: parts[0].to_string(),
            pod: parts[1].to_string(),
            namespace: parts[2].to_string(),
            uid: parts[3].to_string(),
            attempt: parts[4].parse().unwrap_or_else(|_| panic!("attempt in {name}")),
        }
    }

    fn is_sandbox(&self) -> bool {
        self.container == "POD"
    }

    /// Whether `sandbox` is the pod this container belongs to (or, for a
    /// sandbox's own container, the very sandbox).
    fn names_pod(&self, sandbox: &api::PodSandbox) -> bool {
        sandbox.metadata.as_ref().is_some_and(|m| {
            (m.name == self.pod && m.namespace == self.namespace && m.uid == self.uid)
                && (!self.is_sandbox() || m.attempt == self.attempt)
        })
    }
}

/// SIGKILLs pinshim when Docker creates a container named with `kill_at`
/// (the creation of pod `<prefix>-02`'s sandbox or container), restarts it,
/// and checks that every Docker container of the test is listed again.
async fn sigkill_at(kill_at: impl Fn(&str) -> String) {
    let mut shim = CrashableShim::start().await;
    let prefix = unique("crash");
    let _sweep = Sweep::containers(&prefix);
    let image = pods::fresh_image(&shim.images, "crash").await;

    let since = docker_now();
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("event".to_string(), vec!["create".to_string()]),
    ]);
    let options = bollard::query_parameters::EventsOptionsBuilder::default().since(&since).filters(&filters).build();
    let events = common::docker().events(Some(options));

    let made = Arc::new(Mutex::new(Vec::new()));
    let logs = pods::log_dir();
    let loop_ = create_pods(shim.runtime.clone(), prefix.clone(), image.clone(), logs.path().into(), made.clone());
    let mut task = tokio::spawn(loop_);
    kill_when_docker_creates(&mut shim, &kill_at(&prefix), since, Box::pin(events), &mut task).await;
    let ended = tokio::time::timeout(pods::WAIT, task).await.expect("the loop ends once pinshim is gone");
    assert!(ended.expect("loop task").is_some(), "the kill came in the middle of the loop");

    shim.restart().await;
    let rt = &shim.runtime;
    let sandboxes: Vec<api::PodSandbox> = pods::list_pods(rt, None)
        .await
        .into_iter()
        .filter(|p| p.metadata.as_ref().is_some_and(|m| m.name.starts_with(&prefix)))
        .collect();
    let containers = pods::list_containers(rt, ContainerFilter::default()).await;
    let listed = |id: &str| sandboxes.iter().any(|p| p.id == id) || containers.iter().any(|c| c.id == id);
    let made = made.lock().expect("lock").clone();
    assert!(made.len() >= 4, "two pods with their containers were made before the kill: {made:?}");
    for id in &made {
        assert!(listed(id), "{id}, handed out before the kill, is listed after the restart");
    }

    let in_docker = pods::docker_leftovers(&prefix).await;
    assert!(!in_docker.is_empty());
    for name in &in_docker {
        let parsed = DockerName::parse(name);
        let pod_ids: Vec<&str> = sandboxes.iter().filter(|p| parsed.names_pod(p)).map(|p| p.id.as_str()).collect();
        if parsed.is_sandbox() {
            assert_eq!(pod_ids.len(), 1, "sandbox {name} is listed once by ListPodSandbox: {sandboxes:?}");
        } else {
            let found = containers.iter().any(|c| {
                pod_ids.contains(&c.pod_sandbox_id.as_str())
                    && c.metadata.as_ref().is_some_and(|m| m.name == parsed.container && m.attempt == parsed.attempt)
            });
            assert!(found, "container {name} is listed by ListContainers in its pod");
        }
    }
    for p in &sandboxes {
        pods::pod_status(rt, &p.id).await;
    }
    for c in containers.iter().filter(|c| sandboxes.iter().any(|p| p.id == c.pod_sandbox_id)) {
        pods::status(rt, &c.id).await;
    }

    for p in &sandboxes {
        pods::stop_pod(rt, &p.id).await;
        pods::remove_pod(rt, &p.id).await;
    }
    assert_eq!(pods::docker_leftovers(&prefix).await, Vec::<String>::new(), "removing the pods removed everything");
    pods::remove_image(&shim.images, &image.id).await;
}

#[tokio::test]
async fn sigkill_while_creating_a_sandbox_leaves_nothing_unlisted() {
    sigkill_at(|prefix| format!("k8s_POD_{prefix}-02_")).await;
}

#[tokio::test]
async fn sigkill_while_creating_a_container_leaves_nothing_unlisted() {
    sigkill_at(|prefix| format!("k8s_main_{prefix}-02_")).await;
}
