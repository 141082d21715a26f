//! ContainerConfig → the container Docker creates inside a pod.

use std::collections::HashMap;

use super::error::ContainerError;
use super::validate;
use crate::api;
use crate::docker::{BindMount, CreateSpec, DeviceSpec, Propagation, ReadOnly, Resources};
use crate::host::HostLimits;
use crate::labels;
use crate::sandbox::Sandbox;
use crate::security_opt::{apparmor_option, seccomp_option, selinux_options};

/// The image a container is created from, as resolved at creation.
#[derive(Debug, Clone, Default)]
pub struct ImageIdentity {
    pub requested: String,
    pub user_specified: String,
    pub image_id: String,
    pub canonical: String,
    pub canonical_reason: String,
}

pub fn create_spec(
    config: &api::ContainerConfig,
    sandbox: &Sandbox,
    image: &ImageIdentity,
    limits: &HostLimits,
    created_at: i64,
) -> Result<CreateSpec, ContainerError> {
    let metadata = config.metadata.clone().unwrap_or_default();
    let linux = config.linux.clone().unwrap_or_default();
    let security = linux.security_context.clone().unwrap_or_default();
    let namespaces = security.namespace_options.clone().unwrap_or_default();
    let sandbox_ref = format!("container:{}", sandbox.id);

    validate::config(config)?;
    let log = validate::log_file(&sandbox.log_directory, &config.log_path)?;
    let (log_directory, log_path) = log.map(|(d, p)| (d.display().to_string(), p.display().to_string())).unzip();
    let l = HashMap::from([
        (labels::KIND.to_string(), labels::KIND_CONTAINER.to_string()),
        (labels::SANDBOX_ID.to_string(), sandbox.id.clone()),
        (labels::NAME.to_string(), metadata.name.clone()),
        (labels::ATTEMPT.to_string(), metadata.attempt.to_string()),
        (labels::CREATED_AT.to_string(), created_at.to_string()),
        (labels::LABELS.to_string(), labels::encode_map(&config.labels)),
        (labels::ANNOTATIONS.to_string(), labels::encode_map(&config.annotations)),
        (labels::LOG_PATH.to_string(), log_path.unwrap_or_default()),
        (labels::LOG_DIRECTORY.to_string(), log_directory.unwrap_or_default()),
        (labels::IMAGE_REQUESTED.to_string(), image.requested.clone()),
        (labels::IMAGE_USER_SPECIFIED.to_string(), image.user_specified.clone()),
        (labels::IMAGE_ID.to_string(), image.image_id.clone()),
        (labels::CANONICAL_IMAGE_ID.to_string(), image.canonical.clone()),
        (labels::CANONICAL_REASON.to_string(), image.canonical_reason.clone()),
    ]);

    let mut security_opt = Vec::new();
    // The deprecated path fields are what older kubelets still send.
    #[allow(deprecated)]
    let (seccomp_path, apparmor_name) = (&security.seccomp_profile_path, &security.apparmor_profile);
    // A privileged container runs unconfined, as under containerd: Docker
    // 27 and later would apply a profile given for it.
    let seccomp = match security.privileged {
        true => Ok(Some("seccomp=unconfined".to_string())),
        false => seccomp_option(security.seccomp.as_ref(), seccomp_path),
    };
    security_opt.extend(seccomp.map_err(ContainerError::InvalidConfig)?);
    security_opt
        .extend(apparmor_option(security.apparmor.as_ref(), apparmor_name).map_err(ContainerError::InvalidConfig)?);
    security_opt.extend(selinux_options(security.selinux_options.as_ref()).map_err(ContainerError::InvalidConfig)?);
    if security.no_new_privs {
        security_opt.push("no-new-privileges".to_string());
    }
    let capabilities = security.capabilities.clone().unwrap_or_default();
    let resources = linux.resources.clone().unwrap_or_default();

    let mut spec = CreateSpec {
        name: labels::docker_name(
            &metadata.name,
            &sandbox.metadata.name,
            &sandbox.metadata.namespace,
            &sandbox.metadata.uid,
            metadata.attempt,
        ),
        image: image.image_id.clone(),
        labels: l,
        entrypoint: (!config.command.is_empty()).then(|| config.command.clone()),
        cmd: (!config.args.is_empty()).then(|| config.args.clone()),
        // Docker's API carries environment values as strings.
        env: config.envs.iter().map(|kv| format!("{}={}", kv.key, String::from_utf8_lossy(&kv.value))).collect(),
        working_dir: (!config.working_dir.is_empty()).then(|| config.working_dir.clone()),
        user: user(&security)?,
        tty: config.tty,
        open_stdin: config.stdin,
        stdin_once: config.stdin_once,
        stop_signal: super::signal::to_docker(config.stop_signal()),
        network_mode: Some(network_mode(&namespaces, sandbox.namespaces.network(), &sandbox_ref)?),
        ipc_mode: Some(ipc_mode(&namespaces, &sandbox_ref)?),
        pid_mode: match namespaces.pid() {
            api::NamespaceMode::Pod => Some(sandbox_ref),
            api::NamespaceMode::Node => Some("host".to_string()),
            api::NamespaceMode::Target => Some(format!("container:{}", namespaces.target_id)),
            api::NamespaceMode::Container => None,
        },
        mounts: config
            .mounts
            .iter()
            .filter(|m| !super::mounts::is_image_volume(m))
            .map(|m| bind(m, limits))
            .collect::<Result<_, _>>()?,
        devices: config
            .devices
            .iter()
            .map(|d| DeviceSpec {
                host_path: d.host_path.clone(),
                container_path: d.container_path.clone(),
                permissions: if d.permissions.is_empty() { "rwm".to_string() } else { d.permissions.clone() },
            })
            .collect(),
        cdi_devices: config.cdi_devices.iter().map(|d| d.name.clone()).collect(),
        privileged: security.privileged,
        cap_add: capabilities.add_capabilities,
        cap_drop: capabilities.drop_capabilities,
        group_add: security.supplemental_groups.iter().map(|g| g.to_string()).collect(),
        readonly_rootfs: security.readonly_rootfs,
        security_opt,
        // Docker refuses masked paths on privileged containers; kubelet sends none then.
        masked_paths: (!security.privileged && !security.masked_paths.is_empty())
            .then(|| security.masked_paths.clone()),
        readonly_paths: (!security.privileged && !security.readonly_paths.is_empty())
            .then(|| security.readonly_paths.clone()),
        cgroup_parent: sandbox_cgroup_parent(sandbox)?,
        runtime: (!sandbox.runtime_handler.is_empty()).then(|| sandbox.runtime_handler.clone()),
        oom_score_adj: Some(limits.oom_score_adj(resources.oom_score_adj)),
        resources: docker_resources(&resources)?,
        ..Default::default()
    };
    record_mount_modes(&mut spec);
    if !resources.unified.is_empty() {
        let unified: std::collections::BTreeMap<_, _> = resources.unified.iter().collect();
        spec.labels.insert(labels::UNIFIED.to_string(), serde_json::to_string(&unified).unwrap_or_default());
    }
    Ok(spec)
}

