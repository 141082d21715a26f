//! Daemon-wide facts: version, `docker info`, and what the engine can do.

use serde::Serialize;

use super::{Docker, DockerError, timed};

/// What `docker version` reports.
#[derive(Debug, Clone)]
pub struct DockerVersion {
    pub version: String,
    pub api_version: String,
}

/// Where the engine keeps images. The answers to "what is an image's ID"
/// and "where do its bytes live" differ between the two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageStore {
    /// Docker's own graph drivers (overlay2, …) under `DockerRootDir`: the
    /// image ID is the config digest.
    #[default]
    GraphDriver,
    /// containerd's content store and snapshotters (the default of fresh
    /// Docker 29 installs): the image ID is the manifest or index digest.
    Containerd,
}

/// The `DriverStatus` entry the containerd image store reports.
const CONTAINERD_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

/// The parts of `docker info` pinshim uses.
#[derive(Debug, Clone, Default)]
pub struct DockerInfo {
    /// `cgroupfs` or `systemd`.
    pub cgroup_driver: String,
    pub root_dir: String,
    pub storage_driver: String,
    pub image_store: ImageStore,
    pub runtimes: Vec<String>,
    pub default_runtime: String,
    /// Experimental features are on (checkpoints need them).
    pub experimental: bool,
    /// Where the engine reads CDI specs; empty where CDI is off (before
    /// Docker 28 it is behind `features.cdi`, before 25 absent).
    pub cdi_spec_dirs: Vec<String>,
}

/// The engine pinshim talks to, as found when it connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Engine {
    pub version: String,
    /// The API version both sides speak (the lower of the two maxima).
    pub api_version: ApiVersion,
    pub image_store: ImageStore,
    pub storage_driver: String,
    /// dockerd's data root (`/var/lib/docker`).
    pub root_dir: String,
}

/// A Docker Engine API version, ordered as numbers (1.9 < 1.44).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ApiVersion(pub usize, pub usize);

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// From API 1.44 (Docker 25) a `ro` bind is read-only recursively, and
/// bind options can ask for either behaviour.
pub const API_BIND_READ_ONLY_OPTIONS: ApiVersion = ApiVersion(1, 44);

/// From API 1.48 (Docker 28) a container can mount an image read-only
/// (`Mount{Type: "image"}`), a sub path of it too.
pub const API_IMAGE_MOUNTS: ApiVersion = ApiVersion(1, 48);

impl Engine {
    /// Whether the engine mounts images into containers itself.
    pub fn image_mounts(&self) -> bool {
        self.api_version >= API_IMAGE_MOUNTS
    }

    /// Whether bind mounts can be made read-only non-recursively and
    /// recursively on request.
    pub fn read_only_bind_options(&self) -> bool {
        self.api_version >= API_BIND_READ_ONLY_OPTIONS
    }

    /// Whether a privileged container gets only the capabilities dockerd
    /// itself holds (Docker 23 and later) rather than all the kernel knows,
    /// which runc cannot grant where the bounding set is incomplete.
    pub fn privileged_within_bounding_set(&self) -> bool {
        major_version(&self.version).is_some_and(|major| major >= 23)
    }
}

fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

impl Docker {
    pub async fn version(&self) -> Result<DockerVersion, DockerError> {
        let client = self.client().await?;
        let v = timed("version", client.version()).await.map_err(|e| self.error(e))?;
        Ok(DockerVersion { version: v.version.unwrap_or_default(), api_version: v.api_version.unwrap_or_default() })
    }

    pub async fn info(&self) -> Result<DockerInfo, DockerError> {
        let client = self.client().await?;
        let info = timed("info", client.info()).await.map_err(|e| self.error(e))?;
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        let containerd_store = info
            .driver_status
            .unwrap_or_default()
            .iter()
            .any(|entry| entry.iter().any(|v| v == CONTAINERD_SNAPSHOTTER));
        Ok(DockerInfo {
            cgroup_driver: info.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
            root_dir: info.docker_root_dir.unwrap_or_default(),
            storage_driver: info.driver.unwrap_or_default(),
            image_store: if containerd_store { ImageStore::Containerd } else { ImageStore::GraphDriver },
            runtimes,
            default_runtime: info.default_runtime.unwrap_or_default(),
            experimental: info.experimental_build.unwrap_or_default(),
            cdi_spec_dirs: info.cdi_spec_dirs.unwrap_or_default(),
        })
    }

    /// The engine's version, negotiated API version and image store,
    /// learnt once per connection (an engine cannot change under a
    /// connection; a restarted one is met by a new connection).
    pub async fn engine(&self) -> Result<Engine, DockerError> {
        if let Some(engine) = self.engine.lock().await.clone() {
            return Ok(engine);
        }
        let negotiated = self.client().await?.client_version();
        let (version, info) = (self.version().await?, self.info().await?);
        let engine = Engine {
            version: version.version,
            api_version: ApiVersion(negotiated.major_version, negotiated.minor_version),
            image_store: info.image_store,
            storage_driver: info.storage_driver,
            root_dir: info.root_dir,
        };
        *self.engine.lock().await = Some(engine.clone());
        Ok(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(version: &str, api: ApiVersion) -> Engine {
        Engine {
            version: version.into(),
            api_version: api,
            image_store: ImageStore::GraphDriver,
            storage_driver: "overlay2".into(),
            root_dir: "/var/lib/docker".into(),
        }
    }

    #[test]
    fn api_versions_order_as_numbers() {
        assert!(ApiVersion(1, 9) < ApiVersion(1, 44));
        assert!(ApiVersion(1, 41) < API_BIND_READ_ONLY_OPTIONS);
        assert_eq!(ApiVersion(1, 51).to_string(), "1.51");
    }

    #[test]
    fn bind_options_and_privileged_follow_the_engine() {
        let old = engine("20.10.24+dfsg1", ApiVersion(1, 41));
        assert!(!old.read_only_bind_options());
        assert!(!old.privileged_within_bounding_set());
        let new = engine("28.5.2+dfsg1", ApiVersion(1, 51));
        assert!(new.read_only_bind_options());
        assert!(new.privileged_within_bounding_set());
        assert!(!engine("garbage", ApiVersion(1, 51)).privileged_within_bounding_set());
    }
}
