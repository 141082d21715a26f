//! The checks a ContainerConfig passes before anything reaches Docker or
//! the file system: enum values in range, resources and devices that make
//! sense, an environment Docker will carry as given, a log path that stays
//! in the pod's log directory. Each refusal names the field.

use std::path::{Path, PathBuf};

use super::error::ContainerError;
use super::log_open::{self, LogError};
use crate::api;
use crate::{unsupported, validate};

/// Everything in `config` that `create_spec` turns into Docker's settings.
pub fn config(config: &api::ContainerConfig) -> Result<(), ContainerError> {
    let linux = config.linux.clone().unwrap_or_default();
    if let Some(security) = &linux.security_context {
        namespaces(security.namespace_options.as_ref())?;
        unsupported::identity(security.namespace_options.as_ref(), security.supplemental_groups_policy)
            .map_err(invalid)?;
        if security.capabilities.as_ref().is_some_and(|c| !c.add_ambient_capabilities.is_empty()) {
            return Err(invalid(
                "security_context.capabilities.add_ambient_capabilities: Docker cannot grant ambient capabilities"
                    .to_string(),
            ));
        }
    }
    if let Some(resources) = &linux.resources {
        self::resources(resources)?;
        // kubelet lists every page size, with 0 for those not asked for.
        if resources.hugepage_limits.iter().any(|h| h.limit > 0) {
            return Err(invalid("resources.hugepage_limits: Docker has no hugetlb limit setting".to_string()));
        }
    }
    for (i, d) in config.cdi_devices.iter().enumerate() {
        cdi_name(i, &d.name)?;
    }
    envs(&config.envs)?;
    config.mounts.iter().enumerate().try_for_each(|(i, m)| mount(i, m))?;
    config.devices.iter().enumerate().try_for_each(|(i, d)| device(i, d))?;
    known::<api::Signal>("stop_signal", config.stop_signal)
}

fn known<E: TryFrom<i32>>(field: &str, value: i32) -> Result<(), ContainerError> {
    validate::known::<E>(field, value).map_err(invalid)
}

fn namespaces(n: Option<&api::NamespaceOption>) -> Result<(), ContainerError> {
    let Some(n) = n else { return Ok(()) };
    known::<api::NamespaceMode>("namespace_options.network", n.network)?;
    known::<api::NamespaceMode>("namespace_options.pid", n.pid)?;
    known::<api::NamespaceMode>("namespace_options.ipc", n.ipc)?;
    // Docker would also take a container name here.
    if n.pid() == api::NamespaceMode::Target && !validate::is_id_prefix(&n.target_id) {
        return Err(invalid(format!("namespace_options.target_id {:?} is not a container id", n.target_id)));
    }
    Ok(())
}

/// See `crate::resources::check`.
pub fn resources(r: &api::LinuxContainerResources) -> Result<(), ContainerError> {
    crate::resources::check(r).map_err(invalid)
}

/// Docker carries the environment as `KEY=value` strings: a key with `=`
/// would set another variable, and a NUL would cut the string short.
fn envs(envs: &[api::KeyValue]) -> Result<(), ContainerError> {
    for kv in envs {
        if kv.key.is_empty() || kv.key.contains(['=', '\0']) {
            return Err(invalid(format!("envs key {:?} must be non-empty, without '=' or NUL", kv.key)));
        }
        if kv.value.contains(&0) {
            return Err(invalid(format!("envs value of {:?} contains a NUL byte", kv.key)));
        }
    }
    Ok(())
}

fn mount(i: usize, m: &api::Mount) -> Result<(), ContainerError> {
    known::<api::MountPropagation>(&format!("mounts[{i}].propagation"), m.propagation)?;
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(invalid(format!("mounts[{i}]: ID-mapped mounts are not supported through Docker")));
    }
    if super::mounts::is_image_volume(m) {
        image_volume(i, m)?;
    }
    Ok(())
}

/// An image volume is always read-only (a read-write request gets it
/// read-only, and with no submounts it is recursively so). Docker's image
/// mounts and the overlay pinshim builds carry no propagation and no bind
/// options, so asking for either is refused rather than dropped.
fn image_volume(i: usize, m: &api::Mount) -> Result<(), ContainerError> {
    if m.propagation() != api::MountPropagation::PropagationPrivate {
        return Err(invalid(format!(
            "mounts[{i}]: an image volume cannot propagate mounts ({})",
            m.propagation().as_str_name()
        )));
    }
    if !m.mount_options.is_empty() {
        return Err(invalid(format!(
            "mounts[{i}].mount_options {:?}: an image volume takes no mount options",
            m.mount_options
        )));
    }
    Ok(())
}

/// A fully qualified CDI name: `vendor.com/class=device`.
fn cdi_name(i: usize, name: &str) -> Result<(), ContainerError> {
    let well_formed = name.split_once('=').is_some_and(|(kind, device)| {
        kind.split_once('/').is_some_and(|(vendor, class)| !vendor.is_empty() && !class.is_empty())
            && !device.is_empty()
            && !name.contains(char::is_whitespace)
    });
    match well_formed {
        true => Ok(()),
        false => Err(invalid(format!("CDI_devices[{i}].name {name:?} is not vendor.com/class=device"))),
    }
}

/// Devices are checked here, as mounts are: Docker only finds a missing one
/// when the container starts, and fails that with a bare 500.
fn device(i: usize, d: &api::Device) -> Result<(), ContainerError> {
    let host = validate::clean_absolute(&format!("devices[{i}].host_path"), &d.host_path).map_err(invalid)?;
    validate::clean_absolute(&format!("devices[{i}].container_path"), &d.container_path).map_err(invalid)?;
    if !d.permissions.bytes().all(|b| b"rwm".contains(&b)) {
        return Err(invalid(format!("devices[{i}].permissions {:?} may only hold r, w and m", d.permissions)));
    }
    if std::fs::symlink_metadata(host).is_err() {
        return Err(invalid(format!("devices[{i}].host_path {:?} does not exist", d.host_path)));
    }
    Ok(())
}

