//! Host paths bound into a container, in the form the engine understands:
//! `Binds` strings where they mean what the CRI asks, `Mounts[]` where
//! only bind options can say it.

use bollard::models::{Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountImageOptions, MountType};

use super::DockerError;
use super::system::{API_BIND_READ_ONLY_OPTIONS, API_IMAGE_MOUNTS, ApiVersion};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadOnly {
    #[default]
    No,
    /// Only the bound directory itself; mounts below it stay as they are
    /// (the CRI's `readonly`, and what `ro` meant before Docker 25).
    NonRecursive,
    /// Every mount below it too (the CRI's `recursive_read_only`).
    Recursive,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Private,
    HostToContainer,
    Bidirectional,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindMount {
    pub host_path: String,
    pub container_path: String,
    pub read_only: ReadOnly,
    pub propagation: Propagation,
    pub selinux_relabel: bool,
}

/// An image's filesystem mounted read-only by the engine (API 1.48).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMount {
    /// The image's ID.
    pub image: String,
    pub container_path: String,
    /// A directory in the image to mount instead of its root; empty for
    /// the root.
    pub sub_path: String,
}

/// The `Mounts[]` entries for image mounts; engines before API 1.48 have
/// none, and the caller mounts the image itself there.
pub fn image_mounts(mounts: Vec<ImageMount>, api: ApiVersion) -> Result<Vec<Mount>, DockerError> {
    if !mounts.is_empty() && api < API_IMAGE_MOUNTS {
        return Err(DockerError::BadRequest(format!(
            "image mounts need Docker Engine API {API_IMAGE_MOUNTS} or later; this engine speaks {api}"
        )));
    }
    Ok(mounts
        .into_iter()
        .map(|m| Mount {
            typ: Some(MountType::IMAGE),
            source: Some(m.image),
            target: Some(m.container_path),
            read_only: Some(true),
            image_options: Some(MountImageOptions { subpath: (!m.sub_path.is_empty()).then_some(m.sub_path) }),
            ..Default::default()
        })
        .collect())
}

/// The `Binds` strings and `Mounts[]` entries for `mounts` on an engine
/// speaking `api`. From API 1.44 a `ro` bind is recursive, so read-only
/// binds go through `Mounts[]` and say which they mean (SELinux
/// relabelling exists only as a `Binds` option).
pub fn host_mounts(mounts: Vec<BindMount>, api: ApiVersion) -> Result<(Vec<String>, Vec<Mount>), DockerError> {
    let options = api >= API_BIND_READ_ONLY_OPTIONS;
    let (mut binds, mut typed) = (Vec::new(), Vec::new());
    for m in mounts {
        match (m.read_only, options) {
            (ReadOnly::Recursive, false) => {
                return Err(DockerError::BadRequest(format!(
                    "recursive read-only mount of {} needs Docker Engine API {API_BIND_READ_ONLY_OPTIONS} or later; \
                     this engine speaks {api}",
                    m.host_path
                )));
            }
            (ReadOnly::No, _) | (_, false) => binds.push(bind_string(&m)),
            // Recursively read-only then: what matters on an SELinux host
            // is the label, and mounts below a relabelled volume are rare.
            (_, true) if m.selinux_relabel => binds.push(bind_string(&m)),
            (read_only, true) => typed.push(typed_mount(m, read_only)),
        }
    }
    Ok((binds, typed))
}

fn propagation_name(p: Propagation) -> &'static str {
    match p {
        Propagation::Private => "rprivate",
        Propagation::HostToContainer => "rslave",
        Propagation::Bidirectional => "rshared",
    }
}

/// `src:dst:opts`.
fn bind_string(m: &BindMount) -> String {
    let mut options = vec![if m.read_only == ReadOnly::No { "rw" } else { "ro" }, propagation_name(m.propagation)];
    if m.selinux_relabel {
        options.push("Z");
    }
    format!("{}:{}:{}", m.host_path, m.container_path, options.join(","))
}

