//! Version, Status, RuntimeConfig and the socket's life cycle.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Shim, ShimOptions};
use pinshim::api::{RuntimeConfigRequest, StatusRequest, VersionRequest};
use tonic::Code;

#[tokio::test]
async fn version_reports_docker() {
    let mut shim = Shim::start().await;
    let v = shim.runtime.version(VersionRequest::default()).await.expect("version").into_inner();
    assert_eq!(v.runtime_name, "docker");
    assert_eq!(v.runtime_api_version, "v1");
    let docker = common::docker().version().await.expect("docker version");
    assert_eq!(Some(v.runtime_version), docker.version);
}

#[tokio::test]
async fn status_is_ready_with_docker_up() {
    let mut shim = Shim::start().await;
    let status = shim.runtime.status(StatusRequest { verbose: true }).await.expect("status").into_inner();
    let conditions = status.status.expect("conditions").conditions;
    for kind in ["RuntimeReady", "NetworkReady"] {
        let c = conditions.iter().find(|c| c.r#type == kind).expect(kind);
        assert!(c.status, "{kind}: {} {}", c.reason, c.message);
    }
    assert!(status.runtime_handlers.iter().any(|h| h.name == "runc"), "{:?}", status.runtime_handlers);
    // kubelet looks a pod's features up by its runtime class name; a pod
    // without a class has the default handler, named "".
    let default = status.runtime_handlers.first().expect("handlers");
    assert_eq!(default.name, "", "the default handler comes first: {:?}", status.runtime_handlers);
    assert!(default.features.is_some(), "the default handler has features");
    assert!(status.info.contains_key("info"));
}

#[tokio::test]
async fn status_reports_not_ready_when_docker_is_unreachable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoint = format!("unix://{}", dir.path().join("no-docker.sock").display());
    let mut shim =
        Shim::start_with(ShimOptions { args: vec!["--docker-endpoint".into(), endpoint], env: Vec::new() }).await;
    let status = shim.runtime.status(StatusRequest::default()).await.expect("status").into_inner();
    let runtime = status.status.expect("conditions").conditions.into_iter().find(|c| c.r#type == "RuntimeReady");
    let runtime = runtime.expect("RuntimeReady");
    assert!(!runtime.status);
    assert!(!runtime.reason.is_empty() && !runtime.message.is_empty());
    let err = shim.runtime.version(VersionRequest::default()).await.expect_err("docker is down");
    assert_eq!(err.code(), Code::Unavailable);
}

#[tokio::test]
async fn runtime_config_follows_docker_cgroup_driver() {
    let mut shim = Shim::start().await;
    let config = shim.runtime.runtime_config(RuntimeConfigRequest {}).await.expect("config").into_inner();
    let info = common::docker().info().await.expect("docker info");
    let expected = match info.cgroup_driver.map(|d| d.to_string()).as_deref() {
        Some("systemd") => pinshim::api::CgroupDriver::Systemd,
        _ => pinshim::api::CgroupDriver::Cgroupfs,
    };
    assert_eq!(config.linux.expect("linux").cgroup_driver, expected as i32);
}

#[tokio::test]
async fn socket_is_private_and_removed_on_sigterm() {
    let mut shim = Shim::start().await;
    let socket = shim.socket();
    let mode = std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    assert_eq!(shim.stop().await, Some(0), "clean exit on SIGTERM");
    assert!(!socket.exists(), "socket removed");
}

#[tokio::test]
async fn rpcs_docker_cannot_serve_say_so() {
    let mut shim = Shim::start().await;
    let request = pinshim::api::CheckpointPodRequest::default();
    let err = shim.runtime.checkpoint_pod(request).await.expect_err("no pod checkpoints through docker");
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("CheckpointPod") && err.message().contains("Docker"), "{err}");
    let err = shim.runtime.restore_pod(pinshim::api::RestorePodRequest::default()).await.expect_err("no restore");
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("RestorePod"), "{err}");
}
