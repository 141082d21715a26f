//! The label schema: every sandbox and container carries its CRI metadata
//! in Docker labels, so Docker alone holds pinshim's state and a restarted
//! pinshim answers exactly as before.

use std::collections::HashMap;

/// `sandbox` or `container`; its presence marks a container as pinshim's.
pub const KIND: &str = "io.pinshim.kind";
pub const KIND_SANDBOX: &str = "sandbox";
pub const KIND_CONTAINER: &str = "container";
/// A container made only to look into an image, never started.
pub const KIND_PROBE: &str = "probe";

pub const NAME: &str = "io.pinshim.name";
pub const NAMESPACE: &str = "io.pinshim.namespace";
pub const UID: &str = "io.pinshim.uid";
pub const ATTEMPT: &str = "io.pinshim.attempt";
/// Nanoseconds since the epoch, taken just before `docker create`.
pub const CREATED_AT: &str = "io.pinshim.created-at";
/// The CRI labels and annotations, as JSON objects, kept byte for byte.
pub const LABELS: &str = "io.pinshim.labels";
pub const ANNOTATIONS: &str = "io.pinshim.annotations";

// Sandbox only.
pub const RUNTIME_HANDLER: &str = "io.pinshim.runtime-handler";
pub const LOG_DIRECTORY: &str = "io.pinshim.log-directory";
/// NamespaceOption modes, `network,pid,ipc` as CRI enum numbers.
pub const NAMESPACES: &str = "io.pinshim.namespaces";
/// How the pod is networked: `host`, `bridge` (Docker) or `cni`.
pub const NETWORK: &str = "io.pinshim.network";
/// The pod's cgroup; its containers are created under it too.
pub const CGROUP_PARENT: &str = "io.pinshim.cgroup-parent";

// Container only.
/// The `--root-dir` of the pinshim that created the container. After a
/// restart a pinshim adopts (copies logs of, cleans up) only its own, so
/// several instances can share one dockerd, as the tests do.
pub const ROOT_DIR: &str = "io.pinshim.root-dir";
pub const SANDBOX_ID: &str = "io.pinshim.sandbox-id";
pub const LOG_PATH: &str = "io.pinshim.log-path";
/// What kubelet passed as `ContainerConfig.image.image` (usually the image ID).
pub const IMAGE_REQUESTED: &str = "io.pinshim.image.requested";
/// The image name the user wrote in the pod spec, untouched.
pub const IMAGE_USER_SPECIFIED: &str = "io.pinshim.image.user-specified";
/// Docker's image ID at creation: the legacy ImageID.
pub const IMAGE_ID: &str = "io.pinshim.image.id";
/// `registry/repo@sha256:…` at creation, or empty for local images.
pub const CANONICAL_IMAGE_ID: &str = "io.pinshim.image.canonical";
pub const CANONICAL_REASON: &str = "io.pinshim.image.canonical-reason";
/// The binds pinshim prepared on the host for the container (JSON list of
/// target, host path and mount options), which Docker binds instead.
pub const HOST_MOUNTS: &str = "io.pinshim.host-mounts";
/// Container paths of the binds made read-only recursively, and of those
/// relabelled for SELinux (JSON lists): Docker's inspect shows neither.
pub const RECURSIVE_READ_ONLY: &str = "io.pinshim.mounts.recursive-read-only";
pub const SELINUX_RELABEL: &str = "io.pinshim.mounts.selinux-relabel";
/// The create's `unified` cgroup v2 settings (JSON map), written into the
/// container's cgroup at every start: Docker has no field for them.
pub const UNIFIED: &str = "io.pinshim.unified";
/// The container's image volumes (JSON list: container path, the image as
/// asked, its ID, canonical reference and sub path), fixed at create.
pub const IMAGE_VOLUMES: &str = "io.pinshim.image-volumes";
/// Prefix of one label per image volume, keyed by the image ID, so that
/// RemoveImage can find the containers that use an image as a volume.
pub const VOLUME_IMAGE_PREFIX: &str = "io.pinshim.volume-image.";

/// A JSON label read back; a missing or damaged one reads as empty.
pub fn get_json<T: serde::de::DeserializeOwned + Default>(labels: &HashMap<String, String>, key: &str) -> T {
    labels.get(key).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default()
}

/// The label a container carries while it uses `image_id` as a volume.
pub fn volume_image(image_id: &str) -> String {
    format!("{VOLUME_IMAGE_PREFIX}{image_id}")
}

/// Docker label filter matching every pinshim container of `kind`.
pub fn kind_filter(kind: &str) -> String {
    format!("{KIND}={kind}")
}

pub fn encode_map(map: &HashMap<String, String>) -> String {
    let sorted: std::collections::BTreeMap<_, _> = map.iter().collect();
    serde_json::to_string(&sorted).unwrap_or_else(|_| "{}".to_string())
}

/// Decodes a map label; a missing or damaged label reads as empty.
pub fn decode_map(labels: &HashMap<String, String>, key: &str) -> HashMap<String, String> {
    get_json(labels, key)
}

pub fn get(labels: &HashMap<String, String>, key: &str) -> String {
    labels.get(key).cloned().unwrap_or_default()
}

pub fn get_u32(labels: &HashMap<String, String>, key: &str) -> u32 {
    labels.get(key).and_then(|v| v.parse().ok()).unwrap_or_default()
}

/// Docker container names in cri-dockerd's pattern, which tools and
/// operators already recognise: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
pub fn docker_name(container: &str, pod: &str, namespace: &str, uid: &str, attempt: u32) -> String {
    format!("k8s_{container}_{pod}_{namespace}_{uid}_{attempt}")
}

/// The name part that marks a pod's infra container.
pub const SANDBOX_CONTAINER_NAME: &str = "POD";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_exactly() {
        let map = HashMap::from([
            ("a/b.c".to_string(), "x=y, z".to_string()),
            ("empty".to_string(), String::new()),
            ("ünï".to_string(), "{\"json\":true}".to_string()),
        ]);
        let labels = HashMap::from([(LABELS.to_string(), encode_map(&map))]);
        assert_eq!(decode_map(&labels, LABELS), map);
        assert!(decode_map(&labels, ANNOTATIONS).is_empty());
    }

    #[test]
    fn names_follow_the_kubelet_pattern() {
        assert_eq!(docker_name("POD", "web", "default", "u1", 0), "k8s_POD_web_default_u1_0");
    }
}
