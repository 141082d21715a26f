//! Serving CRI on a Unix socket: wiring, socket hygiene, graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use crate::api::image_service_server::ImageServiceServer;
use crate::api::runtime_service_server::RuntimeServiceServer;
use crate::config::{Config, NetworkPlugin};
use crate::container::ContainerService;
use crate::cri::authority::AuthorityRewrite;
use crate::cri::deadline::DeadlineLayer;
use crate::cri::{ImageApi, RuntimeApi};
use crate::docker::{Docker, DockerError};
use crate::fault::CrashHook;
use crate::host::HostLimits;
use crate::image::{ImageConfig, ImageError, ImageService};
use crate::index::ContainerIndex;
use crate::metrics::{self, RpcMetricsLayer};
use crate::network::{Cni, CniSettings};
use crate::runtime::Runtime;
use crate::sandbox::{SandboxConfig, SandboxService};
use crate::stats::StatsService;
use crate::stream::Streaming;
use crate::systemd;

/// kubelet's own limit for CRI messages; larger lists must still fit.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How long in-flight calls may finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const SOCKET_MODE: u32 = 0o660;
/// How often start-up asks a dockerd that is down what engine it is.
const ENGINE_RETRY: Duration = Duration::from_secs(5);
/// How long start-up waits for the clean-up after a crash before serving.
const RECOVERY_WAIT: Duration = Duration::from_secs(10);
/// Where Docker Engine looks for per-registry certificates.
const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("unsupported endpoint {0:?}: expected unix:///path/to/socket or fd://")]
    Endpoint(String),
    #[error("endpoint {0:?} needs a socket passed by systemd, and none was")]
    NotActivated(String),
    #[error("another process is serving at {0}")]
    SocketInUse(PathBuf),
    #[error("cannot prepare socket {path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
    #[error("cannot start the streaming server on {addr}: {source}")]
    Streaming { addr: String, source: std::io::Error },
    #[error("cannot start the metrics server on {addr}: {source}")]
    Metrics { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What `serve_with` needs beyond the settings' first values.
pub struct ServeOptions {
    /// The settings in effect, updated by SIGHUP reloads (`config::Reloader`).
    /// A service that follows a live key keeps a clone and awaits
    /// `changed()`; an error from it means no more reloads will come.
    pub settings: watch::Receiver<Arc<Config>>,
    /// The listening socket systemd passed for an `fd://` endpoint
    /// (`systemd::take_listener`).
    pub inherited: Option<std::os::unix::net::UnixListener>,
}

/// Serves until `shutdown` completes, then stops accepting, lets in-flight
/// calls finish (bounded by a drain timeout) and removes the socket.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let (_fixed, settings) = watch::channel(Arc::new(config));
    serve_with(ServeOptions { settings, inherited: None }, shutdown).await
}

