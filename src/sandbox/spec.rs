//! PodSandboxConfig → the pause container Docker creates.

use std::collections::HashMap;

use super::SandboxError;
use super::dns::DnsConfig;
use super::network::NetworkKind;
use crate::api;
use crate::docker::{CreateSpec, PortSpec};
use crate::host::{HostLimits, SANDBOX_OOM_SCORE_ADJ};
use crate::labels;
use crate::security_opt::{apparmor_option, seccomp_option, selinux_options};

pub fn create_spec(
    config: &api::PodSandboxConfig,
    network: NetworkKind,
    runtime_handler: &str,
    runtime: Option<String>,
    image_id: &str,
    limits: &HostLimits,
    created_at: i64,
) -> Result<CreateSpec, SandboxError> {
    super::validate::config(config)?;
    let metadata = config.metadata.clone().unwrap_or_default();
    let linux = config.linux.clone().unwrap_or_default();
    let security = linux.security_context.clone().unwrap_or_default();
    let namespaces = security.namespace_options.clone().unwrap_or_default();
    let host_network = network == NetworkKind::Host;

    let l = HashMap::from([
        (labels::KIND.to_string(), labels::KIND_SANDBOX.to_string()),
        (labels::NAME.to_string(), metadata.name.clone()),
        (labels::NAMESPACE.to_string(), metadata.namespace.clone()),
        (labels::UID.to_string(), metadata.uid.clone()),
        (labels::ATTEMPT.to_string(), metadata.attempt.to_string()),
        (labels::CREATED_AT.to_string(), created_at.to_string()),
        (labels::LABELS.to_string(), labels::encode_map(&config.labels)),
        (labels::ANNOTATIONS.to_string(), labels::encode_map(&config.annotations)),
        (labels::RUNTIME_HANDLER.to_string(), runtime_handler.to_string()),
        (labels::LOG_DIRECTORY.to_string(), config.log_directory.clone()),
        (labels::NAMESPACES.to_string(), encode_namespaces(&namespaces)),
        (labels::CGROUP_PARENT.to_string(), linux.cgroup_parent.clone()),
        (labels::NETWORK.to_string(), network.label().to_string()),
    ]);

    let mut security_opt = Vec::new();
    // The deprecated path field is what older kubelets still send.
    #[allow(deprecated)]
    let seccomp_path = &security.seccomp_profile_path;
    let seccomp = seccomp_option(security.seccomp.as_ref(), seccomp_path);
    security_opt.extend(seccomp.map_err(SandboxError::InvalidConfig)?);
    security_opt.extend(apparmor_option(security.apparmor.as_ref(), "").map_err(SandboxError::InvalidConfig)?);
    security_opt.extend(selinux_options(security.selinux_options.as_ref()).map_err(SandboxError::InvalidConfig)?);

    if security.run_as_user.is_none() && security.run_as_group.is_some() {
        return Err(SandboxError::InvalidConfig("run_as_group is set without run_as_user".to_string()));
    }
    let user = security.run_as_user.as_ref().map(|u| match &security.run_as_group {
        Some(g) => format!("{}:{}", u.value, g.value),
        None => u.value.to_string(),
    });

    Ok(CreateSpec {
        name: labels::docker_name(
            labels::SANDBOX_CONTAINER_NAME,
            &metadata.name,
            &metadata.namespace,
            &metadata.uid,
            metadata.attempt,
        ),
        image: image_id.to_string(),
        labels: l,
        hostname: (!host_network && !config.hostname.is_empty()).then(|| config.hostname.clone()),
        user,
        // With CNI the portmap plugin publishes ports; Docker only for its own bridge.
        ports: if network == NetworkKind::DockerBridge { ports(&config.port_mappings) } else { Vec::new() },
        network_mode: Some(network.docker_mode().to_string()),
        ipc_mode: Some(if namespaces.ipc() == api::NamespaceMode::Node { "host" } else { "shareable" }.to_string()),
        pid_mode: (namespaces.pid() == api::NamespaceMode::Node).then(|| "host".to_string()),
        privileged: security.privileged,
        readonly_rootfs: security.readonly_rootfs,
        group_add: security.supplemental_groups.iter().map(|g| g.to_string()).collect(),
        security_opt,
        sysctls: linux.sysctls.clone(),
        cgroup_parent: (!linux.cgroup_parent.is_empty()).then(|| linux.cgroup_parent.clone()),
        runtime,
        oom_score_adj: Some(limits.oom_score_adj(SANDBOX_OOM_SCORE_ADJ)),
        // The pod overhead (RuntimeClass) is what the sandbox itself is
        // charged; the pod's total is its cgroup's, which is kubelet's.
        resources: match &linux.overhead {
            Some(overhead) => crate::resources::for_docker(overhead)
                .map_err(|e| SandboxError::InvalidConfig(format!("linux.overhead: {e}")))?,
            None => Default::default(),
        },
        ..Default::default()
    })
}

