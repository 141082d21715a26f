//! Shared test support: start the real pinshim binary on a private socket,
//! talk CRI to it, and push uniquely named images to the test registries.
#![allow(dead_code)]

pub mod docker_proxy;
pub mod kube;
pub mod pods;
pub mod registry;
pub mod spdy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper_util::rt::TokioIo;
use pinshim::api::image_service_client::ImageServiceClient;
use pinshim::api::runtime_service_client::RuntimeServiceClient;
use pinshim::api::{self};
use tonic::transport::{Channel, Endpoint};

/// Reads a variable `hack/test.sh` exports; the suite is not meant to run without it.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through hack/test.sh"))
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{}-{nanos:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A running pinshim process with its own socket and root dir.
pub struct Shim {
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

pub struct ShimOptions {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Shim {
    pub async fn start() -> Shim {
        Self::start_with(ShimOptions { args: Vec::new(), env: Vec::new() }).await
    }

    pub async fn start_with(options: ShimOptions) -> Shim {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = spawn(dir.path(), &options.args, &options.env);
        let channel = connect(&dir.path().join("pinshim.sock")).await;
        Shim {
            dir,
            child: Some(child),
            extra_args: options.args,
            extra_env: options.env,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("pinshim.sock")
    }

    /// The process's peak resident set (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pinshim.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit code. The
    /// wait yields to the runtime so this process's client connections can
    /// answer the server's graceful-shutdown handshake.
    pub async fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "pinshim did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process and starts a new one on the same socket and root dir.
    pub async fn restart(&mut self) {
        assert_eq!(self.stop().await, Some(0));
        self.child = Some(spawn(self.dir.path(), &self.extra_args, &self.extra_env));
        let channel = connect(&self.socket()).await;
        self.runtime = RuntimeServiceClient::new(channel.clone());
        self.images = ImageServiceClient::new(channel);
    }

    pub async fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        self.pull_with(image, None).await
    }

    pub async fn pull_with(&mut self, image: &str, auth: Option<api::AuthConfig>) -> Result<String, tonic::Status> {
        let request = api::PullImageRequest { image: Some(spec(image)), auth, sandbox_config: None };
        Ok(self.images.pull_image(request).await?.into_inner().image_ref)
    }

    pub async fn status(&mut self, image: &str) -> Option<api::Image> {
        let request = api::ImageStatusRequest { image: Some(spec(image)), verbose: false };
        self.images.image_status(request).await.expect("image status").into_inner().image
    }

    /// ImageStatus with `verbose`, returning the parsed `info` JSON too.
    pub async fn status_verbose(&mut self, image: &str) -> (Option<api::Image>, serde_json::Value) {
        let request = api::ImageStatusRequest { image: Some(spec(image)), verbose: true };
        let response = self.images.image_status(request).await.expect("image status").into_inner();
        let info = response.info.get("info").map(|s| serde_json::from_str(s).expect("info is JSON"));
        (response.image, info.unwrap_or(serde_json::Value::Null))
    }

    pub async fn remove(&mut self, image: &str) {
        let request = api::RemoveImageRequest { image: Some(spec(image)) };
        self.images.remove_image(request).await.expect("remove image");
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn spec(image: &str) -> api::ImageSpec {
    api::ImageSpec { image: image.to_string(), ..Default::default() }
}

fn spawn(dir: &Path, args: &[String], vars: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("pinshim.log")).expect("log file");
    // Tests read debug logs; a caller measuring the runtime as a node runs it names its own level.
    let level = if args.iter().any(|a| a == "--log-level") { None } else { Some(["--log-level", "debug"]) };
    Command::new(env!("CARGO_BIN_EXE_pinshim"))
        .arg("--container-runtime-endpoint")
        .arg(format!("unix://{}", dir.join("pinshim.sock").display()))
        .arg("--root-dir")
        .arg(dir.join("root"))
        .args(level.into_iter().flatten())
        .args(["--log-format", "json"])
        .arg("--pod-infra-container-image")
        .arg(env("PINSHIM_TEST_PAUSE"))
        .args(args)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start pinshim")
}

pub async fn connect(socket: &Path) -> Channel {
    // The socket file appears at bind(), a moment before listen(): until
    // then connecting is refused, so retry rather than wait for the file.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "pinshim did not listen on {}", socket.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A connection can still break while a restarted pinshim takes over a
    // stale socket: try again until the deadline.
    let socket = socket.to_path_buf();
    loop {
        let path = socket.clone();
        let connected = Endpoint::from_static("http://pinshim.invalid")
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
            }))
            .await;
        match connected {
            Ok(channel) => return channel,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("connect to pinshim on {}: {e:?}", socket.display()),
        }
    }
}

/// A Docker client for checks the CRI cannot make.
pub fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_local_defaults().expect("docker client")
}

/// Whether the engine keeps images in containerd's image store, where
/// Docker's image ID is the manifest (or index) digest, not the config's.
pub async fn containerd_store() -> bool {
    static STORE: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    *STORE
        .get_or_init(|| async {
            let info = docker().info().await.expect("docker info");
            let status = info.driver_status.unwrap_or_default();
            status.iter().flatten().any(|v| v == "io.containerd.snapshotter.v1")
        })
        .await
}

/// Whether the engine mounts images into containers itself (API 1.48,
/// Docker 28); before, pinshim mounts their layers.
pub async fn engine_mounts_images() -> bool {
    let version = docker().version().await.expect("docker version");
    let api = version.api_version.unwrap_or_default();
    let mut parts = api.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (1, 48)
}

/// Removes a local image by name, ignoring absence.
pub async fn docker_rmi(name: &str) {
    let options = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
    let _ = docker().remove_image(name, Some(options), None).await;
}