/// Which binds are recursively read-only or relabelled, for status: Docker
/// reports neither. Only set when some bind is.
fn record_mount_modes(spec: &mut CreateSpec) {
    let paths = |keep: &dyn Fn(&BindMount) -> bool| -> Vec<String> {
        spec.mounts.iter().filter(|m| keep(m)).map(|m| m.container_path.clone()).collect()
    };
    let recursive = paths(&|m| m.read_only == ReadOnly::Recursive);
    let relabelled = paths(&|m| m.selinux_relabel);
    for (key, list) in [(labels::RECURSIVE_READ_ONLY, recursive), (labels::SELINUX_RELABEL, relabelled)] {
        if !list.is_empty() {
            spec.labels.insert(key.to_string(), serde_json::to_string(&list).unwrap_or_default());
        }
    }
}

/// A container's network is its pod's: Docker joins it to the sandbox
/// container, which is also how a host-network pod's containers reach the
/// host's. A container asking for the host's network in a pod that has its
/// own, or for a network of its own, cannot be given one while it stays in
/// the pod.
fn network_mode(
    namespaces: &api::NamespaceOption,
    pod: api::NamespaceMode,
    sandbox_ref: &str,
) -> Result<String, ContainerError> {
    match namespaces.network() {
        api::NamespaceMode::Pod => {}
        api::NamespaceMode::Node if pod == api::NamespaceMode::Node => {}
        asked => {
            return Err(ContainerError::InvalidConfig(format!(
                "namespace_options.network {}: a container shares its pod's network namespace ({}); \
                 Docker cannot give it another one",
                asked.as_str_name(),
                pod.as_str_name()
            )));
        }
    }
    Ok(sandbox_ref.to_string())
}

