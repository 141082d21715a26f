//! Container and pod stats, read from the kernel (cgroups, /proc) rather
//! than through Docker's stats API, which is slow per container.

mod layers;
mod metrics;
pub mod netdev;
mod readings;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;

use crate::api;
use crate::cgroup::CgroupStats;
use crate::cgroup::pressure::{Pressure, Stall};
use crate::container::{ContainerError, ContainerService};
use crate::docker::{ContainerDetails, Docker};
use crate::labels;
use crate::sandbox::{Sandbox, SandboxError, SandboxService};
use crate::time::now_nanos;
use readings::Readings;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
}

/// Docker inspections in flight at once for a stats listing.
const INSPECT_CONCURRENCY: usize = 16;

/// One CPU reading, to turn cumulative usage into a rate, and the rate it
/// gave (a reading served twice gives the same rate twice).
#[derive(Clone, Copy)]
struct CpuSample {
    at: i64,
    usage_ns: u64,
    rate: Option<u64>,
}

pub struct StatsService {
    docker: Docker,
    containers: Arc<ContainerService>,
    sandboxes: Arc<SandboxService>,
    last_cpu: Mutex<HashMap<String, CpuSample>>,
    layers: layers::LayerMeter,
    readings: Readings,
}

impl StatsService {
    pub fn new(docker: Docker, containers: Arc<ContainerService>, sandboxes: Arc<SandboxService>) -> Self {
        StatsService {
            docker,
            containers,
            sandboxes,
            last_cpu: Mutex::default(),
            layers: Default::default(),
            readings: Readings::default(),
        }
    }

    pub async fn container(&self, id: &str) -> Result<api::ContainerStats, StatsError> {
        if id.is_empty() {
            return Err(ContainerError::InvalidConfig("container id is required".to_string()).into());
        }
        let details = self.docker.inspect_by_id(id).await?;
        let details = details
            .filter(|d| labels::get(&d.labels, labels::KIND) == labels::KIND_CONTAINER)
            .ok_or_else(|| ContainerError::NotFound(id.to_string()))?;
        let mut stats = self.read_all(vec![Arc::new(details)]).await;
        Ok(stats.pop().map(|(stats, _)| stats).unwrap_or_default())
    }