/// The log file as `(log directory, file)`, or `None` when either is unset
/// (then no log is written). The pod's `log_directory` is checked again:
/// a sandbox may predate these checks.
pub fn log_file(directory: &str, relative: &str) -> Result<Option<(PathBuf, PathBuf)>, ContainerError> {
    if directory.is_empty() || relative.is_empty() {
        if !relative.is_empty() {
            log_path_shape(Path::new("/"), relative)?;
        }
        return Ok(None);
    }
    let root = validate::clean_absolute("log_directory", directory).map_err(invalid)?.to_path_buf();
    let path = log_path_shape(&root, relative)?;
    log_open::check(&root, &path).map_err(|e| match e {
        LogError::Refused(why) => invalid(format!("log_path {relative:?}: {why}")),
        LogError::Io(e) => ContainerError::Log { path: path.display().to_string(), source: e.into() },
    })?;
    Ok(Some((root, path)))
}

fn log_path_shape(root: &Path, relative: &str) -> Result<PathBuf, ContainerError> {
    validate::inside("log_path", "log_directory", root, relative).map_err(invalid)
}

fn invalid(why: String) -> ContainerError {
    ContainerError::InvalidConfig(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<impl std::fmt::Debug, ContainerError>, field: &str) {
        match result {
            Err(ContainerError::InvalidConfig(why)) => assert!(why.contains(field), "{why} names {field}"),
            other => panic!("expected InvalidConfig naming {field}, got {other:?}"),
        }
    }

    #[test]
    fn unknown_enum_values_are_refused() {
        let mut c = api::ContainerConfig { stop_signal: 999, ..Default::default() };
        refused(config(&c), "stop_signal");
        c.stop_signal = api::Signal::Sigterm as i32;
        c.mounts = vec![api::Mount { propagation: 42, ..Default::default() }];
        refused(config(&c), "mounts[0].propagation");
        c.mounts.clear();
        let ns = api::NamespaceOption { pid: 99, ..Default::default() };
        let security = api::LinuxContainerSecurityContext { namespace_options: Some(ns), ..Default::default() };
        c.linux = Some(api::LinuxContainerConfig { security_context: Some(security), ..Default::default() });
        refused(config(&c), "namespace_options.pid");
        let ns = api::NamespaceOption {
            pid: api::NamespaceMode::Target as i32,
            target_id: "k8s_x".into(),
            ..Default::default()
        };
        c.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options = Some(ns);
        refused(config(&c), "target_id");
    }

    #[test]
    fn image_volumes_take_neither_propagation_nor_options() {
        let image = Some(api::ImageSpec { image: "sha256:ab".into(), ..Default::default() });
        let volume = api::Mount { container_path: "/v".into(), image, ..Default::default() };
        assert!(mount(0, &volume).is_ok());
        let with_readwrite = api::Mount { readonly: false, recursive_read_only: true, ..volume.clone() };
        assert!(mount(0, &with_readwrite).is_ok(), "read-only anyway, and recursively so");
        let shared =
            api::Mount { propagation: api::MountPropagation::PropagationBidirectional as i32, ..volume.clone() };
        refused(mount(1, &shared), "mounts[1]: an image volume cannot propagate");
        let noexec = api::Mount { mount_options: vec!["noexec".into()], ..volume };
        refused(mount(2, &noexec), "mounts[2].mount_options");
    }

    #[test]
    fn resources_are_checked() {
        refused(resources(&api::LinuxContainerResources { cpu_shares: -2, ..Default::default() }), "cpu_shares");
    }

    #[test]
    fn environment_and_devices() {
        let env = |key: &str, value: &[u8]| api::ContainerConfig {
            envs: vec![api::KeyValue { key: key.into(), value: value.to_vec() }],
            ..Default::default()
        };
        assert!(config(&env("A", b"b=c")).is_ok());
        refused(config(&env("A\0B", b"x")), "envs key");
        refused(config(&env("A=B", b"x")), "envs key");
        refused(config(&env("", b"x")), "envs key");
        refused(config(&env("A", b"x\0y")), "envs value");

        let dev = |host: &str, perms: &str| api::ContainerConfig {
            devices: vec![api::Device {
                host_path: host.into(),
                container_path: "/dev/x".into(),
                permissions: perms.into(),
            }],
            ..Default::default()
        };
        assert!(config(&dev("/dev/null", "rw")).is_ok());
        refused(config(&dev("/dev/pinshim-nonexistent", "rw")), "devices[0].host_path");
        refused(config(&dev("dev/null", "")), "devices[0].host_path");
        refused(config(&dev("/dev/null", "rwx")), "devices[0].permissions");
    }

    #[test]
    fn log_files_stay_in_the_log_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let (r, path) = log_file(&root, "c/0.log").unwrap().unwrap();
        assert_eq!((r.as_path(), path), (dir.path(), dir.path().join("c/0.log")));
        assert!(log_file("", "c/0.log").unwrap().is_none());
        refused(log_file(&root, "../../../x/0.log"), "escapes log_directory");
        refused(log_file(&root, "/etc/passwd"), "log_path");
        refused(log_file("", "/etc/passwd"), "log_path");
        refused(log_file("relative/dir", "0.log"), "log_directory");
        refused(log_file(&format!("{root}/../x"), "0.log"), "log_directory");
        std::fs::write(dir.path().join("taken.log"), "someone's data\n").unwrap();
        refused(log_file(&root, "taken.log"), "log_path");
    }
}