/// IPC: the pod's (whatever the pod has), the host's, or a private one.
fn ipc_mode(namespaces: &api::NamespaceOption, sandbox_ref: &str) -> Result<String, ContainerError> {
    Ok(match namespaces.ipc() {
        api::NamespaceMode::Pod => sandbox_ref.to_string(),
        api::NamespaceMode::Node => "host".to_string(),
        api::NamespaceMode::Container => "private".to_string(),
        api::NamespaceMode::Target => {
            return Err(ContainerError::InvalidConfig(
                "namespace_options.ipc TARGET: only the pid namespace can be another container's".to_string(),
            ));
        }
    })
}

/// Containers live in their pod's cgroup, kept on the sandbox's labels;
/// checked again, as the sandbox may predate the check at RunPodSandbox.
fn sandbox_cgroup_parent(sandbox: &Sandbox) -> Result<Option<String>, ContainerError> {
    if sandbox.cgroup_parent.is_empty() {
        return Ok(None);
    }
    crate::validate::cgroup_parent("cgroup_parent", &sandbox.cgroup_parent).map_err(ContainerError::InvalidConfig)?;
    Ok(Some(sandbox.cgroup_parent.clone()))
}

/// Docker's `User`: `uid` or `name`, with `:gid` when a group is set.
/// A group without a user is refused, as the CRI requires: Docker cannot
/// pair the image's own user with another group.
fn user(security: &api::LinuxContainerSecurityContext) -> Result<Option<String>, ContainerError> {
    let name = match (&security.run_as_user, security.run_as_username.as_str()) {
        (Some(uid), _) => uid.value.to_string(),
        (None, "") if security.run_as_group.is_some() => {
            return Err(ContainerError::InvalidConfig(
                "run_as_group is set without run_as_user or run_as_username".to_string(),
            ));
        }
        (None, "") => return Ok(None),
        (None, name) => name.to_string(),
    };
    Ok(Some(match &security.run_as_group {
        Some(gid) => format!("{name}:{}", gid.value),
        None => name,
    }))
}

/// A CRI mount as a bind of a host path. The host path must exist: Docker
/// would silently create a missing one as a directory. Recursive
/// read-only needs read-only and private propagation, as the CRI says.
/// Relabelling is asked of the engine only where SELinux is enabled (as
/// containerd does): elsewhere it means nothing, and on Docker 25 and
/// later it would make a read-only bind recursive.
fn bind(mount: &api::Mount, limits: &HostLimits) -> Result<BindMount, ContainerError> {
    if mount.host_path.is_empty() || mount.container_path.is_empty() {
        return Err(ContainerError::InvalidConfig("a mount needs host_path and container_path".to_string()));
    }
    if std::fs::symlink_metadata(&mount.host_path).is_err() {
        return Err(ContainerError::InvalidConfig(format!("mount source {} does not exist", mount.host_path)));
    }
    crate::host_mounts::FlagChange::parse(&mount.mount_options)
        .map_err(|reason| ContainerError::InvalidConfig(format!("mount {}: {reason}", mount.container_path)))?;
    let propagation = match mount.propagation() {
        api::MountPropagation::PropagationPrivate => Propagation::Private,
        api::MountPropagation::PropagationHostToContainer => Propagation::HostToContainer,
        api::MountPropagation::PropagationBidirectional => Propagation::Bidirectional,
    };
    let read_only = match (mount.readonly, mount.recursive_read_only) {
        (false, false) => ReadOnly::No,
        (true, false) => ReadOnly::NonRecursive,
        (true, true) if propagation == Propagation::Private && !limits.recursive_read_only => {
            return Err(ContainerError::InvalidConfig(format!(
                "mount {}: recursive_read_only needs a kernel with mount_setattr (Linux 5.12)",
                mount.container_path
            )));
        }
        (true, true) if propagation == Propagation::Private => ReadOnly::Recursive,
        (false, true) => {
            return Err(ContainerError::InvalidConfig(format!(
                "mount {}: recursive_read_only needs readonly",
                mount.container_path
            )));
        }
        (true, true) => {
            return Err(ContainerError::InvalidConfig(format!(
                "mount {}: recursive_read_only needs private propagation",
                mount.container_path
            )));
        }
    };
    Ok(BindMount {
        host_path: mount.host_path.clone(),
        container_path: mount.container_path.clone(),
        read_only,
        propagation,
        selinux_relabel: mount.selinux_relabel && limits.selinux,
    })
}

