//! A pod's network namespace is pinned for the pod's lifetime, and a
//! RunPodSandbox cut short by a crash leaves nothing that looks ready: with
//! the node's CNI config (bridge with ipMasq, firewall, portmap) and the
//! real plugins, nothing of the pod stays in iptables, host-local IPAM,
//! the CNI cache or the mount table.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pods::{self, CrashableShim, Rt, Sweep};
use common::{Shim, unique};
use pinshim::api;

const PLUGINS: &str = "/usr/lib/cni";
const CONFLIST: &str = "/etc/cni/net.d/10-pinshim.conflist";
/// host-local's store for the `pinshim` network of the node config.
const IPAM_DIR: &str = "/var/lib/cni/networks/pinshim";
/// pinshim's default `--cni-cache-dir`.
const CNI_CACHE: &str = "/var/lib/cni/cache";

fn has_node_cni() -> bool {
    let present = Path::new(PLUGINS).join("bridge").exists() && Path::new(CONFLIST).exists();
    if !present {
        println!("skipped: no CNI plugins in {PLUGINS} or no {CONFLIST}");
    }
    present
}

/// Everything the host holds for one pod: found by its sandbox ID, and by
/// its IP (`ip/32`) and the chains its rules jump to.
#[derive(Debug, Default)]
struct Traces {
    iptables: Vec<String>,
    chains: Vec<String>,
    ipam: Vec<String>,
    cache: Vec<String>,
    pin_file: bool,
    pin_mounts: Vec<String>,
}

impl Traces {
    fn of(id: &str, ip: &str, pin: &Path) -> Traces {
        let rules = iptables_save();
        let host = format!("{ip}/32");
        let iptables: Vec<String> = rules
            .lines()
            .filter(|l| l.contains(id) || (!ip.is_empty() && l.split_whitespace().any(|w| w == host)))
            .map(str::to_string)
            .collect();
        let own_chains = iptables.iter().filter_map(|l| jump_target(l)).filter(|c| c.starts_with("CNI-"));
        let own_chains: Vec<String> =
            own_chains.filter(|c| !matches!(c.as_str(), "CNI-FORWARD" | "CNI-ADMIN" | "CNI-HOSTPORT-DNAT")).collect();
        let chains = rules
            .lines()
            .filter(|l| {
                own_chains.iter().any(|c| l.starts_with(&format!(":{c} ")) || l.starts_with(&format!("-A {c} ")))
            })
            .map(str::to_string)
            .collect();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let pin_text = pin.display().to_string();
        Traces {
            iptables,
            chains,
            ipam: files_mentioning(Path::new(IPAM_DIR), id),
            cache: ["results", "pending"]
                .iter()
                .flat_map(|d| names_containing(&Path::new(CNI_CACHE).join(d), id))
                .collect(),
            pin_file: pin.exists(),
            pin_mounts: mountinfo.lines().filter(|l| l.contains(&pin_text)).map(str::to_string).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.iptables.is_empty()
            && self.chains.is_empty()
            && self.ipam.is_empty()
            && self.cache.is_empty()
            && !self.pin_file
            && self.pin_mounts.is_empty()
    }

    fn summary(&self) -> String {
        format!(
            "{} iptables rules, {} lines of own chains, {} IPAM files, {} CNI cache files, pin file {}, {} pin mounts",
            self.iptables.len(),
            self.chains.len(),
            self.ipam.len(),
            self.cache.len(),
            self.pin_file,
            self.pin_mounts.len()
        )
    }
}

fn iptables_save() -> String {
    let out = Command::new("iptables-save").output().expect("iptables-save");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn jump_target(rule: &str) -> Option<String> {
    let words: Vec<&str> = rule.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "-j").map(|w| w[1].to_string())
}

/// host-local writes the owner's container ID into each address's file.
fn files_mentioning(dir: &Path, needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let owned = entries.flatten().filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(needle)));
    owned.map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

