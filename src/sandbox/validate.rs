//! The checks a PodSandboxConfig passes before anything reaches Docker, the
//! pod's resolv.conf or the kernel. Each refusal names the field.

use std::collections::HashMap;

use super::SandboxError;
use crate::api;
use crate::{unsupported, validate};

/// sysctls that live in the IPC namespace (runc's list).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

pub fn config(config: &api::PodSandboxConfig) -> Result<(), SandboxError> {
    if !config.hostname.is_empty() {
        validate::hostname("hostname", &config.hostname).map_err(invalid)?;
    }
    if !config.log_directory.is_empty() {
        validate::clean_absolute("log_directory", &config.log_directory).map_err(invalid)?;
    }
    if let Some(dns) = &config.dns_config {
        self::dns(dns)?;
    }
    config.port_mappings.iter().enumerate().try_for_each(|(i, m)| port(i, m))?;
    let linux = config.linux.clone().unwrap_or_default();
    if !linux.cgroup_parent.is_empty() {
        validate::cgroup_parent("cgroup_parent", &linux.cgroup_parent).map_err(invalid)?;
    }
    // The pod's total is kubelet's to enforce, on the pod cgroup it names as
    // cgroup_parent: pinshim only checks it makes sense.
    if let Some(resources) = &linux.resources {
        crate::resources::check(resources).map_err(|e| invalid(format!("linux.resources: {e}")))?;
    }
    let security = linux.security_context.unwrap_or_default();
    unsupported::identity(security.namespace_options.as_ref(), security.supplemental_groups_policy).map_err(invalid)?;
    let namespaces = security.namespace_options.unwrap_or_default();
    for (field, mode) in [("network", namespaces.network), ("pid", namespaces.pid), ("ipc", namespaces.ipc)] {
        known::<api::NamespaceMode>(&format!("namespace_options.{field}"), mode)?;
    }
    let host_network = namespaces.network() == api::NamespaceMode::Node;
    sysctls(&linux.sysctls, host_network, namespaces.ipc() == api::NamespaceMode::Node)
}

fn known<E: TryFrom<i32>>(field: &str, value: i32) -> Result<(), SandboxError> {
    validate::known::<E>(field, value).map_err(invalid)
}

/// Each entry becomes a word of a resolv.conf line: none may end the line.
fn dns(dns: &api::DnsConfig) -> Result<(), SandboxError> {
    for server in &dns.servers {
        validate::ip_address("dns_config.servers", server).map_err(invalid)?;
    }
    for search in &dns.searches {
        validate::word("dns_config.searches", search).map_err(invalid)?;
    }
    for option in &dns.options {
        validate::word("dns_config.options", option).map_err(invalid)?;
    }
    Ok(())
}

fn port(i: usize, m: &api::PortMapping) -> Result<(), SandboxError> {
    known::<api::Protocol>(&format!("port_mappings[{i}].protocol"), m.protocol)?;
    if !(1..=65535).contains(&m.container_port) {
        return Err(invalid(format!("port_mappings[{i}].container_port {} is outside 1..65535", m.container_port)));
    }
    if !(0..=65535).contains(&m.host_port) {
        return Err(invalid(format!("port_mappings[{i}].host_port {} is outside 0..65535", m.host_port)));
    }
    if !m.host_ip.is_empty() {
        validate::ip_address(&format!("port_mappings[{i}].host_ip"), &m.host_ip).map_err(invalid)?;
    }
    Ok(())
}

/// Only namespaced sysctls can be set for a pod, and only in a namespace
/// the pod owns; runc refuses the rest when the pod starts, with a 500
/// from Docker. Keys are names separated by `.` or `/` (kubelet allows both).
fn sysctls(sysctls: &HashMap<String, String>, host_network: bool, host_ipc: bool) -> Result<(), SandboxError> {
    for (key, value) in sysctls {
        let names_ok = key
            .split(['.', '/'])
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)));
        if !names_ok {
            return Err(invalid(format!("sysctls key {key:?} is not a sysctl name")));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(invalid(format!("sysctls value of {key:?} contains a control character")));
        }
        let dotted = key.replace('/', ".");
        let refusal = if dotted.starts_with("net.") {
            host_network.then_some("cannot be set in the host's network namespace")
        } else if IPC_SYSCTLS.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
            host_ipc.then_some("cannot be set in the host's IPC namespace")
        } else {
            Some("is not namespaced; a pod cannot set it")
        };
        if let Some(why) = refusal {
            return Err(invalid(format!("sysctls key {key:?} {why}")));
        }
    }
    Ok(())
}

