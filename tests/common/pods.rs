//! Helpers for pod and container tests: kubelet-shaped sandbox and container
//! configs, the calls kubelet makes in the order it makes them, polling with a
//! deadline, and clean-up (through the CRI, and through Docker after a panic).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oci_client::secrets::RegistryAuth;
use pinshim::api::image_service_client::ImageServiceClient;
use pinshim::api::runtime_service_client::RuntimeServiceClient;
use pinshim::api::{self, ContainerState, NamespaceMode};
use tonic::transport::Channel;

use super::registry::push_variant_with;
use super::{env, unique};

pub type Rt = RuntimeServiceClient<Channel>;
pub type Images = ImageServiceClient<Channel>;

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `probe` every 100 ms until it yields a value; panics naming `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------ images --

/// An image pushed for one test and pulled through the CRI.
#[derive(Clone, Debug)]
pub struct TestImage {
    /// What the user wrote: `registry/pinshim-test/<name>:<tag>`.
    pub reference: String,
    /// `registry/pinshim-test/<name>`.
    pub repo: String,
    /// Docker's image ID, as PullImage returned it.
    pub id: String,
    /// The manifest digest the registry served for the tag when it was pulled.
    pub digest: String,
    /// Removes the image from Docker if the test panics before its clean-up.
    _sweep: Arc<Sweep>,
}

impl TestImage {
    /// `repo@<manifest digest>`: what image_ref and canonical_image_id must say.
    pub fn canonical(&self) -> String {
        format!("{}@{}", self.repo, self.digest)
    }

    /// The ImageSpec kubelet puts in a ContainerConfig: the ID PullImage
    /// returned, plus what the pod spec said.
    pub fn spec(&self) -> api::ImageSpec {
        api::ImageSpec { image: self.id.clone(), user_specified_image: self.reference.clone(), ..Default::default() }
    }
}

/// What ContainerStatus.image says for a container created with `asked`:
/// what the user asked for (DESIGN §1, example `busybox:1.36`), so the pod
/// status kubelet builds from it shows the pod spec's image, not an ID. That
/// is `user_specified_image` when kubelet sent one (it sends the image ID in
/// `image`), else `image` as given (crictl); every other field untouched.
pub fn reported_image_spec(asked: &api::ImageSpec) -> api::ImageSpec {
    let mut spec = asked.clone();
    if !asked.user_specified_image.is_empty() {
        spec.image = asked.user_specified_image.clone();
    }
    spec
}

/// Pushes a fresh variant of the busybox test image to
/// `registry/pinshim-test/<name>:<tag>` (moving the tag if it exists) and
/// pulls it through the CRI.
pub async fn push_and_pull(images: &Images, name: &str, tag: &str) -> TestImage {
    push_and_pull_with(images, name, tag, |_| {}).await
}

/// Like `push_and_pull`, with the image config changed by `edit`.
pub async fn push_and_pull_with(
    images: &Images,
    name: &str,
    tag: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> TestImage {
    let repo = format!("{}/pinshim-test/{name}", env("PINSHIM_TEST_REGISTRY"));
    let reference = format!("{repo}:{tag}");
    let source = env("PINSHIM_TEST_BUSYBOX");
    let pushed = push_variant_with(&source, &reference, &unique("nonce"), &RegistryAuth::Anonymous, edit).await;
    let id = pull(images, &reference).await;
    assert_eq!(id, pushed.image_id().await, "PullImage returns Docker's image ID");
    let sweep = Arc::new(Sweep { containers: String::new(), image: id.clone() });
    TestImage { reference, repo, id, digest: pushed.digest, _sweep: sweep }
}

/// An image of `layers` (files only, lowest layer first; see
/// `registry::push_files_image`) under a unique name, pulled through the CRI.
pub async fn files_image(images: &Images, prefix: &str, layers: &[&[(&str, &str)]]) -> TestImage {
    let repo = format!("{}/pinshim-test/{}", env("PINSHIM_TEST_REGISTRY"), unique(prefix));
    let reference = format!("{repo}:v1");
    let pushed = super::registry::push_files_image(&reference, layers).await;
    let id = pull(images, &reference).await;
    assert_eq!(id, pushed.image_id().await, "PullImage returns Docker's image ID");
    let sweep = Arc::new(Sweep { containers: String::new(), image: id.clone() });
    TestImage { reference, repo, id, digest: pushed.digest, _sweep: sweep }
}

/// A busybox variant of its own under a unique repository name.
pub async fn fresh_image(images: &Images, prefix: &str) -> TestImage {
    push_and_pull(images, &unique(prefix), "v1").await
}

pub async fn pull(images: &Images, reference: &str) -> String {
    let request = api::PullImageRequest { image: Some(super::spec(reference)), ..Default::default() };
    images.clone().pull_image(request).await.unwrap_or_else(|e| panic!("pull {reference}: {e}")).into_inner().image_ref
}

pub async fn image_status(images: &Images, image: &str) -> api::Image {
    let request = api::ImageStatusRequest { image: Some(super::spec(image)), verbose: false };
    let response = images.clone().image_status(request).await.expect("image status").into_inner();
    response.image.unwrap_or_else(|| panic!("image {image} is present"))
}

pub async fn remove_image(images: &Images, id: &str) {
    let request = api::RemoveImageRequest { image: Some(super::spec(id)) };
    images.clone().remove_image(request).await.unwrap_or_else(|e| panic!("remove image {id}: {e}"));
}

// -------------------------------------------------------------------- pods --

/// The namespaces kubelet asks for by default: the pod's own network and
/// IPC, one PID namespace per container.
pub fn default_namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A PodSandboxConfig shaped like kubelet's for a pod called `name`, with a
/// unique namespace and uid, logging under `log_dir`.
pub fn sandbox_config(name: &str, log_dir: &Path) -> api::PodSandboxConfig {
    let namespace = unique("ns");
    let uid = unique("uid");
    let labels = HashMap::from([
        ("io.kubernetes.pod.name".to_string(), name.to_string()),
        ("io.kubernetes.pod.namespace".to_string(), namespace.clone()),
        ("io.kubernetes.pod.uid".to_string(), uid.clone()),
        ("app".to_string(), name.to_string()),
    ]);
    let annotations = HashMap::from([
        ("kubernetes.io/config.source".to_string(), "api".to_string()),
        ("pinshim.test/note".to_string(), format!("pod {name}: spaces, ünïcode & \"quotes\"")),
    ]);
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid,
            namespace: namespace.clone(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: log_dir.display().to_string(),
        // TEST-NET-1: written to resolv.conf, never contacted.
        dns_config: Some(api::DnsConfig {
            servers: vec!["192.0.2.10".to_string()],
            searches: vec![format!("{namespace}.svc.cluster.local"), "svc.cluster.local".to_string()],
            options: vec!["ndots:5".to_string()],
        }),
        labels,
        annotations,
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(default_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The namespace options a sandbox config asks for.
pub fn namespaces_of(config: &api::PodSandboxConfig) -> api::NamespaceOption {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// A sandbox created through the CRI. Its log directory lives as long as it.
pub struct Pod {
    pub id: String,
    pub config: api::PodSandboxConfig,
    _log_dir: Option<tempfile::TempDir>,
    _sweep: Sweep,
}

impl Pod {
    pub fn name(&self) -> &str {
        self.config.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default()
    }

    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.log_directory)
    }
}

/// A fresh temp dir for a pod's logs, as kubelet's /var/log/pods/<pod> would be.
pub fn log_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("log dir")
}

/// RunPodSandbox with kubelet's default config for a unique pod name.
pub async fn run_pod(rt: &Rt, prefix: &str) -> Pod {
    run_pod_with(rt, prefix, |_| {}).await
}

/// RunPodSandbox with the default config as changed by `adjust`.
pub async fn run_pod_with(rt: &Rt, prefix: &str, adjust: impl FnOnce(&mut api::PodSandboxConfig)) -> Pod {
    let dir = log_dir();
    let mut config = sandbox_config(&unique(prefix), dir.path());
    adjust(&mut config);
    let mut pod = run_pod_in(rt, config).await.unwrap_or_else(|e| panic!("run pod sandbox: {e}"));
    pod._log_dir = Some(dir);
    pod
}

/// RunPodSandbox with `config` as is; the caller owns its log directory.
pub async fn run_pod_in(rt: &Rt, config: api::PodSandboxConfig) -> Result<Pod, tonic::Status> {
    let sweep = Sweep::containers(config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default());
    let request = api::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    let id = rt.clone().run_pod_sandbox(request).await?.into_inner().pod_sandbox_id;
    assert!(!id.is_empty(), "RunPodSandbox returns an id");
    Ok(Pod { id, config, _log_dir: None, _sweep: sweep })
}

pub async fn pod_status(rt: &Rt, id: &str) -> api::PodSandboxStatusResponse {
    let request = api::PodSandboxStatusRequest { pod_sandbox_id: id.to_string(), verbose: false };
    rt.clone().pod_sandbox_status(request).await.unwrap_or_else(|e| panic!("pod sandbox status {id}: {e}")).into_inner()
}

pub async fn list_pods(rt: &Rt, filter: Option<api::PodSandboxFilter>) -> Vec<api::PodSandbox> {
    let request = api::ListPodSandboxRequest { filter };
    rt.clone().list_pod_sandbox(request).await.expect("list pod sandbox").into_inner().items
}

pub async fn stop_pod(rt: &Rt, id: &str) {
    let request = api::StopPodSandboxRequest { pod_sandbox_id: id.to_string() };
    rt.clone().stop_pod_sandbox(request).await.unwrap_or_else(|e| panic!("stop pod sandbox {id}: {e}"));
}

pub async fn remove_pod(rt: &Rt, id: &str) {
    let request = api::RemovePodSandboxRequest { pod_sandbox_id: id.to_string() };
    rt.clone().remove_pod_sandbox(request).await.unwrap_or_else(|e| panic!("remove pod sandbox {id}: {e}"));
}

/// What kubelet does when a pod goes away: stop, then remove, the sandbox
/// (which takes its containers with it); then the images the test pulled.
pub async fn cleanup(rt: &Rt, images: &Images, pods: &[&Pod], image_ids: &[&str]) {
    for pod in pods {
        stop_pod(rt, &pod.id).await;
        remove_pod(rt, &pod.id).await;
    }
    for id in image_ids {
        remove_image(images, id).await;
    }
    for pod in pods {
        let left = docker_leftovers(pod.name()).await;
        assert!(left.is_empty(), "removing pod {} left Docker containers behind: {left:?}", pod.name());
    }
}

// -------------------------------------------------------------- containers --

/// A ContainerConfig shaped like kubelet's: the image ID from PullImage, the
/// pod's namespaces, a BestEffort pod's resources, and a log path relative to
/// the pod's log directory.
pub fn container_config(pod: &Pod, name: &str, image: &TestImage, command: &[&str]) -> api::ContainerConfig {
    let pod_meta = pod.config.metadata.clone().unwrap_or_default();
    let labels = HashMap::from([
        ("io.kubernetes.container.name".to_string(), name.to_string()),
        ("io.kubernetes.pod.name".to_string(), pod_meta.name.clone()),
        ("io.kubernetes.pod.namespace".to_string(), pod_meta.namespace.clone()),
        ("io.kubernetes.pod.uid".to_string(), pod_meta.uid.clone()),
    ]);
    let annotations = HashMap::from([
        ("io.kubernetes.container.restartCount".to_string(), "0".to_string()),
        ("pinshim.test/container".to_string(), format!("{name} in {}", pod_meta.name)),
    ]);
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: name.to_string(), attempt: 0 }),
        image: Some(image.spec()),
        command: command.iter().map(|s| s.to_string()).collect(),
        envs: vec![api::KeyValue { key: "GREETING".to_string(), value: b"hello world".to_vec() }],
        labels,
        annotations,
        log_path: format!("{name}/0.log"),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(api::LinuxContainerResources { cpu_shares: 2, oom_score_adj: 1000, ..Default::default() }),
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(namespaces_of(&pod.config)),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A command that idles until stopped and exits 0 on SIGTERM at once (a
/// shell as PID 1 ignores signals it does not trap).
pub const IDLE: &[&str] = &["sh", "-c", "trap 'kill $! 2>/dev/null; exit 0' TERM INT; sleep 86400 & wait"];

pub fn create_request(pod: &Pod, config: api::ContainerConfig) -> api::CreateContainerRequest {
    api::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(config),
        sandbox_config: Some(pod.config.clone()),
    }
}

/// CreateContainer as kubelet calls it, after creating the container's log
/// directory (kubelet creates `<log_directory>/<container name>` first).
pub async fn try_create(rt: &Rt, pod: &Pod, config: api::ContainerConfig) -> Result<String, tonic::Status> {
    make_log_dir(&pod.config, &config);
    Ok(rt.clone().create_container(create_request(pod, config)).await?.into_inner().container_id)
}

pub fn make_log_dir(sandbox: &api::PodSandboxConfig, config: &api::ContainerConfig) {
    let path = Path::new(&sandbox.log_directory).join(&config.log_path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("container log dir");
    }
}

pub async fn create(rt: &Rt, pod: &Pod, config: api::ContainerConfig) -> String {
    let id = try_create(rt, pod, config).await.unwrap_or_else(|e| panic!("create container in {}: {e}", pod.id));
    assert!(!id.is_empty(), "CreateContainer returns an id");
    id
}

pub async fn start(rt: &Rt, id: &str) {
    let request = api::StartContainerRequest { container_id: id.to_string() };
    rt.clone().start_container(request).await.unwrap_or_else(|e| panic!("start container {id}: {e}"));
}

pub async fn create_and_start(rt: &Rt, pod: &Pod, config: api::ContainerConfig) -> String {
    let id = create(rt, pod, config).await;
    start(rt, &id).await;
    id
}

pub async fn stop(rt: &Rt, id: &str, timeout: i64) {
    let request = api::StopContainerRequest { container_id: id.to_string(), timeout };
    rt.clone().stop_container(request).await.unwrap_or_else(|e| panic!("stop container {id}: {e}"));
}

pub async fn remove(rt: &Rt, id: &str) {
    let request = api::RemoveContainerRequest { container_id: id.to_string() };
    rt.clone().remove_container(request).await.unwrap_or_else(|e| panic!("remove container {id}: {e}"));
}

pub async fn try_status(rt: &Rt, id: &str, verbose: bool) -> Result<api::ContainerStatusResponse, tonic::Status> {
    let request = api::ContainerStatusRequest { container_id: id.to_string(), verbose };
    Ok(rt.clone().container_status(request).await?.into_inner())
}

pub async fn status(rt: &Rt, id: &str) -> api::ContainerStatus {
    let response = try_status(rt, id, false).await.unwrap_or_else(|e| panic!("container status {id}: {e}"));
    response.status.unwrap_or_else(|| panic!("container status {id} has a status"))
}

/// The verbose `info` map's "info" entry, parsed as JSON.
pub async fn status_info(rt: &Rt, id: &str) -> serde_json::Value {
    let response = try_status(rt, id, true).await.unwrap_or_else(|e| panic!("container status {id}: {e}"));
    let info = response.info.get("info").unwrap_or_else(|| panic!("verbose status of {id} has an \"info\" entry"));
    serde_json::from_str(info).expect("verbose info is JSON")
}

pub async fn list_containers(rt: &Rt, filter: api::ContainerFilter) -> Vec<api::Container> {
    let request = api::ListContainersRequest { filter: Some(filter) };
    rt.clone().list_containers(request).await.expect("list containers").into_inner().containers
}

/// The containers of one pod, sorted by id.
pub async fn containers_of(rt: &Rt, pod_id: &str) -> Vec<api::Container> {
    let mut all =
        list_containers(rt, api::ContainerFilter { pod_sandbox_id: pod_id.to_string(), ..Default::default() }).await;
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

/// Polls ContainerStatus until the container is in `state`.
pub async fn wait_for_state(rt: &Rt, id: &str, state: ContainerState) -> api::ContainerStatus {
    let what = format!("container {id} to be {}", state.as_str_name());
    wait_for(&what, WAIT, || async {
        let s = status(rt, id).await;
        (s.state == state as i32).then_some(s)
    })
    .await
}

pub async fn exec(rt: &Rt, id: &str, cmd: &[&str], timeout: i64) -> Result<api::ExecSyncResponse, tonic::Status> {
    let request = api::ExecSyncRequest {
        container_id: id.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    };
    Ok(rt.clone().exec_sync(request).await?.into_inner())
}

/// ExecSync that must succeed with exit code 0; returns stdout.
pub async fn exec_ok(rt: &Rt, id: &str, cmd: &[&str]) -> String {
    let out = exec(rt, id, cmd, 30).await.unwrap_or_else(|e| panic!("exec {cmd:?} in {id}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.exit_code, 0, "exec {cmd:?} in {id}: stdout {stdout:?} stderr {stderr:?}");
    stdout
}

/// A container id no runtime has handed out.
pub fn unknown_id() -> String {
    let hex: String = unique("x").bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex:0<64.64}")
}

// ------------------------------------------------------------------ docker --

/// Names of Docker containers (any state) whose name, or any label value,
/// contains `token`: how a test finds what a pod left in Docker without
/// knowing pinshim's label schema.
pub async fn docker_leftovers(token: &str) -> Vec<String> {
    docker_containers(token).await.into_iter().map(|(name, _)| name).collect()
}

/// The host PID of a running container's first process, as Docker knows it.
pub async fn pid_of(id: &str) -> i64 {
    let inspected = super::docker().inspect_container(id, None).await.expect("docker inspect");
    inspected.state.and_then(|s| s.pid).filter(|pid| *pid > 0).expect("a running container's pid")
}

/// (name without the leading '/', Docker id) of containers matching `token` as
/// in [`docker_leftovers`].
pub async fn docker_containers(token: &str) -> Vec<(String, String)> {
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).build();
    let all = super::docker().list_containers(Some(options)).await.expect("docker ps");
    all.into_iter()
        .filter(|c| {
            let named = c.names.iter().flatten().any(|n| n.contains(token));
            let labelled = c.labels.iter().flatten().any(|(_, v)| v.contains(token));
            named || labelled
        })
        .map(|c| {
            let name = c.names.into_iter().flatten().next().unwrap_or_default();
            (name.trim_start_matches('/').to_string(), c.id.unwrap_or_default())
        })
        .collect()
}

/// Force-removes what a test made in Docker when it panics before its
/// clean-up, so a failing test leaves nothing on the shared dockerd: the
/// containers whose name or labels hold a token (a pod name), or an image.
#[derive(Debug)]
pub struct Sweep {
    containers: String,
    image: String,
}

impl Sweep {
    pub fn containers(token: impl Into<String>) -> Sweep {
        Sweep { containers: token.into(), image: String::new() }
    }

    async fn run(&self) {
        let docker = super::docker();
        let mut doomed: Vec<String> = Vec::new();
        if !self.containers.is_empty() {
            doomed.extend(docker_containers(&self.containers).await.into_iter().map(|(_, id)| id));
        }
        if !self.image.is_empty() {
            // The image is this test's alone: so are the containers made from it.
            let filters = HashMap::from([("ancestor".to_string(), vec![self.image.clone()])]);
            let options =
                bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters);
            let users = docker.list_containers(Some(options.build())).await.unwrap_or_default();
            doomed.extend(users.into_iter().filter_map(|c| c.id));
        }
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
        for id in doomed {
            let _ = docker.remove_container(&id, Some(options.clone())).await;
        }
        if !self.image.is_empty() {
            let options = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
            let _ = docker.remove_image(&self.image, Some(options), None).await;
        }
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // The test's runtime is unwinding; use a runtime of our own.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                runtime.block_on(self.run());
            });
        });
    }
}

/// Whether Docker can enforce memory limits on this host.
pub async fn docker_has_memory_limits() -> bool {
    super::docker().info().await.expect("docker info").memory_limit.unwrap_or(false)
}

/// Mount points pinshim prepared on the host under its root dir `root`
/// (binds with mount options, image layers); the root dir also holds the
/// pods' network namespace pins, which are not these.
pub fn prepared_mounts(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("mounts");
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines().filter_map(|l| l.split(' ').nth(4)).map(PathBuf::from).filter(|p| p.starts_with(&dir)).collect()
}

/// Unmounts what pinshim prepared under `root`, as a reboot would.
pub fn unmount_prepared(root: &Path) {
    for point in prepared_mounts(root) {
        let done = std::process::Command::new("umount").arg("-l").arg(&point).status().expect("run umount");
        assert!(done.success(), "umount {}", point.display());
    }
}

// ---------------------------------------------------------------- crashing --

/// A pinshim process the test can kill with SIGKILL and start again on the
/// same socket and root dir (common::Shim only stops it gracefully).
pub struct CrashableShim {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Environment of the next start (e.g. a test fault hook).
    pub env: Vec<(String, String)>,
    pub runtime: Rt,
    pub images: Images,
}

impl CrashableShim {
    pub async fn start() -> CrashableShim {
        Self::start_with_env(Vec::new()).await
    }

    pub async fn start_with_env(env: Vec<(String, String)>) -> CrashableShim {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = super::spawn(dir.path(), &[], &env);
        let channel = connect_when_listening(dir.path()).await;
        CrashableShim { dir, child: Some(child), env, runtime: Rt::new(channel.clone()), images: Images::new(channel) }
    }

    /// The `--root-dir` the process runs with.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("pinshim.sock")
    }

    /// SIGKILL: no clean-up of any kind in pinshim.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL pinshim");
            child.wait().expect("reap pinshim");
        }
    }

    /// Starts a new process on the same socket and root dir, which may still
    /// hold the stale socket of the killed one.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill_hard first");
        self.child = Some(super::spawn(self.dir.path(), &[], &self.env));
        let channel = connect_when_listening(self.dir.path()).await;
        self.runtime = Rt::new(channel.clone());
        self.images = Images::new(channel);
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pinshim.log")).unwrap_or_default()
    }
}

impl Drop for CrashableShim {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

async fn connect_when_listening(dir: &Path) -> Channel {
    let socket = dir.join("pinshim.sock");
    let what = format!("pinshim to listen on {}", socket.display());
    wait_for(&what, WAIT, || async { tokio::net::UnixStream::connect(&socket).await.ok().map(drop) }).await;
    super::connect(&socket).await
}

// -------------------------------------------------------------------- logs --

/// One line of a CRI log file: `<RFC 3339 nano time> <stream> <F|P> <text>`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    pub tag: String,
    pub text: String,
}

/// Parses a whole CRI log file, panicking on any line not in the format.
pub fn parse_cri_log(content: &str) -> Vec<LogLine> {
    content.lines().map(|line| parse_cri_line(line).unwrap_or_else(|| panic!("not a CRI log line: {line:?}"))).collect()
}

pub fn parse_cri_line(line: &str) -> Option<LogLine> {
    let mut parts = line.splitn(4, ' ');
    let (time, stream, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let text = parts.next().unwrap_or_default();
    let ok = is_rfc3339_nano(time) && matches!(stream, "stdout" | "stderr") && matches!(tag, "F" | "P");
    ok.then(|| LogLine { time: time.into(), stream: stream.into(), tag: tag.into(), text: text.into() })
}

/// `2006-01-02T15:04:05.999999999Z07:00` as Go formats it: the fraction is
/// optional (trailing zeros trimmed), the zone is `Z` or `±hh:mm`.
pub fn is_rfc3339_nano(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return false;
        }
        rest = &fraction[n..];
    }
    let zone = rest.as_bytes();
    rest == "Z"
        || (zone.len() == 6
            && matches!(zone[0], b'+' | b'-')
            && zone[1..3].iter().all(u8::is_ascii_digit)
            && zone[3] == b':'
            && zone[4..6].iter().all(u8::is_ascii_digit))
}

/// Whether a JSON value holds `needle` as a string anywhere inside it.
pub fn json_has_string(value: &serde_json::Value, needle: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s == needle,
        serde_json::Value::Array(items) => items.iter().any(|v| json_has_string(v, needle)),
        serde_json::Value::Object(map) => map.values().any(|v| json_has_string(v, needle)),
        _ => false,
    }
}

/// Polls until something listens on `port` inside the container's pod.
pub async fn wait_listening(rt: &Rt, container: &str, port: u16) {
    let hex = format!(":{port:04X}");
    wait_for("listener", WAIT, || async {
        let out = exec_ok(rt, container, &["cat", "/proc/net/tcp", "/proc/net/tcp6"]).await;
        out.lines().any(|l| l.contains(&hex) && l.split_whitespace().nth(3) == Some("0A")).then_some(())
    })
    .await
}

/// An Exec URL on pinshim's streaming server for `cmd` in `container`.
pub async fn exec_url(rt: &Rt, container: &str, cmd: &[&str], stdin: bool, tty: bool) -> String {
    let request = api::ExecRequest {
        container_id: container.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    };
    rt.clone().exec(request).await.expect("exec").into_inner().url
}

/// A pod with one idle container, for streaming tests.
pub async fn running_container(shim: &super::Shim, prefix: &str) -> (Pod, TestImage, String) {
    let image = fresh_image(&shim.images, prefix).await;
    let pod = run_pod(&shim.runtime, prefix).await;
    let id = create_and_start(&shim.runtime, &pod, container_config(&pod, "app", &image, IDLE)).await;
    (pod, image, id)
}
