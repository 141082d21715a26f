//! Domain errors → gRPC status: the one place codes are chosen.

use tonic::{Code, Status};

use crate::container::{ContainerError, LogError};
use crate::docker::DockerError;
use crate::host_mounts::HostMountError;
use crate::image::ImageError;
use crate::sandbox::SandboxError;

impl From<DockerError> for Status {
    fn from(err: DockerError) -> Self {
        let code = match &err {
            DockerError::Unavailable { .. } => Code::Unavailable,
            DockerError::NotFound(_) => Code::NotFound,
            DockerError::Conflict(_) | DockerError::NotModified => Code::FailedPrecondition,
            DockerError::BadRequest(_) | DockerError::AmbiguousId(_) => Code::InvalidArgument,
            DockerError::Stalled(_) => Code::DeadlineExceeded,
            DockerError::Server(_) => Code::Unknown,
            DockerError::Unreadable(_) => Code::Internal,
            DockerError::BadEndpoint(_) => Code::FailedPrecondition,
        };
        bounded_status(code, &err)
    }
}

impl From<ImageError> for Status {
    fn from(err: ImageError) -> Self {
        let code = match &err {
            ImageError::InvalidReference { .. }
            | ImageError::InvalidCredentials(_)
            | ImageError::UnknownRuntimeHandler { .. } => Code::InvalidArgument,
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
            ImageError::Policy(_)
            | ImageError::Hosts(_)
            | ImageError::RegistryConfig { .. }
            | ImageError::StoreUsage { .. } => Code::FailedPrecondition,
            ImageError::InUseAsVolume { .. } => Code::FailedPrecondition,
            ImageError::Records { .. } => {
                tracing::error!(error = %err, "image records failed");
                return Status::internal("pinshim could not store image records; see its log");
            }
        };
        bounded_status(code, &err)
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
        bounded_status(sandbox_code(&err), &err)
    }
}

impl From<ContainerError> for Status {
    fn from(err: ContainerError) -> Self {
        let code = match &err {
            ContainerError::InvalidConfig(_) => Code::InvalidArgument,
            ContainerError::NotFound(_) | ContainerError::ImageNotFound(_) => Code::NotFound,
            ContainerError::ImageSubPathNotFound { .. } => Code::NotFound,
            ContainerError::ImageVolumeUnsupported(_) => Code::FailedPrecondition,
            ContainerError::CheckpointUnsupported(_) | ContainerError::CdiUnsupported => Code::FailedPrecondition,
            ContainerError::Checkpoint(_) | ContainerError::Processes(_) => Code::Internal,
            ContainerError::CheckpointTimeout(_) => Code::DeadlineExceeded,
            ContainerError::AlreadyExists(_) => Code::AlreadyExists,
            ContainerError::NotRunning(_) => Code::FailedPrecondition,
            ContainerError::ExecTimeout(_) => Code::DeadlineExceeded,
            ContainerError::Log { source: LogError::Refused(_), .. } => Code::InvalidArgument,
            ContainerError::Log { source: LogError::Io(_), .. } => Code::Internal,
            ContainerError::HostMount(HostMountError::Options { .. }) => Code::InvalidArgument,
            ContainerError::HostMount(_) => Code::Internal,
            ContainerError::Sandbox(source) => sandbox_code(source),
            ContainerError::Image(source) => Status::from(source.clone()).code(),
            ContainerError::Docker(source) => Status::from(source.clone()).code(),
        };
        bounded_status(code, &err)
    }
}

impl From<crate::stream::TokenError> for Status {
    fn from(err: crate::stream::TokenError) -> Self {
        let code = match &err {
            crate::stream::TokenError::Full => Code::ResourceExhausted,
            crate::stream::TokenError::Random(_) => Code::Internal,
        };
        bounded_status(code, &err)
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

/// Answer for RPCs Docker cannot serve; `why` says what it lacks.
pub fn not_implemented(rpc: &str, why: &str) -> Status {
    Status::unimplemented(bounded(format!("{rpc} is not implemented by pinshim: {why}")))
}

/// A required request field was absent.
pub fn missing(field: &str) -> Status {
    Status::invalid_argument(bounded(format!("{field} is required")))
}

/// Longest run of non-space characters kept from a message: an ID, a path or
/// a reference the client sent is echoed at most this long.
const ECHO_MAX_CHARS: usize = 256;

/// Longest message sent: gRPC percent-encodes it into a trailer, and C-core
/// clients fail a call whose trailers pass 8 KiB (as RESOURCE_EXHAUSTED).
const MESSAGE_MAX_BYTES: usize = 1024;

fn bounded_status(code: Code, err: &dyn std::fmt::Display) -> Status {
    Status::new(code, bounded(err.to_string()))
}

/// `message` with every long word (the client's input it echoes) cut to
/// [`ECHO_MAX_CHARS`] with an ellipsis and its length, and the whole cut to
/// [`MESSAGE_MAX_BYTES`]: errors must not send back whatever was sent.
pub fn bounded(message: String) -> String {
    let long_word = message.split_whitespace().any(|w| w.chars().count() > ECHO_MAX_CHARS);
    if !long_word && message.len() <= MESSAGE_MAX_BYTES {
        return message;
    }
    let mut out = String::with_capacity(MESSAGE_MAX_BYTES);
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.char_indices().nth(ECHO_MAX_CHARS) {
            Some((cut, _)) => out.push_str(&format!("{}…({} chars)", &word[..cut], word.chars().count())),
            None => out.push_str(word),
        }
    }
    if out.len() > MESSAGE_MAX_BYTES {
        let total = out.len();
        let cut = (0..=MESSAGE_MAX_BYTES - 32).rev().find(|i| out.is_char_boundary(*i)).unwrap_or(0);
        out.truncate(cut);
        out.push_str(&format!("…(message of {total} bytes)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_untouched() {
        let m = "container 0123 not found".to_string();
        assert_eq!(bounded(m.clone()), m);
    }

    #[test]
    fn echoed_input_is_cut_with_its_length() {
        let id = "a".repeat(10_000);
        let status = Status::from(ContainerError::NotFound(id.clone()));
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().len() < 400, "{}", status.message().len());
        assert!(status.message().starts_with(&format!("container {}…(10000 chars)", "a".repeat(256))));
        assert!(status.message().ends_with(" not found"));
    }

    #[test]
    fn many_words_are_cut_as_a_whole() {
        let spaced = "ü ".repeat(5_000);
        let m = bounded(format!("bad {spaced}"));
        assert!(m.len() <= MESSAGE_MAX_BYTES + 40, "{}", m.len());
        assert!(m.ends_with("bytes)"), "{m}");
    }
}
