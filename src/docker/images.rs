//! Image calls: inspect, list, pull by digest, tag, remove.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::models::{ImageManifestSummaryKindEnum, ImageSummary};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;

use super::{Docker, DockerError, timed};

/// An image as Docker holds it. Names are as Docker prints them (familiar
/// form for Docker Hub); the image module qualifies them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerImage {
    /// Docker's image ID: the digest of the image config.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    /// The config's `User`; `None` when the listing did not carry it.
    pub user: Option<String>,
}

/// How often a read that met a concurrent removal is tried.
const READ_ATTEMPTS: u32 = 5;
/// The pause before it is tried again.
const REREAD_PAUSE: Duration = Duration::from_millis(50);

/// Credentials for one registry, as Docker's pull takes them. Secrets
/// never reach `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    pub server_address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub identity_token: Option<String>,
    pub registry_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("RegistryAuth")
            .field("server_address", &self.server_address)
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("identity_token", &secret(&self.identity_token))
            .field("registry_token", &secret(&self.registry_token))
            .finish()
    }
}

/// One platform's image inside a (multi-platform) image.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlatformManifest {
    /// The platform manifest's digest.
    pub digest: String,
    /// `os/architecture[/variant]`.
    pub platform: String,
    /// Whether its config and layers are held here (Docker pulls only the
    /// node's platform).
    pub available: bool,
}