/// Docker's published ports for the pod's mappings. A mapping without a
/// host port asks for none (kubelet sends one for every container port);
/// Docker would pick a random host port for it.
fn ports(mappings: &[api::PortMapping]) -> Vec<PortSpec> {
    mappings
        .iter()
        .filter(|m| m.host_port > 0)
        .map(|m| {
            let protocol = match m.protocol() {
                api::Protocol::Tcp => "tcp",
                api::Protocol::Udp => "udp",
                api::Protocol::Sctp => "sctp",
            };
            PortSpec {
                container_port: format!("{}/{protocol}", m.container_port),
                host_ip: m.host_ip.clone(),
                // In range: checked by `validate`.
                host_port: u16::try_from(m.host_port).unwrap_or(0),
            }
        })
        .collect()
}

pub fn dns_config(dns: &api::DnsConfig) -> DnsConfig {
    DnsConfig { servers: dns.servers.clone(), searches: dns.searches.clone(), options: dns.options.clone() }
}

/// `network,pid,ipc` as enum numbers; small, stable and human-readable.
fn encode_namespaces(n: &api::NamespaceOption) -> String {
    format!("{},{},{}", n.network, n.pid, n.ipc)
}

pub fn decode_namespaces(s: &str) -> api::NamespaceOption {
    let mut parts = s.split(',').map(|p| p.parse::<i32>().unwrap_or_default());
    api::NamespaceOption {
        network: parts.next().unwrap_or_default(),
        pid: parts.next().unwrap_or_default(),
        ipc: parts.next().unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that refuses negative OOM scores and lacks capabilities.
    const LIMITED: HostLimits = HostLimits {
        negative_oom_score_adj: false,
        full_bounding_set: false,
        selinux: false,
        recursive_read_only: false,
    };
    const FULL: HostLimits =
        HostLimits { negative_oom_score_adj: true, full_bounding_set: true, selinux: false, recursive_read_only: true };

    fn config() -> api::PodSandboxConfig {
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "ns".into(),
                attempt: 2,
            }),
            hostname: "web-0".into(),
            port_mappings: vec![api::PortMapping {
                protocol: api::Protocol::Udp as i32,
                container_port: 53,
                host_port: 1053,
                host_ip: String::new(),
            }],
            labels: HashMap::from([("app".into(), "web".into())]),
            ..Default::default()
        }
    }

    #[test]
    fn bridge_pod_gets_hostname_ports_and_shareable_ipc() {
        let limits = LIMITED;
        let spec = create_spec(&config(), NetworkKind::DockerBridge, "", None, "sha256:pause", &limits, 7).unwrap();
        assert_eq!(spec.name, "k8s_POD_web_ns_u1_2");
        assert_eq!(spec.hostname.as_deref(), Some("web-0"));
        assert_eq!(spec.network_mode.as_deref(), Some("bridge"));
        assert_eq!(spec.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(
            spec.ports,
            vec![PortSpec { container_port: "53/udp".into(), host_ip: String::new(), host_port: 1053 }]
        );
        assert_eq!(spec.oom_score_adj, Some(0), "clamped where negative scores are refused");
        assert_eq!(spec.labels[labels::CREATED_AT], "7");
    }

    #[test]
    fn the_overhead_is_the_sandbox_containers_share() {
        let mut c = config();
        let overhead =
            api::LinuxContainerResources { cpu_shares: 128, memory_limit_in_bytes: 32 << 20, ..Default::default() };
        c.linux.get_or_insert_default().overhead = Some(overhead);
        let limits = FULL;
        let spec = create_spec(&c, NetworkKind::DockerBridge, "", None, "sha256:pause", &limits, 0).unwrap();
        assert_eq!((spec.resources.cpu_shares, spec.resources.memory), (Some(128), Some(32 << 20)));
        c.linux.as_mut().unwrap().overhead =
            Some(api::LinuxContainerResources { cpu_shares: -1, ..Default::default() });
        let err = create_spec(&c, NetworkKind::DockerBridge, "", None, "sha256:pause", &limits, 0).unwrap_err();
        assert!(matches!(err, SandboxError::InvalidConfig(m) if m.contains("overhead")));
    }

    #[test]
    fn a_mapping_without_a_host_port_publishes_nothing() {
        let mappings = [
            api::PortMapping { container_port: 80, host_port: 0, ..Default::default() },
            api::PortMapping { container_port: 443, host_port: 8443, ..Default::default() },
        ];
        let published = ports(&mappings);
        assert_eq!(
            published,
            vec![PortSpec { container_port: "443/tcp".into(), host_ip: String::new(), host_port: 8443 }]
        );
    }

    #[test]
    fn host_network_pod_has_no_hostname_or_ports() {
        let mut c = config();
        let ns = api::NamespaceOption { network: api::NamespaceMode::Node as i32, ..Default::default() };
        c.linux = Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(ns),
                ..Default::default()
            }),
            ..Default::default()
        });
        let limits = FULL;
        let spec = create_spec(&c, NetworkKind::Host, "", None, "sha256:pause", &limits, 0).unwrap();
        assert_eq!(spec.network_mode.as_deref(), Some("host"));
        assert!(spec.hostname.is_none() && spec.ports.is_empty());
        assert_eq!(spec.oom_score_adj, Some(SANDBOX_OOM_SCORE_ADJ));
        assert_eq!(decode_namespaces(&spec.labels[labels::NAMESPACES]).network(), api::NamespaceMode::Node);
    }
}