/// `serve`, with reloadable settings and possibly a socket from systemd.
pub async fn serve_with(options: ServeOptions, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let config = options.settings.borrow().clone();
    let socket = CriSocket::new(&config.container_runtime_endpoint, options.inherited)?;
    let docker = Docker::new(&config.docker_endpoint)?;
    let images = ImageService::new(
        docker.clone(),
        ImageConfig {
            state_dir: config.root_dir.join("images"),
            insecure_registries: config.insecure_registries.clone(),
            pull_progress_deadline: config.image_pull_progress_deadline,
            pinned_image: Some(config.pod_infra_container_image.clone()),
            registry_config_dir: config.registry_config_dir.clone(),
            docker_certs_dir: PathBuf::from(DOCKER_CERTS_DIR),
            policy_file: config.image_policy_file.clone(),
            containerd_root: config.containerd_root.clone(),
        },
    )
    .await?;
    let limits = HostLimits::detect();
    tokio::spawn(report_engine(docker.clone(), limits));
    let stop = CancellationToken::new();
    let index = ContainerIndex::new(docker.clone());
    index.spawn(stop.clone());
    // Test-only: crash tests arm it through the environment; unset, inert.
    let crash = CrashHook::from_env();
    let cni = (config.network_plugin == NetworkPlugin::Cni).then(|| {
        let settings = CniSettings {
            conf_dir: config.cni_conf_dir.clone(),
            bin_dirs: config.cni_bin_dir.clone(),
            cache_dir: config.cni_cache_dir.clone(),
            mtu: config.network_plugin_mtu,
        };
        Arc::new(Cni::new(settings).with_crash_hook(crash.clone()))
    });
    let sandboxes = Arc::new(SandboxService::new(
        docker.clone(),
        images.clone(),
        SandboxConfig {
            infra_image: config.pod_infra_container_image.clone(),
            limits,
            root_dir: config.root_dir.clone(),
            crash,
        },
        cni.clone(),
        index.clone(),
    ));
    let containers = Arc::new(ContainerService::new(
        docker.clone(),
        images.clone(),
        sandboxes.clone(),
        limits,
        config.root_dir.clone(),
        index,
    ));
    // kubelet lists pods as soon as it connects, so half-made sandboxes
    // should be gone by then; but a dockerd that hangs must not hold up
    // serving (and readiness), so the wait is bounded below.
    let recovery = tokio::spawn({
        let (sandboxes, containers) = (sandboxes.clone(), containers.clone());
        async move {
            if let Err(e) = sandboxes.recover().await {
                tracing::warn!(error = %e, "could not clean up after half-made pod sandboxes; a retry of each pod will");
            }
            if let Err(e) = containers.recover().await {
                tracing::warn!(error = %e, "could not resume container logs; will retry as containers start");
            }
        }
    });
    let streaming = Streaming::start(&config.streaming_bind_addr, docker.clone(), stop.clone())
        .await
        .map_err(|source| ServeError::Streaming { addr: config.streaming_bind_addr.clone(), source })?;
    if let Some(addr) = config.metrics_bind_addr {
        let bound = metrics::serve(addr, stop.clone()).await.map_err(|source| ServeError::Metrics { addr, source })?;
        tracing::info!(addr = %bound, "serving metrics at /metrics");
        if !bound.ip().is_loopback() {
            tracing::warn!(addr = %bound, "metrics are served beyond loopback: anyone who reaches the port reads them");
        }
    }
    let stats = Arc::new(StatsService::new(docker.clone(), containers.clone(), sandboxes.clone()));
    let runtime = Arc::new(Runtime::new(docker, config.network_plugin, cni, limits));

    if tokio::time::timeout(RECOVERY_WAIT, recovery).await.is_err() {
        tracing::warn!("still cleaning up after half-made pod sandboxes; serving meanwhile");
    }
    let listener = socket.listen().await?;
    tracing::info!(socket = %socket, docker = %config.docker_endpoint, "serving CRI");
    // Ready means kubelet can connect; whether dockerd is up is Status's
    // business, so this does not wait for it.
    systemd::notify_ready();

    let runtime_service =
        RuntimeServiceServer::new(RuntimeApi::new(runtime, sandboxes, containers, Arc::new(streaming), stats))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let image_service = ImageServiceServer::new(ImageApi::new(images))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    // Owned or from systemd, every connection gets its `:authority` checked,
    // so gRPC C-core clients can call too. `cri::authority` relies on the
    // builder keeping hyper's default HTTP/2 frame and header list sizes.
    let incoming = UnixListenerStream::new(listener).map(|conn| conn.map(AuthorityRewrite::new));
    let server = tonic::transport::Server::builder()
        .layer(RpcMetricsLayer)
        .layer(DeadlineLayer)
        .add_service(runtime_service)
        .add_service(image_service)
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    let drain_deadline = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, draining");
            systemd::notify_stopping();
            stop.cancel();
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        }
    };
    let result = tokio::select! {
        result = server => result.map_err(ServeError::from),
        () = drain_deadline => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "drain timed out; closing remaining connections");
            Ok(())
        }
    };
    socket.remove();
    result
}

/// Where CRI is served.
enum CriSocket {
    /// A path pinshim binds, and removes on exit.
    Owned(PathBuf),
    /// A socket systemd bound and passed in. Its file belongs to the socket
    /// unit, which keeps it (and queues connections) across restarts, so
    /// pinshim neither replaces nor removes it.
    Inherited(std::os::unix::net::UnixListener),
}

