//! The SIGKILL storm: parallel pod lifecycles while pinshim is killed and
//! restarted again and again, then a kubelet-style clean-up. Nothing may be
//! left: no container, no address, no iptables chain or rule, no netns pin,
//! and no sandbox that reported READY without its network.
//!
//! `PINSHIM_STORM_KILLS` and `PINSHIM_STORM_LOOPS` scale it up (CI runs the
//! small default).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pods::{self, CrashableShim, IDLE, Rt, Sweep, TestImage, container_config};
use common::unique;
use pinshim::api;

/// host-local's leases for the node's pod network (hack's CNI config).
const IPAM_DIR: &str = "/var/lib/cni/networks/pinshim";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the storm saw while it raged.
#[derive(Default)]
struct Seen {
    /// Sandboxes RunPodSandbox acknowledged.
    acknowledged: Mutex<Vec<String>>,
    /// READY sandboxes of this test seen without an IP.
    ready_without_ip: Mutex<HashSet<String>>,
    lifecycles: AtomicUsize,
}

/// One worker: pod after pod, each run, given a container, stopped and
/// removed, riding out every restart of pinshim.
async fn worker(
    rt: Arc<Mutex<Rt>>,
    prefix: String,
    image: TestImage,
    logs: std::path::PathBuf,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let current = rt.lock().expect("rt").clone();
        let config = pods::sandbox_config(&format!("{prefix}-{n:03}"), &logs);
        let Ok(pod) = pods::run_pod_in(&current, config).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        seen.acknowledged.lock().expect("seen").push(pod.id.clone());
        if let Ok(id) = pods::try_create(&current, &pod, container_config(&pod, "main", &image, IDLE)).await {
            let _ = current.clone().start_container(api::StartContainerRequest { container_id: id }).await;
        }
        let stop_request = api::StopPodSandboxRequest { pod_sandbox_id: pod.id.clone() };
        let remove_request = api::RemovePodSandboxRequest { pod_sandbox_id: pod.id.clone() };
        if current.clone().stop_pod_sandbox(stop_request).await.is_ok()
            && current.clone().remove_pod_sandbox(remove_request).await.is_ok()
        {
            seen.lifecycles.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// READY sandboxes of this test that have no IP: half-made pods.
async fn ready_without_ip(rt: &Rt, prefix: &str) -> Vec<String> {
    let Ok(listed) = rt.clone().list_pod_sandbox(api::ListPodSandboxRequest::default()).await else {
        return Vec::new();
    };
    let mut bad = Vec::new();
    for pod in listed.into_inner().items {
        let ours = pod.metadata.as_ref().is_some_and(|m| m.name.starts_with(prefix));
        if !ours || pod.state != api::PodSandboxState::SandboxReady as i32 {
            continue;
        }
        let request = api::PodSandboxStatusRequest { pod_sandbox_id: pod.id.clone(), verbose: false };
        let Ok(status) = rt.clone().pod_sandbox_status(request).await else { continue };
        let status = status.into_inner().status.unwrap_or_default();
        let still_ready = status.state == api::PodSandboxState::SandboxReady as i32;
        if still_ready && status.network.is_none_or(|n| n.ip.is_empty()) {
            bad.push(pod.id);
        }
    }
    bad
}

/// host-local lease files naming one of `ids`.
fn leases_of(ids: &[String]) -> usize {
    let Ok(entries) = std::fs::read_dir(IPAM_DIR) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
            ids.iter().any(|id| owner.contains(id.as_str()))
        })
        .count()
}

/// Lines of `iptables-save` (nat and filter) that name one of `ids`.
fn iptables_lines_of(ids: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    for table in ["nat", "filter"] {
        let Ok(out) = std::process::Command::new("iptables-save").args(["-t", table]).output() else { continue };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        lines.extend(text.lines().filter(|l| ids.iter().any(|id| l.contains(id.as_str()))).map(str::to_string));
    }
    lines
}

/// Mounts under `root` (netns pins and the like) still in the mount table.
fn mounts_under(root: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = root.display().to_string();
    table.lines().filter(|l| l.split(' ').nth(4).is_some_and(|point| point.starts_with(&root))).count()
}

#[tokio::test]
async fn sigkill_storm_leaves_nothing_behind() {
    let kills = setting("PINSHIM_STORM_KILLS", 8);
    let loops = setting("PINSHIM_STORM_LOOPS", 4);
    let mut shim = CrashableShim::start().await;
    let prefix = unique("storm");
    let _sweep = Sweep::containers(&prefix);
    let image = pods::fresh_image(&shim.images, "storm").await;
    let logs = tempfile::tempdir().expect("log dir");

    let rt = Arc::new(Mutex::new(shim.runtime.clone()));
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let workers: Vec<_> = (0..loops)
        .map(|w| {
            let prefix = format!("{prefix}-w{w}");
            tokio::spawn(worker(
                rt.clone(),
                prefix,
                image.clone(),
                logs.path().to_path_buf(),
                seen.clone(),
                stop.clone(),
            ))
        })
        .collect();
    for kill in 0..kills {
        // Spread the kills over every step of a lifecycle.
        tokio::time::sleep(Duration::from_millis(150 + 97 * (kill as u64 % 7))).await;
        shim.kill_hard();
        shim.restart().await;
        *rt.lock().expect("rt") = shim.runtime.clone();
        let bad = ready_without_ip(&shim.runtime, &prefix).await;
        seen.ready_without_ip.lock().expect("seen").extend(bad);
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("worker");
    }

    // kubelet's view after the storm: remove every pod of ours still listed.
    let listed = shim.runtime.clone().list_pod_sandbox(api::ListPodSandboxRequest::default()).await.expect("list");
    let mut residue = 0;
    for pod in listed.into_inner().items {
        if pod.metadata.as_ref().is_some_and(|m| m.name.starts_with(&prefix)) {
            residue += 1;
            pods::stop_pod(&shim.runtime, &pod.id).await;
            pods::remove_pod(&shim.runtime, &pod.id).await;
        }
    }
    let mut ids: Vec<String> = seen.acknowledged.lock().expect("seen").clone();
    ids.extend(pods::docker_containers(&prefix).await.into_iter().map(|(_, id)| id));
    let containers = pods::docker_leftovers(&prefix).await;
    let leases = leases_of(&ids);
    let rules = iptables_lines_of(&ids);
    let pins = mounts_under(&shim.root_dir());
    let ready_without_ip = seen.ready_without_ip.lock().expect("seen").len();
    println!(
        "storm: {kills} SIGKILLs, {loops} loops, {} complete lifecycles, {} sandboxes acknowledged, \
         {residue} residue sandboxes removed afterwards; left: {} containers, {leases} IP leases, {} iptables lines, \
         {pins} mounts; READY without an IP: {ready_without_ip}",
        seen.lifecycles.load(Ordering::SeqCst),
        seen.acknowledged.lock().expect("seen").len(),
        containers.len(),
        rules.len(),
    );
    assert!(containers.is_empty(), "containers left: {containers:?}");
    assert_eq!(leases, 0, "IP leases left");
    assert!(rules.is_empty(), "iptables lines left: {rules:#?}");
    assert_eq!(pins, 0, "mounts left under the root dir");
    assert_eq!(ready_without_ip, 0, "sandboxes READY without their network");

    pods::remove_image(&shim.images, &image.id).await;
}
