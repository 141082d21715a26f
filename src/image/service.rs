//! The image service: pull by digest, status, list, remove, disk usage.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Mutex;

use super::credentials::{Credentials, DockerConfig};
use super::error::ImageError;
use super::records::TagRecords;
use super::reference::{ImageReference, Target};
use super::registry::Registry;
use super::single_flight::SingleFlight;
use crate::disk_usage::{FsUsage, FsUsageCache};
use crate::docker::{Docker, DockerError, DockerImage, ignore_missing};
use crate::metrics;

/// How many image configs ListImages inspects at once when its cache misses.
const INSPECT_CONCURRENCY: usize = 8;

/// Settings of the image service.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Where pinshim keeps its records of resolved tags.
    pub state_dir: PathBuf,
    pub insecure_registries: Vec<String>,
    /// A pull with no progress for this long is cancelled.
    pub pull_progress_deadline: Duration,
    /// The pod infra image; reported as pinned so kubelet's GC keeps it.
    pub pinned_image: Option<String>,
}

/// An image as the CRI reports it: names fully qualified.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageView {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    pub uid: Option<i64>,
    pub username: String,
    pub pinned: bool,
}

/// ImageStatus's answer: the image and where it came from.
#[derive(Debug, Clone)]
pub struct ImageStatus {
    pub image: ImageView,
    /// `registry/repo@sha256:…` of what was asked for; `None` for images
    /// that never came from a registry.
    pub canonical: Option<String>,
    /// Why `canonical` is empty, when it is.
    pub canonical_reason: Option<String>,
    /// Every tag pinshim resolved to this image, with the digest it served.
    pub resolved_tags: Vec<(String, String)>,
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    pub image_id: String,
    pub canonical: String,
}

type PullResult = Result<Pulled, ImageError>;

pub struct ImageService {
    docker: Docker,
    registry: Registry,
    records: TagRecords,
    docker_config: DockerConfig,
    pulls: SingleFlight<PullResult>,
    /// Image ID → config user. IDs are content digests, so entries never go stale.
    users: Mutex<HashMap<String, String>>,
    fs_usage: FsUsageCache,
    config: ImageConfig,
}

impl ImageService {
    pub async fn new(docker: Docker, config: ImageConfig) -> Result<Arc<Self>, ImageError> {
        Ok(Arc::new(ImageService {
            registry: Registry::new(config.insecure_registries.clone()),
            records: TagRecords::open(&config.state_dir).await?,
            docker_config: DockerConfig::from_env(),
            pulls: SingleFlight::default(),
            users: Mutex::default(),
            fs_usage: FsUsageCache::default(),
            docker,
            config,
        }))
    }

    /// Parses an image reference, mapping failure to `InvalidReference`.
    pub fn parse(spec: &str) -> Result<ImageReference, ImageError> {
        ImageReference::parse(spec).map_err(|source| ImageError::InvalidReference { reference: truncate(spec), source })
    }

    /// Pulls `spec` by digest: resolves a tag at the registry, pulls
    /// `repo@digest` unless Docker has it, then tags it. Identical concurrent
    /// pulls (same reference, same credentials) share one.
    pub async fn pull(&self, spec: &str, auth: Option<Credentials>) -> PullResult {
        let reference = Self::parse(spec)?;
        let key = format!("{reference}|{}", auth.as_ref().map(Credentials::fingerprint).unwrap_or_default());
        self.pulls.run(&key, || self.pull_once(reference, auth)).await
    }

    async fn pull_once(&self, reference: ImageReference, auth: Option<Credentials>) -> PullResult {
        let repo = reference.repository();
        let creds = match auth {
            Some(c) => Some(c),
            None => self.docker_config.lookup(repo.registry()).await?,
        };
        let digest = match reference.target() {
            Target::Tag(_) => {
                let started = Instant::now();
                let resolved = self.registry.resolve(&reference, creds.as_ref()).await;
                let result = if resolved.is_ok() { "ok" } else { "error" };
                metrics::record_resolution(repo.registry(), result, started.elapsed());
                resolved?
            }
            Target::Digest(d) => d.clone(),
        };
        let pinned = ImageReference::with_digest(repo.clone(), digest.clone());
        let image = match self.docker.inspect_image(&pinned.to_string()).await? {
            Some(image) => image,
            None => {
                tracing::info!(reference = %pinned, "pulling by digest");
                let started = Instant::now();
                let pulled = async {
                    self.docker
                        .pull_by_digest(
                            &repo.to_string(),
                            digest.as_str(),
                            creds.as_ref(),
                            self.config.pull_progress_deadline,
                        )
                        .await
                        .map_err(|e| pull_error(&pinned, e))?;
                    self.docker.inspect_image(&pinned.to_string()).await?.ok_or_else(|| ImageError::PullFailed {
                        reference: pinned.to_string(),
                        source: DockerError::NotFound(format!("{pinned} absent after a successful pull")),
                    })
                }
                .await;
                let bytes = pulled.as_ref().map_or(0, |image| image.size);
                metrics::record_pull(repo.registry(), pull_result(&pulled), bytes, started.elapsed());
                pulled?
            }
        };
        if let Some(tag) = reference.tag() {
            self.docker.tag_image(&image.id, &repo.to_string(), tag).await?;
            self.records.remember(&reference.to_string(), digest.as_str(), &image.id).await?;
        }
        Ok(Pulled { image_id: image.id, canonical: pinned.to_string() })
    }

