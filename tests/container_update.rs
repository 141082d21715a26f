//! UpdateContainerResources changes a running container's cgroup limits.

mod common;

use common::Shim;
use common::pods::{self, IDLE};
use pinshim::api::{LinuxContainerResources, UpdateContainerResourcesRequest};
use tonic::Code;

#[tokio::test]
async fn resources_update_and_missing_linux_resources_are_rejected() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "update").await;
    let pod = pods::run_pod(rt, "update").await;
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;

    let missing = UpdateContainerResourcesRequest { container_id: id.clone(), ..Default::default() };
    let err = rt.clone().update_container_resources(missing).await.expect_err("no linux resources");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let limits = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    };
    let request =
        UpdateContainerResourcesRequest { container_id: id.clone(), linux: Some(limits), ..Default::default() };
    rt.clone().update_container_resources(request).await.expect("update");

    let status = pods::status(rt, &id).await;
    let linux = status.resources.and_then(|r| r.linux).expect("linux resources reported");
    assert_eq!((linux.cpu_period, linux.cpu_quota, linux.cpu_shares), (100_000, 50_000, 512));
    assert_eq!(linux.memory_limit_in_bytes, 64 << 20);
    assert_eq!(linux.oom_score_adj, 1000, "the create's OOM score, as container_config sets it");

    // -1 lifts the CPU limit (kubelet's in-place resize to no limit).
    let lifted = LinuxContainerResources { cpu_period: 100_000, cpu_quota: -1, cpu_shares: 512, ..Default::default() };
    let request =
        UpdateContainerResourcesRequest { container_id: id.clone(), linux: Some(lifted), ..Default::default() };
    rt.clone().update_container_resources(request).await.expect("update to no CPU limit");
    let linux = pods::status(rt, &id).await.resources.and_then(|r| r.linux).expect("linux resources");
    assert!(linux.cpu_quota <= 0, "no CPU quota any more: {}", linux.cpu_quota);
    let quota = pods::exec_ok(
        rt,
        &id,
        &["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"],
    )
    .await;
    assert!(matches!(quota.trim(), "-1" | "max"), "the cgroup has no quota: {quota:?}");

    let unknown = UpdateContainerResourcesRequest {
        container_id: pods::unknown_id(),
        linux: Some(LinuxContainerResources::default()),
        ..Default::default()
    };
    let err = rt.clone().update_container_resources(unknown).await.expect_err("unknown container");
    assert_eq!(err.code(), Code::NotFound);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
