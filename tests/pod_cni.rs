//! Pods networked by real CNI plugins (bridge, host-local, firewall,
//! portmap from Debian's containernetworking-plugins) through pinshim.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::pods::{self, IDLE};
use common::{Shim, ShimOptions, unique};
use pinshim::api;

const PLUGINS: &str = "/usr/lib/cni";

/// A private CNI setup: config dir, cache, IPAM data and a /24 of its own.
struct Net {
    dir: tempfile::TempDir,
    bridge: String,
    subnet: u32,
}

impl Net {
    fn new() -> Net {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let subnet = (std::process::id() * 7 + NEXT.fetch_add(1, Ordering::SeqCst)) % 200 + 20;
        let bridge = format!("pcni{:x}s{subnet}", std::process::id() % 0xfffff);
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["conf", "cache", "ipam"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        Net { dir, bridge, subnet }
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    fn prefix(&self) -> String {
        format!("10.99.{}.", self.subnet)
    }

    /// bridge + host-local, firewall (Docker hosts drop forwarded traffic
    /// by default) and portmap for hostPorts.
    fn write_config(&self, first_plugin: &str) {
        self.write_config_with(
            first_plugin,
            serde_json::json!([[{ "subnet": format!("10.99.{}.0/24", self.subnet) }]]),
        );
    }

    fn write_config_with(&self, first_plugin: &str, ranges: serde_json::Value) {
        // No ranges of its own: host-local takes kubelet's pod CIDR (ipRanges).
        let capabilities = if ranges == serde_json::json!([]) {
            serde_json::json!({ "ipRanges": true })
        } else {
            serde_json::json!({})
        };
        let config = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("pinshim-test-{}", self.subnet),
            "plugins": [
                {
                    "type": first_plugin,
                    "capabilities": capabilities,
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": ranges,
                        "dataDir": self.ipam_dir(),
                    },
                },
                { "type": "firewall" },
                { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
            ],
        });
        std::fs::write(self.conf_dir().join("10-test.conflist"), config.to_string()).expect("write conflist");
    }

    fn shim_options(&self) -> ShimOptions {
        let args = [
            "--network-plugin",
            "cni",
            "--cni-bin-dir",
            PLUGINS,
            "--cni-conf-dir",
            &self.conf_dir().display().to_string(),
            "--cni-cache-dir",
            &self.dir.path().join("cache").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        ShimOptions { args, env: Vec::new() }
    }

    /// Addresses host-local has handed out and not yet taken back.
    fn allocated(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.ipam_dir().join(format!("pinshim-test-{}", self.subnet))) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("10."))
            .collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The bridge exists only if a pod was networked; absence is fine.
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn has_plugins() -> bool {
    let present = Path::new(PLUGINS).join("bridge").exists();
    if !present {
        println!("skipped: CNI plugins are not installed in {PLUGINS}");
    }
    present
}

async fn pod_ip(rt: &pods::Rt, id: &str) -> String {
    pods::pod_status(rt, id).await.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default()
}

#[tokio::test]
async fn pods_get_distinct_ips_reach_each_other_and_release_them() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    net.write_config("bridge");
    let mut shim = Shim::start_with(net.shim_options()).await;
    let image = pods::fresh_image(&shim.images, "cni").await;
    let rt = shim.runtime.clone();

    let a = pods::run_pod(&rt, "cni-a").await;
    let b = pods::run_pod(&rt, "cni-b").await;
    let (ip_a, ip_b) = (pod_ip(&rt, &a.id).await, pod_ip(&rt, &b.id).await);
    assert!(ip_a.starts_with(&net.prefix()) && ip_b.starts_with(&net.prefix()), "{ip_a} {ip_b}");
    assert_ne!(ip_a, ip_b);
    assert_eq!(net.allocated().len(), 2);

    let in_a = pods::create_and_start(&rt, &a, pods::container_config(&a, "app", &image, IDLE)).await;
    let ping = pods::exec(&rt, &in_a, &["ping", "-c", "1", "-W", "3", &ip_b], 10).await.expect("exec ping");
    assert_eq!(ping.exit_code, 0, "{}", String::from_utf8_lossy(&ping.stdout));

