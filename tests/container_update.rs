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

    // kubelet sends the container's OOM score with every update.
    let limits = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        oom_score_adj: 1000,
        ..Default::default()
    };
    let request =
        UpdateContainerResourcesRequest { container_id: id.clone(), linux: Some(limits), ..Default::default() };
    rt.clone().update_container_resources(request).await.expect("update");

    let status = pods::status(rt, &id).await;
    let linux = status.resources.and_then(|r| r.linux).expect("linux resources reported");
    assert_eq!((linux.cpu_period, linux.cpu_quota, linux.cpu_shares), (100_000, 50_000, 512));
    assert_eq!(linux.memory_limit_in_bytes, 64 << 20);
    assert_eq!(linux.oom_score_adj, 1000, "the create's OOM score, as container_config sets it, unchanged");

    // -1 lifts the CPU limit (kubelet's in-place resize to no limit).
    let lifted = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: -1,
        cpu_shares: 512,
        oom_score_adj: 1000,
        ..Default::default()
    };
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

fn update(id: &str, resources: LinuxContainerResources) -> UpdateContainerResourcesRequest {
    UpdateContainerResourcesRequest { container_id: id.to_string(), linux: Some(resources), ..Default::default() }
}

/// Docker's update carries no OOM score: pinshim sets it on every process
/// of the container, the ones already running included.
#[tokio::test]
async fn an_updated_oom_score_reaches_every_process() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "update-oom").await;
    let pod = pods::run_pod(rt, "update-oom").await;
    let script = ["sh", "-c", "sleep 600 & exec sleep 601"];
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, &script)).await;

    rt.clone()
        .update_container_resources(update(&id, LinuxContainerResources { oom_score_adj: 500, ..Default::default() }))
        .await
        .expect("update");
    let scores =
        pods::exec_ok(rt, &id, &["sh", "-c", "for p in $(pidof sleep); do cat /proc/$p/oom_score_adj; done"]).await;
    assert_eq!(scores.split_whitespace().collect::<Vec<_>>(), ["500", "500"], "both sleeps");
    let linux = pods::status(rt, &id).await.resources.and_then(|r| r.linux).expect("linux");
    assert_eq!(linux.oom_score_adj, 500);
    let err = rt
        .clone()
        .update_container_resources(update(&id, LinuxContainerResources { oom_score_adj: 1001, ..Default::default() }))
        .await
        .expect_err("out of range");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// `unified` goes into the container's cgroup v2 directory, at start and on
/// update. `cgroup.max.descendants` is a core file every v2 cgroup has, also
/// on hybrid hosts whose controllers are all in v1; controller files such as
/// `memory.high` exist there only on a pure v2 host.
#[tokio::test]
async fn unified_settings_are_written_into_the_containers_cgroup() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "update-unified").await;
    let pod = pods::run_pod(rt, "update-unified").await;
    let with_unified = |name: &str, key: &str, value: &str| {
        let mut config = pods::container_config(&pod, name, &image, IDLE);
        let resources = config.linux.as_mut().and_then(|l| l.resources.as_mut()).expect("resources");
        resources.unified.insert(key.to_string(), value.to_string());
        config
    };
    let v2_mounted = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo").contains(" - cgroup2 ");
    let id = pods::create(rt, &pod, with_unified("app", "cgroup.max.descendants", "5")).await;
    let started = rt.clone().start_container(pinshim::api::StartContainerRequest { container_id: id.clone() }).await;
    if !v2_mounted {
        let err = started.expect_err("no cgroup v2 on this host");
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.message().contains("cgroup v2"), "{err}");
        println!("this host mounts no cgroup v2: only the refusal was checked");
        return pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
    }
    started.expect("start");
    let dir =
        pinshim::cgroup::CgroupLocation::of_pid(pods::pid_of(&id).await).expect("cgroup").unified.expect("unified dir");
    let read = || std::fs::read_to_string(dir.join("cgroup.max.descendants")).expect("read").trim().to_string();
    assert_eq!(read(), "5");
    let linux = pods::status(rt, &id).await.resources.and_then(|r| r.linux).expect("linux");
    assert_eq!(linux.unified.get("cgroup.max.descendants").map(String::as_str), Some("5"));

    let mut resources = LinuxContainerResources { oom_score_adj: 1000, ..Default::default() };
    resources.unified.insert("cgroup.max.descendants".to_string(), "7".to_string());
    rt.clone().update_container_resources(update(&id, resources.clone())).await.expect("update");
    assert_eq!(read(), "7");
    let linux = pods::status(rt, &id).await.resources.and_then(|r| r.linux).expect("linux");
    assert_eq!(linux.unified.get("cgroup.max.descendants").map(String::as_str), Some("7"));

    // A file the cgroup lacks refuses the update, and nothing of it is
    // written: neither the other file nor what Docker's update carries.
    let shares_before = linux.cpu_shares;
    resources.cpu_shares = shares_before + 512;
    resources.unified.insert("cgroup.max.descendants".to_string(), "9".to_string());
    resources.unified.insert("pinshim.no-such-file".to_string(), "1".to_string());
    let err = rt.clone().update_container_resources(update(&id, resources)).await.expect_err("no such file");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("resources.unified.pinshim.no-such-file"), "{err}");
    assert_eq!(read(), "7");
    let linux = pods::status(rt, &id).await.resources.and_then(|r| r.linux).expect("linux");
    assert_eq!(linux.cpu_shares, shares_before, "Docker's part of the refused update");

    // Docker refusing its part (a CPU this host lacks) puts the file back.
    let mut resources = LinuxContainerResources { oom_score_adj: 1000, cpuset_cpus: "63".into(), ..Default::default() };
    resources.unified.insert("cgroup.max.descendants".to_string(), "11".to_string());
    let err = rt.clone().update_container_resources(update(&id, resources)).await.expect_err("no CPU 63");
    assert_ne!(err.code(), Code::Ok, "{err}");
    assert_eq!(read(), "7", "restored after Docker refused: {err}");

    // One that exits at once has nothing left to limit: its start succeeds.
    let mut quick = with_unified("quick", "cgroup.max.descendants", "3");
    quick.command = vec!["true".to_string()];
    let quick = pods::create(rt, &pod, quick).await;
    pods::start(rt, &quick).await;

    // Created with one, the container is not left running without it.
    let bad = pods::create(rt, &pod, with_unified("bad", "pinshim.no-such-file", "1")).await;
    let err = rt
        .clone()
        .start_container(pinshim::api::StartContainerRequest { container_id: bad.clone() })
        .await
        .expect_err("cannot apply");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let state = pods::status(rt, &bad).await.state;
    assert_eq!(state, pinshim::api::ContainerState::ContainerExited as i32);
    let err = pods::try_create(rt, &pod, with_unified("worse", "../escape", "1")).await.expect_err("not a file name");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
