//! One endpoint of a registry as the client talks to it: its URL, what it
//! may be used for, and the TLS material and headers it needs. The caller
//! builds these from its host configuration; the transport consumes them.

use std::path::PathBuf;

/// What an endpoint may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Fetching manifests and blobs by digest.
    pub pull: bool,
    /// Turning a tag into a digest; only for endpoints trusted with that.
    pub resolve: bool,
}

impl Capabilities {
    pub const PULL_AND_RESOLVE: Capabilities = Capabilities { pull: true, resolve: true };
}

/// One endpoint to try for a registry, in order. `Debug` names header
/// keys only: their values may be secrets (tokens sent as headers).
#[derive(Clone, PartialEq, Default)]
pub struct RegistryHost {
    /// Base URL with scheme, e.g. "https://mirror.local:5000" or "https://mirror.local/v2/mirrors" (path kept as given).
    pub url: String,
    pub capabilities: Capabilities,
    /// PEM CA files to trust (absolute paths; relative ones in hosts.toml are resolved against the host's directory).
    pub ca_files: Vec<PathBuf>,
    /// Client certificate + key pairs (key None when the cert file also holds the key).
    pub client_pairs: Vec<(PathBuf, Option<PathBuf>)>,
    pub skip_verify: bool,
    /// When true the URL path is used as-is instead of appending "/v2".
    pub override_path: bool,
    /// Extra headers sent with every request to this host.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for RegistryHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryHost")
            .field("url", &self.url)
            .field("capabilities", &self.capabilities)
            .field("ca_files", &self.ca_files)
            .field("client_pairs", &self.client_pairs)
            .field("skip_verify", &self.skip_verify)
            .field("override_path", &self.override_path)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}
