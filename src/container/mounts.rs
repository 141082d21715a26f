//! The mounts of a new container that pinshim prepares before Docker sees
//! them: binds with mount options, and image volumes (KEP-4639).
//!
//! An image volume names a pulled image (kubelet passes PullImage's
//! `image_ref`). It is resolved like the container's own image, to Docker's
//! ID and the canonical `registry/repo@sha256:…` fixed at create, and the
//! image policy applies to it. From Docker 28 the engine mounts it itself;
//! before, pinshim mounts the image's overlay2 layers read-only (see
//! `host_mounts`) and Docker binds that.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ContainerError, ContainerService};
use crate::api;
use crate::docker::{BindMount, CreateSpec, ImageMount, Propagation, ReadOnly};
use crate::host_mounts::{self, MountRequest, PreparedBind};
use crate::labels;

/// An image volume as the container's labels record it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVolume {
    pub container_path: String,
    /// What kubelet passed as the mount's `image.image`.
    pub requested: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_specified: String,
    /// Docker's image ID.
    pub image_id: String,
    /// `registry/repo@sha256:…`, or empty for a local image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub canonical: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub canonical_reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
}

impl ImageVolume {
    /// What ContainerStatus reports as `image_ref`: the canonical
    /// reference, else the image ID.
    pub fn image_ref(&self) -> &str {
        if self.canonical.is_empty() { &self.image_id } else { &self.canonical }
    }
}

/// The image volumes a container's labels record.
pub fn recorded(container_labels: &HashMap<String, String>) -> Vec<ImageVolume> {
    labels::get_json(container_labels, labels::IMAGE_VOLUMES)
}

/// Whether a CRI mount is an image volume rather than a host path.
pub fn is_image_volume(mount: &api::Mount) -> bool {
    mount.image.as_ref().is_some_and(|i| !i.image.is_empty())
}

/// A sub path stays inside the image: relative, without `..`.
fn check_sub_path(mount: &api::Mount) -> Result<(), ContainerError> {
    let path = Path::new(&mount.image_sub_path);
    if path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Ok(());
    }
    Err(ContainerError::InvalidConfig(format!(
        "mount {}: image_sub_path {:?} must be a relative path inside the image",
        mount.container_path, mount.image_sub_path
    )))
}

/// An image volume on its way: resolved, not yet mounted.
struct Pending {
    volume: ImageVolume,
    /// The layers pinshim mounts itself; `None` where Docker mounts the image.
    layers: Option<Vec<PathBuf>>,
}

impl ContainerService {
    /// Prepares on the host what Docker cannot mount itself, and points
    /// the spec at it; the container's labels record it. On failure
    /// nothing prepared is left.
    pub(super) async fn prepare_mounts(
        &self,
        config: &api::ContainerConfig,
        spec: &mut CreateSpec,
    ) -> Result<Vec<PreparedBind>, ContainerError> {
        let pending = self.resolve_image_volumes(config).await?;
        let mut requests = Vec::new();
        // The host-path mounts are in the spec in config order.
        let host_paths = config.mounts.iter().filter(|m| !is_image_volume(m));
        let mut with_options = Vec::new();
        for (at, mount) in host_paths.enumerate().filter(|(_, m)| !m.mount_options.is_empty()) {
            with_options.push(at);
            requests.push(MountRequest::Bind {
                source: PathBuf::from(&mount.host_path),
                options: mount.mount_options.clone(),
            });
        }
        requests.extend(pending.iter().filter_map(|p| p.layers.clone()).map(MountRequest::Layers));
        let prepared = self.host_mounts.prepare(&requests)?;
        let (binds, layers) = prepared.split_at(with_options.len());
        for (&at, bind) in with_options.iter().zip(binds) {
            spec.mounts[at].host_path = bind.target.display().to_string();
        }
        let mut layers = layers.iter();
        for p in &pending {
            let v = &p.volume;
            if p.layers.is_none() {
                spec.image_mounts.push(ImageMount {
                    image: v.image_id.clone(),
                    container_path: v.container_path.clone(),
                    sub_path: v.sub_path.clone(),
                });
                continue;
            }
            let root = layers.next().expect("one prepared mount per layered volume");
            let source = root.target.join(&v.sub_path);
            if !source.is_dir() && !source.is_file() {
                self.host_mounts.release_or_warn(&prepared);
                return Err(sub_path_missing(v));
            }
            spec.mounts.push(BindMount {
                host_path: source.display().to_string(),
                container_path: v.container_path.clone(),
                read_only: ReadOnly::NonRecursive,
                propagation: Propagation::Private,
                selinux_relabel: false,
            });
        }
        if !prepared.is_empty() {
            spec.labels.insert(labels::HOST_MOUNTS.to_string(), host_mounts::label_value(&prepared));
        }
        if !pending.is_empty() {
            let volumes: Vec<&ImageVolume> = pending.iter().map(|p| &p.volume).collect();
            spec.labels.insert(labels::IMAGE_VOLUMES.to_string(), serde_json::to_string(&volumes).unwrap_or_default());
            for v in &volumes {
                spec.labels.insert(labels::volume_image(&v.image_id), v.container_path.clone());
            }
        }
        Ok(prepared)
    }

