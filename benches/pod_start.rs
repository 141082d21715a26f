//! Pod start latency: RunPodSandbox + CreateContainer + StartContainer
//! through pinshim, against the same work done with plain Docker API calls
//! (create and start a pause container, then an app container joining its
//! namespaces) in the same run, and against a peer CRI endpoint when
//! `PINSHIM_BENCH_PEER=unix:///path.sock` names one (cri-dockerd, say).
//!
//! pinshim's rounds are split using its debug log: the time its Docker calls
//! and CNI plugin runs took, and the rest, which is pinshim's own.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use common::pods::{self, IDLE, Images, Rt};
use common::{Shim, ShimOptions, env, unique};

const ROUNDS: usize = 15;

/// One pinshim round, split by what its log says the time went to.
#[derive(Default)]
struct Round {
    wall: Duration,
    docker: Duration,
    cni: Duration,
    calls: BTreeMap<String, usize>,
}

impl Round {
    /// Wall time not spent waiting for Docker or a plugin. Calls made in
    /// parallel count once each, so this is a lower bound.
    fn own(&self) -> Duration {
        self.wall.saturating_sub(self.docker + self.cni)
    }
}

#[tokio::main]
async fn main() {
    let shim = Shim::start().await;
    let docker_mode = Shim::start_with(ShimOptions {
        args: vec!["--network-plugin".to_string(), "docker".to_string()],
        env: Vec::new(),
    })
    .await;
    let peer = match std::env::var("PINSHIM_BENCH_PEER") {
        Ok(endpoint) => Some(connect_peer(&endpoint).await),
        Err(_) => None,
    };
    let image = pods::fresh_image(&shim.images, "bench-pod").await;
    let pause_id = pods::pull(&shim.images, &env("PINSHIM_TEST_PAUSE")).await;
    if let Some((_, peer_images)) = &peer {
        pods::pull(peer_images, &image.reference).await;
    }
    let docker = common::docker();

    let mut cni_rounds = Vec::with_capacity(ROUNDS);
    let mut bridge_rounds = Vec::with_capacity(ROUNDS);
    let (mut docker_times, mut peer_times) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS {
        for (instance, rounds) in [(&shim, &mut cni_rounds), (&docker_mode, &mut bridge_rounds)] {
            let mark = instance.logs().len();
            let (wall, pod) = start_pod(&instance.runtime, &image).await;
            let mut round = split(&instance.logs()[mark..]);
            round.wall = wall;
            rounds.push(round);
            pods::stop_pod(&instance.runtime, &pod.id).await;
            pods::remove_pod(&instance.runtime, &pod.id).await;
        }
        if let Some((peer_rt, _)) = &peer {
            let (wall, pod) = start_pod(peer_rt, &image).await;
            peer_times.push(wall);
            pods::stop_pod(peer_rt, &pod.id).await;
            pods::remove_pod(peer_rt, &pod.id).await;
        }
        docker_times.push(raw_pod_start(&docker, &pause_id, &image.id).await);
    }
    pods::remove_image(&shim.images, &image.id).await;

    let raw = median(&mut docker_times);
    println!("Pod start (sandbox + one container, created and started), {ROUNDS} rounds each, medians:");
    println!("  {:<44} {:>9} {:>9} {:>9} {:>9}", "", "wall", "docker", "cni", "own");
    for (name, rounds) in
        [("pinshim, CNI (bridge, firewall, portmap)", &cni_rounds), ("pinshim, Docker bridge", &bridge_rounds)]
    {
        let pick = |f: fn(&Round) -> Duration| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
        let (wall, docker, cni, own) = (pick(|r| r.wall), pick(|r| r.docker), pick(|r| r.cni), pick(Round::own));
        println!("  {name:<44} {:>9} {:>9} {:>9} {:>9}", ms(wall), ms(docker), ms(cni), ms(own));
    }
    println!("  {:<44} {:>9}", "docker API: create/start pause + app", ms(raw));
    let bridge_wall = median(&mut bridge_rounds.iter().map(|r| r.wall).collect::<Vec<_>>());
    println!("  ratio pinshim Docker bridge / raw docker: {:.2}", ratio(bridge_wall, raw));
    if !peer_times.is_empty() {
        let peer_wall = median(&mut peer_times);
        println!("  {:<44} {:>9}", "peer endpoint", ms(peer_wall));
        println!("  ratio pinshim Docker bridge / peer: {:.2}", ratio(bridge_wall, peer_wall));
    }
    println!("  Docker calls of one pinshim round (CNI, Docker bridge):");
    let (cni_calls, bridge_calls) = (&cni_rounds[ROUNDS / 2].calls, &bridge_rounds[ROUNDS / 2].calls);
    for op in cni_calls.keys().chain(bridge_calls.keys()).collect::<std::collections::BTreeSet<_>>() {
        let count = |calls: &BTreeMap<String, usize>| calls.get(op).copied().unwrap_or_default();
        println!("    {op:<28} {:>3} {:>3}", count(cni_calls), count(bridge_calls));
    }
}

