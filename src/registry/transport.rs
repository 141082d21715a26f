//! HTTP clients, one per TLS setting, so that connections are pooled
//! across resolutions and each host gets its own CAs and client certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use reqwest::redirect::Policy;
use reqwest::{Certificate, Identity};

use super::RegistryHost;

const USER_AGENT: &str = concat!("pinshim/", env!("CARGO_PKG_VERSION"));
const MAX_REDIRECTS: usize = 5;

/// Timeouts of every client built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportConfig {
    /// TCP connect plus TLS handshake. Short, so a dead mirror is left quickly.
    pub connect_timeout: Duration,
    /// Whole request including the body; manifests are small.
    pub request_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

/// The TLS part of a host's settings; hosts sharing it share a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TlsKey {
    ca_files: Vec<PathBuf>,
    client_pairs: Vec<(PathBuf, Option<PathBuf>)>,
    skip_verify: bool,
}

impl TlsKey {
    fn of(host: &RegistryHost) -> Self {
        TlsKey {
            ca_files: host.ca_files.clone(),
            client_pairs: host.client_pairs.clone(),
            skip_verify: host.skip_verify,
        }
    }

    fn files(&self) -> impl Iterator<Item = &Path> {
        let pairs = self.client_pairs.iter().flat_map(|(cert, key)| std::iter::once(cert).chain(key));
        self.ca_files.iter().chain(pairs).map(PathBuf::as_path)
    }
}

/// Identity of a file's content, cheap to check: a rotated certificate
/// gets a new client without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

struct Cached {
    stamps: Vec<FileStamp>,
    client: reqwest::Client,
}

pub(crate) struct Transports {
    config: TransportConfig,
    clients: Mutex<HashMap<TlsKey, Cached>>,
}

impl Transports {
    pub fn new(config: TransportConfig) -> Self {
        Transports { config, clients: Mutex::default() }
    }

    /// The client for `host`'s TLS settings, built on first use and rebuilt
    /// when one of its files changed. Errors are about the configuration.
    pub async fn client(&self, host: &RegistryHost) -> Result<reqwest::Client, String> {
        let key = TlsKey::of(host);
        let mut stamps = Vec::new();
        for path in key.files() {
            let meta = tokio::fs::metadata(path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            stamps.push(FileStamp { modified: meta.modified().ok(), len: meta.len() });
        }
        if let Some(cached) = self.lock().get(&key).filter(|c| c.stamps == stamps) {
            return Ok(cached.client.clone());
        }
        // Reading files and loading the system roots block; keep them off
        // the async workers.
        let (config, build_key) = (self.config, key.clone());
        let client = tokio::task::spawn_blocking(move || build(&build_key, config))
            .await
            .map_err(|e| format!("building the http client failed: {e}"))??;
        tracing::debug!(
            ca_files = key.ca_files.len(),
            client_pairs = key.client_pairs.len(),
            skip_verify = key.skip_verify,
            "built registry http client"
        );
        // A concurrent caller may have built one too; either is fine.
        self.lock().insert(key, Cached { stamps, client: client.clone() });
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TlsKey, Cached>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn build(key: &TlsKey, config: TransportConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .pool_idle_timeout(config.pool_idle_timeout)
        .redirect(Policy::limited(MAX_REDIRECTS));
    if key.skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    for path in &key.ca_files {
        let pem = read(path)?;
        let certs = Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("cannot parse CA file {}: {}", path.display(), super::describe::chain(&e)))?;
        if certs.is_empty() {
            return Err(format!("CA file {} holds no PEM certificate", path.display()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    // One identity per client: the first pair is presented, which is also
    // what a Go client picks when the server names no acceptable CAs.
    let mut identity_name = None;
    if let Some((cert, key_file)) = key.client_pairs.first() {
        if key.client_pairs.len() > 1 {
            tracing::warn!(pairs = key.client_pairs.len(), "only the first client certificate is presented");
        }
        let mut pem = read(cert)?;
        if let Some(key_file) = key_file {
            pem.push(b'\n');
            pem.extend(read(key_file)?);
        }
        let named = match key_file {
            Some(k) => format!("{} (key {})", cert.display(), k.display()),
            None => cert.display().to_string(),
        };
        let identity = Identity::from_pem(&pem)
            .map_err(|e| format!("cannot load client certificate {named}: {}", super::describe::chain(&e)))?;
        builder = builder.identity(identity);
        identity_name = Some(named);
    }
    builder.build().map_err(|e| match (super::describe::find_tls(&e), identity_name) {
        (Some(rustls::Error::InconsistentKeys(_)), Some(named)) => {
            format!("client certificate {named} does not match its key")
        }
        _ => format!("cannot build the http client: {}", super::describe::chain(&e)),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
