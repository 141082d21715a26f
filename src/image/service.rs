//! The image service: pull by digest, status, list, remove, disk usage.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Mutex;

use super::audit_log;
use super::credentials::{Credentials, DockerConfig};
use super::endpoints::{self, Endpoint, Registry, Resolution};
use super::error::ImageError;
use super::policy::{PolicyFile, Verdict};
use super::records::TagRecords;
use super::reference::{Digest, ImageReference, Target};
use super::single_flight::SingleFlight;
use crate::disk_usage::{FsUsage, FsUsageCache};
use crate::docker::{Docker, DockerError, DockerImage, ImageStore, PlatformManifest, ignore_missing};
use crate::labels;
use crate::registry::DistributionClient;

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
    /// containerd-style `certs.d/<host>/hosts.toml` tree.
    pub registry_config_dir: PathBuf,
    /// Docker's own certs.d, read when a host has no hosts.toml.
    pub docker_certs_dir: PathBuf,
    /// The provenance policy; `None`: everything allowed.
    pub policy_file: Option<PathBuf>,
    /// containerd's root, for the containerd image store's disk use.
    pub containerd_root: PathBuf,
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
/// See [`ImageService::store_view`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoreView {
    pub store: ImageStore,
    /// The image config's digest, where the store tells it.
    pub config_digest: Option<String>,
    pub platform_manifests: Vec<PlatformManifest>,
}

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
    policy: PolicyFile,
    config: ImageConfig,
}

impl ImageService {
    pub async fn new(docker: Docker, config: ImageConfig) -> Result<Arc<Self>, ImageError> {
        Ok(Arc::new(ImageService {
            registry: Registry::new(
                config.insecure_registries.clone(),
                config.registry_config_dir.clone(),
                config.docker_certs_dir.clone(),
            ),
            records: TagRecords::open(&config.state_dir).await?,
            docker_config: DockerConfig::from_env(),
            pulls: SingleFlight::default(),
            users: Mutex::default(),
            fs_usage: FsUsageCache::default(),
            policy: PolicyFile::new(config.policy_file.clone()),
            docker,
            config,
        }))
    }

