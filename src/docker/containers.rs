//! Container calls: create, start, stop, remove, inspect, list, update.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, DeviceMapping, DeviceRequest, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};

use super::mounts::{BindMount, ImageMount, host_mounts, image_mounts};
use super::system::ApiVersion;
use super::{Docker, DockerError, timed};
use crate::time::parse_rfc3339_nanos;

/// How long a removal waits for a concurrent removal of the same container.
const CONCURRENT_REMOVAL_WAIT: Duration = Duration::from_secs(30);

/// What pinshim asks Docker to create. Only the fields pinshim sets.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub stop_signal: Option<String>,
    /// `80/tcp` → bindings on the host.
    pub ports: Vec<PortSpec>,
    pub network_mode: Option<String>,
    pub ipc_mode: Option<String>,
    pub pid_mode: Option<String>,
    pub mounts: Vec<BindMount>,
    pub image_mounts: Vec<ImageMount>,
    pub devices: Vec<DeviceSpec>,
    /// Fully qualified CDI device names (`vendor.com/class=name`), which
    /// the engine resolves from its CDI specs.
    pub cdi_devices: Vec<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub group_add: Vec<String>,
    pub readonly_rootfs: bool,
    pub security_opt: Vec<String>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub sysctls: HashMap<String, String>,
    pub cgroup_parent: Option<String>,
    pub runtime: Option<String>,
    pub oom_score_adj: Option<i64>,
    pub resources: Resources,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortSpec {
    /// `<port>/<protocol>`, e.g. `80/tcp`.
    pub container_port: String,
    pub host_ip: String,
    pub host_port: u16,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceSpec {
    pub host_path: String,
    pub container_path: String,
    pub permissions: String,
}

/// cgroup resource settings; `None` leaves Docker's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
}

/// Run state as Docker reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub status: String,
    pub running: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: String,
    /// Nanoseconds since the epoch; 0 when it never happened.
    pub started_at: i64,
    pub finished_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountInfo {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    pub propagation: String,
}

/// What `docker inspect` says of a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerDetails {
    pub id: String,
    pub name: String,
    /// Docker's image ID the container was created from.
    pub image_id: String,
    pub labels: HashMap<String, String>,
    pub created_at: i64,
    pub state: RunState,
    pub ipv4: String,
    pub ipv6: String,
    pub resolv_conf_path: String,
    pub mounts: Vec<MountInfo>,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    /// The signal `docker stop` sends, as Docker keeps it: the container's
    /// own, else the image's STOPSIGNAL; empty means SIGTERM.
    pub stop_signal: String,
    pub resources: Resources,
    /// HostConfig's OomScoreAdj: what the container's processes start with.
    pub oom_score_adj: i64,
    /// The writable layer's directory on the host (overlay2's UpperDir).
    pub upper_dir: String,
    /// The platform manifest the container runs, where the image store
    /// says (the containerd store, from API 1.48).
    pub image_manifest: String,
}

/// One line of `docker ps -a`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
    /// Seconds since the epoch.
    pub created: i64,
    pub status: String,
}

impl Docker {
    pub async fn create_container(&self, spec: CreateSpec) -> Result<String, DockerError> {
        let client = self.client().await?;
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let negotiated = client.client_version();
        let body = create_body(spec, ApiVersion(negotiated.major_version, negotiated.minor_version))?;
        let created =
            timed("container_create", client.create_container(Some(options), body)).await.map_err(|e| self.error(e))?;
        Ok(created.id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        timed("container_start", client.start_container(id, None)).await.map_err(|e| self.error(e))
    }

    /// Stops with the container's stop signal, then SIGKILL after `timeout_secs`.
    pub async fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), DockerError> {
        let client = self.client().await?;
        let t = i32::try_from(timeout_secs.max(0)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(t).build();
        match timed("container_stop", client.stop_container(id, Some(options))).await.map_err(|e| self.error(e)) {
            Err(DockerError::NotModified) => Ok(()),
            other => other,
        }
    }

    /// Removes a container and its anonymous volumes, running or not. When
    /// another caller's removal of it is under way (Docker answers 409), waits
    /// for that one to finish: kubelet retries and garbage-collects
    /// concurrently, and each of them must see its removal succeed.
    pub async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let removed = timed("container_remove", client.remove_container(id, Some(options))).await;
        match removed.map_err(|e| self.error(e)) {
            Err(DockerError::Conflict(message)) if message.contains("already in progress") => {
                self.wait_removed(id, DockerError::Conflict(message)).await
            }
            other => other,
        }
    }

