//! Containers in pods: lifecycle, status, exec, logs, and the label schema
//! that keeps all their CRI state in Docker.

mod checkpoint;
mod cri_log;
mod error;
mod events;
mod live;
mod log_open;
mod logs;
mod mounts;
mod signal;
mod spec;
mod status;
mod validate;

pub use error::ContainerError;
pub use log_open::LogError;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::api;
use crate::docker::{ContainerDetails, Docker, DockerError, StdioFlags, ignore_missing};
use crate::host::HostLimits;
use crate::host_mounts::{self, HostMounts};
use crate::image::ImageService;
use crate::index::{ContainerIndex, Derived};
use crate::labels;
use crate::sandbox::SandboxService;
use crate::time::now_nanos;
use logs::LogManager;
use spec::ImageIdentity;

/// ExecSync keeps at most this much output, stdout and stderr together.
const EXEC_OUTPUT_CAP: usize = 16 * 1024 * 1024;

pub struct ContainerService {
    docker: Docker,
    images: Arc<ImageService>,
    sandboxes: Arc<SandboxService>,
    logs: Arc<LogManager>,
    limits: HostLimits,
    /// This instance's `--root-dir`, stamped on every container it creates.
    root_dir: String,
    /// Binds with mount options, prepared under the root dir.
    host_mounts: HostMounts,
    /// Serves ListContainers; told of every change made here.
    index: Arc<ContainerIndex>,
    /// Each indexed container's listing entry, made once per reading.
    listed: Derived<api::Container>,
}

impl ContainerService {
    pub fn new(
        docker: Docker,
        images: Arc<ImageService>,
        sandboxes: Arc<SandboxService>,
        limits: HostLimits,
        state_dir: PathBuf,
        index: Arc<ContainerIndex>,
    ) -> Self {
        let logs = LogManager::new(docker.clone(), state_dir.join("log-positions"));
        let root_dir = state_dir.display().to_string();
        let host_mounts = HostMounts::new(&state_dir);
        let listed = Derived::default();
        ContainerService { docker, images, sandboxes, logs, limits, root_dir, host_mounts, index, listed }
    }

    /// Creates a container in a pod, recording which image it was created
    /// from, as Docker's ID and as the registry's digest, as of now.
    pub async fn create(&self, sandbox_id: &str, config: &api::ContainerConfig) -> Result<String, ContainerError> {
        let metadata = config.metadata.as_ref().ok_or_else(|| invalid("metadata is required"))?;
        if metadata.name.is_empty() {
            return Err(invalid("metadata.name is required"));
        }
        let (sandbox, _) = self.sandboxes.get_current(sandbox_id).await?;
        if !sandbox.ready {
            return Err(ContainerError::Sandbox(crate::sandbox::SandboxError::NotReady(sandbox.id)));
        }
        let image = self.image_identity(config.image.as_ref()).await?;
        self.images.admit_canonical(&image.canonical)?;
        let mut spec = spec::create_spec(config, &sandbox, &image, &self.limits, now_nanos())?;
        spec.labels.insert(labels::ROOT_DIR.to_string(), self.root_dir.clone());
        if !spec.cdi_devices.is_empty() && self.docker.info().await?.cdi_spec_dirs.is_empty() {
            return Err(ContainerError::CdiUnsupported);
        }
        let prepared = self.prepare_mounts(config, &mut spec).await?;
        let name = spec.name.clone();
        let id = match self.docker.create_container(spec).await {
            Ok(id) => id,
            Err(e) => {
                self.host_mounts.release_or_warn(&prepared);
                return Err(match e {
                    DockerError::Conflict(_) => ContainerError::AlreadyExists(name),
                    other => other.into(),
                });
            }
        };
        self.index.refresh(&id).await;
        tracing::info!(container_id = %id, sandbox_id = %sandbox.id, name = %metadata.name, image_id = %image.image_id, canonical = %image.canonical, "container created");
        Ok(id)
    }

