//! Tag → digest resolution against the registry, over the OCI distribution API.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;

use super::credentials::Credentials;
use super::error::ImageError;
use super::reference::{Digest, ImageReference};

/// Every manifest kind a tag may point at; a multi-arch tag resolves to
/// its index, and Docker picks the platform.
const ACCEPTED: &[&str] =
    &[OCI_IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE];

/// Resolves tags with two clients: HTTPS, and plain HTTP for loopback
/// registries and those named by `--insecure-registry`.
pub struct Registry {
    https: oci_client::Client,
    http: oci_client::Client,
    insecure: Vec<String>,
}

impl Registry {
    pub fn new(insecure: Vec<String>) -> Self {
        let client = |protocol| oci_client::Client::new(ClientConfig { protocol, ..Default::default() });
        Registry { https: client(ClientProtocol::Https), http: client(ClientProtocol::Http), insecure }
    }

    /// Whether `registry` is spoken to over plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|r| r == registry) || is_loopback(registry)
    }

    /// Fetches the manifest `reference` names and returns its digest. The
    /// client checks the registry's `Docker-Content-Digest` against the body.
    pub async fn resolve(&self, reference: &ImageReference, creds: Option<&Credentials>) -> Result<Digest, ImageError> {
        let repo = reference.repository();
        let target = match reference.tag() {
            Some(tag) => oci_client::Reference::with_tag(repo.registry().into(), repo.path().into(), tag.into()),
            None => return reference.digest().cloned().ok_or_else(|| unreachable_target(reference)),
        };
        let auth = registry_auth(creds)?;
        let client = if self.is_insecure(repo.registry()) { &self.http } else { &self.https };
        let (_body, digest) =
            client.pull_manifest_raw(&target, &auth, ACCEPTED).await.map_err(|e| classify(e, reference))?;
        Digest::parse(&digest).map_err(|e| ImageError::Registry {
            registry: repo.registry().to_string(),
            reference: reference.to_string(),
            reason: format!("registry answered with a bad digest: {e}"),
        })
    }
}

fn unreachable_target(reference: &ImageReference) -> ImageError {
    ImageError::InvalidReference { reference: reference.to_string(), source: super::reference::ReferenceError::Empty }
}

fn registry_auth(creds: Option<&Credentials>) -> Result<RegistryAuth, ImageError> {
    let Some(c) = creds else { return Ok(RegistryAuth::Anonymous) };
    if let Some(token) = &c.registry_token {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    match (&c.username, &c.identity_token) {
        (Some(user), _) => Ok(RegistryAuth::Basic(user.clone(), c.password.clone().unwrap_or_default())),
        (None, Some(_)) => Err(ImageError::Unsupported(
            "identity-token credentials are not supported for tag resolution; pass username/password or a registry token"
                .to_string(),
        )),
        (None, None) => Ok(RegistryAuth::Anonymous),
    }
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Sorts registry failures into what the caller can act on.
fn classify(err: OciDistributionError, reference: &ImageReference) -> ImageError {
    let registry = reference.repository().registry().to_string();
    let reference = reference.to_string();
    match err {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
            ImageError::RegistryUnavailable { registry, reason: describe(&e) }
        }
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => {
            ImageError::Unauthorized { registry, reference }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                ImageError::Unauthorized { registry, reference }
            } else if codes.iter().any(|c| {
                matches!(c, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound)
            }) {
                ImageError::NotFound { registry, reference }
            } else {
                let reason = envelope.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
                ImageError::Registry { registry, reference, reason }
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => ImageError::NotFound { registry, reference },
        OciDistributionError::ServerError { code, message, .. } if code >= 500 => {
            ImageError::RegistryUnavailable { registry, reason: format!("HTTP {code}: {message}") }
        }
        other => ImageError::Registry { registry, reference, reason: other.to_string() },
    }
}

/// The HTTP client's top-level message hides the cause ("error sending
/// request"); the chain of sources says what happened ("Connection refused").
fn describe(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        let r = Registry::new(vec!["reg.internal:5000".into()]);
        assert!(r.is_insecure("127.0.0.1:5000"));
        assert!(r.is_insecure("localhost:5000"));
        assert!(r.is_insecure("[::1]:5000"));
        assert!(r.is_insecure("reg.internal:5000"));
        assert!(!r.is_insecure("docker.io"));
        assert!(!r.is_insecure("reg.internal:5001"));
    }

    #[test]
    fn identity_tokens_are_refused_clearly() {
        let c = Credentials { identity_token: Some("t".into()), ..Default::default() };
        assert!(matches!(registry_auth(Some(&c)), Err(ImageError::Unsupported(_))));
    }
}