    /// Checkpoints running container `id` with CRIU into `dir/<name>`,
    /// leaving it running. Needs an engine with experimental features on
    /// and `criu` where its runtime finds it.
    pub async fn checkpoint(&self, id: &str, dir: &str, name: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = bollard::container::CreateCheckpointOptions {
            checkpoint_id: name.to_string(),
            checkpoint_dir: Some(dir.to_string()),
            exit: false,
        };
        timed("container_checkpoint", client.create_checkpoint(id, options)).await.map_err(|e| self.error(e))
    }

    /// Whether `path` exists in image `image`'s filesystem: asked of a
    /// container created from it, never started, then removed. It carries
    /// `labels`, so one a crash leaves behind can be found.
    pub async fn image_has_path(
        &self,
        image: &str,
        path: &str,
        labels: HashMap<String, String>,
    ) -> Result<bool, DockerError> {
        let client = self.client().await?;
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // Never run: the image may hold no program at all.
            entrypoint: Some(vec!["/".to_string()]),
            labels: Some(labels),
            network_disabled: Some(true),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().build();
        let created = timed("container_create", client.create_container(Some(options), body)).await;
        let id = created.map_err(|e| self.error(e))?.id;
        let stat_options = ContainerArchiveInfoOptionsBuilder::default().path(path).build();
        let stat = timed("container_archive_info", client.get_container_archive_info(&id, Some(stat_options))).await;
        let removed = self.remove_container(&id).await;
        let found = match stat.map_err(|e| self.error(e)) {
            Ok(_) => true,
            Err(DockerError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        removed?;
        Ok(found)
    }

    /// Polls until container `id` is gone; `pending` if it outlasts the wait.
    async fn wait_removed(&self, id: &str, pending: DockerError) -> Result<(), DockerError> {
        let deadline = tokio::time::Instant::now() + CONCURRENT_REMOVAL_WAIT;
        while tokio::time::Instant::now() < deadline {
            if self.inspect_container(id).await?.is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(pending)
    }

    /// The container whose ID is, or starts with, `id`; never one Docker
    /// found by its name (a CRI ID is an ID, not `k8s_POD_…`).
    pub async fn inspect_by_id(&self, id: &str) -> Result<Option<ContainerDetails>, DockerError> {
        if !crate::validate::is_id_prefix(id) {
            return Ok(None);
        }
        Ok(self.inspect_container(id).await?.filter(|d| d.id.starts_with(id)))
    }

    pub async fn inspect_container(&self, id: &str) -> Result<Option<ContainerDetails>, DockerError> {
        let client = self.client().await?;
        let c = match timed("container_inspect", client.inspect_container(id, None)).await.map_err(|e| self.error(e)) {
            Ok(c) => c,
            Err(DockerError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let state = c.state.unwrap_or_default();
        let network = c.network_settings.and_then(|n| n.networks).unwrap_or_default();
        let endpoint = network.into_values().next().unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        let upper_dir = c.graph_driver.and_then(|g| g.data.get("UpperDir").cloned()).unwrap_or_default();
        let image_manifest = c.image_manifest_descriptor.and_then(|d| d.digest).unwrap_or_default();
        Ok(Some(ContainerDetails {
            id: c.id.unwrap_or_default(),
            name: c.name.unwrap_or_default().trim_start_matches('/').to_string(),
            image_id: c.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            created_at: c.created.as_deref().and_then(parse_rfc3339_nanos).unwrap_or_default(),
            state: RunState {
                status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                running: state.running.unwrap_or_default(),
                pid: state.pid.unwrap_or_default(),
                exit_code: state.exit_code.unwrap_or_default(),
                oom_killed: state.oom_killed.unwrap_or_default(),
                error: state.error.unwrap_or_default(),
                started_at: state.started_at.as_deref().and_then(parse_rfc3339_nanos).unwrap_or_default(),
                finished_at: state.finished_at.as_deref().and_then(parse_rfc3339_nanos).unwrap_or_default(),
            },
            ipv4: endpoint.ip_address.unwrap_or_default(),
            ipv6: endpoint.global_ipv6_address.unwrap_or_default(),
            resolv_conf_path: c.resolv_conf_path.unwrap_or_default(),
            mounts: c
                .mounts
                .unwrap_or_default()
                .into_iter()
                .map(|m| MountInfo {
                    source: m.source.unwrap_or_default(),
                    destination: m.destination.unwrap_or_default(),
                    read_only: !m.rw.unwrap_or(true),
                    propagation: m.propagation.unwrap_or_default(),
                })
                .collect(),
            user: config.user.unwrap_or_default(),
            tty: config.tty.unwrap_or_default(),
            open_stdin: config.open_stdin.unwrap_or_default(),
            stop_signal: config.stop_signal.unwrap_or_default(),
            oom_score_adj: host.oom_score_adj.unwrap_or_default(),
            upper_dir,
            image_manifest,
            resources: Resources {
                cpu_period: host.cpu_period,
                cpu_quota: host.cpu_quota,
                cpu_shares: host.cpu_shares,
                memory: host.memory,
                memory_swap: host.memory_swap,
                cpuset_cpus: host.cpuset_cpus,
                cpuset_mems: host.cpuset_mems,
            },
        }))
    }

    /// Every container (running or not) carrying all of `labels` (`key` or `key=value`).
    pub async fn list_containers(&self, labels: &[&str]) -> Result<Vec<ContainerSummary>, DockerError> {
        let client = self.client().await?;
        let filters = HashMap::from([("label", labels.to_vec())]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = timed("container_list", client.list_containers(Some(options))).await.map_err(|e| self.error(e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                labels: c.labels.unwrap_or_default(),
                created: c.created.unwrap_or_default(),
                status: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }

    /// Changes the cgroup limits of a live container.
    pub async fn update_resources(&self, id: &str, r: Resources) -> Result<(), DockerError> {
        let client = self.client().await?;
        let body = ContainerUpdateBody {
            cpu_period: r.cpu_period,
            cpu_quota: r.cpu_quota,
            cpu_shares: r.cpu_shares,
            memory: r.memory,
            memory_swap: r.memory_swap,
            cpuset_cpus: r.cpuset_cpus,
            cpuset_mems: r.cpuset_mems,
            ..Default::default()
        };
        timed("container_update", client.update_container(id, body)).await.map_err(|e| self.error(e))
    }
}

fn create_body(spec: CreateSpec, api: ApiVersion) -> Result<ContainerCreateBody, DockerError> {
    let (binds, mut mounts) = host_mounts(spec.mounts, api)?;
    mounts.extend(image_mounts(spec.image_mounts, api)?);
    let exposed: Vec<String> = spec.ports.iter().map(|p| p.container_port.clone()).collect();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        let binding = PortBinding {
            host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
            host_port: (p.host_port != 0).then(|| p.host_port.to_string()),
        };
        bindings
            .entry(p.container_port.clone())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_default()
            .push(binding);
    }
    let r = spec.resources;
    let host_config = HostConfig {
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        network_mode: spec.network_mode,
        ipc_mode: spec.ipc_mode,
        pid_mode: spec.pid_mode,
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        devices: non_empty(
            spec.devices
                .into_iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host_path),
                    path_in_container: Some(d.container_path),
                    cgroup_permissions: Some(d.permissions),
                })
                .collect(),
        ),
        device_requests: (!spec.cdi_devices.is_empty()).then(|| {
            vec![DeviceRequest {
                driver: Some("cdi".to_string()),
                device_ids: Some(spec.cdi_devices),
                ..Default::default()
            }]
        }),
        privileged: Some(spec.privileged),
        cap_add: non_empty(spec.cap_add),
        cap_drop: non_empty(spec.cap_drop),
        group_add: non_empty(spec.group_add),
        readonly_rootfs: Some(spec.readonly_rootfs),
        security_opt: non_empty(spec.security_opt),
        masked_paths: spec.masked_paths,
        readonly_paths: spec.readonly_paths,
        sysctls: (!spec.sysctls.is_empty()).then_some(spec.sysctls),
        cgroup_parent: spec.cgroup_parent,
        runtime: spec.runtime,
        oom_score_adj: spec.oom_score_adj,
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory: r.memory,
        memory_swap: r.memory_swap,
        cpuset_cpus: r.cpuset_cpus,
        cpuset_mems: r.cpuset_mems,
        // kubelet restarts containers itself; Docker must not.
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        hostname: spec.hostname,
        user: spec.user,
        tty: Some(spec.tty),
        open_stdin: Some(spec.open_stdin),
        stdin_once: Some(spec.stdin_once),
        attach_stdin: Some(spec.open_stdin),
        env: non_empty(spec.env),
        cmd: spec.cmd,
        entrypoint: spec.entrypoint,
        image: Some(spec.image),
        working_dir: spec.working_dir,
        labels: Some(spec.labels),
        stop_signal: spec.stop_signal,
        exposed_ports: non_empty(exposed),
        host_config: Some(host_config),
        ..Default::default()
    })
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}
