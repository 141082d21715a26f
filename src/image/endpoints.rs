//! Where a tag's digest comes from and where Docker pulls that digest from:
//! the registry's endpoints as hosts.toml lists them (mirrors first, the
//! upstream last), tried in order. An endpoint that is down (connection,
//! TLS, 5xx) is skipped; a definite answer (401, 404) is not overruled.

use std::path::PathBuf;

use super::credentials::Credentials;
use super::docker_trust::DockerTrust;
use super::error::ImageError;
use super::hosts::{HostsConfig, RegistryHost};
use super::reference::{Digest, ImageReference};
use crate::registry::{self, DistributionClient, ResolveError};

/// One endpoint of a registry with the credentials for it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: RegistryHost,
    pub credentials: Option<Credentials>,
    /// The registry itself, as opposed to a mirror of it.
    pub upstream: bool,
}

/// A tag's digest and the endpoint that answered.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub digest: Digest,
    pub host: String,
}

/// Where Docker pulls a digest from.
#[derive(Debug, Clone)]
pub struct PullSource {
    /// The repository name Docker pulls by (`mirror:5000/library/busybox`).
    pub repository: String,
    pub credentials: Option<Credentials>,
    /// The endpoint, for the audit log.
    pub host: String,
}

pub struct Registry {
    client: DistributionClient,
    hosts: HostsConfig,
    trust: DockerTrust,
    insecure: Vec<String>,
}

impl Registry {
    pub fn new(insecure: Vec<String>, config_dir: PathBuf, docker_certs_dir: PathBuf) -> Self {
        Registry {
            client: DistributionClient::default(),
            hosts: HostsConfig::new(config_dir, docker_certs_dir.clone()),
            trust: DockerTrust::new(docker_certs_dir),
            insecure,
        }
    }

    /// Whether `registry`'s default endpoint is plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|r| r == registry) || is_loopback(registry)
    }

    /// The registry's endpoints in the order to try them. The configuration
    /// is a few small files, checked for changes on every call.
    pub fn endpoints(&self, registry: &str) -> Result<Vec<RegistryHost>, ImageError> {
        Ok(self.hosts.hosts_for(registry, self.is_insecure(registry))?)
    }

    /// Resolves the tag at the first endpoint able to resolve that answers.
    pub async fn resolve(&self, reference: &ImageReference, targets: &[Endpoint]) -> Result<Resolution, ImageError> {
        let repo = reference.repository();
        let Some(tag) = reference.tag() else {
            let digest = reference.digest().cloned().ok_or_else(|| unreachable_target(reference))?;
            return self.confirm_digest(reference, digest, targets).await;
        };
        let mut down = Vec::new();
        for target in targets.iter().filter(|t| t.host.capabilities.resolve) {
            let creds = target.credentials.as_ref().and_then(wire_credentials);
            match self.client.resolve(&target.host, repo.path(), tag, creds.as_ref()).await {
                Ok(resolved) => {
                    let digest = Digest::parse(&resolved.digest).map_err(|e| ImageError::Registry {
                        registry: target.host.url.clone(),
                        reference: reference.to_string(),
                        reason: format!("registry answered with a bad digest: {e}"),
                    })?;
                    return Ok(Resolution { digest, host: target.host.url.clone() });
                }
                Err(e) if e.is_unavailable() => {
                    tracing::debug!(endpoint = %target.host.url, error = %e, "endpoint unavailable; trying the next");
                    down.push(e.to_string());
                }
                Err(e) => return Err(classify(e, reference)),
            }
        }
        Err(ImageError::RegistryUnavailable {
            registry: repo.registry().to_string(),
            reason: if down.is_empty() { "no endpoint may resolve tags".to_string() } else { down.join("; ") },
        })
    }

    /// A digest needs no resolving, but the registry is still asked whether
    /// it serves it to these credentials: Docker answers a pull of a digest
    /// it holds from its store without asking anyone, which would hand a
    /// private image to any pod that names it (kubelet's "ensure secret
    /// pulled images" relies on the runtime refusing). Mirrors that lack the
    /// digest or refuse the credentials give way to the next endpoint.
    async fn confirm_digest(
        &self,
        reference: &ImageReference,
        digest: Digest,
        targets: &[Endpoint],
    ) -> Result<Resolution, ImageError> {
        let repo = reference.repository();
        let mut down = Vec::new();
        for target in targets.iter().filter(|t| t.host.capabilities.pull) {
            let creds = target.credentials.as_ref().and_then(wire_credentials);
            match self.client.has_manifest(&target.host, repo.path(), digest.as_str(), creds.as_ref()).await {
                Ok(true) => return Ok(Resolution { digest, host: target.host.url.clone() }),
                Ok(false) if !target.upstream => continue,
                Ok(false) => {
                    let registry = repo.registry().to_string();
                    return Err(ImageError::NotFound { registry, reference: reference.to_string() });
                }
                Err(e) if e.is_unavailable() => down.push(e.to_string()),
                Err(e) if !target.upstream => {
                    tracing::warn!(endpoint = %target.host.url, error = %e, "mirror cannot confirm the digest; trying the next");
                }
                Err(e) => return Err(classify(e, reference)),
            }
        }
        Err(ImageError::RegistryUnavailable {
            registry: repo.registry().to_string(),
            reason: if down.is_empty() { "no endpoint may pull".to_string() } else { down.join("; ") },
        })
    }

    /// The first endpoint able to pull that has the digest; the upstream
    /// is the last resort even when it cannot be asked. `confirmed` is the
    /// endpoint that just served the manifest (resolving the tag or
    /// confirming the digest): it is not asked again. Docker's trust for
    /// the chosen host is brought in line with hosts.toml first.
    pub async fn pull_source(
        &self,
        reference: &ImageReference,
        digest: &Digest,
        targets: &[Endpoint],
        confirmed: &str,
    ) -> PullSource {
        let repo = reference.repository();
        for target in targets.iter().filter(|t| t.host.capabilities.pull) {
            let Some((name, authority)) = DistributionClient::docker_names(&target.host, repo.path()) else {
                tracing::debug!(endpoint = %target.host.url, "docker cannot pull from this endpoint's path; skipped");
                continue;
            };
            let creds = target.credentials.as_ref().and_then(wire_credentials);
            if !target.upstream && target.host.url != confirmed {
                match self.client.has_manifest(&target.host, repo.path(), digest.as_str(), creds.as_ref()).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    // Down: expected of a mirror now and then. Anything else
                    // (credentials, configuration) needs the operator's eye.
                    Err(e) if e.is_unavailable() => {
                        tracing::debug!(endpoint = %target.host.url, error = %e, "mirror unavailable; trying the next");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %target.host.url, error = %e, "mirror cannot serve the digest; trying the next");
                        continue;
                    }
                }
            }
            self.trust_for_docker(&authority, &target.host).await;
            let repository = if target.upstream { repo.to_string() } else { name };
            return PullSource { repository, credentials: target.credentials.clone(), host: target.host.url.clone() };
        }
        PullSource { repository: repo.to_string(), credentials: None, host: repo.registry().to_string() }
    }

    async fn trust_for_docker(&self, authority: &str, host: &RegistryHost) {
        if !host.url.starts_with("https://") {
            return;
        }
        let pinned = if host.skip_verify {
            match self.client.peer_certificate(host).await {
                Ok(cert) => cert,
                Err(e) => {
                    tracing::warn!(endpoint = %host.url, error = %e, "cannot read the certificate to pin for docker");
                    None
                }
            }
        } else {
            None
        };
        // Docker's own checks then decide; a failure here only costs trust.
        if let Err(e) = self.trust.sync(authority, host, pinned.as_deref()).await {
            tracing::warn!(error = %e, "docker may not trust this registry as hosts.toml says");
        }
    }
}