    /// Finds an image by tag, digest reference, ID or ID prefix; `None` when
    /// Docker does not have it.
    pub async fn status(&self, spec: &str) -> Result<Option<ImageStatus>, ImageError> {
        let Some((image, reference)) = self.find(spec).await? else { return Ok(None) };
        let resolved_tags: Vec<(String, String)> =
            self.records.for_image(&image.id).await.into_iter().map(|(tag, r)| (tag, r.digest)).collect();
        let canonical = match reference.as_ref().map(|r| (r, r.target())) {
            Some((r, Target::Digest(_))) => Some(r.to_string()),
            Some((r, Target::Tag(_))) => self.canonical_of_tag(r, &image.id).await,
            None => None,
        };
        let canonical = canonical.or_else(|| canonical_of_image(&image, &resolved_tags));
        let canonical_reason = canonical.is_none().then(|| no_canonical_reason(&image));
        let image = self.view(image).await?;
        Ok(Some(ImageStatus { image, canonical, canonical_reason, resolved_tags }))
    }

    async fn canonical_of_tag(&self, reference: &ImageReference, image_id: &str) -> Option<String> {
        let record = self.records.for_tag(&reference.to_string(), image_id).await?;
        Some(format!("{}@{}", reference.repository(), record.digest))
    }

    async fn find(&self, spec: &str) -> Result<Option<(DockerImage, Option<ImageReference>)>, ImageError> {
        if is_image_id(spec) {
            return Ok(self.docker.inspect_image(spec).await?.map(|i| (i, None)));
        }
        match Self::parse(spec) {
            Ok(reference) => match self.docker.inspect_image(&reference.to_string()).await? {
                Some(image) => Ok(Some((image, Some(reference)))),
                None if is_hex(spec) => Ok(self.docker.inspect_image(spec).await?.map(|i| (i, None))),
                None => Ok(None),
            },
            Err(_) if is_hex(spec) => Ok(self.docker.inspect_image(spec).await?.map(|i| (i, None))),
            Err(e) => Err(e),
        }
    }

    /// Every image Docker holds, names fully qualified; `filter` narrows the
    /// list to the one image it names.
    pub async fn list(&self, filter: Option<&str>) -> Result<Vec<ImageView>, ImageError> {
        if let Some(spec) = filter.filter(|s| !s.is_empty()) {
            let found = self.find(spec).await?;
            return match found {
                Some((image, _)) => Ok(vec![self.view(image).await?]),
                None => Ok(Vec::new()),
            };
        }
        let images = self.docker.list_images().await?;
        futures::stream::iter(images)
            .map(|image| self.view(image))
            .buffered(INSPECT_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Converts Docker's view, fetching the config user when the listing
    /// did not carry it.
    async fn view(&self, image: DockerImage) -> Result<ImageView, ImageError> {
        let user = match image.user.clone() {
            Some(user) => user,
            None => self.user_of(&image.id).await?,
        };
        self.users.lock().await.insert(image.id.clone(), user.clone());
        let (uid, username) = split_user(&user);
        let repo_tags = qualify(&image.repo_tags);
        let pinned = self
            .config
            .pinned_image
            .as_deref()
            .is_some_and(|p| ImageReference::parse(p).is_ok_and(|p| repo_tags.contains(&p.to_string())));
        Ok(ImageView {
            id: image.id,
            repo_tags,
            repo_digests: qualify(&image.repo_digests),
            size: image.size,
            uid,
            username,
            pinned,
        })
    }

    async fn user_of(&self, id: &str) -> Result<String, ImageError> {
        if let Some(user) = self.users.lock().await.get(id) {
            return Ok(user.clone());
        }
        Ok(self.docker.inspect_image(id).await?.and_then(|i| i.user).unwrap_or_default())
    }

    /// Removes the image `spec` names with all its tags and digests.
    /// Removing an absent image succeeds.
    pub async fn remove(&self, spec: &str) -> Result<(), ImageError> {
        let Some((image, _)) = self.find(spec).await? else { return Ok(()) };
        for name in image.repo_tags.iter().chain(&image.repo_digests) {
            ignore_missing(self.docker.remove_image(name).await)?;
        }
        ignore_missing(self.docker.remove_image(&image.id).await)?;
        self.records.forget_image(&image.id).await?;
        self.users.lock().await.remove(&image.id);
        Ok(())
    }

    /// Bytes and inodes used by Docker's image store.
    pub async fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        let info = self.docker.info().await?;
        let dir = PathBuf::from(&info.root_dir).join(&info.storage_driver);
        self.fs_usage
            .usage(&dir)
            .await
            .map_err(|e| ImageError::Docker(DockerError::Server(format!("cannot measure {}: {e}", dir.display()))))
    }
}

/// The `result` label of a pull's metrics.
fn pull_result(pulled: &Result<DockerImage, ImageError>) -> &'static str {
    match pulled {
        Ok(_) => "ok",
        Err(ImageError::PullStalled { .. }) => "stalled",
        Err(_) => "error",
    }
}

