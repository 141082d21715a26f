//! Errors of the container service.

use super::log_open::LogError;
use crate::docker::DockerError;
use crate::host_mounts::HostMountError;
use crate::image::ImageError;
use crate::sandbox::SandboxError;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("invalid container config: {0}")]
    InvalidConfig(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("image {0:?} is not present; pull it first")]
    ImageNotFound(String),
    #[error("image volume {0}: the engine cannot mount images (Docker 28) and the image is not in overlay2 layers")]
    ImageVolumeUnsupported(String),
    #[error("image_sub_path {sub_path:?} does not exist in image {image}")]
    ImageSubPathNotFound { image: String, sub_path: String },
    #[error(
        "CDI devices need an engine with CDI on (Docker 28, or features.cdi on Docker 25 to 27); this one has none"
    )]
    CdiUnsupported,
    #[error("checkpoints are not available: {0}")]
    CheckpointUnsupported(String),
    #[error("checkpoint failed: {0}")]
    Checkpoint(String),
    #[error("checkpoint of container {0} outlasted its timeout")]
    CheckpointTimeout(String),
    /// Writing to the container's processes or cgroup failed on this host.
    #[error("{0}")]
    Processes(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("exec in container {0} timed out")]
    ExecTimeout(String),
    #[error("cannot use log file {path} (log_path): {source}")]
    Log { path: String, source: LogError },
    #[error(transparent)]
    HostMount(#[from] HostMountError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}
