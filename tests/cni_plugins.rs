//! pinshim's CNI runtime against the real plugins of Debian's
//! containernetworking-plugins (`/usr/lib/cni`): bridge with host-local
//! IPAM, firewall and portmap, in network namespaces each test creates and
//! deletes. Needs root; without it (or without the plugins) every test
//! prints why and returns. Names, subnets and directories are unique per
//! test, so the tests run in parallel.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use pinshim::network::{Cni, CniError, CniSettings, PodNetwork, PortMapping};
use serde_json::json;
use tempfile::TempDir;

const PLUGIN_DIR: &str = "/usr/lib/cni";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique number for this test process and call.
fn unique() -> u32 {
    std::process::id() % 100_000 * 100 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs a command, returning its stdout; panics with its stderr on failure.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("needs root to create network namespaces and bridges".into());
    }
    let missing =
        ["bridge", "host-local", "portmap", "firewall"].into_iter().find(|p| !Path::new(PLUGIN_DIR).join(p).is_file());
    if let Some(plugin) = missing {
        return Some(format!("cni plugin {plugin} is not installed in {PLUGIN_DIR}"));
    }
    if !succeeds("ip", &["-V"]) || !succeeds("iptables", &["-t", "nat", "-S"]) {
        return Some("needs the ip and iptables commands".into());
    }
    None
}

macro_rules! setup_or_skip {
    () => {
        match skip_reason() {
            Some(reason) => {
                eprintln!("skipped: {reason}");
                return;
            }
            None => Net::new(),
        }
    };
}