/// CRI/Docker credentials in the form the distribution client sends.
fn wire_credentials(c: &Credentials) -> Option<registry::Credentials> {
    if let Some(token) = &c.registry_token {
        return Some(registry::Credentials::Bearer(token.clone()));
    }
    c.username.as_ref().map(|username| registry::Credentials::Basic {
        username: username.clone(),
        password: c.password.clone().unwrap_or_default(),
    })
}

/// Identity tokens need an OAuth refresh flow the resolver does not have.
pub fn check_supported(c: &Credentials) -> Result<(), ImageError> {
    if c.username.is_none() && c.registry_token.is_none() && c.identity_token.is_some() {
        return Err(ImageError::Unsupported(
            "identity-token credentials are not supported for tag resolution; pass username/password or a registry token"
                .to_string(),
        ));
    }
    Ok(())
}

fn unreachable_target(reference: &ImageReference) -> ImageError {
    ImageError::InvalidReference { reference: reference.to_string(), source: super::reference::ReferenceError::Empty }
}

pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Sorts a definite registry answer into what the caller can act on.
fn classify(err: ResolveError, reference: &ImageReference) -> ImageError {
    let registry = err.host().unwrap_or(reference.repository().registry()).to_string();
    let reference = reference.to_string();
    match err {
        ResolveError::Unavailable { reason, .. } => ImageError::RegistryUnavailable { registry, reason },
        ResolveError::Unauthorized { .. } => ImageError::Unauthorized { registry, reference },
        ResolveError::NotFound { .. } => ImageError::NotFound { registry, reference },
        // An unreadable CA or key, a bad URL: the node's configuration, not the registry.
        ResolveError::Config { reason, .. } => ImageError::RegistryConfig { registry, reason },
        other => ImageError::Registry { registry, reference, reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        let r = Registry::new(
            vec!["reg.internal:5000".into()],
            PathBuf::from("/nonexistent"),
            PathBuf::from("/nonexistent"),
        );
        assert!(r.is_insecure("127.0.0.1:5000"));
        assert!(r.is_insecure("localhost:5000"));
        assert!(r.is_insecure("[::1]:5000"));
        assert!(r.is_insecure("reg.internal:5000"));
        assert!(!r.is_insecure("docker.io"));
        assert!(!r.is_insecure("reg.internal:5001"));
    }

    #[test]
    fn a_broken_endpoint_configuration_is_not_a_registry_failure() {
        let reference = ImageReference::parse("reg.example/app:v1").unwrap();
        let e = ResolveError::Config { host: "https://reg.example".into(), reason: "cannot read ca.pem".into() };
        assert!(matches!(classify(e, &reference), ImageError::RegistryConfig { .. }));
    }

    #[test]
    fn identity_tokens_are_refused_clearly() {
        let c = Credentials { identity_token: Some("t".into()), ..Default::default() };
        assert!(matches!(check_supported(&c), Err(ImageError::Unsupported(_))));
        let basic = Credentials { username: Some("u".into()), password: Some("p".into()), ..Default::default() };
        assert!(check_supported(&basic).is_ok());
        assert!(matches!(wire_credentials(&basic), Some(registry::Credentials::Basic { .. })));
    }
}
