//! Pod sandboxes as kubelet drives them: run, status, list and its filters,
//! stop and remove (both idempotent), and the namespaces a pod gives its
//! containers (host network, shared network and PID namespaces, hostname, DNS).

mod common;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use common::Shim;
use common::pods::{self, IDLE, Rt, container_config, namespaces_of};
use pinshim::api::{NamespaceMode, PodSandboxFilter, PodSandboxState, PodSandboxStateValue};
use tonic::Code;

fn now_nanos() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(now.as_nanos()).expect("nanoseconds fit in i64")
}

fn by_labels(labels: &[(&str, &str)]) -> Option<PodSandboxFilter> {
    let label_selector = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Some(PodSandboxFilter { label_selector, ..Default::default() })
}

fn by_state(state: PodSandboxState, labels: &[(&str, &str)]) -> Option<PodSandboxFilter> {
    let mut filter = by_labels(labels).expect("filter");
    filter.state = Some(PodSandboxStateValue { state: state as i32 });
    Some(filter)
}

fn ids(items: &[pinshim::api::PodSandbox]) -> Vec<&str> {
    items.iter().map(|p| p.id.as_str()).collect()
}

#[tokio::test]
async fn pod_runs_lists_stops_and_removes() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let before = now_nanos();
    let pod = pods::run_pod(rt, "lifecycle").await;
    let after = now_nanos();

    let status = pods::pod_status(rt, &pod.id).await.status.expect("status");
    assert_eq!(status.id, pod.id);
    assert_eq!(status.metadata, pod.config.metadata);
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    let slack = 5_000_000_000;
    assert!(
        (before - slack..=after + slack).contains(&status.created_at),
        "created_at {} is the creation time in Unix nanoseconds (between {before} and {after})",
        status.created_at
    );
    let ip = status.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
    let parsed: std::net::IpAddr = ip.parse().unwrap_or_else(|_| panic!("network.ip {ip:?} is an IP address"));
    assert!(!parsed.is_loopback() && !parsed.is_unspecified(), "{ip}");
    assert_eq!(status.labels, pod.config.labels);
    assert_eq!(status.annotations, pod.config.annotations);
    let namespaces = status.linux.and_then(|l| l.namespaces).and_then(|n| n.options);
    assert_eq!(namespaces, Some(namespaces_of(&pod.config)), "kubelet recreates a pod whose namespaces differ");

    // Listing: by id, by id prefix, by label selector, by state.
    let by_id = pods::list_pods(rt, Some(PodSandboxFilter { id: pod.id.clone(), ..Default::default() })).await;
    assert_eq!(by_id.len(), 1, "{by_id:?}");
    let item = &by_id[0];
    assert_eq!(item.id, pod.id);
    assert_eq!(item.metadata, pod.config.metadata);
    assert_eq!(item.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(item.created_at, status.created_at);
    assert_eq!(item.labels, pod.config.labels);
    assert_eq!(item.annotations, pod.config.annotations);
    assert_eq!(item.runtime_handler, status.runtime_handler);

    let prefix = &pod.id[..12];
    let by_prefix = pods::list_pods(rt, Some(PodSandboxFilter { id: prefix.to_string(), ..Default::default() })).await;
    assert_eq!(ids(&by_prefix), vec![pod.id.as_str()], "filter by id prefix {prefix}");

    let app = pod.name().to_string();
    assert_eq!(pods::list_pods(rt, by_labels(&[("app", &app)])).await, by_id);
    assert!(pods::list_pods(rt, by_labels(&[("app", &app), ("tier", "none")])).await.is_empty());
    assert_eq!(pods::list_pods(rt, by_state(PodSandboxState::SandboxReady, &[("app", &app)])).await, by_id);
    assert!(pods::list_pods(rt, by_state(PodSandboxState::SandboxNotready, &[("app", &app)])).await.is_empty());
    assert!(ids(&pods::list_pods(rt, None).await).contains(&pod.id.as_str()));

    // Stop: not ready, still listed and inspectable; stopping again is fine.
    pods::stop_pod(rt, &pod.id).await;
    let stopped = pods::pod_status(rt, &pod.id).await.status.expect("status");
    assert_eq!(stopped.state, PodSandboxState::SandboxNotready as i32);
    assert_eq!(stopped.metadata, pod.config.metadata);
    assert_eq!(stopped.created_at, status.created_at);
    let not_ready = pods::list_pods(rt, by_state(PodSandboxState::SandboxNotready, &[("app", &app)])).await;
    assert_eq!(ids(&not_ready), vec![pod.id.as_str()]);
    assert_eq!(not_ready[0].state, PodSandboxState::SandboxNotready as i32);
    assert!(pods::list_pods(rt, by_state(PodSandboxState::SandboxReady, &[("app", &app)])).await.is_empty());
    pods::stop_pod(rt, &pod.id).await;

    // Remove: gone everywhere; removing again is fine.
    pods::remove_pod(rt, &pod.id).await;
    let request = pinshim::api::PodSandboxStatusRequest { pod_sandbox_id: pod.id.clone(), verbose: false };
    let err = rt.clone().pod_sandbox_status(request).await.expect_err("removed pod has no status");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(pods::list_pods(rt, Some(PodSandboxFilter { id: pod.id.clone(), ..Default::default() })).await.is_empty());
    assert!(!ids(&pods::list_pods(rt, None).await).contains(&pod.id.as_str()));
    pods::remove_pod(rt, &pod.id).await;
    assert_eq!(pods::docker_leftovers(pod.name()).await, Vec::<String>::new());
}

