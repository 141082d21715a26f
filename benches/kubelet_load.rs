//! kubelet's steady load on a node with N pods (one busybox container each;
//! PINSHIM_BENCH_PODS, default 110), driven the way kubelet drives its
//! runtime, against pinshim and, when PINSHIM_BENCH_PEER names its socket
//! (`unix:///run/cri-dockerd.sock`), against that peer in the same run:
//!
//! - a relist every second: ListPodSandbox + ListContainers, and status
//!   calls for what changed (PINSHIM_BENCH_EVENTED=1: GetContainerEvents
//!   instead, with a relist every 300 s as Evented PLEG keeps);
//! - ListPodSandboxStats and ListContainerStats every 10 s;
//! - ImageFsInfo every 10 s, ListImages every minute;
//! - in the second phase, an ExecSync liveness probe per pod every 10 s,
//!   each pod its own prober, as kubelet's probe workers are.
//!
//! After the phases, a status sweep asks PodSandboxStatus and ContainerStatus
//! of every pod once, as kubelet does for pods whose state changed.
//!
//! Each phase runs PINSHIM_BENCH_SECONDS (default 60). Reported: CPU
//! seconds per minute of the runtime and of dockerd (from /proc/<pid>/stat,
//! both found through their sockets' peer credentials), RSS, p50/p99 of
//! each call, and the time from a container's exit to its event.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::pods::{self, IDLE, Images, Rt};
use common::{Shim, ShimOptions};
use futures::StreamExt;
use pinshim::api;

type Latencies = Arc<Mutex<BTreeMap<&'static str, Vec<Duration>>>>;

/// One endpoint under load: its clients and the process answering them.
struct Endpoint {
    name: &'static str,
    rt: Rt,
    images: Images,
    pid: i32,
}

/// What one phase measured on one endpoint.
struct Phase {
    runtime_cpu_per_min: f64,
    dockerd_cpu_per_min: f64,
    rss_mib: f64,
    latencies: BTreeMap<&'static str, Vec<Duration>>,
}

#[tokio::main]
async fn main() {
    let n = env_number("PINSHIM_BENCH_PODS", 110);
    let seconds = env_number("PINSHIM_BENCH_SECONDS", 60) as u64;
    let evented = std::env::var("PINSHIM_BENCH_EVENTED").is_ok_and(|v| v == "1");
    let docker_socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    let dockerd = socket_pid(&docker_socket).await;
    // Docker's bridge, as cri-dockerd runs with `--network-plugin=`, and
    // the default log level a node runs with: debug logging costs CPU.
    let args = ["--network-plugin", "docker", "--log-level", "info"].map(String::from).to_vec();
    let shim = Shim::start_with(ShimOptions { args, env: Vec::new() }).await;
    let mut endpoints = vec![Endpoint {
        name: "pinshim",
        rt: shim.runtime.clone(),
        images: shim.images.clone(),
        pid: socket_pid(&shim.socket()).await,
    }];
    if let Ok(peer) = std::env::var("PINSHIM_BENCH_PEER") {
        let socket = PathBuf::from(peer.strip_prefix("unix://").expect("PINSHIM_BENCH_PEER is unix:///path"));
        let channel = common::connect(&socket).await;
        endpoints.push(Endpoint {
            name: "peer",
            rt: Rt::new(channel.clone()),
            images: Images::new(channel),
            pid: socket_pid(&socket).await,
        });
    }
    let image = pods::fresh_image(&shim.images, "bench-kubelet").await;
    println!(
        "kubelet's load, {n} pods, {seconds} s per phase, {} PLEG; dockerd pid {dockerd}",
        if evented { "evented" } else { "generic" }
    );

    let mut results: Vec<(&str, &str, Phase)> = Vec::new();
    let mut lags = Vec::new();
    let mut sweeps = Vec::new();
    for endpoint in &endpoints {
        pods::pull(&endpoint.images, &image.reference).await;
        let started = Instant::now();
        let mut made = Vec::with_capacity(n);
        for _ in 0..n {
            let pod = pods::run_pod(&endpoint.rt, "bench-kubelet").await;
            let config = pods::container_config(&pod, "app", &image, IDLE);
            let container = pods::create_and_start(&endpoint.rt, &pod, config).await;
            made.push((pod, container));
        }
        println!("  {}: {n} pods up in {:.1} s", endpoint.name, started.elapsed().as_secs_f64());
        let containers: Vec<String> = made.iter().map(|(_, c)| c.clone()).collect();
        for probes in [false, true] {
            let phase = run_phase(endpoint, dockerd, &containers, probes, evented, seconds).await;
            results.push((endpoint.name, if probes { "with probes" } else { "no probes" }, phase));
        }
        sweeps.push((endpoint.name, status_sweep(endpoint, &made).await));
        lags.push((endpoint.name, exit_event_lag(endpoint, &made[0].0, &image).await));
        for (pod, _) in &made {
            pods::stop_pod(&endpoint.rt, &pod.id).await;
            pods::remove_pod(&endpoint.rt, &pod.id).await;
        }
    }
    pods::remove_image(&shim.images, &image.id).await;
    report(&results, &sweeps, &lags);
}

