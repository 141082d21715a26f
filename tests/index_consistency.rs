//! The in-memory index behind ListContainers and ListPodSandbox against
//! Docker itself: changes pinshim makes show in the very next list, changes
//! made behind its back show as soon as Docker's event is seen.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use common::Shim;
use common::pods::{self, IDLE, Pod, Rt};
use futures::StreamExt;
use pinshim::api::{self, ContainerEventType as Kind, ContainerState};

const STEPS: usize = 500;
/// Containers alive at once, so the test stays light on the shared dockerd.
const MAX_LIVE: usize = 6;
/// How long a change made behind pinshim's back may take to show. Generous:
/// the suite runs in parallel on a small machine; the typical figure is printed.
const BEHIND_THE_BACK_LIMIT: Duration = Duration::from_secs(2);

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn state_of(docker_state: &str) -> i32 {
    match docker_state {
        "created" => ContainerState::ContainerCreated as i32,
        "running" | "paused" | "restarting" => ContainerState::ContainerRunning as i32,
        _ => ContainerState::ContainerExited as i32,
    }
}

/// What Docker says of the pod's containers: id → CRI state.
async fn docker_view(pod_id: &str) -> BTreeMap<String, i32> {
    let filters = std::collections::HashMap::from([("label", vec![format!("io.pinshim.sandbox-id={pod_id}")])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let listed = common::docker().list_containers(Some(options)).await.expect("docker ps");
    listed
        .into_iter()
        .map(|c| (c.id.unwrap_or_default(), state_of(&c.state.map(|s| s.to_string()).unwrap_or_default())))
        .collect()
}

/// What ListContainers says of the pod's containers.
async fn cri_view(rt: &Rt, pod_id: &str) -> BTreeMap<String, i32> {
    pods::containers_of(rt, pod_id).await.into_iter().map(|c| (c.id, c.state)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Create,
    Start,
    Stop,
    Remove,
    DockerStart,
    DockerKill,
    DockerRemove,
}

const OPS: [Op; 7] = [Op::Create, Op::Start, Op::Stop, Op::Remove, Op::DockerStart, Op::DockerKill, Op::DockerRemove];

#[tokio::test]
async fn lists_agree_with_docker_through_500_random_changes() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "index").await;
    let pod = pods::run_pod(rt, "index").await;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64 | 1);
    let seed = seed.unwrap_or(0x9e37_79b9_7f4a_7c15);
    println!("seed {seed}");
    let mut rng = XorShift(seed);
    let docker = common::docker();
    let mut names = 0;
    let mut slowest = Duration::ZERO;
    let mut behind_back = 0;

    for step in 0..STEPS {
        let view = docker_view(&pod.id).await;
        let ids: Vec<&String> = view.keys().collect();
        let op = OPS[rng.below(OPS.len())];
        let target = (!ids.is_empty()).then(|| ids[rng.below(ids.len())].clone());
        let through_docker = match (op, target) {
            (Op::Create, _) if view.len() < MAX_LIVE => {
                names += 1;
                let config = pods::container_config(&pod, &format!("c{names}"), &image, IDLE);
                pods::create(rt, &pod, config).await;
                false
            }
            (Op::Start, Some(id)) if view[&id] == ContainerState::ContainerCreated as i32 => {
                pods::start(rt, &id).await;
                false
            }
            (Op::Stop, Some(id)) => {
                pods::stop(rt, &id, 0).await;
                false
            }
            (Op::Remove, Some(id)) => {
                pods::remove(rt, &id).await;
                false
            }
            (Op::DockerStart, Some(id)) if view[&id] == ContainerState::ContainerCreated as i32 => {
                docker.start_container(&id, None).await.expect("docker start");
                true
            }
            (Op::DockerKill, Some(id)) if view[&id] == ContainerState::ContainerRunning as i32 => {
                let kill = KillContainerOptionsBuilder::default().signal("KILL").build();
                docker.kill_container(&id, Some(kill)).await.expect("docker kill");
                true
            }
            (Op::DockerRemove, Some(id)) => {
                let options = RemoveContainerOptionsBuilder::default().force(true).build();
                docker.remove_container(&id, Some(options)).await.expect("docker rm");
                true
            }
            _ => continue,
        };
        // A kill's exit is recorded by Docker a moment after the call returns.
        let deadline = Instant::now() + BEHIND_THE_BACK_LIMIT;
        let began = Instant::now();
        loop {
            let (docker_says, cri_says) = (docker_view(&pod.id).await, cri_view(rt, &pod.id).await);
            if docker_says == cri_says {
                break;
            }
            assert!(
                through_docker && Instant::now() < deadline,
                "step {step} ({op:?}, seed {seed}): ListContainers {cri_says:?} != docker {docker_says:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if through_docker {
            behind_back += 1;
            slowest = slowest.max(began.elapsed());
        }
    }
    println!("{behind_back} changes behind pinshim's back; slowest to show in ListContainers: {slowest:?}");

    let pods_listed =
        pods::list_pods(rt, Some(api::PodSandboxFilter { id: pod.id.clone(), ..Default::default() })).await;
    assert_eq!(
        pods_listed.iter().map(|p| p.state).collect::<Vec<_>>(),
        vec![api::PodSandboxState::SandboxReady as i32]
    );
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// Waits for the STOPPED event of `id` and returns when it arrived.
async fn stopped_event_of(events: &mut tonic::Streaming<api::ContainerEventResponse>, id: &str) -> Instant {
    loop {
        let event = tokio::time::timeout(pods::WAIT, events.next()).await.expect("event in time");
        let event = event.expect("stream open").expect("event");
        if event.container_id == id && event.container_event_type == Kind::ContainerStoppedEvent as i32 {
            return Instant::now();
        }
    }
}

#[tokio::test]
async fn a_kill_behind_pinshims_back_lists_as_exited_within_100ms_of_the_event() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "index-kill").await;
    let pod: Pod = pods::run_pod(rt, "index-kill").await;
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;
    let mut events = rt.clone().get_container_events(api::GetEventsRequest {}).await.expect("subscribe").into_inner();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let kill = KillContainerOptionsBuilder::default().signal("KILL").build();
    common::docker().kill_container(&id, Some(kill)).await.expect("docker kill");
    let event_seen = stopped_event_of(&mut events, &id).await;
    loop {
        let listed = pods::containers_of(rt, &pod.id).await;
        if listed.iter().any(|c| c.id == id && c.state == ContainerState::ContainerExited as i32) {
            break;
        }
        assert!(event_seen.elapsed() < Duration::from_millis(100), "still listed as running 100 ms after the event");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("listed as exited {:?} after the STOPPED event", event_seen.elapsed());

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
