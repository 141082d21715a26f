//! Pod sandboxes: one pause container per pod holds its network and IPC
//! namespaces; its labels hold the pod's CRI metadata.

mod dns;
mod error;
mod network;
mod recovery;
mod resources;
mod spec;
mod validate;

pub use dns::DnsConfig;
pub use error::SandboxError;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use crate::api;
use crate::docker::{ContainerDetails, ContainerSummary, Docker, DockerError, ignore_missing};
use crate::fault::{self, CrashHook};
use crate::host::HostLimits;
use crate::image::ImageService;
use crate::index::{ContainerIndex, Derived, Ticket};
use crate::labels;
use crate::network::{Cni, NetnsPins, SandboxLocks};
use crate::time::now_nanos;
use network::NetworkKind;
use resources::Resizes;

/// How long the pause container gets to exit on SIGTERM before SIGKILL.
const PAUSE_STOP_TIMEOUT_SECS: i64 = 10;

/// Settings of the sandbox service.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub infra_image: String,
    pub limits: HostLimits,
    /// `--root-dir`: marks this instance's sandboxes; pins live under it.
    pub root_dir: PathBuf,
    /// Test-only fault hook; inert unless armed.
    pub crash: CrashHook,
}

pub struct SandboxService {
    docker: Docker,
    images: Arc<ImageService>,
    config: SandboxConfig,
    /// Set with `--network-plugin=cni`: pods get their network from CNI.
    cni: Option<Arc<Cni>>,
    /// The node's pod CIDRs from UpdateRuntimeConfig, offered to IPAM.
    pod_cidrs: std::sync::RwLock<Vec<String>>,
    /// Serves ListPodSandbox; told of every change made here.
    index: Arc<ContainerIndex>,
    /// Each CNI pod's network namespace, pinned for the pod's lifetime.
    pins: NetnsPins,
    /// CNI sandboxes whose ADD finished and is cached: only they are READY.
    /// Learnt from the cache after a restart; lost with the process.
    networked: RwLock<HashSet<String>>,
    /// One RunPodSandbox per Docker name at a time, so a leftover found
    /// under the lock is abandoned, not being made.
    runs: SandboxLocks,
    /// The last UpdatePodSandboxResources of each sandbox.
    resizes: Resizes,
    /// The pause image's ID once found, so a pod start need not ask Docker;
    /// forgotten when Docker no longer has it.
    infra_image_id: std::sync::Mutex<Option<String>>,
    /// Each indexed sandbox as read back from its labels, once per reading.
    read_back: Derived<Sandbox>,
}

/// A sandbox as stored in Docker, read back from its labels.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub metadata: api::PodSandboxMetadata,
    pub ready: bool,
    pub created_at: i64,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    pub runtime_handler: String,
    pub log_directory: String,
    pub cgroup_parent: String,
    pub namespaces: api::NamespaceOption,
    pub network: NetworkKind,
}

impl SandboxService {
    pub fn new(
        docker: Docker,
        images: Arc<ImageService>,
        config: SandboxConfig,
        cni: Option<Arc<Cni>>,
        index: Arc<ContainerIndex>,
    ) -> Self {
        // Derived from --root-dir: instances sharing a dockerd each reconcile
        // only their own pins, and no flag is needed. Any filesystem takes a
        // bind mount onto a file; a reboot leaves plain files, read as unpinned.
        let pins = NetnsPins::new(config.root_dir.join("netns"));
        SandboxService {
            docker,
            images,
            config,
            cni,
            pod_cidrs: Default::default(),
            index,
            pins,
            networked: Default::default(),
            runs: SandboxLocks::default(),
            resizes: Resizes::default(),
            infra_image_id: Default::default(),
            read_back: Derived::default(),
        }
    }

    /// Records the node's pod CIDR(s) (comma-separated) for later pods.
    pub fn set_pod_cidr(&self, cidr: &str) {
        let cidrs = cidr.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect();
        tracing::info!(pod_cidr = cidr, "pod CIDR updated");
        *self.pod_cidrs.write().unwrap_or_else(std::sync::PoisonError::into_inner) = cidrs;
    }

    fn pod_cidrs(&self) -> Vec<String> {
        self.pod_cidrs.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn network_kind(&self, config: &api::PodSandboxConfig) -> NetworkKind {
        let linux = config.linux.as_ref();
        let namespaces = linux.and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.as_ref());
        match (namespaces.map(|n| n.network()), &self.cni) {
            (Some(api::NamespaceMode::Node), _) => NetworkKind::Host,
            (_, Some(_)) => NetworkKind::Cni,
            (_, None) => NetworkKind::DockerBridge,
        }
    }