/// Docker's settings for CRI resources, refused when out of range.
pub fn docker_resources(r: &api::LinuxContainerResources) -> Result<Resources, ContainerError> {
    crate::resources::for_docker(r).map_err(ContainerError::InvalidConfig)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HostLimits =
        HostLimits { negative_oom_score_adj: true, full_bounding_set: true, selinux: false, recursive_read_only: true };

    #[test]
    fn binds_carry_mode_and_propagation() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().display().to_string();
        let mut mount = api::Mount {
            host_path: host.clone(),
            container_path: "/data".into(),
            readonly: true,
            propagation: api::MountPropagation::PropagationHostToContainer as i32,
            ..Default::default()
        };
        let bound = bind(&mount, &LIMITS).unwrap();
        assert_eq!((bound.host_path.as_str(), bound.container_path.as_str()), (host.as_str(), "/data"));
        assert_eq!((bound.read_only, bound.propagation), (ReadOnly::NonRecursive, Propagation::HostToContainer));
        mount.recursive_read_only = true;
        assert!(
            matches!(bind(&mount, &LIMITS), Err(ContainerError::InvalidConfig(m)) if m.contains("private propagation"))
        );
        mount.propagation = api::MountPropagation::PropagationPrivate as i32;
        assert_eq!(bind(&mount, &LIMITS).unwrap().read_only, ReadOnly::Recursive);
        let old_kernel = HostLimits { recursive_read_only: false, ..LIMITS };
        assert!(
            matches!(bind(&mount, &old_kernel), Err(ContainerError::InvalidConfig(m)) if m.contains("mount_setattr"))
        );
        mount.readonly = false;
        assert!(matches!(bind(&mount, &LIMITS), Err(ContainerError::InvalidConfig(m)) if m.contains("needs readonly")));
        let missing =
            api::Mount { host_path: "/nonexistent/pinshim".into(), container_path: "/x".into(), ..Default::default() };
        assert!(
            matches!(bind(&missing, &LIMITS), Err(ContainerError::InvalidConfig(m)) if m.contains("/nonexistent/pinshim"))
        );
    }

    #[test]
    fn network_follows_the_pod_and_ipc_may_differ() {
        use api::NamespaceMode::{Container, Node, Pod, Target};
        let with = |network: api::NamespaceMode, ipc: api::NamespaceMode| api::NamespaceOption {
            network: network as i32,
            ipc: ipc as i32,
            ..Default::default()
        };
        let sandbox = "container:abc";
        for (asked, pod) in [(Pod, Pod), (Pod, Node), (Node, Node)] {
            assert_eq!(network_mode(&with(asked, Pod), pod, sandbox).unwrap(), sandbox, "{asked:?} in {pod:?}");
        }
        for (asked, pod) in [(Node, Pod), (Container, Pod), (Target, Node)] {
            let err = network_mode(&with(asked, Pod), pod, sandbox).unwrap_err().to_string();
            assert!(err.contains("namespace_options.network") && err.contains(pod.as_str_name()), "{err}");
        }
        let ipc = |mode| ipc_mode(&with(Pod, mode), sandbox);
        assert_eq!((ipc(Pod).unwrap().as_str(), ipc(Node).unwrap().as_str()), (sandbox, "host"));
        assert_eq!(ipc(Container).unwrap(), "private");
        assert!(ipc(Target).unwrap_err().to_string().contains("namespace_options.ipc"));
    }

    #[test]
    fn users() {
        let mut s = api::LinuxContainerSecurityContext::default();
        assert_eq!(user(&s).unwrap(), None);
        s.run_as_user = Some(api::Int64Value { value: 1000 });
        assert_eq!(user(&s).unwrap().as_deref(), Some("1000"));
        s.run_as_group = Some(api::Int64Value { value: 2000 });
        assert_eq!(user(&s).unwrap().as_deref(), Some("1000:2000"));
        s.run_as_user = None;
        s.run_as_username = "nobody".into();
        assert_eq!(user(&s).unwrap().as_deref(), Some("nobody:2000"));
        s.run_as_username.clear();
        assert!(matches!(user(&s), Err(ContainerError::InvalidConfig(m)) if m.contains("run_as_group")));
    }
}