    /// Resolves the requested image to what Docker holds, preferring the
    /// canonical reference of the name the user wrote when it leads to the
    /// same image (kubelet passes the image ID as `image`).
    async fn image_identity(&self, spec: Option<&api::ImageSpec>) -> Result<ImageIdentity, ContainerError> {
        let spec = spec.cloned().unwrap_or_default();
        if spec.image.is_empty() {
            return Err(invalid("image.image is required"));
        }
        // The name the user wrote is only a better hint; if it no longer
        // leads to this image (the tag moved), the ID-based answer stands.
        let named = if spec.user_specified_image.is_empty() || spec.user_specified_image == spec.image {
            None
        } else {
            self.images.status(&spec.user_specified_image).await.ok().flatten()
        };
        // kubelet's `image` is the ID the name led to at pull: then the
        // name's answer is also the ID's, and Docker need not be asked twice.
        let status = match &named {
            Some(named) if named.image.id == spec.image => named.clone(),
            _ => self
                .images
                .status(&spec.image)
                .await?
                .ok_or_else(|| ContainerError::ImageNotFound(spec.image.clone()))?,
        };
        let mut canonical = status.canonical;
        let mut reason = status.canonical_reason;
        if let Some(named) = named.filter(|n| n.image.id == status.image.id && n.canonical.is_some()) {
            canonical = named.canonical;
            reason = None;
        }
        Ok(ImageIdentity {
            requested: spec.image,
            user_specified: spec.user_specified_image,
            image_id: status.image.id,
            canonical: canonical.unwrap_or_default(),
            canonical_reason: reason.unwrap_or_default(),
        })
    }

    pub async fn start(&self, id: &str) -> Result<(), ContainerError> {
        // Start needs only the labels, which never change: the index's
        // reading serves when it has the container under its full ID.
        let details = match self.index_reading(id) {
            Some(details) => details,
            None => Arc::new(self.get(id).await?),
        };
        let log_path = labels::get(&details.labels, labels::LOG_PATH);
        // The file exists before the container starts, so kubelet can open
        // it as soon as this returns.
        let log = match log_path.as_str() {
            "" => None,
            path => Some(
                self.logs
                    .open(&details.id, &log_root(&details.labels, path), PathBuf::from(path))
                    .await
                    .map_err(|source| ContainerError::Log { path: log_path.clone(), source })?,
            ),
        };
        let started = self.docker.start_container(&details.id).await;
        // A failed start still changes what Docker reports (its error).
        self.index.refresh(&details.id).await;
        match started {
            Ok(()) | Err(DockerError::NotModified) => {}
            Err(e) => return Err(e.into()),
        }
        self.apply_unified(&details).await?;
        if let Some(log) = log {
            self.logs.follow_opened(&details.id, log);
        }
        Ok(())
    }

    /// Writes the create's `unified` settings into the started container's
    /// cgroup. Docker cannot write them before the process runs, so it runs
    /// briefly without them; a container they cannot be applied to is then
    /// stopped rather than left running without the limits it was created
    /// with. One that has already exited has nothing left to limit.
    async fn apply_unified(&self, details: &ContainerDetails) -> Result<(), ContainerError> {
        let unified = live::recorded_unified(&details.labels);
        if unified.is_empty() {
            return Ok(());
        }
        // The refresh after Docker's start has just read the container.
        let started = match self.index.current(&details.id) {
            Some(started) => started,
            None => Arc::new(self.get(&details.id).await?),
        };
        if !started.state.running || started.state.pid <= 0 {
            return Ok(());
        }
        let Err(e) = live::apply_unified(started.state.pid, &unified) else { return Ok(()) };
        let e = match self.not_running_or(&details.id, e).await {
            ContainerError::NotRunning(_) => return Ok(()), // It exited while they were written.
            e => e,
        };
        if let Err(kill) = self.docker.stop_container(&details.id, 0).await {
            tracing::warn!(container = %details.id, error = %kill, "cannot stop a container whose cgroup settings failed");
        }
        self.index.refresh(&details.id).await;
        Err(e)
    }

    /// Stops with SIGTERM (or the image's stop signal), SIGKILL after
    /// `timeout` seconds. Stopping a stopped or removed container succeeds.
    pub async fn stop(&self, id: &str, timeout: i64) -> Result<(), ContainerError> {
        let Some(details) = self.find(id).await? else { return Ok(()) };
        let stopped = ignore_missing(self.docker.stop_container(&details.id, timeout).await);
        self.index.refresh(&details.id).await;
        Ok(stopped?)
    }