impl Docker {
    /// Looks an image up by name, digest reference, ID or ID prefix. The
    /// containerd image store describes an image it is removing without
    /// its root filesystem, which does not parse: asked again, it has gone.
    pub async fn inspect_image(&self, name: &str) -> Result<Option<DockerImage>, DockerError> {
        let client = self.client().await?;
        let unreadable = |e: &DockerError| matches!(e, DockerError::Unreadable(_));
        match self.reread(unreadable, || timed("image_inspect", client.inspect_image(name))).await {
            Ok(image) => {
                let (repo_tags, repo_digests) =
                    split_names(image.repo_tags.unwrap_or_default(), image.repo_digests.unwrap_or_default());
                Ok(Some(DockerImage {
                    id: image.id.unwrap_or_default(),
                    repo_tags,
                    repo_digests,
                    size: image.size.unwrap_or_default().max(0) as u64,
                    user: Some(image.config.and_then(|c| c.user).unwrap_or_default()),
                }))
            }
            Err(DockerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The directories of image `id`'s layers, top first, where the image
    /// is stored by the overlay2 graph driver; `None` for other stores
    /// (the containerd image store keeps snapshots Docker does not name).
    pub async fn image_layer_dirs(&self, id: &str) -> Result<Option<Vec<PathBuf>>, DockerError> {
        let client = self.client().await?;
        let image = timed("image_inspect", client.inspect_image(id)).await.map_err(|e| self.error(e))?;
        let Some(driver) = image.graph_driver.filter(|d| d.name == "overlay2") else { return Ok(None) };
        let Some(top) = driver.data.get("UpperDir") else { return Ok(None) };
        let lower = driver.data.get("LowerDir").map(String::as_str).unwrap_or_default();
        let dirs = std::iter::once(top.as_str()).chain(lower.split(':').filter(|d| !d.is_empty()));
        Ok(Some(dirs.map(PathBuf::from).collect()))
    }

    /// Image `id`'s size as the listing gives it; `None` if it is not
    /// listed. The containerd image store's inspect counts only the
    /// platform content, its listing also the unpacked snapshots: what the
    /// image takes on disk, and what ListImages reports.
    pub async fn listed_size(&self, id: &str) -> Result<Option<u64>, DockerError> {
        let listed = self.list_images().await?;
        Ok(listed.into_iter().find(|i| i.id == id).map(|i| i.size))
    }

    /// Runs `call` again (after a pause, a few times) while it fails in a
    /// way `transient` says a concurrent removal explains.
    async fn reread<T, F, Fut>(&self, transient: impl Fn(&DockerError) -> bool, call: F) -> Result<T, DockerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, bollard::errors::Error>>,
    {
        let mut attempt = 1;
        loop {
            match call().await.map_err(|e| self.error(e)) {
                Err(e) if transient(&e) && attempt < READ_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(REREAD_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    /// Lists top-level images (no intermediate build layers).
    pub async fn list_images(&self) -> Result<Vec<DockerImage>, DockerError> {
        let images = self.image_summaries(false).await?;
        Ok(images
            .into_iter()
            .map(|s| {
                let (repo_tags, repo_digests) = split_names(s.repo_tags, s.repo_digests);
                DockerImage { id: s.id, repo_tags, repo_digests, size: s.size.max(0) as u64, user: None }
            })
            .collect())
    }

    /// Docker's listing, with each image's platform manifests if asked.
    /// The containerd image store fails a listing with 404 when an image
    /// goes while it is read; a listing cannot be "not found", so it is
    /// tried again.
    async fn image_summaries(&self, manifests: bool) -> Result<Vec<ImageSummary>, DockerError> {
        let client = self.client().await?;
        let options = ListImagesOptionsBuilder::default().all(false).manifests(manifests).build();
        // containerd's metadata store also reports a change under the read
        // as "data changed during operation, retry".
        let transient = |e: &DockerError| match e {
            DockerError::NotFound(_) | DockerError::Unreadable(_) => true,
            DockerError::Server(message) => message.contains("data changed during operation"),
            _ => false,
        };
        self.reread(transient, || timed("image_list", client.list_images(Some(options.clone())))).await
    }

    /// The platform images of image `id`, as the containerd image store
    /// keeps them (from API 1.47); empty for the graph-driver store.
    pub async fn platform_manifests(&self, id: &str) -> Result<Vec<PlatformManifest>, DockerError> {
        let images = self.image_summaries(true).await?;
        let manifests = images.into_iter().find(|i| i.id == id).and_then(|i| i.manifests).unwrap_or_default();
        Ok(manifests
            .into_iter()
            .filter(|m| m.kind == Some(ImageManifestSummaryKindEnum::IMAGE))
            .map(|m| {
                let platform = m.image_data.map(|d| d.platform).unwrap_or_default();
                let os_arch = [platform.os, platform.architecture, platform.variant];
                PlatformManifest {
                    digest: m.id,
                    platform: os_arch.into_iter().flatten().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("/"),
                    available: m.available,
                }
            })
            .collect())
    }

    /// Pulls `repository@digest`. The pull is abandoned (and Docker cancels
    /// it when the connection closes) if no progress arrives for `stall`.
    pub async fn pull_by_digest(
        &self,
        repository: &str,
        digest: &str,
        credentials: Option<&RegistryAuth>,
        stall: Duration,
    ) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = CreateImageOptionsBuilder::default().from_image(repository).tag(digest).build();
        let mut progress = client.create_image(Some(options), None, credentials.map(docker_credentials));
        loop {
            match tokio::time::timeout(stall, progress.next()).await {
                Err(_) => return Err(DockerError::Stalled(stall)),
                Ok(None) => return Ok(()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(self.error(e)),
            }
        }
    }

    /// Points `repository:tag` at `source` (a name, digest reference or ID).
    pub async fn tag_image(&self, source: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = TagImageOptionsBuilder::default().repo(repository).tag(tag).build();
        timed("image_tag", client.tag_image(source, Some(options))).await.map_err(|e| self.error(e))
    }

    /// Removes one name of an image, or the image itself when `name` is its
    /// ID. Docker keeps layers that other images still use.
    pub async fn remove_image(&self, name: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = RemoveImageOptionsBuilder::default().force(false).noprune(false).build();
        timed("image_remove", client.remove_image(name, Some(options), None)).await.map(drop).map_err(|e| self.error(e))
    }
}

/// Tags and digests apart. The containerd image store keeps the name a pull
/// by digest creates (`repo@sha256:…`) and lists it among the tags.
fn split_names(names: Vec<String>, mut digests: Vec<String>) -> (Vec<String>, Vec<String>) {
    let (digested, tags): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| n.contains('@'));
    for name in digested {
        if !digests.contains(&name) {
            digests.push(name);
        }
    }
    (tags, digests)
}

fn docker_credentials(c: &RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: c.username.clone(),
        password: c.password.clone(),
        serveraddress: Some(c.server_address.clone()),
        identitytoken: c.identity_token.clone(),
        registrytoken: c.registry_token.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digested_names_are_digests_not_tags() {
        let d = "busybox@sha256:aa".to_string();
        let (tags, digests) = split_names(vec!["busybox:1".into(), d.clone()], vec![d.clone()]);
        assert_eq!((tags, digests), (vec!["busybox:1".to_string()], vec![d.clone()]));
        let (tags, digests) = split_names(vec![d.clone()], vec![]);
        assert_eq!((tags, digests), (vec![], vec![d]));
    }
}