impl CriSocket {
    fn new(endpoint: &str, inherited: Option<std::os::unix::net::UnixListener>) -> Result<Self, ServeError> {
        if systemd::selector(endpoint).is_some() {
            return inherited.map(CriSocket::Inherited).ok_or_else(|| ServeError::NotActivated(endpoint.to_string()));
        }
        socket_path(endpoint).map(CriSocket::Owned)
    }

    async fn listen(&self) -> Result<UnixListener, ServeError> {
        match self {
            CriSocket::Owned(path) => bind(path).await,
            CriSocket::Inherited(listener) => {
                let failed = |source| ServeError::Socket { path: self.path().unwrap_or_default(), source };
                UnixListener::from_std(listener.try_clone().map_err(failed)?).map_err(failed)
            }
        }
    }

    fn path(&self) -> Option<PathBuf> {
        match self {
            CriSocket::Owned(path) => Some(path.clone()),
            CriSocket::Inherited(listener) => listener.local_addr().ok()?.as_pathname().map(Path::to_path_buf),
        }
    }

    fn remove(&self) {
        if let CriSocket::Owned(path) = self {
            remove_socket(path);
        }
    }
}

impl std::fmt::Display for CriSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self, self.path()) {
            (CriSocket::Owned(_), Some(path)) => write!(f, "{}", path.display()),
            (CriSocket::Inherited(_), Some(path)) => write!(f, "{} (from systemd)", path.display()),
            (_, None) => f.write_str("socket from systemd"),
        }
    }
}

fn socket_path(endpoint: &str) -> Result<PathBuf, ServeError> {
    match endpoint.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => Err(ServeError::Endpoint(endpoint.to_string())),
    }
}

/// Logs the engine once dockerd answers, and what it means here: engines
/// before Docker 23 ask runc for every capability a privileged container
/// could have, which fails where the bounding set is incomplete.
async fn report_engine(docker: Docker, limits: HostLimits) {
    let engine = loop {
        match docker.engine().await {
            Ok(engine) => break engine,
            Err(_) => tokio::time::sleep(ENGINE_RETRY).await,
        }
    };
    tracing::info!(
        version = %engine.version,
        api_version = %engine.api_version,
        image_store = ?engine.image_store,
        storage_driver = %engine.storage_driver,
        "docker engine"
    );
    if !limits.full_bounding_set && !engine.privileged_within_bounding_set() {
        tracing::warn!(
            version = %engine.version,
            "incomplete capability bounding set and an engine older than Docker 23: privileged containers will fail to start"
        );
    }
}

/// Binds the socket: creates its directory, replaces a stale socket left by
/// a crash, refuses to steal one a live process still serves.
async fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let failed = |source| ServeError::Socket { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
    }
    if tokio::fs::symlink_metadata(path).await.is_ok() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::SocketInUse(path.to_path_buf()));
        }
        tokio::fs::remove_file(path).await.map_err(failed)?;
    }
    // Bound under a hidden sibling name and renamed into place once its mode
    // is set, so no client ever finds the socket with the umask's mode.
    let staging = path.with_file_name(format!(".{}", crate::random::hex(4).map_err(failed)?));
    let listener = UnixListener::bind(&staging).map_err(failed)?;
    let placed = async {
        tokio::fs::set_permissions(&staging, std::fs::Permissions::from_mode(SOCKET_MODE)).await?;
        tokio::fs::rename(&staging, path).await
    };
    if let Err(e) = placed.await {
        let _ = tokio::fs::remove_file(&staging).await;
        return Err(failed(e));
    }
    Ok(listener)
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(socket = %path.display(), error = %e, "cannot remove socket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_unix_endpoints() {
        assert_eq!(socket_path("unix:///run/x.sock").unwrap(), PathBuf::from("/run/x.sock"));
        assert!(socket_path("tcp://1.2.3.4:1").is_err());
        assert!(socket_path("unix://relative").is_err());
    }

    #[tokio::test]
    async fn replaces_stale_socket_but_not_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/cri.sock");
        let live = bind(&path).await.unwrap();
        assert!(matches!(bind(&path).await, Err(ServeError::SocketInUse(_))));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        drop(live);
        bind(&path).await.expect("a stale socket is replaced");
    }
}
