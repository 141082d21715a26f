//! The one place that holds the bollard client. Everything above speaks in
//! pinshim's own small types; bollard's models stop here.

mod containers;
mod events;
mod exec;
mod images;
mod logs;
mod mounts;
mod stream;
mod system;

pub use containers::{
    ContainerDetails, ContainerSummary, CreateSpec, DeviceSpec, MountInfo, PortSpec, Resources, RunState,
};
pub use events::{ContainerAction, ContainerEvent};
pub use exec::ExecOutput;
pub use images::{DockerImage, PlatformManifest, RegistryAuth};
pub use logs::{LogChunk, OutputStream};
pub use mounts::{BindMount, ImageMount, Propagation, ReadOnly};
pub use stream::{Session, StdioFlags};
pub use system::{ApiVersion, DockerInfo, DockerVersion, Engine, ImageStore};

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use tokio::sync::Mutex;

/// How long one Docker API request may take before it is abandoned. Pulls
/// are streamed and guarded by their own progress deadline instead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors from the Docker Engine API, reduced to what callers act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DockerError {
    #[error("docker is unavailable at {endpoint}: {reason}")]
    Unavailable { endpoint: String, reason: String },
    #[error("docker: no such object: {0}")]
    NotFound(String),
    #[error("docker: nothing to change")]
    NotModified,
    #[error("docker: conflict: {0}")]
    Conflict(String),
    #[error("docker rejected the request: {0}")]
    BadRequest(String),
    /// An ID prefix matched several objects.
    #[error("ambiguous id prefix: {0}")]
    AmbiguousId(String),
    #[error("docker failed: {0}")]
    Server(String),
    #[error("docker sent what pinshim cannot read: {0}")]
    Unreadable(String),
    #[error("no pull progress for {0:?}; cancelled")]
    Stalled(std::time::Duration),
    #[error("unsupported docker endpoint {0:?}: expected unix://, tcp:// or http://")]
    BadEndpoint(String),
}

/// Treats "no such object" as done: removing or stopping something that
/// is already gone is how CRI's idempotent calls must behave.
pub fn ignore_missing(result: Result<(), DockerError>) -> Result<(), DockerError> {
    match result {
        Err(DockerError::NotFound(_)) => Ok(()),
        other => other,
    }
}

/// Times one Docker API call for `pinshim_docker_request_duration_seconds`,
/// labelled by `operation`.
async fn timed<T, E>(operation: &'static str, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    let elapsed = started.elapsed();
    crate::metrics::record_docker_call(operation, result.is_ok(), elapsed);
    // In the calling RPC's span: `--log-level debug` shows where its time goes.
    tracing::debug!(operation, ok = result.is_ok(), elapsed_us = elapsed.as_micros() as u64, "docker call");
    result
}

/// A lazily connected Docker client: pinshim starts (and reports
/// `RuntimeReady=false`) while dockerd is still down, and connects on first use.
#[derive(Clone)]
pub struct Docker {
    endpoint: String,
    client: Arc<Mutex<Option<bollard::Docker>>>,
    engine: Arc<Mutex<Option<Engine>>>,
}

impl Docker {
    /// Creates a client for `endpoint` (`unix:///var/run/docker.sock`,
    /// `tcp://host:port`); no connection is made yet.
    pub fn new(endpoint: &str) -> Result<Self, DockerError> {
        let known = ["unix://", "tcp://", "http://"].iter().any(|p| endpoint.starts_with(p));
        if !known {
            return Err(DockerError::BadEndpoint(endpoint.to_string()));
        }
        Ok(Docker { endpoint: endpoint.to_string(), client: Arc::default(), engine: Arc::default() })
    }

    /// Returns the connected client, connecting and negotiating the API
    /// version on first use so both Docker 20.10 and current releases work.
    async fn client(&self) -> Result<bollard::Docker, DockerError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let timeout = REQUEST_TIMEOUT.as_secs();
        let version = bollard::API_DEFAULT_VERSION;
        let connected = match self.endpoint.strip_prefix("unix://") {
            Some(path) => bollard::Docker::connect_with_unix(path, timeout, version),
            None => {
                let http = self.endpoint.replacen("tcp://", "http://", 1);
                bollard::Docker::connect_with_http(&http, timeout, version)
            }
        };
        let client = connected.map_err(|e| self.error(e))?.negotiate_version().await.map_err(|e| self.error(e))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    fn error(&self, err: BollardError) -> DockerError {
        match err {
            // Docker 20.10 answers 500 for an ambiguous prefix, later releases 400.
            BollardError::DockerResponseServerError { message, .. }
                if message.to_ascii_lowercase().contains("multiple ids found with provided prefix") =>
            {
                DockerError::AmbiguousId(message)
            }
            BollardError::DockerResponseServerError { status_code, message } => match status_code {
                304 => DockerError::NotModified,
                404 => DockerError::NotFound(message),
                409 => DockerError::Conflict(message),
                400..=499 => DockerError::BadRequest(message),
                _ => DockerError::Server(message),
            },
            BollardError::DockerStreamError { error } => DockerError::Server(error),
            // dockerd answered, with something pinshim cannot read: not down.
            e @ (BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. }) => {
                DockerError::Unreadable(e.to_string())
            }
            other => DockerError::Unavailable { endpoint: self.endpoint.clone(), reason: other.to_string() },
        }
    }
}