fn typed_mount(m: BindMount, read_only: ReadOnly) -> Mount {
    let propagation = match m.propagation {
        Propagation::Private => MountBindOptionsPropagationEnum::RPRIVATE,
        Propagation::HostToContainer => MountBindOptionsPropagationEnum::RSLAVE,
        Propagation::Bidirectional => MountBindOptionsPropagationEnum::RSHARED,
    };
    Mount {
        typ: Some(MountType::BIND),
        source: Some(m.host_path),
        target: Some(m.container_path),
        read_only: Some(true),
        bind_options: Some(MountBindOptions {
            propagation: Some(propagation),
            read_only_non_recursive: Some(read_only == ReadOnly::NonRecursive),
            read_only_force_recursive: Some(read_only == ReadOnly::Recursive),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: ApiVersion = ApiVersion(1, 41);
    const NEW: ApiVersion = ApiVersion(1, 51);

    fn mount(read_only: ReadOnly) -> BindMount {
        BindMount {
            host_path: "/h".into(),
            container_path: "/c".into(),
            read_only,
            propagation: Propagation::HostToContainer,
            selinux_relabel: false,
        }
    }

    #[test]
    fn old_engines_take_every_mount_as_a_bind_string() {
        let (binds, typed) = host_mounts(vec![mount(ReadOnly::No), mount(ReadOnly::NonRecursive)], OLD).unwrap();
        assert_eq!(binds, ["/h:/c:rw,rslave", "/h:/c:ro,rslave"]);
        assert!(typed.is_empty());
        let relabel = BindMount { selinux_relabel: true, ..mount(ReadOnly::No) };
        assert_eq!(host_mounts(vec![relabel], OLD).unwrap().0, ["/h:/c:rw,rslave,Z"]);
    }

    #[test]
    fn image_mounts_need_api_1_48() {
        let m = ImageMount { image: "sha256:ab".into(), container_path: "/v".into(), sub_path: "data".into() };
        assert!(image_mounts(vec![m.clone()], NEW).is_ok());
        let typed = image_mounts(vec![m.clone()], ApiVersion(1, 48)).unwrap();
        assert_eq!(typed[0].typ, Some(MountType::IMAGE));
        assert_eq!(typed[0].image_options.as_ref().and_then(|o| o.subpath.as_deref()), Some("data"));
        assert!(matches!(image_mounts(vec![m], ApiVersion(1, 47)), Err(DockerError::BadRequest(_))));
        assert!(image_mounts(Vec::new(), OLD).unwrap().is_empty());
    }

    #[test]
    fn old_engines_refuse_recursive_read_only() {
        let err = host_mounts(vec![mount(ReadOnly::Recursive)], OLD).unwrap_err();
        assert!(matches!(err, DockerError::BadRequest(ref m) if m.contains("1.44")), "{err:?}");
    }

    #[test]
    fn new_engines_say_which_read_only_they_mean() {
        let (binds, typed) =
            host_mounts(vec![mount(ReadOnly::No), mount(ReadOnly::NonRecursive), mount(ReadOnly::Recursive)], NEW)
                .unwrap();
        assert_eq!(binds, ["/h:/c:rw,rslave"]);
        let options: Vec<_> = typed.iter().map(|m| m.bind_options.clone().unwrap()).collect();
        assert_eq!(options[0].read_only_non_recursive, Some(true));
        assert_eq!(options[0].read_only_force_recursive, Some(false));
        assert_eq!(options[1].read_only_non_recursive, Some(false));
        assert_eq!(options[1].read_only_force_recursive, Some(true));
        assert!(typed.iter().all(|m| m.read_only == Some(true) && m.typ == Some(MountType::BIND)));
        assert_eq!(options[0].propagation, Some(MountBindOptionsPropagationEnum::RSLAVE));
    }

    #[test]
    fn new_engines_relabel_read_only_mounts_through_binds() {
        let relabel = BindMount { selinux_relabel: true, ..mount(ReadOnly::NonRecursive) };
        assert_eq!(host_mounts(vec![relabel], NEW).unwrap().0, ["/h:/c:ro,rslave,Z"]);
    }
}