    /// Creates and starts the pod's pause container; returns the sandbox ID.
    pub async fn run(&self, config: &api::PodSandboxConfig, runtime_handler: &str) -> Result<String, SandboxError> {
        let metadata = config.metadata.as_ref().ok_or_else(|| invalid("metadata is required"))?;
        if metadata.name.is_empty() || metadata.uid.is_empty() || metadata.namespace.is_empty() {
            return Err(invalid("metadata needs name, uid and namespace"));
        }
        let runtime = self.runtime_for(runtime_handler).await?;
        let image_id = self.infra_image().await?;
        let network = self.network_kind(config);
        let mut spec =
            spec::create_spec(config, network, runtime_handler, runtime, &image_id, &self.config.limits, now_nanos())?;
        spec.labels.insert(labels::ROOT_DIR.to_string(), self.root_dir_label());
        let name = spec.name.clone();
        let _making = self.runs.lock(&name).await;
        let id = match self.docker.create_container(spec.clone()).await {
            Err(DockerError::Conflict(_)) => {
                self.replace_leftover(&name).await?;
                self.docker.create_container(spec).await?
            }
            // The remembered pause image was removed: find or pull it again.
            Err(DockerError::NotFound(_)) => {
                self.forget_infra_image();
                spec.image = self.infra_image().await?;
                self.docker.create_container(spec).await?
            }
            other => other?,
        };
        match self.start(&id, config, network).await {
            // Nothing pinshim does after that reading changes what Docker reports.
            Ok((ticket, details)) => self.index.record(ticket, &details),
            Err(e) => {
                // A pod that did not start must not linger half-made (a failed
                // ADD has undone itself).
                let _ = self.release_pin(&id).await;
                let _ = self.docker.remove_container(&id).await;
                self.index.refresh(&id).await;
                return Err(e);
            }
        }
        tracing::info!(sandbox_id = %id, pod = %metadata.name, namespace = %metadata.namespace, "pod sandbox running");
        Ok(id)
    }

    /// Starts the pause container and brings up the pod's network; gives the
    /// reading of the started container and the index ticket drawn before it.
    async fn start(
        &self,
        id: &str,
        config: &api::PodSandboxConfig,
        network: NetworkKind,
    ) -> Result<(Ticket, ContainerDetails), SandboxError> {
        self.docker.start_container(id).await?;
        self.config.crash.at(fault::point::AFTER_PAUSE_START);
        let ticket = self.index.ticket();
        let details = self.docker.inspect_container(id).await?.ok_or_else(|| SandboxError::NotFound(id.to_string()))?;
        // DNS first: the cached ADD result, written last, marks a finished pod.
        write_dns(config, &details.resolv_conf_path).await?;
        if let (NetworkKind::Cni, Some(cni)) = (network, &self.cni) {
            let netns = self.pins.pin(id, details.state.pid).await.map_err(|e| self.pin_error(id, e))?;
            self.config.crash.at(fault::point::AFTER_NETNS_PIN);
            cni.add(&network::pod_network(id, Some(netns), config, self.pod_cidrs())).await?;
            self.set_networked(id, true);
        }
        Ok((ticket, details))
    }

    async fn runtime_for(&self, handler: &str) -> Result<Option<String>, SandboxError> {
        if handler.is_empty() {
            return Ok(None);
        }
        let known = self.docker.info().await?.runtimes;
        if known.iter().any(|r| r == handler) {
            Ok(Some(handler.to_string()))
        } else {
            Err(SandboxError::UnknownRuntimeHandler { handler: handler.to_string(), known })
        }
    }

