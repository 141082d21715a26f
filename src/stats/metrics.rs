//! The CRI metrics kubelet re-exports under cAdvisor's names, built from
//! the same kernel readings as the stats.

use crate::api;

const CPU: &str = "container_cpu_usage_seconds_total";
const WORKING_SET: &str = "container_memory_working_set_bytes";
const MEMORY_USAGE: &str = "container_memory_usage_bytes";
const RSS: &str = "container_memory_rss";
const RX_BYTES: &str = "container_network_receive_bytes_total";
const TX_BYTES: &str = "container_network_transmit_bytes_total";
const RX_ERRORS: &str = "container_network_receive_errors_total";
const TX_ERRORS: &str = "container_network_transmit_errors_total";
const INTERFACE: &str = "interface";

/// Every metric pinshim reports, with its help text and label keys.
pub fn descriptors() -> Vec<api::MetricDescriptor> {
    let d = |name: &str, help: &str, labels: &[&str]| api::MetricDescriptor {
        name: name.to_string(),
        help: help.to_string(),
        label_keys: labels.iter().map(|l| l.to_string()).collect(),
    };
    vec![
        d(CPU, "Cumulative CPU time consumed, in whole seconds", &[]),
        d(WORKING_SET, "Current working set: memory in use minus inactive file cache", &[]),
        d(MEMORY_USAGE, "Current memory usage, including all caches", &[]),
        d(RSS, "Anonymous and swap-cache memory", &[]),
        d(RX_BYTES, "Bytes received by the pod", &[INTERFACE]),
        d(TX_BYTES, "Bytes sent by the pod", &[INTERFACE]),
        d(RX_ERRORS, "Receive errors of the pod", &[INTERFACE]),
        d(TX_ERRORS, "Transmit errors of the pod", &[INTERFACE]),
    ]
}

/// A pod's metrics from its stats.
pub fn pod_metrics(stats: &api::PodSandboxStats) -> api::PodSandboxMetrics {
    let linux = stats.linux.clone().unwrap_or_default();
    let mut metrics = Vec::new();
    if let Some(network) = &linux.network {
        for interface in &network.interfaces {
            for (name, value) in [
                (RX_BYTES, &interface.rx_bytes),
                (TX_BYTES, &interface.tx_bytes),
                (RX_ERRORS, &interface.rx_errors),
                (TX_ERRORS, &interface.tx_errors),
            ] {
                metrics.extend(metric(name, network.timestamp, api::MetricType::Counter, &[&interface.name], value));
            }
        }
    }
    api::PodSandboxMetrics {
        pod_sandbox_id: stats.attributes.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
        metrics,
        container_metrics: linux.containers.iter().map(container_metrics).collect(),
    }
}

fn container_metrics(stats: &api::ContainerStats) -> api::ContainerMetrics {
    let mut metrics = Vec::new();
    if let Some(cpu) = &stats.cpu {
        let seconds = cpu.usage_core_nano_seconds.as_ref().map(|v| api::UInt64Value { value: v.value / 1_000_000_000 });
        metrics.extend(metric(CPU, cpu.timestamp, api::MetricType::Counter, &[], &seconds));
    }
    if let Some(memory) = &stats.memory {
        for (name, value) in
            [(WORKING_SET, &memory.working_set_bytes), (MEMORY_USAGE, &memory.usage_bytes), (RSS, &memory.rss_bytes)]
        {
            metrics.extend(metric(name, memory.timestamp, api::MetricType::Gauge, &[], value));
        }
    }
    api::ContainerMetrics { container_id: stats.attributes.as_ref().map(|a| a.id.clone()).unwrap_or_default(), metrics }
}

fn metric(
    name: &str,
    timestamp: i64,
    kind: api::MetricType,
    labels: &[&str],
    value: &Option<api::UInt64Value>,
) -> Option<api::Metric> {
    Some(api::Metric {
        name: name.to_string(),
        timestamp,
        metric_type: kind as i32,
        label_values: labels.iter().map(|l| l.to_string()).collect(),
        value: Some((*value)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: u64) -> Option<api::UInt64Value> {
        Some(api::UInt64Value { value })
    }

    #[test]
    fn every_metric_is_described_with_its_labels() {
        let described = descriptors();
        let stats = api::PodSandboxStats {
            attributes: Some(api::PodSandboxAttributes { id: "pod".into(), ..Default::default() }),
            linux: Some(api::LinuxPodSandboxStats {
                network: Some(api::NetworkUsage {
                    timestamp: 1,
                    default_interface: None,
                    interfaces: vec![api::NetworkInterfaceUsage {
                        name: "eth0".into(),
                        rx_bytes: v(10),
                        rx_errors: v(0),
                        tx_bytes: v(20),
                        tx_errors: v(0),
                    }],
                }),
                containers: vec![api::ContainerStats {
                    attributes: Some(api::ContainerAttributes { id: "c".into(), ..Default::default() }),
                    cpu: Some(api::CpuUsage {
                        timestamp: 2,
                        usage_core_nano_seconds: v(3_500_000_000),
                        ..Default::default()
                    }),
                    memory: Some(api::MemoryUsage { timestamp: 2, working_set_bytes: v(7), ..Default::default() }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            windows: None,
        };
        let metrics = pod_metrics(&stats);
        assert_eq!(metrics.pod_sandbox_id, "pod");
        let all = metrics.metrics.iter().chain(metrics.container_metrics.iter().flat_map(|c| &c.metrics));
        for m in all {
            let d = described.iter().find(|d| d.name == m.name).expect("described");
            assert_eq!(d.label_keys.len(), m.label_values.len(), "{}", m.name);
        }
        let cpu = metrics.container_metrics[0].metrics.iter().find(|m| m.name == CPU).unwrap();
        assert_eq!(cpu.value.as_ref().map(|v| v.value), Some(3));
        assert_eq!(metrics.metrics.len(), 4);
    }
}
