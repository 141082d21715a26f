//! Errors of the sandbox service.

use crate::docker::DockerError;
use crate::image::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid pod sandbox config: {0}")]
    InvalidConfig(String),
    #[error("pod sandbox {0} not found")]
    NotFound(String),
    #[error("unknown runtime handler {handler:?}; docker knows {known:?}")]
    UnknownRuntimeHandler { handler: String, known: Vec<String> },
    #[error("pod sandbox {0} is not ready")]
    NotReady(String),
    #[error("pod sandbox {0} already exists")]
    AlreadyExists(String),
    #[error("pod infra image {image}: {source}")]
    InfraImage { image: String, source: ImageError },
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("pod network: {0}")]
    Network(#[from] crate::network::CniError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}
