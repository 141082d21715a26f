//! UpdatePodSandboxResources: after an in-place resize kubelet sends the
//! pod's overhead and its containers' total. The overhead lands on the
//! sandbox container's cgroup; verbose status shows what was asked and
//! what is in force; nonsense is InvalidArgument.

mod common;

use std::path::PathBuf;

use common::Shim;
use common::pods::{self, Rt};
use pinshim::api::{LinuxContainerResources, PodSandboxStatusRequest, UpdatePodSandboxResourcesRequest};
use tonic::Code;

const MIB: i64 = 1024 * 1024;

async fn verbose_info(rt: &Rt, id: &str) -> serde_json::Value {
    let request = PodSandboxStatusRequest { pod_sandbox_id: id.to_string(), verbose: true };
    let status = rt.clone().pod_sandbox_status(request).await.expect("status").into_inner();
    serde_json::from_str(&status.info["info"]).expect("info JSON")
}

/// The file `name` of process `pid`'s cgroup for `controller` (cgroup v1),
/// or of its unified cgroup (v2, where `v2_name` is the file).
fn cgroup_file(pid: i64, controller: &str, name: &str, v2_name: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let path = cgroups
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let wanted = if unified { controllers.is_empty() } else { controllers.split(',').any(|c| c == controller) };
            wanted.then(|| (controllers.to_string(), path.to_string()))
        })
        .expect("the process's cgroup");
    let file = match unified {
        true => PathBuf::from(format!("/sys/fs/cgroup{}/{v2_name}", path.1)),
        false => PathBuf::from(format!("/sys/fs/cgroup/{}{}/{name}", path.0, path.1)),
    };
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).trim().to_string()
}

async fn update(
    rt: &Rt,
    id: &str,
    overhead: Option<LinuxContainerResources>,
    resources: Option<LinuxContainerResources>,
) -> Result<(), tonic::Status> {
    let request = UpdatePodSandboxResourcesRequest { pod_sandbox_id: id.to_string(), overhead, resources };
    rt.clone().update_pod_sandbox_resources(request).await.map(drop)
}

#[tokio::test]
async fn the_overhead_reaches_the_sandbox_cgroup() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let pod = pods::run_pod(rt, "podres").await;
    let pid = verbose_info(rt, &pod.id).await["pid"].as_i64().expect("pause pid");

    let overhead = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 20_000,
        cpu_shares: 256,
        memory_limit_in_bytes: 48 * MIB,
        ..Default::default()
    };
    let total = LinuxContainerResources { cpu_shares: 1024, memory_limit_in_bytes: 256 * MIB, ..Default::default() };
    update(rt, &pod.id, Some(overhead), Some(total)).await.expect("update");

    let memory = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(memory, (48 * MIB).to_string(), "the sandbox container's memory limit");
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(cgroup_file(pid, "cpu", "", "cpu.max"), "20000 100000");
    } else {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.shares", ""), "256");
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_quota_us", ""), "20000");
    }

    let info = verbose_info(rt, &pod.id).await;
    let resources = &info["resources"];
    assert_eq!(resources["sandboxContainer"]["memory"], 48 * MIB, "{resources}");
    assert_eq!(resources["sandboxContainer"]["cpuShares"], 256, "{resources}");
    assert_eq!(resources["lastUpdate"]["overhead"]["cpuQuota"], 20_000, "{resources}");
    assert_eq!(resources["lastUpdate"]["resources"]["memoryLimitInBytes"], 256 * MIB, "{resources}");

    // Without an overhead nothing on the sandbox container changes.
    update(rt, &pod.id, None, Some(LinuxContainerResources { cpu_shares: 2048, ..Default::default() }))
        .await
        .expect("update without overhead");
    assert_eq!(cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max"), (48 * MIB).to_string());
    let info = verbose_info(rt, &pod.id).await;
    assert_eq!(info["resources"]["lastUpdate"]["resources"]["cpuShares"], 2048);
    assert!(info["resources"]["lastUpdate"]["appliedToSandboxContainer"].is_null());

    pods::stop_pod(rt, &pod.id).await;
    pods::remove_pod(rt, &pod.id).await;
}

#[tokio::test]
async fn nonsense_and_unknown_sandboxes_are_refused() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let pod = pods::run_pod(rt, "podres-bad").await;

    let negative = LinuxContainerResources { cpu_shares: -5, ..Default::default() };
    let err = update(rt, &pod.id, Some(negative.clone()), None).await.expect_err("negative shares");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("overhead") && err.message().contains("cpu_shares"), "{err}");
    let err = update(rt, &pod.id, None, Some(negative)).await.expect_err("negative total");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let cpus = LinuxContainerResources { cpuset_cpus: "0;1".into(), ..Default::default() };
    assert_eq!(update(rt, &pod.id, Some(cpus), None).await.expect_err("bad cpuset").code(), Code::InvalidArgument);

    let err = update(rt, &pods::unknown_id(), None, None).await.expect_err("unknown sandbox");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let info = verbose_info(rt, &pod.id).await;
    assert!(info["resources"]["lastUpdate"].is_null(), "a refused update records nothing");

    pods::stop_pod(rt, &pod.id).await;
    pods::remove_pod(rt, &pod.id).await;
}

#[tokio::test]
async fn the_overhead_at_run_is_the_sandbox_containers_limit() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let pod = pods::run_pod_with(rt, "podres-run", |c| {
        let overhead =
            LinuxContainerResources { cpu_shares: 128, memory_limit_in_bytes: 40 * MIB, ..Default::default() };
        c.linux.get_or_insert_default().overhead = Some(overhead);
    })
    .await;
    let pid = verbose_info(rt, &pod.id).await["pid"].as_i64().expect("pause pid");
    assert_eq!(cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max"), (40 * MIB).to_string());
    pods::stop_pod(rt, &pod.id).await;
    pods::remove_pod(rt, &pod.id).await;
}