async fn run_phase(
    endpoint: &Endpoint,
    dockerd: i32,
    containers: &[String],
    probes: bool,
    evented: bool,
    seconds: u64,
) -> Phase {
    let latencies: Latencies = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (runtime_before, dockerd_before) = (cpu_seconds(endpoint.pid), cpu_seconds(dockerd));
    let wall = Instant::now();
    let mut tasks = Vec::new();
    let every = |period: Duration, call: &'static str| {
        let (rt, images, latencies) = (endpoint.rt.clone(), endpoint.images.clone(), latencies.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            // A slow call delays the next one, as kubelet's loops do, rather
            // than bursting to catch up.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while next_tick(&mut tick, deadline).await {
                periodic_call(call, &rt, &images, &latencies).await;
            }
        })
    };
    let relist = if evented { Duration::from_secs(300) } else { Duration::from_secs(1) };
    tasks.push(every(relist, "relist"));
    tasks.push(every(Duration::from_secs(10), "stats"));
    tasks.push(every(Duration::from_secs(10), "ImageFsInfo"));
    tasks.push(every(Duration::from_secs(60), "ListImages"));
    if evented {
        let (rt, latencies) = (endpoint.rt.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move { follow_events(rt, latencies, deadline).await }));
    }
    if probes {
        for (i, id) in containers.iter().enumerate() {
            let (rt, latencies, id) = (endpoint.rt.clone(), latencies.clone(), id.clone());
            // Spread over the period, as probe workers start with their pods.
            let offset = Duration::from_secs(10) * i as u32 / containers.len() as u32;
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while next_tick(&mut tick, deadline).await {
                    let request =
                        api::ExecSyncRequest { container_id: id.clone(), cmd: vec!["true".into()], timeout: 1 };
                    timed(&latencies, "ExecSync", rt.clone().exec_sync(request)).await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("load task");
    }
    let minutes = wall.elapsed().as_secs_f64() / 60.0;
    let latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    Phase {
        runtime_cpu_per_min: (cpu_seconds(endpoint.pid) - runtime_before) / minutes,
        dockerd_cpu_per_min: (cpu_seconds(dockerd) - dockerd_before) / minutes,
        rss_mib: rss_kib(endpoint.pid) as f64 / 1024.0,
        latencies,
    }
}

/// Waits for the next tick; `false` once the phase's deadline has passed,
/// also when a call outlasted its period and the tick is already due.
async fn next_tick(tick: &mut tokio::time::Interval, deadline: Instant) -> bool {
    Instant::now() < deadline && tokio::time::timeout_at(deadline.into(), tick.tick()).await.is_ok()
}

/// One of kubelet's periodic calls; a relist asks for the status of what
/// changed since the previous one, as the generic PLEG does.
async fn periodic_call(call: &'static str, rt: &Rt, images: &Images, latencies: &Latencies) {
    match call {
        "relist" => {
            let pods =
                timed(latencies, "ListPodSandbox", rt.clone().list_pod_sandbox(api::ListPodSandboxRequest::default()))
                    .await;
            let containers =
                timed(latencies, "ListContainers", rt.clone().list_containers(api::ListContainersRequest::default()))
                    .await;
            let changed = containers
                .map(|r| r.into_inner().containers)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.state != api::ContainerState::ContainerRunning as i32);
            for container in changed {
                let request = api::ContainerStatusRequest { container_id: container.id, verbose: false };
                timed(latencies, "ContainerStatus", rt.clone().container_status(request)).await;
            }
            drop(pods);
        }
        "stats" => {
            let request = api::ListPodSandboxStatsRequest::default();
            timed(latencies, "ListPodSandboxStats", rt.clone().list_pod_sandbox_stats(request)).await;
            let request = api::ListContainerStatsRequest::default();
            timed(latencies, "ListContainerStats", rt.clone().list_container_stats(request)).await;
        }
        "ImageFsInfo" => {
            timed(latencies, "ImageFsInfo", images.clone().image_fs_info(api::ImageFsInfoRequest {})).await;
        }
        "ListImages" => {
            timed(latencies, "ListImages", images.clone().list_images(api::ListImagesRequest::default())).await;
        }
        other => unreachable!("{other}"),
    }
}