    /// Stats of the running containers that match `filter`.
    pub async fn containers(
        &self,
        filter: Option<&api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>, StatsError> {
        Ok(self.collect(filter).await?.into_iter().map(|(stats, _)| stats).collect())
    }

    /// The CRI stats with the raw cgroup readings they came from.
    async fn collect(
        &self,
        filter: Option<&api::ContainerStatsFilter>,
    ) -> Result<Vec<(api::ContainerStats, Option<CgroupStats>)>, StatsError> {
        let filter = filter.map(|f| api::ContainerFilter {
            id: f.id.clone(),
            pod_sandbox_id: f.pod_sandbox_id.clone(),
            label_selector: f.label_selector.clone(),
            state: Some(api::ContainerStateValue { state: api::ContainerState::ContainerRunning as i32 }),
        });
        let running = api::ContainerFilter {
            state: Some(api::ContainerStateValue { state: api::ContainerState::ContainerRunning as i32 }),
            ..Default::default()
        };
        let filter = filter.as_ref().unwrap_or(&running);
        let complete = filter.id.is_empty() && filter.pod_sandbox_id.is_empty() && filter.label_selector.is_empty();
        let stats = match self.containers.indexed(filter) {
            Some(indexed) => self.read_all(indexed).await,
            None => self.inspect_and_read(filter).await?,
        };
        if complete {
            // The complete set of running containers: forget the others' layers.
            self.layers
                .retain(&stats.iter().filter_map(|(s, _)| s.attributes.as_ref()).map(|a| a.id.clone()).collect());
        }
        Ok(stats)
    }

    /// Stats of containers whose details are at hand (from the index).
    async fn read_all(
        &self,
        containers: Vec<Arc<ContainerDetails>>,
    ) -> Vec<(api::ContainerStats, Option<CgroupStats>)> {
        // A stopped container has no cgroup to read: PID 0 reads as nothing.
        let targets: Vec<(&str, i64)> =
            containers.iter().map(|d| (d.id.as_str(), if d.state.running { d.state.pid } else { 0 })).collect();
        let readings = self.readings.of(&targets).await;
        containers.iter().zip(readings).map(|(details, reading)| self.container_stats(details, reading)).collect()
    }

    /// Without the index: list, then inspect each container for its PID.
    async fn inspect_and_read(
        &self,
        filter: &api::ContainerFilter,
    ) -> Result<Vec<(api::ContainerStats, Option<CgroupStats>)>, StatsError> {
        let listed = self.containers.list(Some(filter)).await?;
        // Inspections are independent: run a few at once.
        let inspected = futures::stream::iter(listed)
            .map(|container| async move { self.docker.inspect_container(&container.id).await })
            .buffered(INSPECT_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut details = Vec::with_capacity(inspected.len());
        for item in inspected {
            // Gone since the listing: not listed.
            details.extend(item?.map(Arc::new));
        }
        Ok(self.read_all(details).await)
    }

    /// ListMetricDescriptors.
    pub fn metric_descriptors(&self) -> Vec<api::MetricDescriptor> {
        metrics::descriptors()
    }

    /// ListPodSandboxMetrics: every ready pod's metrics.
    pub async fn pod_metrics(&self) -> Result<Vec<api::PodSandboxMetrics>, StatsError> {
        Ok(self.pods(None).await?.iter().map(metrics::pod_metrics).collect())
    }

    pub async fn pod(&self, id: &str) -> Result<api::PodSandboxStats, StatsError> {
        let (sandbox, details) = self.sandboxes.get(id).await?;
        let filter = api::ContainerStatsFilter { pod_sandbox_id: sandbox.id.clone(), ..Default::default() };
        let collected = self.collect(Some(&filter)).await?;
        let infra = readings::in_batches(vec![details.state.pid], infra_reading).await.pop().unwrap_or_default();
        Ok(self.pod_stats(sandbox, infra, collected))
    }

    pub async fn pods(
        &self,
        filter: Option<&api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>, StatsError> {
        let filter = api::PodSandboxFilter {
            id: filter.map(|f| f.id.clone()).unwrap_or_default(),
            label_selector: filter.map(|f| f.label_selector.clone()).unwrap_or_default(),
            state: Some(api::PodSandboxStateValue { state: api::PodSandboxState::SandboxReady as i32 }),
        };
        let running = api::ContainerFilter {
            state: Some(api::ContainerStateValue { state: api::ContainerState::ContainerRunning as i32 }),
            ..Default::default()
        };
        match (self.sandboxes.indexed(&filter), self.containers.indexed(&running)) {
            (Some(pods), Some(containers)) => Ok(self.indexed_pods(pods, containers).await),
            _ => self.listed_pods(&filter).await,
        }
    }

    /// Every pod's stats from the index: no Docker call at all, and every
    /// cgroup read in a few batches.
    async fn indexed_pods(
        &self,
        pods: Vec<(Sandbox, Arc<ContainerDetails>)>,
        containers: Vec<Arc<ContainerDetails>>,
    ) -> Vec<api::PodSandboxStats> {
        // Only the selected pods' containers are read.
        let selected: HashSet<&str> = pods.iter().map(|(sandbox, _)| sandbox.id.as_str()).collect();
        let (sandbox_ids, containers): (Vec<String>, Vec<_>) = containers
            .into_iter()
            .map(|c| (labels::get(&c.labels, labels::SANDBOX_ID), c))
            .filter(|(sandbox_id, _)| selected.contains(sandbox_id.as_str()))
            .unzip();
        let mut members: HashMap<String, Vec<_>> = HashMap::new();
        for (sandbox_id, collected) in sandbox_ids.into_iter().zip(self.read_all(containers).await) {
            members.entry(sandbox_id).or_default().push(collected);
        }
        let infra = readings::in_batches(pods.iter().map(|(_, d)| d.state.pid).collect(), infra_reading).await;
        pods.into_iter()
            .zip(infra)
            .map(|((sandbox, _), infra)| {
                let mine = members.remove(&sandbox.id).unwrap_or_default();
                self.pod_stats(sandbox, infra, mine)
            })
            .collect()
    }

    async fn listed_pods(&self, filter: &api::PodSandboxFilter) -> Result<Vec<api::PodSandboxStats>, StatsError> {
        let mut stats = Vec::new();
        for sandbox in self.sandboxes.list(Some(filter)).await? {
            match self.pod(&sandbox.id).await {
                Ok(s) => stats.push(s),
                // Gone between list and read: not an error for the caller.
                Err(StatsError::Sandbox(SandboxError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(stats)
    }

    /// The pod's totals: its infra container plus its containers' usage.
    fn pod_stats(
        &self,
        sandbox: Sandbox,
        infra: InfraReading,
        collected: Vec<(api::ContainerStats, Option<CgroupStats>)>,
    ) -> api::PodSandboxStats {
        let now = now_nanos();
        // The infra container's stalls are not the pod's, and stalls do not add up.
        let mut total = infra.usage.unwrap_or_default();
        for (_, cgroup) in &collected {
            if let Some(cgroup) = cgroup {
                add(&mut total, cgroup);
            }
        }
        let containers = collected.into_iter().map(|(stats, _)| stats).collect();
        let interfaces = infra.interfaces.into_iter().map(interface_usage).collect::<Vec<_>>();
        let network = api::NetworkUsage {
            timestamp: now,
            default_interface: interfaces.iter().find(|i| i.name == "eth0").or(interfaces.first()).cloned(),
            interfaces,
        };
        api::PodSandboxStats {
            attributes: Some(api::PodSandboxAttributes {
                id: sandbox.id.clone(),
                metadata: Some(sandbox.metadata),
                labels: sandbox.labels,
                annotations: sandbox.annotations,
            }),
            linux: Some(api::LinuxPodSandboxStats {
                cpu: Some(self.cpu_usage(&format!("pod:{}", sandbox.id), &total, now)),
                memory: Some(memory_usage(&total, now)),
                network: Some(network),
                process: Some(api::ProcessUsage { timestamp: now, process_count: total.pids.map(value) }),
                containers,
                io: None,
            }),
            windows: None,
        }
    }

    fn container_stats(
        &self,
        d: &ContainerDetails,
        reading: readings::Reading,
    ) -> (api::ContainerStats, Option<CgroupStats>) {
        let now = reading.at;
        let attributes = api::ContainerAttributes {
            id: d.id.clone(),
            metadata: Some(api::ContainerMetadata {
                name: labels::get(&d.labels, labels::NAME),
                attempt: labels::get_u32(&d.labels, labels::ATTEMPT),
            }),
            labels: labels::decode_map(&d.labels, labels::LABELS),
            annotations: labels::decode_map(&d.labels, labels::ANNOTATIONS),
        };
        let Some(cgroup) = reading.stats else {
            return (api::ContainerStats { attributes: Some(attributes), ..Default::default() }, None);
        };
        let layer_dir = match d.upper_dir.is_empty() {
            true => crate::mountinfo::upper_dir(d.state.pid).unwrap_or_default(),
            false => d.upper_dir.clone(),
        };
        let stats = api::ContainerStats {
            attributes: Some(attributes),
            cpu: Some(self.cpu_usage(&d.id, &cgroup, now)),
            memory: Some(memory_usage(&cgroup, now)),
            writable_layer: self.layers.usage(&d.id, &layer_dir).map(|u| api::FilesystemUsage {
                timestamp: u.timestamp,
                fs_id: Some(api::FilesystemIdentifier { mountpoint: layer_dir.clone() }),
                used_bytes: Some(value(u.used_bytes)),
                inodes_used: Some(value(u.inodes_used)),
            }),
            swap: Some(swap_usage(&cgroup, now)),
            io: Some(api::IoUsage { timestamp: now, psi: cgroup.pressure.io.map(psi) }),
        };
        (stats, Some(cgroup))
    }

    /// Cumulative CPU time, and cores in use since the previous reading.
    fn cpu_usage(&self, key: &str, cgroup: &CgroupStats, now: i64) -> api::CpuUsage {
        let usage = cgroup.cpu_usage_ns;
        let mut last = self.last_cpu.lock().unwrap_or_else(PoisonError::into_inner);
        let rate = match (usage, last.get(key)) {
            // The same reading again: the rate it gave before.
            (Some(usage), Some(prev)) if now == prev.at && usage == prev.usage_ns => prev.rate,
            (Some(usage), Some(prev)) if now > prev.at && usage >= prev.usage_ns => {
                Some(((usage - prev.usage_ns) as u128 * 1_000_000_000 / (now - prev.at) as u128) as u64)
            }
            _ => None,
        };
        if let Some(usage_ns) = usage {
            last.insert(key.to_string(), CpuSample { at: now, usage_ns, rate });
        }
        api::CpuUsage {
            timestamp: now,
            usage_core_nano_seconds: usage.map(value),
            usage_nano_cores: rate.map(value),
            psi: cgroup.pressure.cpu.map(psi),
        }
    }
}

fn memory_usage(c: &CgroupStats, now: i64) -> api::MemoryUsage {
    api::MemoryUsage {
        timestamp: now,
        working_set_bytes: c.working_set.map(value),
        available_bytes: c.available_bytes.map(value),
        usage_bytes: c.memory_usage.map(value),
        rss_bytes: c.rss.map(value),
        page_faults: c.page_faults.map(value),
        major_page_faults: c.major_page_faults.map(value),
        psi: c.pressure.memory.map(psi),
    }
}

fn swap_usage(c: &CgroupStats, now: i64) -> api::SwapUsage {
    api::SwapUsage {
        timestamp: now,
        swap_available_bytes: c.swap_limit.zip(c.swap_usage).map(|(limit, used)| value(limit.saturating_sub(used))),
        swap_usage_bytes: c.swap_usage.map(value),
    }
}

fn psi(p: Pressure) -> api::PsiStats {
    let data = |s: Stall| api::PsiData { total: s.total_ns, avg10: s.avg10, avg60: s.avg60, avg300: s.avg300 };
    api::PsiStats { full: p.full.map(data), some: Some(data(p.some)) }
}

/// Adds a container's usage into the pod's totals. Limits and available
/// bytes stay the pod infra container's: the sum of limits means nothing.
fn add(total: &mut CgroupStats, c: &CgroupStats) {
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    total.cpu_usage_ns = sum(total.cpu_usage_ns, c.cpu_usage_ns);
    total.memory_usage = sum(total.memory_usage, c.memory_usage);
    total.working_set = sum(total.working_set, c.working_set);
    total.rss = sum(total.rss, c.rss);
    total.page_faults = sum(total.page_faults, c.page_faults);
    total.major_page_faults = sum(total.major_page_faults, c.major_page_faults);
    total.pids = sum(total.pids, c.pids);
}

fn value(v: u64) -> api::UInt64Value {
    api::UInt64Value { value: v }
}

/// What a pod's infra process tells of the pod: its cgroup's usage and the
/// pod network's counters.
#[derive(Default)]
struct InfraReading {
    usage: Option<CgroupStats>,
    interfaces: Vec<netdev::InterfaceStats>,
}

fn infra_reading(pid: i64) -> InfraReading {
    if pid <= 0 {
        return InfraReading::default();
    }
    InfraReading { usage: readings::read_usage(pid), interfaces: netdev::read(pid).unwrap_or_default() }
}

fn interface_usage(i: netdev::InterfaceStats) -> api::NetworkInterfaceUsage {
    api::NetworkInterfaceUsage {
        name: i.name,
        rx_bytes: Some(value(i.rx_bytes)),
        rx_errors: Some(value(i.rx_errors)),
        tx_bytes: Some(value(i.tx_bytes)),
        tx_errors: Some(value(i.tx_errors)),
    }
}