    /// The pause image's ID, pulled by digest the first time (credentials
    /// from Docker's config.json: kubelet sends none for it).
    async fn infra_image(&self) -> Result<String, SandboxError> {
        if let Some(id) = self.infra_image_id.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(id);
        }
        let image = &self.config.infra_image;
        let failed = |source| SandboxError::InfraImage { image: image.clone(), source };
        let id = match self.images.status(image).await.map_err(failed)? {
            Some(status) => status.image.id,
            None => self.images.pull(image, None).await.map_err(failed)?.image_id,
        };
        *self.infra_image_id.lock().unwrap_or_else(PoisonError::into_inner) = Some(id.clone());
        Ok(id)
    }

    fn forget_infra_image(&self) {
        *self.infra_image_id.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Stops every container of the pod, then the pause container. Stopping
    /// a stopped or removed sandbox succeeds.
    pub async fn stop(&self, id: &str) -> Result<(), SandboxError> {
        let Some((sandbox, details)) = self.find(id).await? else { return Ok(()) };
        let members = self.members(&sandbox.id).await?;
        let result = self.stop_all(&sandbox, details.state.pid, &members).await;
        self.refresh_all(&sandbox.id, &members).await;
        result
    }

    async fn stop_all(&self, sandbox: &Sandbox, pid: i64, members: &[ContainerSummary]) -> Result<(), SandboxError> {
        for container in members {
            ignore_missing(self.docker.stop_container(&container.id, 0).await)?;
        }
        self.detach_network(sandbox, pid).await?;
        ignore_missing(self.docker.stop_container(&sandbox.id, PAUSE_STOP_TIMEOUT_SECS).await)?;
        Ok(())
    }

    /// Brings the index up to date with the pod after a change to it.
    async fn refresh_all(&self, sandbox_id: &str, members: &[ContainerSummary]) {
        for container in members {
            self.index.refresh(&container.id).await;
        }
        self.index.refresh(sandbox_id).await;
    }

    /// Removes the pod's containers and the pause container. Removing an
    /// absent sandbox succeeds.
    pub async fn remove(&self, id: &str) -> Result<(), SandboxError> {
        let Some((sandbox, details)) = self.find(id).await? else { return Ok(()) };
        let members = self.members(&sandbox.id).await?;
        let result = self.remove_all(&sandbox, details.state.pid, &members).await;
        self.refresh_all(&sandbox.id, &members).await;
        if result.is_ok() {
            self.resizes.forget(&sandbox.id);
        }
        result
    }

    async fn remove_all(&self, sandbox: &Sandbox, pid: i64, members: &[ContainerSummary]) -> Result<(), SandboxError> {
        let host_mounts = crate::host_mounts::HostMounts::new(&self.config.root_dir);
        for container in members {
            ignore_missing(self.docker.remove_container(&container.id).await)?;
            host_mounts.release_recorded(&container.labels);
        }
        self.detach_network(sandbox, pid).await?;
        self.release_pin(&sandbox.id).await?;
        ignore_missing(self.docker.remove_container(&sandbox.id).await)?;
        Ok(())
    }

    /// CNI DEL, from the attachment cache; idempotent, and works when the
    /// infra process is gone (the pin still holds the namespace) or
    /// pinshim restarted since ADD. `pid` is the infra process (0 when it
    /// is not running).
    async fn detach_network(&self, sandbox: &Sandbox, pid: i64) -> Result<(), SandboxError> {
        let (NetworkKind::Cni, Some(cni)) = (sandbox.network, &self.cni) else { return Ok(()) };
        let netns = self.netns_of(&sandbox.id, pid).await;
        let config = api::PodSandboxConfig { metadata: Some(sandbox.metadata.clone()), ..Default::default() };
        cni.del(&network::pod_network(&sandbox.id, netns, &config, self.pod_cidrs())).await?;
        self.set_networked(&sandbox.id, false);
        Ok(())
    }

    /// The pod's namespace for the plugins: its pin, else (a pod pinned by
    /// no one, from an older pinshim) the running infra process's.
    async fn netns_of(&self, sandbox_id: &str, pid: i64) -> Option<PathBuf> {
        if self.pins.is_pinned(sandbox_id).await {
            return Some(self.pins.path(sandbox_id));
        }
        Some(pid).filter(|p| *p > 0).map(|p| PathBuf::from(format!("/proc/{p}/ns/net")))
    }

    async fn release_pin(&self, sandbox_id: &str) -> Result<(), SandboxError> {
        self.pins.release(sandbox_id).await.map_err(|e| self.pin_error(sandbox_id, e))
    }

    fn pin_error(&self, sandbox_id: &str, source: std::io::Error) -> SandboxError {
        SandboxError::Io { path: self.pins.path(sandbox_id).display().to_string(), source }
    }

    fn root_dir_label(&self) -> String {
        self.config.root_dir.display().to_string()
    }

    async fn members(&self, sandbox_id: &str) -> Result<Vec<ContainerSummary>, SandboxError> {
        Ok(self.docker.list_containers(&[&format!("{}={sandbox_id}", labels::SANDBOX_ID)]).await?)
    }

    /// The sandbox `id` names (full ID or unique prefix), if it is
    /// pinshim's, with Docker's view of its infra container.
    pub async fn find(&self, id: &str) -> Result<Option<(Sandbox, ContainerDetails)>, SandboxError> {
        if id.is_empty() {
            return Err(invalid("pod sandbox id is required"));
        }
        let Some(details) = self.docker.inspect_by_id(id).await?.filter(is_sandbox) else { return Ok(None) };
        Ok(Some((self.read_back(&details).await, details)))
    }

    /// The sandbox its infra container's details describe, READY only as
    /// `is_ready` decides.
    async fn read_back(&self, details: &ContainerDetails) -> Sandbox {
        let mut sandbox = from_details(details);
        sandbox.ready = self.is_ready(&sandbox).await;
        sandbox
    }

    /// Like `get`, but answered from the index while it follows Docker,
    /// for a caller that joins the sandbox (CreateContainer) rather than
    /// reports on it.
    pub async fn get_current(&self, id: &str) -> Result<(Sandbox, ContainerDetails), SandboxError> {
        match self.index.current(id).filter(|d| is_sandbox(d)) {
            Some(details) => Ok((self.read_back(&details).await, (*details).clone())),
            None => self.get(id).await,
        }
    }

    /// Like `find`, but an absent sandbox is `NotFound`.
    pub async fn get(&self, id: &str) -> Result<(Sandbox, ContainerDetails), SandboxError> {
        self.find(id).await?.ok_or_else(|| SandboxError::NotFound(id.to_string()))
    }

    /// Where a PortForward connects: the running pod's infra process, whose
    /// network namespace is the pod's. Gives the sandbox's full ID and that
    /// process's PID.
    pub async fn port_forward_target(&self, id: &str) -> Result<(String, i64), SandboxError> {
        let (sandbox, details) = self.get(id).await?;
        if !sandbox.ready || details.state.pid <= 0 {
            return Err(SandboxError::NotReady(sandbox.id));
        }
        Ok((sandbox.id, details.state.pid))
    }

    /// UpdatePodSandboxResources: the overhead goes onto the sandbox
    /// container's cgroup; both sets are checked and recorded for verbose
    /// status. See `resources`.
    pub async fn update_resources(
        &self,
        id: &str,
        overhead: Option<&api::LinuxContainerResources>,
        resources: Option<&api::LinuxContainerResources>,
    ) -> Result<(), SandboxError> {
        let invalid = |field: &str, why: String| SandboxError::InvalidConfig(format!("{field}: {why}"));
        let wanted = overhead.map(crate::resources::for_docker).transpose().map_err(|e| invalid("overhead", e))?;
        if let Some(r) = resources {
            crate::resources::check(r).map_err(|e| invalid("resources", e))?;
        }
        let (sandbox, _) = self.get(id).await?;
        let applied = wanted.filter(|w| *w != crate::docker::Resources::default());
        if let Some(settings) = &applied {
            self.docker.update_resources(&sandbox.id, settings.clone()).await?;
        }
        let update = resources::describe(overhead, resources, applied.as_ref(), now_nanos());
        tracing::info!(sandbox_id = %sandbox.id, update = %update, "pod sandbox resources updated");
        self.resizes.record(&sandbox.id, update);
        Ok(())
    }

    /// PodSandboxStatus: state, IPs, namespaces, labels and annotations.
    pub async fn status(&self, id: &str, verbose: bool) -> Result<api::PodSandboxStatusResponse, SandboxError> {
        let (sandbox, details) = self.get(id).await?;
        self.status_from(sandbox, &details, verbose).await
    }

    /// The status of sandbox `id` (its full ID) as last read from Docker,
    /// without asking Docker: for events while dockerd shuts down.
    pub async fn last_known_status(&self, id: &str) -> Option<api::PodSandboxStatus> {
        let details = self.index.last_known(id).filter(|d| is_sandbox(d))?;
        self.status_from(self.read_back(&details).await, &details, false).await.ok()?.status
    }

    async fn status_from(
        &self,
        sandbox: Sandbox,
        details: &ContainerDetails,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse, SandboxError> {
        let network = self.network_status(&sandbox, details).await?;
        let mut info = HashMap::new();
        if verbose {
            let detail = serde_json::json!({
                "pid": details.state.pid,
                "dockerName": details.name,
                "image": details.image_id,
                "resolvConfPath": details.resolv_conf_path,
                "runtimeHandler": sandbox.runtime_handler,
                "hostLimits": self.config.limits,
                "resources": {
                    "sandboxContainer": resources::in_force(&details.resources),
                    "lastUpdate": self.resizes.last(&sandbox.id),
                },
            });
            info.insert("info".to_string(), detail.to_string());
        }
        let status = api::PodSandboxStatus {
            id: sandbox.id,
            metadata: Some(sandbox.metadata),
            state: state_of(sandbox.ready) as i32,
            created_at: sandbox.created_at,
            network,
            linux: Some(api::LinuxPodSandboxStatus {
                namespaces: Some(api::Namespace { options: Some(sandbox.namespaces) }),
            }),
            labels: sandbox.labels,
            annotations: sandbox.annotations,
            runtime_handler: sandbox.runtime_handler,
        };
        Ok(api::PodSandboxStatusResponse {
            status: Some(status),
            info,
            containers_statuses: Vec::new(),
            timestamp: now_nanos(),
        })
    }

    /// The pod's IPs: CNI's from its cached result, Docker's from inspect;
    /// none for host-network pods (kubelet uses the node's).
    async fn network_status(
        &self,
        sandbox: &Sandbox,
        details: &ContainerDetails,
    ) -> Result<Option<api::PodSandboxNetworkStatus>, SandboxError> {
        let (ip, others) = match (sandbox.network, &self.cni) {
            (NetworkKind::Host, _) => return Ok(None),
            (NetworkKind::Cni, Some(cni)) => {
                network::split_ips(&cni.ips(&sandbox.id).await?.map(|p| p.ips).unwrap_or_default())
            }
            _ => (details.ipv4.clone(), [details.ipv6.clone()].into_iter().filter(|ip| !ip.is_empty()).collect()),
        };
        let additional_ips = others.into_iter().map(|ip| api::PodIp { ip }).collect();
        Ok(Some(api::PodSandboxNetworkStatus { ip, additional_ips }))
    }

    /// ListPodSandbox with its filters: ID or ID prefix, state, labels.
    /// Served from the index when it is in step with Docker.
    pub async fn list(&self, filter: Option<&api::PodSandboxFilter>) -> Result<Vec<api::PodSandbox>, SandboxError> {
        let mut found: Vec<Sandbox> = match self.index.snapshot(labels::KIND_SANDBOX) {
            Some(all) => self.read_back.all(&all, from_details),
            None => self
                .docker
                .list_containers(&[&labels::kind_filter(labels::KIND_SANDBOX)])
                .await?
                .iter()
                .map(|s| from_labels(&s.id, &s.labels, s.status == "running", s.created * 1_000_000_000))
                .collect(),
        };
        self.learn_networked(&found).await;
        for sandbox in &mut found {
            sandbox.ready = self.ready_now(sandbox);
        }
        let mut sandboxes: Vec<api::PodSandbox> = found
            .into_iter()
            .filter(|s| filter.is_none_or(|f| matches(s, f)))
            .map(|sandbox| api::PodSandbox {
                id: sandbox.id,
                metadata: Some(sandbox.metadata),
                state: state_of(sandbox.ready) as i32,
                created_at: sandbox.created_at,
                labels: sandbox.labels,
                annotations: sandbox.annotations,
                runtime_handler: sandbox.runtime_handler,
            })
            .collect();
        sandboxes.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(sandboxes)
    }
}

impl SandboxService {
    /// The indexed sandboxes matching `filter`, with their full details;
    /// `None` while the index is not in step with Docker.
    pub fn indexed(&self, filter: &api::PodSandboxFilter) -> Option<Vec<(Sandbox, Arc<ContainerDetails>)>> {
        let all = self.index.snapshot(labels::KIND_SANDBOX)?;
        let read_back = self.read_back.all(&all, from_details);
        let matching = read_back.into_iter().zip(all).filter_map(|(mut sandbox, d)| {
            sandbox.ready = self.ready_now(&sandbox);
            matches(&sandbox, filter).then_some((sandbox, d))
        });
        Some(matching.collect())
    }
}

impl SandboxService {
    /// READY: the pause container runs and, with CNI, its ADD finished and
    /// was cached (a pod whose RunPodSandbox was cut short is NOTREADY).
    async fn is_ready(&self, sandbox: &Sandbox) -> bool {
        self.learn_networked(std::slice::from_ref(sandbox)).await;
        self.ready_now(sandbox)
    }

    /// `is_ready` as far as already known, without I/O.
    fn ready_now(&self, sandbox: &Sandbox) -> bool {
        let networked = || self.networked.read().unwrap_or_else(PoisonError::into_inner).contains(&sandbox.id);
        sandbox.ready && (sandbox.network != NetworkKind::Cni || self.cni.is_none() || networked())
    }

    /// Looks up, in one listing of the CNI cache, which running CNI
    /// sandboxes not yet known to be networked are: after a restart, or
    /// pods of another instance. Nothing to look up costs nothing.
    async fn learn_networked(&self, sandboxes: &[Sandbox]) {
        let Some(cni) = &self.cni else { return };
        let unknown: Vec<&str> = {
            let known = self.networked.read().unwrap_or_else(PoisonError::into_inner);
            let unknown = sandboxes.iter().filter(|s| s.ready && s.network == NetworkKind::Cni);
            unknown.map(|s| s.id.as_str()).filter(|id| !known.contains(*id)).collect()
        };
        if unknown.is_empty() {
            return;
        }
        match cni.attached_among(&unknown).await {
            Ok(found) => self.networked.write().unwrap_or_else(PoisonError::into_inner).extend(found),
            Err(error) => tracing::warn!(%error, "cannot read the cni cache: unknown pods stay not ready"),
        }
    }

    fn set_networked(&self, sandbox_id: &str, networked: bool) {
        let mut set = self.networked.write().unwrap_or_else(PoisonError::into_inner);
        if networked {
            set.insert(sandbox_id.to_string());
        } else {
            set.remove(sandbox_id);
        }
    }
}

/// Writes the pod's resolv.conf when the config sets DNS.
async fn write_dns(config: &api::PodSandboxConfig, path: &str) -> Result<(), SandboxError> {
    let dns = config.dns_config.as_ref().map(spec::dns_config).unwrap_or_default();
    if dns.is_empty() {
        return Ok(());
    }
    let io = |source| SandboxError::Io { path: path.to_string(), source };
    tokio::fs::write(path, dns.render()).await.map_err(io)
}

fn matches(s: &Sandbox, f: &api::PodSandboxFilter) -> bool {
    (f.id.is_empty() || s.id.starts_with(&f.id))
        && f.state.as_ref().is_none_or(|v| v.state == state_of(s.ready) as i32)
        && f.label_selector.iter().all(|(k, v)| s.labels.get(k) == Some(v))
}

fn state_of(ready: bool) -> api::PodSandboxState {
    if ready { api::PodSandboxState::SandboxReady } else { api::PodSandboxState::SandboxNotready }
}

fn is_sandbox(d: &ContainerDetails) -> bool {
    labels::get(&d.labels, labels::KIND) == labels::KIND_SANDBOX
}

fn from_details(d: &ContainerDetails) -> Sandbox {
    from_labels(&d.id, &d.labels, d.state.running, d.created_at)
}

/// Reads a sandbox back from its labels. The creation time pinshim stored
/// wins over Docker's, so list and status agree to the nanosecond.
fn from_labels(id: &str, l: &HashMap<String, String>, running: bool, docker_created: i64) -> Sandbox {
    Sandbox {
        id: id.to_string(),
        metadata: api::PodSandboxMetadata {
            name: labels::get(l, labels::NAME),
            uid: labels::get(l, labels::UID),
            namespace: labels::get(l, labels::NAMESPACE),
            attempt: labels::get_u32(l, labels::ATTEMPT),
        },
        ready: running,
        created_at: l.get(labels::CREATED_AT).and_then(|v| v.parse().ok()).unwrap_or(docker_created),
        labels: labels::decode_map(l, labels::LABELS),
        annotations: labels::decode_map(l, labels::ANNOTATIONS),
        runtime_handler: labels::get(l, labels::RUNTIME_HANDLER),
        log_directory: labels::get(l, labels::LOG_DIRECTORY),
        cgroup_parent: labels::get(l, labels::CGROUP_PARENT),
        network: NetworkKind::from_label(&labels::get(l, labels::NETWORK)),
        namespaces: spec::decode_namespaces(&labels::get(l, labels::NAMESPACES)),
    }
}

fn invalid(why: &str) -> SandboxError {
    SandboxError::InvalidConfig(why.to_string())
}