/// RunPodSandbox, CreateContainer and StartContainer, timed together.
async fn start_pod(rt: &Rt, image: &pods::TestImage) -> (Duration, pods::Pod) {
    let start = Instant::now();
    let pod = pods::run_pod(rt, "bench").await;
    pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", image, IDLE)).await;
    (start.elapsed(), pod)
}

/// The RPCs of a pod start, as their tracing spans are named.
const POD_START_RPCS: [&str; 3] = ["run_pod_sandbox", "create_container", "start_container"];

/// Sums the "docker call" and "cni plugin finished" events a debug log
/// shows inside the pod start's RPCs; calls made outside them (the index
/// following Docker's events) are counted apart, as "background".
fn split(log: &str) -> Round {
    let mut round = Round::default();
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let fields = &event["fields"];
        let spans = event["spans"].as_array().map(Vec::as_slice).unwrap_or_default();
        let in_rpc = spans.iter().any(|s| s["name"].as_str().is_some_and(|n| POD_START_RPCS.contains(&n)));
        if !in_rpc {
            if fields["message"].as_str() == Some("docker call") {
                let op = format!("background {}", fields["operation"].as_str().unwrap_or("?"));
                *round.calls.entry(op).or_default() += 1;
            }
            continue;
        }
        let elapsed = Duration::from_micros(fields["elapsed_us"].as_u64().unwrap_or_default());
        match fields["message"].as_str() {
            Some("docker call") => {
                round.docker += elapsed;
                *round.calls.entry(fields["operation"].as_str().unwrap_or("?").to_string()).or_default() += 1;
            }
            Some("cni plugin finished") => {
                round.cni += elapsed;
                let plugin = format!("cni {}", fields["plugin"].as_str().unwrap_or("?"));
                *round.calls.entry(plugin).or_default() += 1;
            }
            _ => {}
        }
    }
    round
}

/// The floor: the Docker calls a pod start cannot do without.
async fn raw_pod_start(docker: &bollard::Docker, pause_id: &str, image_id: &str) -> Duration {
    let name = unique("bench-raw");
    let start = Instant::now();
    let pause_host = HostConfig { ipc_mode: Some("shareable".into()), ..Default::default() };
    let pause = create(docker, &format!("{name}-pod"), pause_id, None, pause_host).await;
    docker.start_container(&pause, None).await.expect("start pause");
    let joined = format!("container:{pause}");
    let cmd = IDLE.iter().map(|s| s.to_string()).collect();
    let app_host = HostConfig { network_mode: Some(joined.clone()), ipc_mode: Some(joined), ..Default::default() };
    let app = create(docker, &format!("{name}-app"), image_id, Some(cmd), app_host).await;
    docker.start_container(&app, None).await.expect("start app");
    let elapsed = start.elapsed();
    for id in [app, pause] {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        docker.remove_container(&id, Some(options)).await.expect("remove");
    }
    elapsed
}

async fn connect_peer(endpoint: &str) -> (Rt, Images) {
    let socket = endpoint.strip_prefix("unix://").expect("PINSHIM_BENCH_PEER is unix:///path");
    let channel = common::connect(Path::new(socket)).await;
    (Rt::new(channel.clone()), Images::new(channel))
}

async fn create(
    docker: &bollard::Docker,
    name: &str,
    image: &str,
    cmd: Option<Vec<String>>,
    host: HostConfig,
) -> String {
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let body =
        ContainerCreateBody { image: Some(image.to_string()), cmd, host_config: Some(host), ..Default::default() };
    docker.create_container(Some(options), body).await.expect("create").id
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