    /// Removing an absent container succeeds.
    pub async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let Some(details) = self.find(id).await? else { return Ok(()) };
        let removed = ignore_missing(self.docker.remove_container(&details.id).await);
        self.index.refresh(&details.id).await;
        removed?;
        self.host_mounts.release_recorded(&details.labels);
        self.logs.forget(&details.id).await;
        Ok(())
    }

    pub async fn status(&self, id: &str, verbose: bool) -> Result<api::ContainerStatusResponse, ContainerError> {
        let mut d = self.get(id).await?;
        d.state.oom_killed |= !d.state.running && self.index.oom_killed(&d.id);
        if !d.state.running {
            self.logs.drained(&[&d.id], logs::DRAIN_WAIT).await;
        }
        let mut info = std::collections::HashMap::new();
        let canonical = labels::get(&d.labels, labels::CANONICAL_IMAGE_ID);
        // Denied after it started: reported, never stopped behind kubelet's back.
        let violation = self.images.policy_violation(&canonical);
        if let (Some(rule), true) = (&violation, d.state.running) {
            tracing::warn!(container_id = %d.id, image = %canonical, rule = %rule, "running container's image is denied by policy");
        }
        if verbose {
            let detail = serde_json::json!({
                "pid": d.state.pid,
                "dockerName": d.name,
                "sandboxId": labels::get(&d.labels, labels::SANDBOX_ID),
                "imageId": labels::get(&d.labels, labels::IMAGE_ID),
                "canonicalImageId": labels::get(&d.labels, labels::CANONICAL_IMAGE_ID),
                "canonicalImageIdReason": labels::get(&d.labels, labels::CANONICAL_REASON),
                "dockerImageId": d.image_id,
                "imageManifestDigest": d.image_manifest,
                "logPath": labels::get(&d.labels, labels::LOG_PATH),
                "policyViolation": violation,
                "imageVolumes": self.image_volumes_info(&d),
            });
            info.insert("info".to_string(), detail.to_string());
        }
        Ok(api::ContainerStatusResponse { status: Some(status_of(&d)), info })
    }

    /// Each image volume as recorded at create, with the policy's verdict
    /// on its digest now.
    fn image_volumes_info(&self, d: &ContainerDetails) -> Vec<serde_json::Value> {
        let with_verdict = |v: mounts::ImageVolume| {
            let violation = self.images.policy_violation(&v.canonical);
            let mut entry = serde_json::to_value(&v).unwrap_or_default();
            entry["policyViolation"] = serde_json::json!(violation);
            entry
        };
        mounts::recorded(&d.labels).into_iter().map(with_verdict).collect()
    }

    /// Served from the index when it is in step with Docker.
    pub async fn list(&self, filter: Option<&api::ContainerFilter>) -> Result<Vec<api::Container>, ContainerError> {
        let mut containers: Vec<api::Container> = match self.index.snapshot(labels::KIND_CONTAINER) {
            Some(all) => self
                .listed
                .all(&all, status::container_of)
                .into_iter()
                .zip(all.iter())
                .filter(|(_, d)| filter.is_none_or(|f| status::details_match(d, f)))
                .map(|(container, _)| container)
                .collect(),
            None => self
                .docker
                .list_containers(&[&labels::kind_filter(labels::KIND_CONTAINER)])
                .await?
                .iter()
                .map(status::container)
                .filter(|c| filter.is_none_or(|f| status::matches(c, f)))
                .collect(),
        };
        let exited: Vec<&str> = containers
            .iter()
            .filter(|c| c.state() == api::ContainerState::ContainerExited)
            .map(|c| c.id.as_str())
            .collect();
        self.logs.drained(&exited, logs::DRAIN_WAIT).await;
        containers.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(containers)
    }

    /// The indexed containers matching `filter`, with their full details;
    /// `None` while the index is not in step with Docker.
    pub fn indexed(&self, filter: &api::ContainerFilter) -> Option<Vec<Arc<ContainerDetails>>> {
        let all = self.index.snapshot(labels::KIND_CONTAINER)?;
        Some(all.into_iter().filter(|d| status::details_match(d, filter)).collect())
    }

    /// Docker's update carries neither `unified` nor the OOM score: they
    /// are written to the running processes and cgroup, which a stopped
    /// container does not have. `unified` goes first, so a key the cgroup
    /// refuses fails the call before Docker changes anything, and Docker
    /// refusing its part puts the files back as they were.
    pub async fn update_resources(
        &self,
        id: &str,
        resources: Option<&api::LinuxContainerResources>,
    ) -> Result<(), ContainerError> {
        let resources = resources.ok_or_else(|| invalid("linux resources are required"))?;
        let docker_resources = spec::docker_resources(resources)?;
        let details = self.get(id).await?;
        let oom_score_adj = self.limits.oom_score_adj(resources.oom_score_adj);
        let unified: BTreeMap<String, String> = resources.unified.clone().into_iter().collect();
        let live_change = !unified.is_empty() || oom_score_adj != details.oom_score_adj;
        if !details.state.running {
            if live_change {
                return Err(ContainerError::NotRunning(details.id));
            }
            return Ok(self.docker.update_resources(&details.id, docker_resources).await?);
        }
        let pid = details.state.pid;
        let before = live::live_unified(pid, &unified);
        let put_back = || {
            if let Err(e) = live::apply_unified(pid, &before) {
                tracing::warn!(container = %details.id, error = %e, "cannot restore unified settings");
            }
        };
        if let Err(e) = live::apply_unified(pid, &unified) {
            put_back();
            return Err(self.not_running_or(&details.id, e).await);
        }
        if let Err(e) = self.docker.update_resources(&details.id, docker_resources).await {
            put_back();
            return Err(e.into());
        }
        if live::oom_score_adj_of(pid) != Some(oom_score_adj)
            && let Err(e) = live::set_oom_score_adj(pid, oom_score_adj)
        {
            return Err(self.not_running_or(&details.id, e).await);
        }
        Ok(())
    }

    /// `NotRunning` when container `id` has stopped since it was read (what
    /// failed was writing to its processes), else `error`.
    async fn not_running_or(&self, id: &str, error: ContainerError) -> ContainerError {
        match self.get(id).await {
            Ok(details) if !details.state.running => ContainerError::NotRunning(details.id),
            _ => error,
        }
    }

    /// Closes and reopens the container's log file after kubelet rotated it.
    pub async fn reopen_log(&self, id: &str) -> Result<(), ContainerError> {
        let details = self.get(id).await?;
        if !details.state.running {
            return Err(ContainerError::NotRunning(details.id));
        }
        let log_path = labels::get(&details.labels, labels::LOG_PATH);
        let reopened = self
            .logs
            .reopen(&details.id)
            .await
            .map_err(|source| ContainerError::Log { path: log_path.clone(), source })?;
        if !reopened && !log_path.is_empty() {
            // No copier runs (e.g. it ended with a Docker hiccup): start one on the new file.
            self.logs
                .follow(&details.id, &log_root(&details.labels, &log_path), PathBuf::from(&log_path))
                .await
                .map_err(|source| ContainerError::Log { path: log_path.clone(), source })?;
        }
        Ok(())
    }

    /// Runs a command to completion. `timeout` 0 waits indefinitely; past a
    /// positive timeout the process is killed and the call fails.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<api::ExecSyncResponse, ContainerError> {
        if cmd.is_empty() {
            return Err(invalid("cmd is required"));
        }
        // Every exec probe lands here: the index answers whether the
        // container runs, and Docker refuses the exec of one that just
        // stopped before its event arrived.
        let details = match self.index_reading(id) {
            Some(details) => details,
            None => Arc::new(self.get(id).await?),
        };
        if !details.state.running {
            return Err(ContainerError::NotRunning(details.id.clone()));
        }
        let limit = (timeout > 0).then(|| Duration::from_secs(timeout as u64));
        let out = match self.docker.exec(&details.id, cmd, limit, EXEC_OUTPUT_CAP).await {
            Err(DockerError::Conflict(_)) => return Err(ContainerError::NotRunning(details.id.clone())),
            other => other?,
        };
        let exit_code = out.exit_code.ok_or_else(|| ContainerError::ExecTimeout(details.id.clone()))?;
        Ok(api::ExecSyncResponse { stdout: out.stdout, stderr: out.stderr, exit_code })
    }

    /// Checks an Exec request: a command, streams the session can carry, and
    /// a running container. Gives the container's full ID to exec in.
    pub async fn exec_target(&self, id: &str, cmd: &[String], flags: StdioFlags) -> Result<String, ContainerError> {
        if cmd.is_empty() {
            return Err(invalid("cmd is required"));
        }
        check_streams(flags)?;
        Ok(self.running(id).await?.id)
    }

    /// Checks an Attach request: stdin only for containers created with it,
    /// and the TTY mode is the container's own. Gives the container's full
    /// ID and the streams to attach.
    pub async fn attach_target(&self, id: &str, flags: StdioFlags) -> Result<(String, StdioFlags), ContainerError> {
        let details = self.running(id).await?;
        if flags.stdin && !details.open_stdin {
            return Err(ContainerError::InvalidConfig(format!(
                "container {} was not created with stdin; cannot attach stdin",
                details.id
            )));
        }
        let flags = StdioFlags { tty: details.tty, stderr: flags.stderr && !details.tty, ..flags };
        check_streams(flags)?;
        Ok((details.id, flags))
    }

    async fn running(&self, id: &str) -> Result<ContainerDetails, ContainerError> {
        let details = self.get(id).await?;
        if !details.state.running {
            return Err(ContainerError::NotRunning(details.id));
        }
        Ok(details)
    }

    /// After a restart: resume copying logs (catching up on what was
    /// printed meanwhile) and remove containers whose pod no longer exists,
    /// for the containers this instance created.
    pub async fn recover(&self) -> Result<(), ContainerError> {
        let started = std::time::SystemTime::now();
        let ours = format!("{}={}", labels::ROOT_DIR, self.root_dir);
        let containers = self.docker.list_containers(&[&labels::kind_filter(labels::KIND_CONTAINER), &ours]).await?;
        let mut prepared = Vec::new();
        for c in containers {
            let sandbox_id = labels::get(&c.labels, labels::SANDBOX_ID);
            if self.sandboxes.find(&sandbox_id).await.ok().flatten().is_none() {
                tracing::warn!(container_id = %c.id, sandbox_id = %sandbox_id, "removing container whose pod sandbox is gone");
                if ignore_missing(self.docker.remove_container(&c.id).await).is_err() {
                    prepared.extend(host_mounts::recorded(&c.labels));
                }
                self.index.refresh(&c.id).await;
                continue;
            }
            prepared.extend(host_mounts::recorded(&c.labels));
            let log_path = labels::get(&c.labels, labels::LOG_PATH);
            if !log_path.is_empty()
                && c.status != "created"
                && let Err(e) = self.logs.follow(&c.id, &log_root(&c.labels, &log_path), PathBuf::from(&log_path)).await
            {
                tracing::warn!(container_id = %c.id, path = %log_path, error = %e, "cannot resume copying container output");
            }
        }
        self.host_mounts.reconcile(&prepared, started);
        // Containers made to look into an image live for one call; a crash
        // in it leaves one behind.
        let probes = self.docker.list_containers(&[&labels::kind_filter(labels::KIND_PROBE), &ours]).await?;
        for probe in probes {
            let _ = self.docker.remove_container(&probe.id).await;
        }
        Ok(())
    }

    async fn find(&self, id: &str) -> Result<Option<ContainerDetails>, ContainerError> {
        if id.is_empty() {
            return Err(invalid("container id is required"));
        }
        let details = self.docker.inspect_by_id(id).await?;
        Ok(details.filter(|d| labels::get(&d.labels, labels::KIND) == labels::KIND_CONTAINER))
    }

    /// Container `id` (its full ID) as the index has it while it follows
    /// Docker, for calls that can do without a fresh inspect.
    fn index_reading(&self, id: &str) -> Option<Arc<ContainerDetails>> {
        self.index.current(id).filter(|d| labels::get(&d.labels, labels::KIND) == labels::KIND_CONTAINER)
    }

    async fn get(&self, id: &str) -> Result<ContainerDetails, ContainerError> {
        self.find(id).await?.ok_or_else(|| ContainerError::NotFound(id.to_string()))
    }
}

/// A container's CRI status from its details.
fn status_of(d: &ContainerDetails) -> api::ContainerStatus {
    let user = if d.state.running { status::process_user(d.state.pid) } else { None };
    status::container_status(d, user)
}

/// The log directory a container's log file must stay in; containers
/// created before it was recorded keep to their file's own directory.
fn log_root(l: &std::collections::HashMap<String, String>, path: &str) -> PathBuf {
    match labels::get(l, labels::LOG_DIRECTORY) {
        dir if !dir.is_empty() => PathBuf::from(dir),
        _ => std::path::Path::new(path).parent().map(PathBuf::from).unwrap_or_default(),
    }
}

/// The CRI's rules for stream selection.
fn check_streams(flags: StdioFlags) -> Result<(), ContainerError> {
    if !(flags.stdin || flags.stdout || flags.stderr) {
        return Err(invalid("one of stdin, stdout and stderr must be requested"));
    }
    if flags.tty && flags.stderr {
        return Err(invalid("stderr cannot be requested with a tty: the tty merges it into stdout"));
    }
    Ok(())
}

fn invalid(why: &str) -> ContainerError {
    ContainerError::InvalidConfig(why.to_string())
}