fn invalid(why: String) -> SandboxError {
    SandboxError::InvalidConfig(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config_of: impl FnOnce(&mut api::PodSandboxConfig), field: &str) {
        let mut c = api::PodSandboxConfig::default();
        config_of(&mut c);
        match config(&c) {
            Err(SandboxError::InvalidConfig(why)) => assert!(why.contains(field), "{why} names {field}"),
            other => panic!("expected InvalidConfig naming {field}, got {other:?}"),
        }
    }

    fn linux(c: &mut api::PodSandboxConfig) -> &mut api::LinuxPodSandboxConfig {
        c.linux.get_or_insert_with(Default::default)
    }

    #[test]
    fn strings_that_reach_files() {
        refused(|c| c.hostname = "a/b\nc".into(), "hostname");
        refused(|c| c.log_directory = "relative".into(), "log_directory");
        refused(|c| c.log_directory = "/var/log/../etc".into(), "log_directory");
        refused(|c| linux(c).cgroup_parent = "/../../../x".into(), "cgroup_parent");
        let dns = |servers: &[&str], searches: &[&str], options: &[&str]| api::DnsConfig {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            searches: searches.iter().map(|s| s.to_string()).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
        };
        refused(|c| c.dns_config = Some(dns(&["10.0.0.1\noptions ndots:99"], &[], &[])), "dns_config.servers");
        refused(|c| c.dns_config = Some(dns(&[], &["a\noptions ndots:99"], &[])), "dns_config.searches");
        refused(|c| c.dns_config = Some(dns(&[], &[], &["ndots:1 rotate"])), "dns_config.options");
        let ok = api::PodSandboxConfig {
            hostname: "web-0".into(),
            log_directory: "/var/log/pods/ns_web_u1".into(),
            dns_config: Some(dns(&["10.0.0.10"], &["ns.svc.cluster.local"], &["ndots:5"])),
            ..Default::default()
        };
        assert!(config(&ok).is_ok());
    }

    #[test]
    fn pod_resources_are_checked() {
        let nonsense = api::LinuxContainerResources { memory_limit_in_bytes: -5, ..Default::default() };
        refused(|c| linux(c).resources = Some(nonsense), "linux.resources: resources.memory_limit_in_bytes");
        let mut c = api::PodSandboxConfig::default();
        linux(&mut c).resources = Some(api::LinuxContainerResources { cpu_shares: 1024, ..Default::default() });
        assert!(config(&c).is_ok());
    }

    #[test]
    fn ports_and_enums_in_range() {
        let port = |container_port, host_port, protocol| api::PortMapping {
            container_port,
            host_port,
            protocol,
            host_ip: String::new(),
        };
        refused(|c| c.port_mappings = vec![port(70000, 0, 0)], "port_mappings[0].container_port");
        refused(|c| c.port_mappings = vec![port(-1, 0, 0)], "container_port");
        refused(|c| c.port_mappings = vec![port(80, 70000, 0)], "port_mappings[0].host_port");
        refused(|c| c.port_mappings = vec![port(80, -1, 0)], "host_port");
        refused(|c| c.port_mappings = vec![port(80, 8080, 9)], "port_mappings[0].protocol");
        let ns = api::NamespaceOption { network: 99, ..Default::default() };
        let security = api::LinuxSandboxSecurityContext { namespace_options: Some(ns), ..Default::default() };
        refused(|c| linux(c).security_context = Some(security), "namespace_options.network");
    }

    #[test]
    fn only_namespaced_sysctls() {
        let set = |key: &str| HashMap::from([(key.to_string(), "1".to_string())]);
        let mut c = api::PodSandboxConfig::default();
        linux(&mut c).sysctls = set("net.ipv4.ip_unprivileged_port_start");
        assert!(config(&c).is_ok());
        linux(&mut c).sysctls = set("kernel/shm_rmid_forced");
        assert!(config(&c).is_ok());
        refused(|c| linux(c).sysctls = set("kernel.foo"), "not namespaced");
        refused(|c| linux(c).sysctls = set("net/../../x"), "sysctls key");
        refused(|c| linux(c).sysctls = set("net.ipv4..x"), "sysctls key");
        refused(
            |c| {
                let ns = api::NamespaceOption { network: api::NamespaceMode::Node as i32, ..Default::default() };
                let security = api::LinuxSandboxSecurityContext { namespace_options: Some(ns), ..Default::default() };
                linux(c).security_context = Some(security);
                linux(c).sysctls = set("net.ipv4.ip_forward");
            },
            "host's network namespace",
        );
    }
}