/// A network namespace owned by the test, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        let name = format!("pinshim-cni-{}", unique());
        run("ip", &["netns", "add", &name]);
        Self { name }
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn delete(&self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }

    fn eth0_addresses(&self) -> String {
        run("ip", &["-n", &self.name, "addr", "show", "dev", "eth0"])
    }

    fn ping(&self, ip: IpAddr) -> bool {
        let ip = ip.to_string();
        succeeds("ip", &["netns", "exec", &self.name, "busybox", "ping", "-c1", "-W1", &ip])
            || succeeds("ip", &["netns", "exec", &self.name, "ping", "-c1", "-W1", &ip])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A test network: conf, cache and IPAM directories, a bridge and a
/// /24 subnet of its own. The bridge is deleted on drop.
struct Net {
    dir: TempDir,
    name: String,
    bridge: String,
    octet: u32,
}

impl Net {
    fn new() -> Self {
        let id = unique();
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["conf", "cache", "ipam"] {
            std::fs::create_dir(dir.path().join(sub)).expect("test dir");
        }
        let net =
            Self { dir, name: format!("pinshim-test-{id}"), bridge: format!("pcni{id:x}"), octet: free_octet(id) };
        net.write_conf();
        net
    }

    fn conf_file(&self) -> PathBuf {
        self.dir.path().join("conf/10-test.conflist")
    }

    fn conflist(&self) -> serde_json::Value {
        json!({"cniVersion": "1.0.0", "name": self.name, "plugins": [
            {"type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "subnet": self.subnet(), "dataDir": self.dir.path().join("ipam")}},
            // Docker sets the FORWARD policy to DROP and bridged traffic passes
            // iptables here; the firewall plugin lets the pods' traffic through.
            {"type": "firewall"},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ]})
    }

    fn write_conf(&self) {
        std::fs::write(self.conf_file(), self.conflist().to_string()).expect("write conf");
    }

    fn subnet(&self) -> String {
        format!("10.99.{}.0/24", self.octet)
    }

    fn cni(&self) -> Cni {
        Cni::new(CniSettings {
            conf_dir: self.dir.path().join("conf"),
            bin_dirs: vec![PLUGIN_DIR.into()],
            cache_dir: self.dir.path().join("cache"),
            mtu: None,
        })
    }

    fn pod(&self, ns: &Netns) -> PodNetwork {
        PodNetwork {
            container_id: format!("sandbox{}", unique()),
            netns: Some(ns.path()),
            pod_name: "web".into(),
            pod_namespace: "default".into(),
            pod_uid: "0000-1111".into(),
            ..PodNetwork::default()
        }
    }

    /// Whether host-local still holds `ip` for this network.
    fn allocated(&self, ip: IpAddr) -> bool {
        self.dir.path().join("ipam").join(&self.name).join(ip.to_string()).exists()
    }

    fn in_subnet(&self, ip: IpAddr) -> bool {
        ip.to_string().starts_with(&format!("10.99.{}.", self.octet))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}

/// A third octet for 10.99.x.0/24 that no host route uses yet.
fn free_octet(seed: u32) -> u32 {
    (0..250)
        .map(|step| (seed * 7 + step) % 250 + 1)
        .find(|o| run("ip", &["route", "show", &format!("10.99.{o}.0/24")]).trim().is_empty())
        .unwrap_or(1)
}

fn only_ip(ips: &[IpAddr]) -> IpAddr {
    assert_eq!(ips.len(), 1, "{ips:?}");
    ips[0]
}

#[tokio::test]
async fn add_puts_an_ip_of_the_subnet_on_eth0_and_check_passes() {
    let net = setup_or_skip!();
    let ns = Netns::new();
    let cni = net.cni();
    let pod = net.pod(&ns);
    let ip = only_ip(&cni.add(&pod).await.unwrap().ips);
    assert!(net.in_subnet(ip), "{ip} not in {}", net.subnet());
    assert!(ns.eth0_addresses().contains(&format!("inet {ip}/24")), "{}", ns.eth0_addresses());
    assert!(net.allocated(ip));
    cni.check(&pod).await.unwrap();
    cni.del(&pod).await.unwrap();
}

#[tokio::test]
async fn two_pods_get_distinct_ips_and_reach_each_other() {
    let net = setup_or_skip!();
    let (ns_a, ns_b) = (Netns::new(), Netns::new());
    let cni = net.cni();
    let (pod_a, pod_b) = (net.pod(&ns_a), net.pod(&ns_b));
    let ip_a = only_ip(&cni.add(&pod_a).await.unwrap().ips);
    let ip_b = only_ip(&cni.add(&pod_b).await.unwrap().ips);
    assert_ne!(ip_a, ip_b);
    assert!(ns_a.ping(ip_b), "{} cannot reach {ip_b}", ns_a.name);
    assert!(ns_b.ping(ip_a), "{} cannot reach {ip_a}", ns_b.name);
    cni.del(&pod_a).await.unwrap();
    cni.del(&pod_b).await.unwrap();
}

#[tokio::test]
async fn del_releases_the_ip_and_a_second_del_succeeds() {
    let net = setup_or_skip!();
    let ns = Netns::new();
    let cni = net.cni();
    let pod = net.pod(&ns);
    let ip = only_ip(&cni.add(&pod).await.unwrap().ips);
    cni.del(&pod).await.unwrap();
    assert!(!net.allocated(ip), "{ip} still allocated");
    assert!(!succeeds("ip", &["-n", &ns.name, "link", "show", "eth0"]), "eth0 still exists");
    cni.del(&pod).await.unwrap();
}

#[tokio::test]
async fn del_succeeds_after_the_netns_is_gone() {
    let net = setup_or_skip!();
    let ns = Netns::new();
    let cni = net.cni();
    let pod = net.pod(&ns);
    let ip = only_ip(&cni.add(&pod).await.unwrap().ips);
    ns.delete();
    cni.del(&pod).await.unwrap();
    assert!(!net.allocated(ip), "{ip} still allocated");
}

#[tokio::test]
async fn del_uses_the_cached_config_after_the_conf_file_is_removed() {
    let net = setup_or_skip!();
    let ns = Netns::new();
    let cni = net.cni();
    let pod = net.pod(&ns);
    let ip = only_ip(&cni.add(&pod).await.unwrap().ips);
    std::fs::remove_file(net.conf_file()).unwrap();
    cni.del(&pod).await.unwrap();
    assert!(!net.allocated(ip), "{ip} still allocated");
}

#[tokio::test]
async fn port_mappings_reach_portmap_and_are_removed_by_del() {
    let net = setup_or_skip!();
    let ns = Netns::new();
    let cni = net.cni();
    let mut pod = net.pod(&ns);
    let host_port = 20_000 + (unique() % 20_000) as u16;
    pod.port_mappings =
        vec![PortMapping { host_port, container_port: 80, protocol: "TCP".into(), host_ip: String::new() }];
    let ip = only_ip(&cni.add(&pod).await.unwrap().ips);
    let rule =
        |rules: &str| rules.lines().any(|l| l.contains(&format!("--dport {host_port}")) && l.contains(&ip.to_string()));
    assert!(rule(&run("iptables", &["-t", "nat", "-S"])), "no DNAT rule for port {host_port} to {ip}");
    cni.del(&pod).await.unwrap();
    assert!(!rule(&run("iptables", &["-t", "nat", "-S"])), "DNAT rule for port {host_port} left behind");
}

#[tokio::test]
async fn missing_plugin_binary_is_named_in_the_error() {
    let net = setup_or_skip!();
    let ns = Netns::new();
    let mut conf = net.conflist();
    conf["plugins"][2]["type"] = json!("pinshim-no-such-plugin");
    std::fs::write(net.conf_file(), conf.to_string()).unwrap();
    let cni = net.cni();
    let pod = net.pod(&ns);
    let err = cni.add(&pod).await.unwrap_err();
    assert!(matches!(&err, CniError::PluginNotFound { plugin, .. } if plugin == "pinshim-no-such-plugin"), "{err}");
    assert!(err.to_string().contains("pinshim-no-such-plugin"), "{err}");
    let ready = cni.ready().await.unwrap_err();
    assert!(ready.to_string().contains("pinshim-no-such-plugin"), "{ready}");
    // The failed ADD was undone: bridge gave its address back.
    let leftovers = std::fs::read_dir(net.dir.path().join("ipam").join(&net.name)).map_or(0, |d| {
        d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("10.99."))).count()
    });
    assert_eq!(leftovers, 0, "an address is still allocated after the failed add");
}

#[tokio::test]
async fn ready_follows_the_conf_dir() {
    let net = setup_or_skip!();
    std::fs::remove_file(net.conf_file()).unwrap();
    let cni = net.cni();
    let err = cni.ready().await.unwrap_err();
    assert!(matches!(err, CniError::NoNetworkConfig { .. }), "{err}");
    net.write_conf();
    cni.ready().await.unwrap();
}
