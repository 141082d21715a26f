//! Domain errors → gRPC status: the one place codes are chosen.

use tonic::{Code, Status};

use crate::container::ContainerError;
use crate::docker::DockerError;
use crate::image::ImageError;
use crate::sandbox::SandboxError;

impl From<DockerError> for Status {
    fn from(err: DockerError) -> Self {
        let code = match &err {
            DockerError::Unavailable { .. } => Code::Unavailable,
            DockerError::NotFound(_) => Code::NotFound,
            DockerError::Conflict(_) | DockerError::NotModified => Code::FailedPrecondition,
            DockerError::BadRequest(_) => Code::InvalidArgument,
            DockerError::Stalled(_) => Code::DeadlineExceeded,
            DockerError::Server(_) => Code::Unknown,
            DockerError::BadEndpoint(_) => Code::FailedPrecondition,
        };
        Status::new(code, err.to_string())
    }
}

impl From<ImageError> for Status {
    fn from(err: ImageError) -> Self {
        let code = match &err {
            ImageError::InvalidReference { .. } | ImageError::InvalidCredentials(_) => Code::InvalidArgument,
            ImageError::Unsupported(_) => Code::Unimplemented,
            ImageError::RegistryUnavailable { .. } => Code::Unavailable,
            ImageError::Unauthorized { .. } => Code::Unauthenticated,
            ImageError::NotFound { .. } => Code::NotFound,
            ImageError::Registry { .. } => Code::Unknown,
            ImageError::PullStalled { .. } => Code::DeadlineExceeded,
            ImageError::PullFailed { source, .. } => Status::from(source.clone()).code(),
            ImageError::Docker(source) => return Status::from(source.clone()),
            ImageError::Denied { .. } => Code::PermissionDenied,
            // The operator's configuration is broken: nothing the caller can fix.
            ImageError::Policy(_) | ImageError::Hosts(_) | ImageError::RegistryConfig { .. } => {
                Code::FailedPrecondition
            }
            ImageError::Records { .. } => {
                tracing::error!(error = %err, "image records failed");
                return Status::internal("pinshim could not store image records; see its log");
            }
        };
        Status::new(code, err.to_string())
    }
}

fn sandbox_code(err: &SandboxError) -> Code {
    match err {
        SandboxError::InvalidConfig(_) | SandboxError::UnknownRuntimeHandler { .. } => Code::InvalidArgument,
        SandboxError::NotFound(_) => Code::NotFound,
        SandboxError::AlreadyExists(_) => Code::AlreadyExists,
        SandboxError::NotReady(_) => Code::FailedPrecondition,
        SandboxError::InfraImage { source, .. } => Status::from(source.clone()).code(),
        SandboxError::Io { .. } => Code::Internal,
        // A plugin's own failure: its message says what went wrong.
        SandboxError::Network(_) => Code::Unknown,
        SandboxError::Docker(source) => Status::from(source.clone()).code(),
    }
}

impl From<SandboxError> for Status {
    fn from(err: SandboxError) -> Self {
        Status::new(sandbox_code(&err), err.to_string())
    }
}

impl From<ContainerError> for Status {
    fn from(err: ContainerError) -> Self {
        let code = match &err {
            ContainerError::InvalidConfig(_) => Code::InvalidArgument,
            ContainerError::NotFound(_) | ContainerError::ImageNotFound(_) => Code::NotFound,
            ContainerError::AlreadyExists(_) => Code::AlreadyExists,
            ContainerError::NotRunning(_) => Code::FailedPrecondition,
            ContainerError::ExecTimeout(_) => Code::DeadlineExceeded,
            ContainerError::Log { .. } => Code::Internal,
            ContainerError::Sandbox(source) => sandbox_code(source),
            ContainerError::Image(source) => Status::from(source.clone()).code(),
            ContainerError::Docker(source) => Status::from(source.clone()).code(),
        };
        Status::new(code, err.to_string())
    }
}

impl From<crate::stream::TokenError> for Status {
    fn from(err: crate::stream::TokenError) -> Self {
        let code = match &err {
            crate::stream::TokenError::Full => Code::ResourceExhausted,
            crate::stream::TokenError::Random(_) => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}

impl From<crate::stats::StatsError> for Status {
    fn from(err: crate::stats::StatsError) -> Self {
        match err {
            crate::stats::StatsError::Container(e) => e.into(),
            crate::stats::StatsError::Sandbox(e) => e.into(),
            crate::stats::StatsError::Docker(e) => e.into(),
        }
    }
}

/// Answer for RPCs whose support has not landed yet.
pub fn not_implemented(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented by pinshim yet"))
}

/// A required request field was absent.
pub fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("{field} is required"))
}