    /// Docker keeps one image store for all its runtimes, so an image pulled
    /// for any handler serves every one: a handler named in an ImageSpec only
    /// has to be the default (`""`) or a runtime dockerd knows.
    pub async fn check_runtime_handler(&self, handler: &str) -> Result<(), ImageError> {
        if handler.is_empty() {
            return Ok(());
        }
        let known = self.docker.info().await?.runtimes;
        match known.iter().any(|r| r == handler) {
            true => Ok(()),
            false => Err(ImageError::UnknownRuntimeHandler { handler: handler.to_string(), known }),
        }
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

    /// Refuses what the provenance policy forbids: the registry before
    /// anything is fetched, the digest once it is known.
    pub fn admit(&self, reference: &ImageReference, digest: Option<&Digest>) -> Result<(), ImageError> {
        let Some(rule) = self.broken_rule(reference, digest)? else { return Ok(()) };
        let shown = match digest {
            Some(d) if reference.digest().is_none() => format!("{reference} ({d})"),
            _ => reference.to_string(),
        };
        tracing::warn!(reference = %shown, rule = %rule, "image refused by policy");
        Err(ImageError::Denied { reference: shown, rule })
    }

    /// Checks an image a container is about to be created from, by its
    /// canonical `registry/repo@sha256:…` (empty: never from a registry).
    pub fn admit_canonical(&self, canonical: &str) -> Result<(), ImageError> {
        if canonical.is_empty() {
            return Ok(());
        }
        let reference = Self::parse(canonical)?;
        self.admit(&reference, reference.digest())
    }

    /// The policy rule a canonical reference breaks, if any: for containers
    /// already running, which are reported, not stopped. A policy that
    /// cannot be read reports nothing here; pulls and creates fail on it.
    pub fn policy_violation(&self, canonical: &str) -> Option<String> {
        let reference = ImageReference::parse(canonical).ok()?;
        self.broken_rule(&reference, reference.digest()).ok().flatten()
    }

    /// The rule of the policy in force that an image breaks, if any.
    fn broken_rule(&self, reference: &ImageReference, digest: Option<&Digest>) -> Result<Option<String>, ImageError> {
        let policy = self.policy.current()?;
        Ok(match policy.check(reference.repository().registry(), digest.map(Digest::as_str)) {
            Verdict::Allowed => None,
            Verdict::Denied { rule } => Some(rule),
        })
    }

    async fn pull_once(&self, reference: ImageReference, auth: Option<Credentials>) -> PullResult {
        self.admit(&reference, None)?;
        let repo = reference.repository();
        let targets = self.targets(repo.registry(), auth).await?;
        let started = Instant::now();
        let resolution = self.registry.resolve(&reference, &targets).await;
        audit_log::resolution(&reference, &resolution, started.elapsed());
        if let (Err(ImageError::RegistryUnavailable { .. }), None, Some(digest)) =
            (&resolution, reference.tag(), reference.digest())
        {
            return self.held_digest(&reference, digest).await;
        }
        let resolution = match resolution {
            Ok(resolution) => resolution,
            Err(ImageError::RegistryUnavailable { .. }) if !self.policy.current()?.require_digest_resolution() => {
                return self.pull_by_tag(&reference, &targets).await;
            }
            Err(e) => return Err(e),
        };
        let Resolution { digest, host: resolved_by } = resolution;
        self.admit(&reference, Some(&digest))?;
        let pinned = ImageReference::with_digest(repo.clone(), digest.clone());
        let image = match self.find_pinned(&pinned, &digest).await? {
            Some(image) => image,
            None => self.pull_pinned(&reference, &pinned, &digest, &targets, &resolved_by).await?,
        };
        if let Some(tag) = reference.tag() {
            self.docker.tag_image(&image.id, &repo.to_string(), tag).await?;
            self.records.remember(&reference.to_string(), digest.as_str(), &image.id).await?;
        }
        Ok(Pulled { image_id: image.id, canonical: pinned.to_string() })
    }

    /// The registry's endpoints with the credentials for each: the CRI's
    /// AuthConfig where it names that host (or, naming none, for the
    /// registry itself), else Docker's config.json for the host.
    async fn targets(&self, registry: &str, auth: Option<Credentials>) -> Result<Vec<Endpoint>, ImageError> {
        let endpoints = self.registry.endpoints(registry)?;
        let last = endpoints.len().saturating_sub(1);
        let mut targets = Vec::with_capacity(endpoints.len());
        for (n, host) in endpoints.into_iter().enumerate() {
            let upstream = n == last;
            let authority = if upstream {
                registry.to_string()
            } else {
                DistributionClient::authority(&host).unwrap_or_else(|| host.url.clone())
            };
            let given = auth.as_ref().filter(|c| {
                let server = c.server_address.trim_start_matches("https://").trim_start_matches("http://");
                let server = server.trim_end_matches('/');
                if server.is_empty() { upstream } else { server == authority || (upstream && server == registry) }
            });
            let credentials = match given {
                Some(c) => Some(c.clone()),
                None => self.docker_config.lookup(&authority).await?,
            };
            // Refused rather than dropped: going anonymous would hide why access fails.
            if let Some(c) = &credentials {
                endpoints::check_supported(c)?;
            }
            targets.push(Endpoint { host, credentials, upstream });
        }
        Ok(targets)
    }

    /// The image Docker holds for `pinned`, under that name or, after a pull
    /// through a mirror, under the mirror's name recorded for the digest.
    async fn find_pinned(&self, pinned: &ImageReference, digest: &Digest) -> Result<Option<DockerImage>, ImageError> {
        if let Some(image) = self.docker.inspect_image(&pinned.to_string()).await? {
            return Ok(Some(image));
        }
        let repo = pinned.repository().to_string();
        match self.records.for_digest(&repo, digest.as_str()).await {
            Some(id) => Ok(self.docker.inspect_image(&id).await?),
            None => Ok(None),
        }
    }

    async fn pull_pinned(
        &self,
        reference: &ImageReference,
        pinned: &ImageReference,
        digest: &Digest,
        targets: &[Endpoint],
        resolved_by: &str,
    ) -> Result<DockerImage, ImageError> {
        let source = self.registry.pull_source(reference, digest, targets, resolved_by).await;
        let from = format!("{}@{digest}", source.repository);
        tracing::info!(reference = %pinned, from = %from, "pulling by digest");
        let started = Instant::now();
        let pulled = self
            .docker
            .pull_by_digest(
                &source.repository,
                digest.as_str(),
                source.credentials.as_ref().map(Credentials::for_docker).as_ref(),
                self.config.pull_progress_deadline,
            )
            .await
            .map_err(|e| pull_error(pinned, e));
        let image = match pulled {
            Ok(()) => self.docker.inspect_image(&from).await.map_err(ImageError::from).and_then(|image| {
                image.ok_or_else(|| ImageError::PullFailed {
                    reference: pinned.to_string(),
                    source: DockerError::NotFound(format!("{from} absent after a successful pull")),
                })
            }),
            Err(e) => Err(e),
        };
        audit_log::pull(reference, pinned, &source.host, &image, started.elapsed());
        image
    }

    /// `require_digest_resolution = false` and no endpoint could resolve:
    /// Docker pulls the tag itself, and the digest it reports is recorded.
    /// A pull by digest while no endpoint answers: the copy Docker holds,
    /// if any (nobody could have been refused it), else the registry's
    /// unavailability.
    async fn held_digest(&self, reference: &ImageReference, digest: &Digest) -> PullResult {
        self.admit(reference, Some(digest))?;
        match self.find_pinned(reference, digest).await? {
            Some(image) => {
                tracing::warn!(reference = %reference, "registry unreachable; answering with the copy docker holds");
                Ok(Pulled { image_id: image.id, canonical: reference.to_string() })
            }
            None => Err(ImageError::RegistryUnavailable {
                registry: reference.repository().registry().to_string(),
                reason: "no endpoint answered to confirm the digest".to_string(),
            }),
        }
    }

    async fn pull_by_tag(&self, reference: &ImageReference, targets: &[Endpoint]) -> PullResult {
        let repo = reference.repository();
        let tag = reference.tag().unwrap_or("latest");
        tracing::warn!(reference = %reference, "tag not resolved by any endpoint; policy allows a pull by tag");
        let creds = targets.last().and_then(|t| t.credentials.as_ref()).map(Credentials::for_docker);
        let started = Instant::now();
        self.docker
            .pull_by_digest(&repo.to_string(), tag, creds.as_ref(), self.config.pull_progress_deadline)
            .await
            .map_err(|e| pull_error(reference, e))?;
        let image = self.docker.inspect_image(&reference.to_string()).await?.ok_or_else(|| ImageError::PullFailed {
            reference: reference.to_string(),
            source: DockerError::NotFound(format!("{reference} absent after a successful pull")),
        })?;
        let prefix = format!("{repo}@");
        let canonical = qualify(&image.repo_digests).into_iter().find(|d| d.starts_with(&prefix)).unwrap_or_default();
        if let Some((_, digest)) = canonical.split_once('@') {
            self.admit(reference, Digest::parse(digest).ok().as_ref())?;
            self.records.remember(&reference.to_string(), digest, &image.id).await?;
        }
        audit_log::pull(reference, reference, repo.registry(), &Ok(image.clone()), started.elapsed());
        Ok(Pulled { image_id: image.id, canonical })
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
        let image = self.view_inspected(image).await?;
        Ok(Some(ImageStatus { image, canonical, canonical_reason, resolved_tags }))
    }

    /// What the engine's image store says of image `id` beyond its ID:
    /// the graph-driver store's ID is the config digest; the containerd
    /// store's is the manifest or index digest, and it lists the platform
    /// images instead. Asked for verbose status only.
    pub async fn store_view(&self, id: &str) -> Result<StoreView, ImageError> {
        let store = self.docker.engine().await?.image_store;
        Ok(match store {
            ImageStore::GraphDriver => {
                StoreView { store, config_digest: Some(id.to_string()), platform_manifests: Vec::new() }
            }
            ImageStore::Containerd => {
                StoreView { store, config_digest: None, platform_manifests: self.docker.platform_manifests(id).await? }
            }
        })
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
                Some((image, _)) => Ok(vec![self.view_inspected(image).await?]),
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

    /// [`Self::view`] of an image found by inspection, with the size the
    /// listing reports for it, so ImageStatus and ListImages agree (the
    /// containerd store's inspection counts less than its listing).
    async fn view_inspected(&self, mut image: DockerImage) -> Result<ImageView, ImageError> {
        if self.docker.engine().await?.image_store == ImageStore::Containerd
            && let Some(size) = self.docker.listed_size(&image.id).await?
        {
            image.size = size;
        }
        self.view(image).await
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
        // Docker refuses to remove a container's own image, but an image
        // volume pinshim mounted from the image's layers it cannot see.
        let users = self.docker.list_containers(&[&labels::volume_image(&image.id)]).await?;
        if let Some(user) = users.first() {
            return Err(ImageError::InUseAsVolume { image: image.id, container: user.id.clone() });
        }
        for name in image.repo_tags.iter().chain(&image.repo_digests) {
            self.remove_name(name, &image.id).await?;
        }
        self.remove_name(&image.id, &image.id).await?;
        self.records.forget_image(&image.id).await?;
        self.users.lock().await.remove(&image.id);
        Ok(())
    }

    /// Removes `name` (a tag, digest or the ID of image `id`). A concurrent
    /// removal makes Docker fail in several ways (404, or a 500 "unrecognized
    /// image ID" mid-deletion): whenever `name` no longer names `id`
    /// afterwards, the removal has happened and succeeds.
    async fn remove_name(&self, name: &str, id: &str) -> Result<(), ImageError> {
        let Err(err) = ignore_missing(self.docker.remove_image(name).await) else { return Ok(()) };
        match self.docker.inspect_image(name).await? {
            Some(still) if still.id == id => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// Bytes and inodes used by Docker's image store: the graph driver's
    /// directory, or containerd's content store and snapshots.
    pub async fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        // The engine's facts, learnt once per connection: Docker's /info
        // costs more than the cached measurement it would locate.
        let info = self.docker.engine().await?;
        let dirs = match info.image_store {
            ImageStore::GraphDriver => vec![PathBuf::from(&info.root_dir).join(&info.storage_driver)],
            ImageStore::Containerd => {
                // dockerd's own containerd lives under its data root.
                let managed = PathBuf::from(&info.root_dir).join("containerd/daemon");
                let root = if managed.is_dir() { managed } else { self.config.containerd_root.clone() };
                let mut dirs = vec![
                    root.join(format!("io.containerd.snapshotter.v1.{}", info.storage_driver)),
                    root.join("io.containerd.content.v1.content"),
                ];
                // containerd makes each store's directory on first use: under
                // a root that exists, a missing one holds nothing yet. With
                // neither, the root itself is measured (and names the disk).
                if root.is_dir() {
                    dirs.retain(|d| d.is_dir());
                    if dirs.is_empty() {
                        dirs.push(root);
                    }
                }
                dirs
            }
        };
        self.fs_usage.usage(&dirs).await.map_err(|e| {
            let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            let reason = match (info.image_store, e.kind()) {
                (ImageStore::Containerd, std::io::ErrorKind::NotFound) => {
                    format!("{e}; is --containerd-root the root of the containerd this dockerd uses?")
                }
                _ => e.to_string(),
            };
            ImageError::StoreUsage { dirs: names.join(" and "), reason }
        })
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