fn pull_error(reference: &ImageReference, err: DockerError) -> ImageError {
    match err {
        DockerError::Stalled(after) => ImageError::PullStalled { reference: reference.to_string(), after },
        DockerError::Unavailable { .. } => ImageError::Docker(err),
        other => ImageError::PullFailed { reference: reference.to_string(), source: other },
    }
}

/// For an image looked up by ID: the newest tag resolution that led to it,
/// else its only registry digest. Several digests and no record: unknown.
fn canonical_of_image(image: &DockerImage, resolved: &[(String, String)]) -> Option<String> {
    if let Some((tag, digest)) = resolved.first() {
        let reference = ImageReference::parse(tag).ok()?;
        return Some(format!("{}@{digest}", reference.repository()));
    }
    match qualify(&image.repo_digests).as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

fn no_canonical_reason(image: &DockerImage) -> String {
    if image.repo_digests.is_empty() {
        "image has no registry digest: it was built or loaded locally".to_string()
    } else {
        "image has several registry digests and none was resolved by pinshim".to_string()
    }
}

/// Fully qualified names; Docker's `<none>` placeholders are dropped.
fn qualify(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| !n.starts_with("<none>"))
        .filter_map(|n| ImageReference::parse(n).ok().map(|r| r.to_string()))
        .collect()
}

/// `sha256:<64 hex>` or 64 hex: certainly an ID, never a name.
fn is_image_id(spec: &str) -> bool {
    let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
    (spec.starts_with("sha256:") && is_hex(hex)) || (hex.len() == 64 && is_hex(hex))
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Image config `User` → (uid, username), as the CRI wants: a numeric
/// user becomes the uid, a name the username; the group part is ignored.
fn split_user(user: &str) -> (Option<i64>, String) {
    let name = user.split(':').next().unwrap_or_default();
    match name.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, name.to_string()),
    }
}

/// Keeps error messages readable when someone sends a 5000-character name.
fn truncate(spec: &str) -> String {
    const MAX: usize = 300;
    match spec.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &spec[..i]),
        None => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_split_into_uid_or_name() {
        assert_eq!(split_user(""), (None, String::new()));
        assert_eq!(split_user("1000:1000"), (Some(1000), String::new()));
        assert_eq!(split_user("nobody"), (None, "nobody".to_string()));
        assert_eq!(split_user("0"), (Some(0), String::new()));
    }

    #[test]
    fn ids_are_told_from_names() {
        let hex = "a".repeat(64);
        assert!(is_image_id(&format!("sha256:{hex}")));
        assert!(is_image_id(&hex));
        assert!(!is_image_id("busybox"));
        assert!(!is_image_id("sha256:xyz"));
    }

    #[test]
    fn names_are_qualified_and_placeholders_dropped() {
        let names = vec!["busybox:1".to_string(), "<none>:<none>".to_string(), "127.0.0.1:5000/a:b".to_string()];
        assert_eq!(qualify(&names), vec!["docker.io/library/busybox:1", "127.0.0.1:5000/a:b"]);
    }

    #[test]
    fn image_ids_alone_have_canonical_only_when_unambiguous() {
        let mut image = DockerImage { repo_digests: vec!["busybox@sha256:aa".into()], ..Default::default() };
        // One digest that is not a valid digest reference is dropped by qualify.
        assert_eq!(canonical_of_image(&image, &[]), None);
        let d = format!("sha256:{}", "b".repeat(64));
        image.repo_digests = vec![format!("busybox@{d}")];
        assert_eq!(canonical_of_image(&image, &[]), Some(format!("docker.io/library/busybox@{d}")));
        image.repo_digests.push(format!("other@{d}"));
        assert_eq!(canonical_of_image(&image, &[]), None);
        let resolved = vec![("127.0.0.1:5000/x:v1".to_string(), d.clone())];
        assert_eq!(canonical_of_image(&image, &resolved), Some(format!("127.0.0.1:5000/x@{d}")));
    }
}
