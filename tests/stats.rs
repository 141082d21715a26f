//! Container and pod stats read from the kernel, checked against what the
//! containers really do.

mod common;

use std::time::Duration;

use common::Shim;
use common::pods;
use pinshim::api;

async fn container_stats(rt: &pods::Rt, id: &str) -> api::ContainerStats {
    let request = api::ContainerStatsRequest { container_id: id.to_string() };
    rt.clone().container_stats(request).await.expect("container stats").into_inner().stats.expect("stats")
}

fn value(v: &Option<api::UInt64Value>) -> u64 {
    v.as_ref().map(|v| v.value).unwrap_or_default()
}

#[tokio::test]
async fn memory_cpu_and_network_follow_the_containers() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "stats").await;
    let pod = pods::run_pod(rt, "stats").await;
    // awk holds a 64 MiB string in anonymous memory while it waits.
    let hog = ["awk", r#"BEGIN { s = sprintf("%67108864s", ""); system("sleep 600") }"#];
    let memory = pods::create_and_start(rt, &pod, pods::container_config(&pod, "memory", &image, &hog)).await;
    let busy = pods::create_and_start(
        rt,
        &pod,
        pods::container_config(&pod, "busy", &image, &["sh", "-c", "while :; do :; done"]),
    )
    .await;

    // Working set counts the 64 MiB awk holds.
    let working_set = pods::wait_for("64 MiB working set", pods::WAIT, || async {
        let stats = container_stats(rt, &memory).await;
        let ws = value(&stats.memory.expect("memory").working_set_bytes);
        (ws >= 64 << 20).then_some(ws)
    })
    .await;
    assert!(working_set >= 64 << 20);

    // CPU time rises and the rate since the last reading is reported.
    let first = value(&container_stats(rt, &busy).await.cpu.expect("cpu").usage_core_nano_seconds);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = container_stats(rt, &busy).await.cpu.expect("cpu");
    assert!(value(&cpu.usage_core_nano_seconds) > first);
    assert!(value(&cpu.usage_nano_cores) > 100_000_000, "a busy loop uses a good part of a core");

    // Pod network counters grow with traffic from inside the pod.
    let pod_stats = |rt: pods::Rt, id: String| async move {
        let request = api::PodSandboxStatsRequest { pod_sandbox_id: id };
        rt.clone().pod_sandbox_stats(request).await.expect("pod stats").into_inner().stats.expect("stats")
    };
    let before = pod_stats(rt.clone(), pod.id.clone()).await;
    let tx_before = value(
        &before
            .linux
            .as_ref()
            .and_then(|l| l.network.as_ref())
            .and_then(|n| n.default_interface.as_ref())
            .expect("eth0")
            .tx_bytes,
    );
    let ping = "ping -c 3 -W 1 $(ip route | awk '/default/ {print $3}') || true";
    pods::exec(rt, &busy, &["sh", "-c", ping], 15).await.expect("ping");
    let after = pod_stats(rt.clone(), pod.id.clone()).await;
    let linux = after.linux.expect("linux");
    let tx_after = value(&linux.network.as_ref().and_then(|n| n.default_interface.as_ref()).expect("eth0").tx_bytes);
    assert!(tx_after > tx_before, "tx bytes grew: {tx_before} -> {tx_after}");
    assert_eq!(linux.containers.len(), 2, "both running containers are in the pod's stats");
    assert!(value(&linux.memory.expect("memory").working_set_bytes) >= 64 << 20);
    assert!(value(&linux.process.expect("process").process_count) >= 3);

    // The list forms find the same containers and pod.
    let filter = api::ContainerStatsFilter { pod_sandbox_id: pod.id.clone(), ..Default::default() };
    let request = api::ListContainerStatsRequest { filter: Some(filter) };
    let listed = rt.clone().list_container_stats(request).await.expect("list").into_inner().stats;
    let mut ids: Vec<_> = listed.iter().filter_map(|s| s.attributes.as_ref()).map(|a| a.id.clone()).collect();
    ids.sort();
    let mut expected = vec![memory.clone(), busy.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let request = api::ListPodSandboxStatsRequest {
        filter: Some(api::PodSandboxStatsFilter { id: pod.id.clone(), ..Default::default() }),
    };
    let pods_listed = rt.clone().list_pod_sandbox_stats(request).await.expect("list pods").into_inner().stats;
    assert_eq!(pods_listed.len(), 1);

    // The same readings as cAdvisor-named metrics.
    let described =
        rt.clone().list_metric_descriptors(api::ListMetricDescriptorsRequest {}).await.expect("descriptors");
    let described = described.into_inner().descriptors;
    assert!(described.iter().any(|d| d.name == "container_memory_working_set_bytes"));
    let all = rt.clone().list_pod_sandbox_metrics(api::ListPodSandboxMetricsRequest {}).await.expect("metrics");
    let mine = all.into_inner().pod_metrics.into_iter().find(|m| m.pod_sandbox_id == pod.id).expect("pod metrics");
    assert!(
        mine.metrics.iter().any(|m| m.name == "container_network_transmit_bytes_total" && m.label_values == ["eth0"])
    );
    let memory_metrics = mine.container_metrics.iter().find(|c| c.container_id == memory).expect("container metrics");
    let ws = memory_metrics.metrics.iter().find(|m| m.name == "container_memory_working_set_bytes").expect("ws");
    assert!(value(&ws.value) >= 64 << 20);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// Swap and stall figures come from the files the kernel keeps for the
/// container's cgroup; which of them exist depends on the host, so the test
/// looks for the files itself and asks pinshim for exactly those.
#[tokio::test]
async fn swap_and_pressure_follow_the_hosts_cgroup_files() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "stallstats").await;
    let pod = pods::run_pod(rt, "stallstats").await;
    let mut config = pods::container_config(&pod, "spin", &image, &["sh", "-c", "while :; do :; done"]);
    let resources = config.linux.as_mut().and_then(|l| l.resources.as_mut()).expect("resources");
    resources.memory_limit_in_bytes = 64 << 20;
    resources.memory_swap_limit_in_bytes = 96 << 20;
    let id = pods::create_and_start(rt, &pod, config).await;

    let location = pinshim::cgroup::CgroupLocation::of_pid(pods::pid_of(&id).await).expect("cgroup");
    let memory_dir = location.controllers.get("memory").or(location.unified.as_ref()).expect("memory cgroup");
    let swap_accounted =
        memory_dir.join("memory.memsw.usage_in_bytes").exists() || memory_dir.join("memory.swap.current").exists();
    let stalls_accounted = location.unified.as_ref().is_some_and(|d| d.join("cpu.pressure").exists());

    let stats = container_stats(rt, &id).await;
    let swap = stats.swap.expect("swap");
    assert_eq!(swap.swap_usage_bytes.is_some(), swap_accounted, "{swap:?}");
    if swap_accounted {
        // 96 MiB of memory and swap together over a 64 MiB memory limit.
        let available = value(&swap.swap_available_bytes);
        assert!(available > 0 && available <= 32 << 20, "{swap:?}");
    }
    let (cpu, memory, io) = (stats.cpu.expect("cpu"), stats.memory.expect("memory"), stats.io.expect("io"));
    for (what, psi) in [("cpu", &cpu.psi), ("memory", &memory.psi), ("io", &io.psi)] {
        assert_eq!(psi.is_some(), stalls_accounted, "{what}: {psi:?}");
    }
    if let Some(first) = cpu.psi.and_then(|p| p.some) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = container_stats(rt, &id).await.cpu.and_then(|c| c.psi).and_then(|p| p.some).expect("cpu psi");
        assert!(again.total >= first.total, "stall time is cumulative: {first:?} then {again:?}");
    }
    println!("swap accounted: {swap_accounted}, stalls accounted: {stalls_accounted}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn stats_of_unknown_containers_are_not_found() {
    let shim = Shim::start().await;
    let request = api::ContainerStatsRequest { container_id: pods::unknown_id() };
    let err = shim.runtime.clone().container_stats(request).await.expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn writable_layer_usage_is_measured_in_the_background() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "stats-layer").await;
    let pod = pods::run_pod(rt, "stats-layer").await;
    let writer = ["sh", "-c", "dd if=/dev/zero of=/written bs=1M count=8 2>/dev/null; sleep 600"];
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "writer", &image, &writer)).await;
    let layer = pods::wait_for("writable layer of 8 MiB", pods::WAIT, || async {
        let layer = container_stats(rt, &id).await.writable_layer?;
        (value(&layer.used_bytes) >= 8 << 20).then_some(layer)
    })
    .await;
    assert!(value(&layer.inodes_used) >= 1);
    assert!(layer.fs_id.is_some_and(|f| !f.mountpoint.is_empty()));
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
