//! What pinshim knows about a pod's network, and how it becomes CNI
//! parameters: the `CNI_ARGS` pairs and the capability arguments that feed
//! each plugin's `runtimeConfig`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// The burst (bits) sent with a bandwidth limit. The CRI only carries rates;
/// like kubelet's own CNI code, use the largest burst the plugin takes,
/// which in practice means "no burst limit".
const UNLIMITED_BURST: u64 = i32::MAX as u64;

/// One pod sandbox as the CNI plugins see it.
#[derive(Debug, Clone, Default)]
pub struct PodNetwork {
    /// The sandbox ID, used as `CNI_CONTAINERID`.
    pub container_id: String,
    /// The pod's network namespace: its pin (`NetnsPins`), or
    /// `/proc/<pid>/ns/net` of the infra process; `None` once it is gone.
    /// The caller makes sure a `/proc` path still belongs to the pod (a
    /// reused PID would name another namespace).
    pub netns: Option<PathBuf>,
    /// The pod's name (`K8S_POD_NAME`).
    pub pod_name: String,
    /// The pod's namespace (`K8S_POD_NAMESPACE`).
    pub pod_namespace: String,
    /// The pod's UID (`K8S_POD_UID`).
    pub pod_uid: String,
    /// Host ports, for plugins that declare the `portMappings` capability.
    /// Entries with host port 0 are not host ports and are left out.
    pub port_mappings: Vec<PortMapping>,
    /// Ingress limit in bits per second (`bandwidth` capability).
    pub ingress_bandwidth: Option<u64>,
    /// Egress limit in bits per second (`bandwidth` capability).
    pub egress_bandwidth: Option<u64>,
    /// DNS settings, for plugins that declare the `dns` capability.
    pub dns: Option<DnsCapability>,
    /// Pod CIDRs kubelet set with UpdateRuntimeConfig, for plugins that
    /// declare the `ipRanges` capability.
    pub ip_ranges: Vec<String>,
}

/// A host port forwarded to a port of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The port on the host; 0 means the port is not published.
    pub host_port: u16,
    /// The port inside the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (any case).
    pub protocol: String,
    /// The host address to bind; empty for all.
    pub host_ip: String,
}

/// DNS settings handed to plugins that manage DNS themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsCapability {
    /// Name server addresses.
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// Resolver options, e.g. `ndots:5`.
    pub options: Vec<String>,
}

/// The addresses the network gave the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIps {
    /// In the order of the plugin result: the caller takes the first IPv4
    /// address (else the first) as primary and the rest as additional.
    pub ips: Vec<IpAddr>,
}

impl PodNetwork {
    /// The `CNI_ARGS` pairs kubelet-style runtimes pass.
    pub(crate) fn cni_args(&self) -> Vec<(String, String)> {
        [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.pod_namespace.as_str()),
            ("K8S_POD_NAME", self.pod_name.as_str()),
            ("K8S_POD_INFRA_CONTAINER_ID", self.container_id.as_str()),
            ("K8S_POD_UID", self.pod_uid.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// All capability arguments this runtime offers for the pod; each plugin
    /// later gets only those it declares.
    pub(crate) fn capability_args(&self) -> Map<String, Value> {
        let mut args = Map::new();
        args.insert("portMappings".to_string(), Value::Array(self.port_mapping_args()));
        if let Some(bandwidth) = self.bandwidth_arg() {
            args.insert("bandwidth".to_string(), bandwidth);
        }
        if !self.ip_ranges.is_empty() {
            let ranges: Vec<Value> = self.ip_ranges.iter().map(|cidr| json!([{ "subnet": cidr }])).collect();
            args.insert("ipRanges".to_string(), Value::Array(ranges));
        }
        if let Some(dns) = &self.dns {
            args.insert(
                "dns".to_string(),
                json!({"servers": dns.servers, "searches": dns.searches, "options": dns.options}),
            );
        }
        args
    }

    fn port_mapping_args(&self) -> Vec<Value> {
        let mappings = self.port_mappings.iter().filter(|m| m.host_port != 0);
        mappings.map(port_mapping_arg).collect()
    }

    fn bandwidth_arg(&self) -> Option<Value> {
        let mut limits = Map::new();
        for (direction, rate) in [("ingress", self.ingress_bandwidth), ("egress", self.egress_bandwidth)] {
            if let Some(rate) = rate {
                limits.insert(format!("{direction}Rate"), rate.into());
                limits.insert(format!("{direction}Burst"), UNLIMITED_BURST.into());
            }
        }
        (!limits.is_empty()).then_some(Value::Object(limits))
    }
}

fn port_mapping_arg(mapping: &PortMapping) -> Value {
    let mut entry = json!({
        "hostPort": mapping.host_port,
        "containerPort": mapping.container_port,
        "protocol": mapping.protocol.to_ascii_lowercase(),
    });
    if !mapping.host_ip.is_empty() {
        entry["hostIP"] = Value::String(mapping.host_ip.clone());
    }
    entry
}

/// Joins `CNI_ARGS` pairs as `K=V;K=V`.
pub(crate) fn join_cni_args(args: &[(String, String)]) -> String {
    args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodNetwork {
        PodNetwork {
            container_id: "abc123".into(),
            pod_name: "web-0".into(),
            pod_namespace: "prod".into(),
            pod_uid: "uid-1".into(),
            ..PodNetwork::default()
        }
    }

    #[test]
    fn cni_args_carry_the_pod_identity_in_kubelet_order() {
        assert_eq!(
            join_cni_args(&pod().cni_args()),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1"
        );
    }

    #[test]
    fn port_mappings_are_lowercased_and_skip_unmapped_ports() {
        let mut pod = pod();
        pod.port_mappings = vec![
            PortMapping { host_port: 8080, container_port: 80, protocol: "TCP".into(), host_ip: String::new() },
            PortMapping { host_port: 0, container_port: 81, protocol: "tcp".into(), host_ip: String::new() },
            PortMapping { host_port: 53, container_port: 5353, protocol: "udp".into(), host_ip: "127.0.0.1".into() },
        ];
        assert_eq!(
            pod.capability_args()["portMappings"],
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 53, "containerPort": 5353, "protocol": "udp", "hostIP": "127.0.0.1"},
            ])
        );
    }

    #[test]
    fn bandwidth_and_dns_appear_only_when_set() {
        let args = pod().capability_args();
        assert_eq!(args.keys().collect::<Vec<_>>(), ["portMappings"]);

        let mut pod = pod();
        pod.egress_bandwidth = Some(1_000_000);
        pod.dns =
            Some(DnsCapability { servers: vec!["10.0.0.10".into()], searches: vec!["svc".into()], options: vec![] });
        let args = pod.capability_args();
        assert_eq!(args["bandwidth"], json!({"egressRate": 1_000_000, "egressBurst": 2_147_483_647}));
        assert_eq!(args["dns"], json!({"servers": ["10.0.0.10"], "searches": ["svc"], "options": []}));
    }
}