    // The pod reaches a port on the host: a listener on the bridge's own address.
    let gateway = format!("{}1", net.prefix());
    let host = tokio::net::TcpListener::bind((gateway.as_str(), 0)).await.expect("listen on the bridge");
    let port = host.local_addr().expect("addr").port().to_string();
    let answer = tokio::spawn(async move {
        let (mut conn, _) = host.accept().await.expect("accept");
        tokio::io::AsyncWriteExt::write_all(&mut conn, b"from-host\n").await.expect("write");
    });
    let fetched = pods::exec(&rt, &in_a, &["nc", "-w", "3", &gateway, &port], 10).await.expect("exec nc");
    assert_eq!(String::from_utf8_lossy(&fetched.stdout).trim(), "from-host");
    answer.await.expect("host side");

    // Stop twice; then stop again after a restart: DEL runs from the cache.
    pods::stop_pod(&rt, &a.id).await;
    pods::stop_pod(&rt, &a.id).await;
    assert_eq!(net.allocated().len(), 1, "a's address went back to the pool");
    shim.restart().await;
    let rt = shim.runtime.clone();
    pods::stop_pod(&rt, &b.id).await;
    assert!(net.allocated().is_empty(), "b's address went back after the restart");

    pods::cleanup(&rt, &shim.images, &[&a, &b], &[&image.id]).await;
}

#[tokio::test]
async fn host_port_reaches_the_pod_through_portmap() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    net.write_config("bridge");
    let shim = Shim::start_with(net.shim_options()).await;
    let image = pods::fresh_image(&shim.images, "cni-port").await;
    let rt = shim.runtime.clone();
    let host_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let pod = pods::run_pod_with(&rt, "cni-port", |c| {
        c.port_mappings = vec![api::PortMapping {
            protocol: api::Protocol::Tcp as i32,
            container_port: 8000,
            host_port: i32::from(host_port),
            host_ip: String::new(),
        }];
    })
    .await;
    let cmd = ["sh", "-c", "while true; do echo hello-from-pod | nc -l -p 8000; done"];
    let server = pods::create_and_start(&rt, &pod, pods::container_config(&pod, "web", &image, &cmd)).await;
    pods::wait_listening(&rt, &server, 8000).await;

    let reply = pods::wait_for("hostPort answer", Duration::from_secs(20), || async move {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", host_port)).await.ok()?;
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut text).await.ok()?;
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert_eq!(reply.trim(), "hello-from-pod");

    pods::cleanup(&rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn network_readiness_follows_the_config_dir() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    let mut shim = Shim::start_with(net.shim_options()).await;
    let network_ready = |shim: &mut Shim| {
        let mut rt = shim.runtime.clone();
        async move {
            let status = rt.status(api::StatusRequest::default()).await.expect("status").into_inner();
            status
                .status
                .expect("conditions")
                .conditions
                .into_iter()
                .find(|c| c.r#type == "NetworkReady")
                .expect("cond")
        }
    };
    let before = network_ready(&mut shim).await;
    assert!(!before.status);
    assert_eq!(before.reason, "NetworkPluginNotReady");
    assert!(!before.message.is_empty());

    net.write_config("bridge");
    let after = network_ready(&mut shim).await;
    assert!(after.status, "{} {}", after.reason, after.message);
}

#[tokio::test]
async fn a_failing_plugin_fails_the_pod_and_leaves_nothing() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    net.write_config("no-such-plugin");
    let shim = Shim::start_with(net.shim_options()).await;
    let name = unique("cni-broken");
    let dir = pods::log_dir();
    let config = pods::sandbox_config(&name, dir.path());
    let err = pods::run_pod_in(&shim.runtime, config).await.err().expect("pod must fail");
    assert!(err.message().contains("no-such-plugin"), "{err}");
    assert!(pods::docker_leftovers(&name).await.is_empty(), "no pause container left behind");
    assert!(net.allocated().is_empty());
}

#[tokio::test]
async fn dual_stack_pods_report_both_families() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    let ranges = serde_json::json!([
        [{ "subnet": format!("10.99.{}.0/24", net.subnet) }],
        [{ "subnet": format!("fd99:0:0:{:x}::/64", net.subnet) }],
    ]);
    net.write_config_with("bridge", ranges);
    let shim = Shim::start_with(net.shim_options()).await;
    let rt = shim.runtime.clone();
    let pod = pods::run_pod(&rt, "cni-dual").await;
    let network = pods::pod_status(&rt, &pod.id).await.status.and_then(|s| s.network).expect("network status");
    assert!(network.ip.starts_with(&net.prefix()), "IPv4 is primary: {}", network.ip);
    let v6: Vec<_> = network.additional_ips.iter().map(|p| p.ip.clone()).collect();
    assert!(v6.len() == 1 && v6[0].starts_with("fd99:"), "{v6:?}");
    pods::cleanup(&rt, &shim.images, &[&pod], &[]).await;
}

