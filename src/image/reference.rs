//! Image references: parsing and normalisation to fully qualified names.
//!
//! Follows the grammar Docker and containerd accept (distribution's
//! reference grammar) so that a name kubelet sends means the same here as
//! anywhere else, and rejects what they reject before any network traffic.

use std::fmt;

/// Registry that short names such as `busybox` belong to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Why a reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("repository name must be lowercase")]
    Uppercase,
    #[error("invalid registry host {0:?}")]
    InvalidRegistry(String),
    #[error("invalid repository path component {0:?}")]
    InvalidPathComponent(String),
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    #[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex characters")]
    InvalidDigest(String),
}

/// A `sha256:<64 hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses a digest; only sha256 is accepted, as Docker and registries use.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let invalid = || ReferenceError::InvalidDigest(s.to_string());
        let hex = s.strip_prefix("sha256:").ok_or_else(invalid)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid());
        }
        Ok(Digest(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fully qualified repository: `registry/path`, e.g. `docker.io/library/busybox`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    path: String,
}

impl Repository {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// What a reference points at: a movable tag or an immutable digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Tag(String),
    Digest(Digest),
}

/// A normalised image reference. A reference that names both a tag and a
/// digest keeps only the digest, as Docker does when it pulls one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    repository: Repository,
    target: Target,
}

impl ImageReference {
    /// Parses and normalises `s`: `busybox` becomes
    /// `docker.io/library/busybox:latest`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, digest)) => (name, Some(Digest::parse(digest)?)),
            None => (s, None),
        };
        let (name, tag) = split_tag(name)?;
        let repository = parse_repository(name)?;
        let target = match (digest, tag) {
            (Some(digest), _) => Target::Digest(digest),
            (None, Some(tag)) => Target::Tag(tag.to_string()),
            (None, None) => Target::Tag(DEFAULT_TAG.to_string()),
        };
        Ok(ImageReference { repository, target })
    }

    pub fn with_digest(repository: Repository, digest: Digest) -> Self {
        ImageReference { repository, target: Target::Digest(digest) }
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn tag(&self) -> Option<&str> {
        match &self.target {
            Target::Tag(tag) => Some(tag),
            Target::Digest(_) => None,
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        match &self.target {
            Target::Digest(digest) => Some(digest),
            Target::Tag(_) => None,
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Tag(tag) => write!(f, "{}:{tag}", self.repository),
            Target::Digest(digest) => write!(f, "{}@{digest}", self.repository),
        }
    }
}

/// Splits `name[:tag]`; a colon before the last slash belongs to a registry port.
fn split_tag(name: &str) -> Result<(&str, Option<&str>), ReferenceError> {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => {
            let (name, tag) = (&name[..last_slash + i], &name[last_slash + i + 1..]);
            if !valid_tag(tag) {
                return Err(ReferenceError::InvalidTag(tag.to_string()));
            }
            Ok((name, Some(tag)))
        }
        None => Ok((name, None)),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok && tag.len() <= MAX_TAG_LEN && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn parse_repository(name: &str) -> Result<Repository, ReferenceError> {
    if name.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) => (first, rest),
        _ => (DEFAULT_REGISTRY, name),
    };
    if path.len() > MAX_NAME_LEN || registry.len() + 1 + path.len() > MAX_NAME_LEN {
        return Err(ReferenceError::NameTooLong);
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase);
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            return Err(ReferenceError::InvalidPathComponent(component.to_string()));
        }
    }
    if !valid_registry(registry) {
        return Err(ReferenceError::InvalidRegistry(registry.to_string()));
    }
    let registry = match registry {
        LEGACY_DEFAULT_REGISTRY => DEFAULT_REGISTRY,
        other => other,
    };
    let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path.to_string()
    };
    Ok(Repository { registry: registry.to_string(), path })
}

/// The first component is a registry when it has a dot or a port, or is
/// `localhost`. (Recent Docker also takes `UPPER/x` as registry `UPPER`; we
/// keep the older, stricter reading and reject it as an uppercase repository.)
fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost"
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, tail)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, tail.strip_prefix(':').map(Some).unwrap_or(if tail.is_empty() { None } else { Some("") }))
            }
            None => return false,
        },
        None => match registry.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        },
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = host.is_none_or(|h| !h.is_empty() && h.split('.').all(valid_domain_label));
    port_ok && host_ok
}

fn valid_domain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:6ddbb4a1e4a0ab5b6b1bc0b1a2b7a3d3d5cf49b6d0a1c2e3f40516273849aabb";

    fn norm(s: &str) -> String {
        ImageReference::parse(s).expect(s).to_string()
    }

    #[test]
    fn normalises_short_names() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("index.docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("docker.io/library/busybox:1"), "docker.io/library/busybox:1");
    }

    #[test]
    fn keeps_registries_and_ports() {
        assert_eq!(norm("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b:v1");
        assert_eq!(norm("localhost/a"), "localhost/a:latest");
        assert_eq!(norm("registry.k8s.io/pause:3.10"), "registry.k8s.io/pause:3.10");
        assert_eq!(norm("[::1]:5000/a:x"), "[::1]:5000/a:x");
    }

    #[test]
    fn digest_wins_over_tag() {
        let r = ImageReference::parse(&format!("busybox:1.36@{D}")).unwrap();
        assert_eq!(r.digest().map(Digest::as_str), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
    }

    #[test]
    fn rejects_bad_references() {
        let long = "a".repeat(5000);
        for bad in
            ["", "UPPER/case:1", "repo@sha256:short", "../../etc", &long, "a:b:c", "a/", "-a", "a@md5:00", "a:-tag"]
        {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn path_separators() {
        assert!(valid_path_component("a.b_c__d---e"));
        assert!(!valid_path_component("a..b"));
        assert!(!valid_path_component("a___b"));
        assert!(!valid_path_component(".."));
    }
}
