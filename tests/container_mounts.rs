//! Host paths bound into containers: `readonly` makes the bound directory
//! read-only but not the mounts below it (as on every engine before Docker
//! 25, and on later ones only through bind options); `recursive_read_only`
//! covers those too, where the engine can do it and says so in Status.

mod common;

use std::path::{Path, PathBuf};

use common::Shim;
use common::pods::{self, IDLE};
use pinshim::api;

/// A host directory with a tmpfs mounted at `sub`, unmounted on drop.
struct NestedMount {
    dir: tempfile::TempDir,
}

impl NestedMount {
    fn new() -> NestedMount {
        let dir = tempfile::tempdir().expect("temp dir");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("sub dir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "pinshim-test"])
            .arg(&sub)
            .status()
            .expect("run mount");
        assert!(mounted.success(), "mount a tmpfs below the bound directory");
        NestedMount { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn sub(&self) -> PathBuf {
        self.dir.path().join("sub")
    }
}

impl Drop for NestedMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.sub()).status();
    }
}

fn with_mount(mut config: api::ContainerConfig, host: &Path, recursive: bool) -> api::ContainerConfig {
    config.mounts = vec![api::Mount {
        host_path: host.display().to_string(),
        container_path: "/data".to_string(),
        readonly: true,
        recursive_read_only: recursive,
        // As kubelet and critest send it; on a host without SELinux it
        // must not change what read-only means.
        selinux_relabel: true,
        ..Default::default()
    }];
    config
}

/// Whether `touch path` succeeds inside the container.
async fn writable(rt: &pods::Rt, id: &str, path: &str) -> bool {
    let out = pods::exec(rt, id, &["touch", path], 10).await.expect("exec touch");
    out.exit_code == 0
}

async fn recursive_read_only_supported(shim: &Shim) -> bool {
    let request = api::StatusRequest { verbose: false };
    let status = shim.runtime.clone().status(request).await.expect("status").into_inner();
    let handlers = &status.runtime_handlers;
    assert!(!handlers.is_empty(), "Status lists the runtime handlers");
    handlers.iter().all(|h| h.features.is_some_and(|f| f.recursive_read_only_mounts))
}

#[tokio::test]
async fn readonly_covers_the_bound_directory_only() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let host = NestedMount::new();
    let image = pods::fresh_image(&shim.images, "romount").await;
    let pod = pods::run_pod(rt, "romount").await;

    let config = with_mount(pods::container_config(&pod, "ro", &image, IDLE), host.path(), false);
    let id = pods::create_and_start(rt, &pod, config).await;
    assert!(!writable(rt, &id, "/data/top").await, "the bound directory is read-only");
    assert!(writable(rt, &id, "/data/sub/below").await, "a mount below it stays writable");
    assert!(host.sub().join("below").exists(), "the write reached the host's tmpfs");
    let status = pods::status(rt, &id).await;
    let data = status.mounts.iter().find(|m| m.container_path == "/data").expect("/data in status");
    assert!(data.readonly && !data.recursive_read_only, "{data:?}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn recursive_read_only_covers_mounts_below_or_is_refused() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let host = NestedMount::new();
    let image = pods::fresh_image(&shim.images, "rromount").await;
    let pod = pods::run_pod(rt, "rromount").await;

    let config = with_mount(pods::container_config(&pod, "rro", &image, IDLE), host.path(), true);
    if recursive_read_only_supported(&shim).await {
        let id = pods::create_and_start(rt, &pod, config).await;
        assert!(!writable(rt, &id, "/data/top").await, "the bound directory is read-only");
        assert!(!writable(rt, &id, "/data/sub/below").await, "so is the mount below it");
        let status = pods::status(rt, &id).await;
        let data = status.mounts.iter().find(|m| m.container_path == "/data").expect("/data in status");
        assert!(data.readonly && data.recursive_read_only, "status says recursive (kubelet shows it): {data:?}");
    } else {
        let err = pods::try_create(rt, &pod, config).await.expect_err("an engine without the option refuses");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("recursive read-only"), "{err:?}");
        assert_eq!(pods::containers_of(rt, &pod.id).await.len(), 0, "nothing half-created is left");
    }

    let mut not_readonly = with_mount(pods::container_config(&pod, "rw", &image, IDLE), host.path(), true);
    not_readonly.mounts[0].readonly = false;
    let err = pods::try_create(rt, &pod, not_readonly).await.expect_err("recursive without readonly");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn privileged_containers_run_without_a_seccomp_profile() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "privseccomp").await;
    let pod = pods::run_pod(rt, "privseccomp").await;

    let mut config = pods::container_config(&pod, "priv", &image, IDLE);
    let security = config.linux.as_mut().and_then(|l| l.security_context.as_mut()).expect("security context");
    security.privileged = true;
    security.seccomp = Some(api::SecurityProfile {
        profile_type: api::security_profile::ProfileType::RuntimeDefault as i32,
        ..Default::default()
    });
    // Created only: whether a privileged container starts depends on the
    // host's capabilities; what it is asked to run with does not.
    let id = pods::create(rt, &pod, config).await;
    let inspected = common::docker().inspect_container(&id, None).await.expect("inspect");
    let options = inspected.host_config.and_then(|h| h.security_opt).unwrap_or_default();
    assert!(options.contains(&"seccomp=unconfined".to_string()), "privileged means unconfined: {options:?}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