fn names_containing(dir: &Path, needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let names = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned());
    names.filter(|n| n.contains(needle)).collect()
}

async fn pod_state_and_ip(rt: &Rt, id: &str) -> (i32, String) {
    let status = pods::pod_status(rt, id).await.status.expect("status");
    (status.state, status.network.map(|n| n.ip).unwrap_or_default())
}

async fn docker_kill(id: &str) {
    let kill = bollard::query_parameters::KillContainerOptionsBuilder::default().signal("KILL").build();
    common::docker().kill_container(id, Some(kill)).await.expect("docker kill");
}

#[tokio::test]
async fn stop_and_remove_after_the_pause_process_died_leave_no_rules_or_pin() {
    if !has_node_cni() {
        return;
    }
    let shim = Shim::start().await;
    let rt = shim.runtime.clone();
    let pod = pods::run_pod(&rt, "netns-pin").await;
    let (state, ip) = pod_state_and_ip(&rt, &pod.id).await;
    assert_eq!(state, api::PodSandboxState::SandboxReady as i32);
    assert!(ip.starts_with("10.88."), "{ip}");
    let pin = shim.socket().with_file_name("root").join("netns").join(&pod.id);
    let running = Traces::of(&pod.id, &ip, &pin);
    println!("while running: {}", running.summary());
    assert!(running.pin_file && !running.pin_mounts.is_empty(), "the namespace is pinned: {running:?}");
    assert!(!running.chains.is_empty() && !running.iptables.is_empty(), "ipMasq set up NAT rules: {running:?}");

    docker_kill(&pod.id).await;
    pods::stop_pod(&rt, &pod.id).await;
    pods::remove_pod(&rt, &pod.id).await;
    let left = Traces::of(&pod.id, &ip, &pin);
    println!("after kill, stop, remove: {}", left.summary());
    assert!(left.is_empty(), "the pod left traces: {left:#?}");
    assert!(pods::docker_leftovers(pod.name()).await.is_empty());
}

/// RunPodSandbox crashes at `point`; the leftover is not READY (asked of a
/// second pinshim, which does not clean up another's pods), a restart
/// tears it down without a trace, and a retry of the same pod succeeds.
async fn crash_at(point: &str) {
    let hook = vec![("PINSHIM_TEST_CRASH_AT".to_string(), point.to_string())];
    let mut shim = CrashableShim::start_with_env(hook).await;
    let name = unique("netns-crash");
    let _sweep = Sweep::containers(&name);
    let logs = pods::log_dir();
    let config = pods::sandbox_config(&name, logs.path());
    let err = pods::run_pod_in(&shim.runtime, config.clone()).await.err().expect("pinshim crashed mid-call");
    println!("{point}: RunPodSandbox failed with {err}");
    shim.kill_hard();
    let found = pods::docker_containers(&format!("k8s_POD_{name}_")).await;
    let [(_, id)] = found.as_slice() else { panic!("one pause container left at {point}: {found:?}") };
    let pin = shim.root_dir().join("netns").join(id);
    let ip = ipam_ip_of(id);

    let observer = Shim::start().await;
    let (state, _) = pod_state_and_ip(&observer.runtime, id).await;
    assert_eq!(state, api::PodSandboxState::SandboxNotready as i32, "a half-made pod is not ready at {point}");
    let listed =
        pods::list_pods(&observer.runtime, Some(api::PodSandboxFilter { id: id.clone(), ..Default::default() }));
    assert!(listed.await.iter().all(|p| p.state == api::PodSandboxState::SandboxNotready as i32));
    let leftover = Traces::of(id, &ip, &pin);
    println!("{point}: left by the crash: {}", leftover.summary());

    shim.env.clear();
    shim.restart().await;
    let gone = format!("the half-made sandbox {id} to be removed");
    let pause = format!("k8s_POD_{name}_");
    pods::wait_for(&gone, pods::WAIT, || async { pods::docker_leftovers(&pause).await.is_empty().then_some(()) }).await;
    let cleaned = Traces::of(id, &ip, &pin);
    println!("{point}: after the restart: {}", cleaned.summary());
    assert!(cleaned.is_empty(), "the restart cleaned up everything at {point}: {cleaned:#?}");

    let retry = pods::run_pod_in(&shim.runtime, config).await.unwrap_or_else(|e| panic!("retry after {point}: {e}"));
    let (state, new_ip) = pod_state_and_ip(&shim.runtime, &retry.id).await;
    assert_eq!(state, api::PodSandboxState::SandboxReady as i32);
    assert!(new_ip.starts_with("10.88."), "{new_ip}");
    let new_pin = shim.root_dir().join("netns").join(&retry.id);
    pods::stop_pod(&shim.runtime, &retry.id).await;
    pods::remove_pod(&shim.runtime, &retry.id).await;
    let after = Traces::of(&retry.id, &new_ip, &new_pin);
    assert!(after.is_empty(), "the retried pod left traces: {after:#?}");
}