/// The network namespace a process is in, as `net:[inode]`.
async fn netns_in(rt: &Rt, container: &str) -> String {
    pods::exec_ok(rt, container, &["readlink", "/proc/self/ns/net"]).await.trim().to_string()
}

/// This test process shares dockerd's network namespace: both reach the test
/// registries on 127.0.0.1.
fn host_netns() -> String {
    std::fs::read_link("/proc/self/ns/net").expect("readlink /proc/self/ns/net").display().to_string()
}

#[tokio::test]
async fn host_network_pod_uses_the_node_network_namespace() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "hostnet").await;
    // kubelet leaves the hostname unset for host-network pods.
    let pod = pods::run_pod_with(rt, "hostnet", |config| {
        config.hostname.clear();
        let linux = config.linux.as_mut().expect("linux");
        let security = linux.security_context.as_mut().expect("security context");
        security.namespace_options.as_mut().expect("namespaces").network = NamespaceMode::Node as i32;
    })
    .await;

    let status = pods::pod_status(rt, &pod.id).await.status.expect("status");
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    let network = status.linux.and_then(|l| l.namespaces).and_then(|n| n.options).map(|o| o.network);
    assert_eq!(network, Some(NamespaceMode::Node as i32));

    let id = pods::create_and_start(rt, &pod, container_config(&pod, "main", &image, IDLE)).await;
    assert_eq!(netns_in(rt, &id).await, host_netns(), "the container is in the node's network namespace");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn containers_of_a_pod_share_localhost_and_a_shared_pid_namespace() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "sharedns").await;
    let pod = pods::run_pod_with(rt, "sharedns", |config| {
        let linux = config.linux.as_mut().expect("linux");
        let security = linux.security_context.as_mut().expect("security context");
        security.namespace_options.as_mut().expect("namespaces").pid = NamespaceMode::Pod as i32;
    })
    .await;
    let token = common::unique("served");
    let script = format!(
        "mkdir -p /tmp/www && echo {token} > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"
    );
    let server =
        pods::create_and_start(rt, &pod, container_config(&pod, "server", &image, &["sh", "-c", &script])).await;
    let client = pods::create_and_start(rt, &pod, container_config(&pod, "client", &image, IDLE)).await;

    // The server listens on 127.0.0.1 only: reachable only through a shared netns.
    let url = "http://127.0.0.1:8080/index.html";
    let body = pods::wait_for("the server's page over localhost", pods::WAIT, || async {
        let out = pods::exec(rt, &client, &["wget", "-q", "-O", "-", url], 10).await.ok()?;
        (out.exit_code == 0).then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    })
    .await;
    assert_eq!(body, token);

    let ps = pods::exec_ok(rt, &client, &["ps"]).await;
    assert!(ps.contains("httpd -f -p 127.0.0.1:8080"), "the client sees the server's process:\n{ps}");

    // A pod network is not the node's, and the pod IP is the containers' address.
    assert_ne!(netns_in(rt, &client).await, host_netns());
    assert_eq!(netns_in(rt, &client).await, netns_in(rt, &server).await);
    let ip = pods::pod_status(rt, &pod.id).await.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
    let addresses = pods::exec_ok(rt, &client, &["ip", "-o", "addr", "show"]).await;
    assert!(addresses.contains(&format!(" {ip}/")), "pod IP {ip} is on an interface of the pod:\n{addresses}");

    // IPC may be a container's own; the network must stay the pod's.
    let ipc_in = |id: String| async move { pods::exec_ok(rt, &id, &["readlink", "/proc/self/ns/ipc"]).await };
    let with_namespaces = |name: &str, network: NamespaceMode, ipc: NamespaceMode| {
        let mut config = container_config(&pod, name, &image, IDLE);
        let security = config.linux.as_mut().and_then(|l| l.security_context.as_mut()).expect("security context");
        let namespaces = security.namespace_options.as_mut().expect("namespaces");
        (namespaces.network, namespaces.ipc) = (network as i32, ipc as i32);
        config
    };
    let private = with_namespaces("private-ipc", NamespaceMode::Pod, NamespaceMode::Container);
    let private = pods::create_and_start(rt, &pod, private).await;
    assert_ne!(ipc_in(private.clone()).await, ipc_in(client.clone()).await, "a private IPC namespace");
    assert_eq!(netns_in(rt, &private).await, netns_in(rt, &client).await);
    let host_network = with_namespaces("host-network", NamespaceMode::Node, NamespaceMode::Pod);
    let err = pods::try_create(rt, &pod, host_network).await.expect_err("the node's network in a pod with its own");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("namespace_options.network NODE"), "{err}");
    let half_created = pods::docker_leftovers(&format!("k8s_host-network_{}", pod.name())).await;
    assert!(half_created.is_empty(), "nothing half-created: {half_created:?}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn containers_get_the_pod_hostname_and_dns_config() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "dns").await;
    let pod = pods::run_pod(rt, "dns").await;
    let id = pods::create_and_start(rt, &pod, container_config(&pod, "main", &image, IDLE)).await;

    assert_eq!(pods::exec_ok(rt, &id, &["hostname"]).await.trim(), pod.config.hostname);
    let resolv = pods::exec_ok(rt, &id, &["cat", "/etc/resolv.conf"]).await;
    let dns = pod.config.dns_config.clone().expect("dns config");
    let mut seen: HashMap<&str, Vec<String>> = HashMap::new();
    for line in resolv.lines() {
        let mut words = line.split_whitespace();
        if let Some(key @ ("nameserver" | "search" | "options")) = words.next() {
            seen.entry(key).or_default().extend(words.map(str::to_string));
        }
    }
    assert_eq!(seen.get("nameserver"), Some(&dns.servers), "{resolv}");
    assert_eq!(seen.get("search"), Some(&dns.searches), "{resolv}");
    assert_eq!(seen.get("options"), Some(&dns.options), "{resolv}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn only_mappings_with_a_host_port_are_published() {
    // Docker publishes the ports of pods on its own bridge (with CNI the
    // portmap plugin does, and skips these itself).
    let args = vec!["--network-plugin".to_string(), "docker".to_string()];
    let shim = Shim::start_with(common::ShimOptions { args, env: Vec::new() }).await;
    let rt = &shim.runtime;
    // kubelet sends a mapping for every container port, most without a host port.
    let pod = pods::run_pod_with(rt, "ports", |c| {
        c.port_mappings = vec![
            pinshim::api::PortMapping { container_port: 80, host_port: 0, ..Default::default() },
            pinshim::api::PortMapping {
                container_port: 81,
                host_port: 0,
                host_ip: "127.0.0.1".into(),
                ..Default::default()
            },
        ];
    })
    .await;
    let inspect = common::docker().inspect_container(&pod.id, None).await.expect("inspect the sandbox");
    let bindings = inspect.host_config.and_then(|h| h.port_bindings).unwrap_or_default();
    assert!(bindings.is_empty(), "no host port is published for mappings without one: {bindings:?}");
    pods::stop_pod(rt, &pod.id).await;
    pods::remove_pod(rt, &pod.id).await;
}

#[tokio::test]
async fn pod_status_carries_its_containers_statuses() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "podstatus").await;
    let pod = pods::run_pod(rt, "podstatus").await;
    let running = pods::create_and_start(rt, &pod, container_config(&pod, "running", &image, IDLE)).await;
    let created = pods::create(rt, &pod, container_config(&pod, "created", &image, IDLE)).await;

    // With a timestamp set, kubelet's Evented PLEG takes the containers'
    // statuses from PodSandboxStatus instead of asking for each.
    let status = pods::pod_status(rt, &pod.id).await;
    assert!(status.timestamp > 0);
    let mut seen: Vec<(String, i32)> = status.containers_statuses.iter().map(|c| (c.id.clone(), c.state)).collect();
    seen.sort();
    let mut want = vec![
        (running.clone(), pinshim::api::ContainerState::ContainerRunning as i32),
        (created.clone(), pinshim::api::ContainerState::ContainerCreated as i32),
    ];
    want.sort();
    assert_eq!(seen, want);
    let own = status.containers_statuses.iter().find(|c| c.id == running).expect("the running container");
    assert_eq!(own.image_ref, image.canonical(), "full statuses, digest included");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
