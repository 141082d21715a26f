//! Seccomp as the CRI defines it: no profile is unconfined, RuntimeDefault
//! is Docker's default profile, read back from the kernel's view of PID 1.

mod common;

use common::Shim;
use common::pods::{self, IDLE};
use pinshim::api::{SecurityProfile, security_profile::ProfileType};

/// The `Seccomp:` mode of the container's PID 1: 0 off, 2 filtered.
async fn seccomp_mode(rt: &pods::Rt, id: &str) -> String {
    let status = pods::exec_ok(rt, id, &["cat", "/proc/1/status"]).await;
    status.lines().find_map(|l| l.strip_prefix("Seccomp:")).map(|m| m.trim().to_string()).expect("Seccomp line")
}

#[tokio::test]
async fn no_profile_is_unconfined_and_runtime_default_is_filtered() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "seccomp").await;
    let pod = pods::run_pod(rt, "seccomp").await;

    let plain = pods::create_and_start(rt, &pod, pods::container_config(&pod, "none", &image, IDLE)).await;
    assert_eq!(seccomp_mode(rt, &plain).await, "0", "a nil profile is unconfined");

    let mut config = pods::container_config(&pod, "default", &image, IDLE);
    let security = config.linux.as_mut().and_then(|l| l.security_context.as_mut()).expect("security context");
    security.seccomp = Some(SecurityProfile { profile_type: ProfileType::RuntimeDefault as i32, ..Default::default() });
    let filtered = pods::create_and_start(rt, &pod, config).await;
    assert_eq!(seccomp_mode(rt, &filtered).await, "2", "RuntimeDefault filters");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn selinux_options_reach_docker_as_label_options() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "selinux").await;
    let pod = pods::run_pod(rt, "selinux").await;
    let mut config = pods::container_config(&pod, "app", &image, IDLE);
    let security = config.linux.get_or_insert_default().security_context.get_or_insert_default();
    security.selinux_options =
        Some(pinshim::api::SeLinuxOption { r#type: "spc_t".into(), level: "s0:c1,c2".into(), ..Default::default() });
    // Docker applies them where SELinux is enabled and runs the container
    // unlabelled elsewhere, as here.
    let id = pods::create_and_start(rt, &pod, config).await;
    let inspect = common::docker().inspect_container(&id, None).await.expect("inspect");
    let options = inspect.host_config.and_then(|h| h.security_opt).unwrap_or_default();
    assert!(options.iter().any(|o| o == "label=type:spc_t"), "{options:?}");
    assert!(options.iter().any(|o| o == "label=level:s0:c1,c2"), "{options:?}");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