/// The address host-local handed to `id`, if any.
fn ipam_ip_of(id: &str) -> String {
    files_mentioning(Path::new(IPAM_DIR), id).into_iter().next().unwrap_or_default()
}

#[tokio::test]
async fn crash_after_the_pause_container_started() {
    if has_node_cni() {
        crash_at("after-pause-start").await;
    }
}

#[tokio::test]
async fn crash_after_the_namespace_was_pinned() {
    if has_node_cni() {
        crash_at("after-netns-pin").await;
    }
}

#[tokio::test]
async fn crash_after_cni_add_before_its_result_was_cached() {
    if has_node_cni() {
        crash_at("after-cni-add").await;
    }
}

/// A retry that meets a half-made leftover with the same name replaces it,
/// without a restart: here a second pinshim retries the crashed one's pod.
#[tokio::test]
async fn retry_replaces_a_half_made_leftover() {
    if !has_node_cni() {
        return;
    }
    let hook = vec![("PINSHIM_TEST_CRASH_AT".to_string(), "after-cni-add".to_string())];
    let mut shim = CrashableShim::start_with_env(hook).await;
    let name = unique("netns-retry");
    let _sweep = Sweep::containers(&name);
    let logs = pods::log_dir();
    let config = pods::sandbox_config(&name, logs.path());
    pods::run_pod_in(&shim.runtime, config.clone()).await.err().expect("pinshim crashed mid-call");
    shim.kill_hard();
    let found = pods::docker_containers(&format!("k8s_POD_{name}_")).await;
    let [(_, old)] = found.as_slice() else { panic!("one pause container left: {found:?}") };
    let ip = ipam_ip_of(old);
    assert!(!ip.is_empty(), "the crash came after host-local gave out an address");

    let other = Shim::start().await;
    let retry = pods::run_pod_in(&other.runtime, config).await.unwrap_or_else(|e| panic!("retry: {e}"));
    assert_ne!(&retry.id, old);
    let (state, _) = pod_state_and_ip(&other.runtime, &retry.id).await;
    assert_eq!(state, api::PodSandboxState::SandboxReady as i32);
    let old_traces = Traces::of(old, &ip, Path::new("/nonexistent"));
    assert!(old_traces.is_empty(), "replacing the leftover undid its network: {old_traces:#?}");
    pods::stop_pod(&other.runtime, &retry.id).await;
    pods::remove_pod(&other.runtime, &retry.id).await;

    // The crashed instance's pin of the replaced sandbox is released at its restart.
    shim.env.clear();
    shim.restart().await;
    let pin: PathBuf = shim.root_dir().join("netns").join(old);
    pods::wait_for("the orphaned pin to be released", pods::WAIT, || async { (!pin.exists()).then_some(()) }).await;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&pin.display().to_string()));
}
