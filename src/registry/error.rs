//! Resolution failures, sorted by what a caller holding several endpoints
//! (mirrors first, then the upstream) should do next.

/// Why a manifest could not be resolved on one endpoint. Messages never
/// carry credentials: hosts are shown without user info and tokens are
/// never formatted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Connection, TLS or server-side (5xx, 429) failure: the next endpoint may work.
    #[error("registry {host} is unavailable for {repository}: {reason}")]
    Unavailable { host: String, repository: String, reason: String },
    /// 401 after every auth attempt, or 403.
    #[error("registry {host} denied access to {repository}: {reason}")]
    Unauthorized { host: String, repository: String, reason: String },
    #[error("manifest {reference} not found in {repository} on registry {host}")]
    NotFound { host: String, repository: String, reference: String },
    /// The registry answered, but not as the distribution API says it should.
    #[error("registry {host} answered unexpectedly for {repository}: {reason}")]
    Protocol { host: String, repository: String, reason: String },
    /// The endpoint's configuration is unusable (bad URL, unreadable CA or key file).
    #[error("registry {host} cannot be used: {reason}")]
    Config { host: String, reason: String },
    /// The repository or reference is malformed; no request was made.
    #[error("invalid request for repository {repository:?}: {reason}")]
    InvalidRequest { repository: String, reason: String },
}

impl ResolveError {
    /// Whether another endpoint for the same repository may succeed where
    /// this one failed for reasons of its own. A 404 or 401 is left to the
    /// caller's policy: a mirror may lack an image or want other credentials.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ResolveError::Unavailable { .. })
    }

    /// The endpoint the error is about, if a request got that far.
    pub fn host(&self) -> Option<&str> {
        match self {
            ResolveError::Unavailable { host, .. }
            | ResolveError::Unauthorized { host, .. }
            | ResolveError::NotFound { host, .. }
            | ResolveError::Protocol { host, .. }
            | ResolveError::Config { host, .. } => Some(host),
            ResolveError::InvalidRequest { .. } => None,
        }
    }
}

/// The endpoint and repository a request is about, for building errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub host: &'a str,
    pub repository: &'a str,
}

impl Target<'_> {
    pub fn unavailable(&self, reason: impl Into<String>) -> ResolveError {
        ResolveError::Unavailable { host: self.host.into(), repository: self.repository.into(), reason: reason.into() }
    }

    pub fn unauthorized(&self, reason: impl Into<String>) -> ResolveError {
        ResolveError::Unauthorized { host: self.host.into(), repository: self.repository.into(), reason: reason.into() }
    }

    pub fn not_found(&self, reference: &str) -> ResolveError {
        ResolveError::NotFound {
            host: self.host.into(),
            repository: self.repository.into(),
            reference: reference.into(),
        }
    }

    pub fn protocol(&self, reason: impl Into<String>) -> ResolveError {
        ResolveError::Protocol { host: self.host.into(), repository: self.repository.into(), reason: reason.into() }
    }

    pub fn config(&self, reason: impl Into<String>) -> ResolveError {
        ResolveError::Config { host: self.host.into(), reason: reason.into() }
    }
}