async fn follow_events(rt: Rt, latencies: Latencies, deadline: Instant) {
    let request = api::GetEventsRequest {};
    let Ok(events) = rt.clone().get_container_events(request).await else { return };
    let mut events = events.into_inner();
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline.into(), events.next()).await {
        latencies.lock().expect("latencies").entry("events received").or_default().push(Duration::ZERO);
    }
}

/// The status of every pod and its container, one call at a time.
async fn status_sweep(endpoint: &Endpoint, made: &[(pods::Pod, String)]) -> BTreeMap<&'static str, Vec<Duration>> {
    let latencies: Latencies = Arc::default();
    for (pod, container) in made {
        let request = api::PodSandboxStatusRequest { pod_sandbox_id: pod.id.clone(), verbose: false };
        timed(&latencies, "PodSandboxStatus", endpoint.rt.clone().pod_sandbox_status(request)).await;
        let request = api::ContainerStatusRequest { container_id: container.clone(), verbose: false };
        timed(&latencies, "ContainerStatus", endpoint.rt.clone().container_status(request)).await;
    }
    std::mem::take(&mut *latencies.lock().expect("latencies"))
}

/// Starts containers that exit after a second and measures, from Docker's
/// own finish time, when their exit reaches a GetContainerEvents stream.
async fn exit_event_lag(endpoint: &Endpoint, pod: &pods::Pod, image: &pods::TestImage) -> Vec<Duration> {
    let mut lags = Vec::new();
    let mut events = match endpoint.rt.clone().get_container_events(api::GetEventsRequest {}).await {
        Ok(events) => events.into_inner(),
        Err(e) if e.code() == tonic::Code::Unimplemented => {
            eprintln!("GetContainerEvents: not offered by this endpoint ({})", e.message());
            return lags;
        }
        Err(e) => panic!("events: {e}"),
    };
    for i in 0..20 {
        let config = pods::container_config(pod, &format!("exits-{i}"), image, &["sleep", "1"]);
        let id = pods::create_and_start(&endpoint.rt, pod, config).await;
        let seen = loop {
            let event = tokio::time::timeout(Duration::from_secs(30), events.next()).await;
            let Ok(Some(Ok(event))) = event else { panic!("no exit event for {id}") };
            if event.container_id == id
                && event.container_event_type == api::ContainerEventType::ContainerStoppedEvent as i32
            {
                break now_nanos();
            }
        };
        let finished = pods::status(&endpoint.rt, &id).await.finished_at;
        lags.push(Duration::from_nanos((seen - finished).max(0) as u64));
        let request = api::RemoveContainerRequest { container_id: id };
        endpoint.rt.clone().remove_container(request).await.expect("remove");
    }
    lags
}

