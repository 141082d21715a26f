//! Errors of the image service. Cloneable, because one shared pull answers
//! every caller that joined it.

use std::time::Duration;

use super::reference::ReferenceError;
use crate::docker::DockerError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {source}")]
    InvalidReference { reference: String, source: ReferenceError },
    #[error("unknown runtime handler {handler:?}: dockerd knows {known:?}, and \"\" is its default")]
    UnknownRuntimeHandler { handler: String, known: Vec<String> },
    #[error("invalid registry credentials: {0}")]
    InvalidCredentials(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("registry {registry} is unavailable: {reason}")]
    RegistryUnavailable { registry: String, reason: String },
    #[error("registry {registry} refused the credentials for {reference}")]
    Unauthorized { registry: String, reference: String },
    #[error("image {reference} not found in registry {registry}")]
    NotFound { registry: String, reference: String },
    #[error("registry endpoint {registry} is misconfigured: {reason}")]
    RegistryConfig { registry: String, reason: String },
    #[error("registry {registry} failed for {reference}: {reason}")]
    Registry { registry: String, reference: String, reason: String },
    #[error("pull of {reference} made no progress for {after:?} and was cancelled")]
    PullStalled { reference: String, after: Duration },
    #[error("pull of {reference} failed: {source}")]
    PullFailed { reference: String, source: DockerError },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("image {reference} is refused by the image policy: {rule}")]
    Denied { reference: String, rule: String },
    #[error(transparent)]
    Policy(#[from] super::policy::PolicyError),
    #[error(transparent)]
    Hosts(#[from] super::hosts::HostsError),
    #[error("cannot measure the image store at {dirs}: {reason}")]
    StoreUsage { dirs: String, reason: String },
    #[error("image {image} is mounted as a volume by container {container}")]
    InUseAsVolume { image: String, container: String },
    #[error("cannot store image records in {path}: {reason}")]
    Records { path: String, reason: String },
}
