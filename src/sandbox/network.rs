//! A sandbox's side of CNI: what a pod tells the plugins, and its IPs back.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::api;
use crate::network::{DnsCapability, PodNetwork, PortMapping};

/// Pod annotations kubelet users set to shape traffic (bandwidth plugin).
const INGRESS_BANDWIDTH: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS_BANDWIDTH: &str = "kubernetes.io/egress-bandwidth";

/// How a sandbox is networked, kept in its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    Host,
    DockerBridge,
    Cni,
}

impl NetworkKind {
    pub fn label(self) -> &'static str {
        match self {
            NetworkKind::Host => "host",
            NetworkKind::DockerBridge => "bridge",
            NetworkKind::Cni => "cni",
        }
    }

    pub fn from_label(label: &str) -> Self {
        match label {
            "host" => NetworkKind::Host,
            "cni" => NetworkKind::Cni,
            _ => NetworkKind::DockerBridge,
        }
    }

    /// The Docker network mode of the pause container.
    pub fn docker_mode(self) -> &'static str {
        match self {
            NetworkKind::Host => "host",
            NetworkKind::DockerBridge => "bridge",
            // CNI plugins configure the namespace Docker leaves empty (loopback only).
            NetworkKind::Cni => "none",
        }
    }
}

/// What the plugins are told about a pod whose network namespace is at
/// `netns` (`None`: gone, as DEL allows).
pub fn pod_network(
    sandbox_id: &str,
    netns: Option<PathBuf>,
    config: &api::PodSandboxConfig,
    ip_ranges: Vec<String>,
) -> PodNetwork {
    let metadata = config.metadata.clone().unwrap_or_default();
    PodNetwork {
        container_id: sandbox_id.to_string(),
        netns,
        pod_name: metadata.name,
        pod_namespace: metadata.namespace,
        pod_uid: metadata.uid,
        port_mappings: config
            .port_mappings
            .iter()
            .filter(|m| m.host_port > 0 && m.container_port > 0)
            .map(|m| PortMapping {
                host_port: u16::try_from(m.host_port).unwrap_or(0),
                container_port: u16::try_from(m.container_port).unwrap_or(0),
                protocol: m.protocol().as_str_name().to_ascii_lowercase(),
                host_ip: m.host_ip.clone(),
            })
            .collect(),
        ingress_bandwidth: config.annotations.get(INGRESS_BANDWIDTH).and_then(|q| parse_quantity(q)),
        egress_bandwidth: config.annotations.get(EGRESS_BANDWIDTH).and_then(|q| parse_quantity(q)),
        dns: config.dns_config.as_ref().map(|d| DnsCapability {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        ip_ranges,
    }
}

/// A Kubernetes quantity such as `10M` or `1Gi` (bits per second here).
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// The primary IP (the first IPv4, else the first) and the others.
pub fn split_ips(ips: &[IpAddr]) -> (String, Vec<String>) {
    let primary = ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied();
    let others = ips.iter().filter(|ip| Some(**ip) != primary).map(IpAddr::to_string).collect();
    (primary.map(|ip| ip.to_string()).unwrap_or_default(), others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("10M"), Some(10_000_000));
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("500"), Some(500));
        assert_eq!(parse_quantity("3x"), None);
    }

    #[test]
    fn ipv4_is_primary() {
        let ips: Vec<IpAddr> = vec!["fd00::5".parse().unwrap(), "10.1.0.5".parse().unwrap()];
        assert_eq!(split_ips(&ips), ("10.1.0.5".to_string(), vec!["fd00::5".to_string()]));
        assert_eq!(split_ips(&[]), (String::new(), vec![]));
    }

    #[test]
    fn port_mappings_and_bandwidth_reach_the_plugins() {
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "n".into(),
                attempt: 0,
            }),
            port_mappings: vec![api::PortMapping {
                protocol: 0,
                container_port: 80,
                host_port: 8080,
                host_ip: String::new(),
            }],
            annotations: [(INGRESS_BANDWIDTH.to_string(), "1M".to_string())].into(),
            ..Default::default()
        };
        let pod = pod_network("abc", Some(PathBuf::from("/run/netns/abc")), &config, vec![]);
        assert_eq!(pod.netns, Some(PathBuf::from("/run/netns/abc")));
        assert_eq!(pod.port_mappings[0].protocol, "tcp");
        assert_eq!(pod.ingress_bandwidth, Some(1_000_000));
        assert_eq!(pod_network("abc", None, &config, vec![]).netns, None);
    }
}