    /// Each image volume resolved to its image, admitted by the policy, and
    /// its sub path checked; with the layers to mount where the engine
    /// cannot mount images.
    async fn resolve_image_volumes(&self, config: &api::ContainerConfig) -> Result<Vec<Pending>, ContainerError> {
        let mut pending = Vec::new();
        for mount in config.mounts.iter().filter(|m| is_image_volume(m)) {
            if !mount.host_path.is_empty() {
                return Err(ContainerError::InvalidConfig(format!(
                    "mount {}: host_path must be empty when image is set",
                    mount.container_path
                )));
            }
            if mount.container_path.is_empty() {
                return Err(ContainerError::InvalidConfig("an image volume needs container_path".to_string()));
            }
            check_sub_path(mount)?;
            let identity = self.image_identity(mount.image.as_ref()).await?;
            self.images.admit_canonical(&identity.canonical)?;
            let volume = ImageVolume {
                container_path: mount.container_path.clone(),
                requested: identity.requested,
                user_specified: identity.user_specified,
                image_id: identity.image_id,
                canonical: identity.canonical,
                canonical_reason: identity.canonical_reason,
                sub_path: mount.image_sub_path.trim_start_matches("./").to_string(),
            };
            let layers = if self.docker.engine().await?.image_mounts() {
                if !volume.sub_path.is_empty() && !self.image_has(&volume.image_id, &volume.sub_path).await? {
                    return Err(sub_path_missing(&volume));
                }
                None
            } else {
                let layers = self.docker.image_layer_dirs(&volume.image_id).await?;
                Some(layers.ok_or_else(|| ContainerError::ImageVolumeUnsupported(volume.image_id.clone()))?)
            };
            pending.push(Pending { volume, layers });
        }
        Ok(pending)
    }

    /// Whether the image holds `sub_path`, asked through a container made
    /// from it and never started (the engine mounts the image only at start).
    async fn image_has(&self, image_id: &str, sub_path: &str) -> Result<bool, ContainerError> {
        let probe = HashMap::from([
            (labels::KIND.to_string(), labels::KIND_PROBE.to_string()),
            (labels::ROOT_DIR.to_string(), self.root_dir.clone()),
        ]);
        Ok(self.docker.image_has_path(image_id, &format!("/{sub_path}"), probe).await?)
    }
}

fn sub_path_missing(v: &ImageVolume) -> ContainerError {
    ContainerError::ImageSubPathNotFound { image: v.image_ref().to_string(), sub_path: v.sub_path.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_sub_path(sub: &str) -> api::Mount {
        api::Mount { container_path: "/v".into(), image_sub_path: sub.into(), ..Default::default() }
    }

    #[test]
    fn sub_paths_stay_inside_the_image() {
        for ok in ["", "data", "data/sub", "./data", "data/./x"] {
            assert!(check_sub_path(&with_sub_path(ok)).is_ok(), "{ok}");
        }
        for bad in ["/etc", "../x", "data/../../x", "a/.."] {
            assert!(check_sub_path(&with_sub_path(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_reference_reported_is_canonical_else_the_id() {
        let mut v = ImageVolume { image_id: "sha256:ab".into(), ..Default::default() };
        assert_eq!(v.image_ref(), "sha256:ab");
        v.canonical = "r/x@sha256:cd".into();
        assert_eq!(v.image_ref(), "r/x@sha256:cd");
    }

    #[test]
    fn labels_round_trip() {
        let v = ImageVolume { container_path: "/v".into(), image_id: "sha256:ab".into(), ..Default::default() };
        let l = HashMap::from([(labels::IMAGE_VOLUMES.to_string(), serde_json::to_string(&[&v]).unwrap())]);
        assert_eq!(recorded(&l), vec![v]);
        assert!(recorded(&HashMap::new()).is_empty());
    }
}