async fn timed<T>(
    latencies: &Latencies,
    call: &'static str,
    request: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Option<T> {
    // A call the endpoint does not offer is said once and not timed.
    static UNOFFERED: Mutex<BTreeSet<&str>> = Mutex::new(BTreeSet::new());
    let start = Instant::now();
    let result = request.await;
    match result {
        Ok(value) => {
            latencies.lock().expect("latencies").entry(call).or_default().push(start.elapsed());
            Some(value)
        }
        Err(e) if e.code() == tonic::Code::Unimplemented => {
            if UNOFFERED.lock().expect("unoffered").insert(call) {
                eprintln!("{call}: not offered by this endpoint ({})", e.message());
            }
            None
        }
        Err(e) => {
            latencies.lock().expect("latencies").entry(call).or_default().push(start.elapsed());
            eprintln!("{call}: {e}");
            None
        }
    }
}

type Sweep<'a> = (&'a str, BTreeMap<&'static str, Vec<Duration>>);

fn report(results: &[(&str, &str, Phase)], sweeps: &[Sweep], lags: &[(&str, Vec<Duration>)]) {
    println!("  {:<10} {:<12} {:>12} {:>12} {:>9}", "endpoint", "phase", "runtime CPU", "dockerd CPU", "RSS");
    for (endpoint, phase, p) in results {
        println!(
            "  {endpoint:<10} {phase:<12} {:>8.2} s/min {:>8.2} s/min {:>5.1} MiB",
            p.runtime_cpu_per_min, p.dockerd_cpu_per_min, p.rss_mib
        );
    }
    println!("  p50 / p99 per call:");
    let calls: std::collections::BTreeSet<&str> =
        results.iter().flat_map(|(_, _, p)| p.latencies.keys().copied()).filter(|c| *c != "events received").collect();
    for call in calls {
        let cells: Vec<String> = results
            .iter()
            .map(|(e, phase, p)| match p.latencies.get(call) {
                Some(times) if !times.is_empty() => {
                    let (p50, p99) = percentiles(times);
                    format!("{e} {phase}: {} / {}", ms(p50), ms(p99))
                }
                _ => String::new(),
            })
            .filter(|c| !c.is_empty())
            .collect();
        let p50_of = |endpoint: &str| {
            results
                .iter()
                .find(|(e, phase, p)| *e == endpoint && *phase == "no probes" && p.latencies.contains_key(call))
                .map(|(_, _, p)| percentiles(&p.latencies[call]).0)
        };
        let ratio = match (p50_of("pinshim"), p50_of("peer")) {
            (Some(ours), Some(peer)) => format!(" | p50 pinshim/peer {:.2}", ours.as_secs_f64() / peer.as_secs_f64()),
            _ => String::new(),
        };
        println!("    {call:<20} {}{ratio}", cells.join(" | "));
    }
    for (endpoint, sweep) in sweeps {
        for (call, times) in sweep {
            let (p50, p99) = percentiles(times);
            println!("  {endpoint}: status sweep, {call} ×{}: p50 {} p99 {}", times.len(), ms(p50), ms(p99));
        }
    }
    for (endpoint, lag) in lags.iter().filter(|(_, lag)| !lag.is_empty()) {
        let (p50, p99) = percentiles(lag);
        println!("  {endpoint}: exit → GetContainerEvents, 20 exits: p50 {} p99 {}", ms(p50), ms(p99));
    }
    let find = |endpoint: &str, phase: &str| results.iter().find(|(e, p, _)| *e == endpoint && *p == phase);
    if let (Some((_, _, ours)), Some((_, _, peer))) = (find("pinshim", "no probes"), find("peer", "no probes")) {
        println!(
            "  ratio runtime CPU, no probes, pinshim/peer: {:.2}",
            ours.runtime_cpu_per_min / peer.runtime_cpu_per_min
        );
    }
    if let (Some((_, _, ours)), Some((_, _, peer))) = (find("pinshim", "with probes"), find("peer", "with probes")) {
        let total = |p: &Phase| p.runtime_cpu_per_min + p.dockerd_cpu_per_min;
        println!("  ratio runtime + dockerd CPU, with probes, pinshim/peer: {:.2}", total(ours) / total(peer));
        let p50 = |p: &Phase| p.latencies.get("ExecSync").map(|t| percentiles(t).0).unwrap_or_default();
        println!("  ratio ExecSync p50, pinshim/peer: {:.2}", p50(ours).as_secs_f64() / p50(peer).as_secs_f64());
    }
}

/// The process at the other end of a Unix socket.
async fn socket_pid(socket: &Path) -> i32 {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    stream.peer_cred().expect("peer credentials").pid().expect("peer pid")
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // USER_HZ, 100 on every Linux architecture kubelet runs on.
    ticks as f64 / 100.0
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default()
}

fn percentiles(times: &[Duration]) -> (Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    (at(0.5), at(0.99))
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