#[tokio::test]
async fn addresses_return_to_a_small_pool() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    // A /27: 29 usable addresses for 50 pods, so every stop must give one back.
    net.write_config_with("bridge", serde_json::json!([[{ "subnet": format!("10.99.{}.0/27", net.subnet) }]]));
    let shim = Shim::start_with(net.shim_options()).await;
    let rt = shim.runtime.clone();
    for _ in 0..50 {
        let pod = pods::run_pod(&rt, "cni-pool").await;
        assert!(pod_ip(&rt, &pod.id).await.starts_with(&net.prefix()));
        pods::stop_pod(&rt, &pod.id).await;
        pods::remove_pod(&rt, &pod.id).await;
    }
    assert!(net.allocated().is_empty());
}

#[tokio::test]
async fn docker_mode_keeps_the_docker_bridge() {
    let args = vec!["--network-plugin".to_string(), "docker".to_string()];
    let shim = Shim::start_with(ShimOptions { args, env: Vec::new() }).await;
    let rt = shim.runtime.clone();
    let pod = pods::run_pod(&rt, "docker-net").await;
    let ip = pod_ip(&rt, &pod.id).await;
    let inspect = common::docker().inspect_container(&pod.id, None).await.expect("inspect");
    let mode = inspect.host_config.and_then(|h| h.network_mode).unwrap_or_default();
    assert_eq!(mode, "bridge");
    assert!(!ip.is_empty() && !ip.starts_with("10.88."), "{ip}");
    pods::cleanup(&rt, &shim.images, &[&pod], &[]).await;
}

#[tokio::test]
async fn pod_cidr_from_update_runtime_config_feeds_ipam() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    net.write_config_with("bridge", serde_json::json!([]));
    let shim = Shim::start_with(net.shim_options()).await;
    let mut rt = shim.runtime.clone();
    let cidr = format!("{}0/24", net.prefix());
    let network_config = Some(api::NetworkConfig { pod_cidr: cidr });
    let request = api::UpdateRuntimeConfigRequest { runtime_config: Some(api::RuntimeConfig { network_config }) };
    rt.update_runtime_config(request).await.expect("update runtime config");
    let pod = pods::run_pod(&rt, "cni-cidr").await;
    assert!(pod_ip(&rt, &pod.id).await.starts_with(&net.prefix()));
    pods::cleanup(&rt, &shim.images, &[&pod], &[]).await;
}

#[tokio::test]
async fn stop_after_the_pause_container_died_releases_the_address() {
    if !has_plugins() {
        return;
    }
    let net = Net::new();
    net.write_config("bridge");
    let shim = Shim::start_with(net.shim_options()).await;
    let rt = shim.runtime.clone();
    let pod = pods::run_pod(&rt, "cni-killed").await;
    assert_eq!(net.allocated().len(), 1);
    let kill = bollard::query_parameters::KillContainerOptionsBuilder::default().signal("KILL").build();
    common::docker().kill_container(&pod.id, Some(kill)).await.expect("docker kill");
    pods::stop_pod(&rt, &pod.id).await;
    assert!(net.allocated().is_empty(), "DEL ran without the namespace");
    pods::cleanup(&rt, &shim.images, &[&pod], &[]).await;
}
