//! kubelet's polling paths with many pods: N pods with one busybox
//! container each (default 110, kubelet's max pods; set PINSHIM_BENCH_PODS),
//! then p50/p99 of the list, status and stats RPCs through pinshim's
//! socket against the raw Docker API calls a shim would otherwise make,
//! in the same run. Prints a table with ratios and pinshim's peak RSS.

#[path = "../tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder, StatsOptionsBuilder};
use common::Shim;
use common::pods::{self, IDLE};
use futures::StreamExt;
use pinshim::api;

const CALLS: usize = 50;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("PINSHIM_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(110);
    let shim = Shim::start().await;
    let rt = shim.runtime.clone();
    let image = pods::fresh_image(&shim.images, "bench-lists").await;
    let mut pods_made = Vec::with_capacity(n);
    let mut containers = Vec::with_capacity(n);
    for _ in 0..n {
        let pod = pods::run_pod(&rt, "bench-lists").await;
        containers.push(pods::create_and_start(&rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await);
        pods_made.push(pod);
    }
    let (pod0, c0) = (pods_made[0].id.clone(), containers[0].clone());
    let docker = common::docker();

    let mut rows = Vec::new();
    let raw_list = measure(|| {
        let docker = docker.clone();
        async move {
            let options = ListContainersOptionsBuilder::default().all(true).build();
            docker.list_containers(Some(options)).await.expect("docker ps");
        }
    })
    .await;
    let raw_inspect = measure(|| {
        let (docker, id) = (docker.clone(), c0.clone());
        async move {
            docker.inspect_container(&id, None::<InspectContainerOptions>).await.expect("inspect");
        }
    })
    .await;
    let raw_stats = measure_n(5, || {
        let (docker, ids) = (docker.clone(), containers.clone());
        async move {
            let one = |id: String| {
                let docker = docker.clone();
                async move {
                    let options = StatsOptionsBuilder::default().stream(false).build();
                    docker.stats(&id, Some(options)).next().await;
                }
            };
            futures::stream::iter(ids.into_iter().map(one)).buffer_unordered(16).collect::<Vec<()>>().await;
        }
    })
    .await;

    let shim_list_pods = measure(|| {
        let mut rt = rt.clone();
        async move {
            rt.list_pod_sandbox(api::ListPodSandboxRequest::default()).await.expect("list pods");
        }
    })
    .await;
    let shim_list_containers = measure(|| {
        let mut rt = rt.clone();
        async move {
            rt.list_containers(api::ListContainersRequest::default()).await.expect("list containers");
        }
    })
    .await;
    let shim_container_status = measure(|| {
        let (mut rt, id) = (rt.clone(), c0.clone());
        async move {
            rt.container_status(api::ContainerStatusRequest { container_id: id, verbose: false })
                .await
                .expect("status");
        }
    })
    .await;
    let shim_pod_status = measure(|| {
        let (mut rt, id) = (rt.clone(), pod0.clone());
        async move {
            rt.pod_sandbox_status(api::PodSandboxStatusRequest { pod_sandbox_id: id, verbose: false })
                .await
                .expect("status");
        }
    })
    .await;
    let shim_container_stats = measure_n(10, || {
        let mut rt = rt.clone();
        async move {
            rt.list_container_stats(api::ListContainerStatsRequest::default()).await.expect("stats");
        }
    })
    .await;
    let shim_pod_stats = measure_n(10, || {
        let mut rt = rt.clone();
        async move {
            rt.list_pod_sandbox_stats(api::ListPodSandboxStatsRequest::default()).await.expect("pod stats");
        }
    })
    .await;
    rows.push(("ListPodSandbox", shim_list_pods, "GET /containers/json?all=1", raw_list));
    rows.push(("ListContainers", shim_list_containers, "GET /containers/json?all=1", raw_list));
    rows.push(("ContainerStatus", shim_container_status, "GET /containers/{id}/json", raw_inspect));
    rows.push(("PodSandboxStatus", shim_pod_status, "GET /containers/{id}/json", raw_inspect));
    rows.push(("ListContainerStats", shim_container_stats, "stats?stream=false for each, 16 at a time", raw_stats));
    rows.push(("ListPodSandboxStats", shim_pod_stats, "stats?stream=false for each, 16 at a time", raw_stats));

    let rss = shim.peak_rss_kib();
    pods::cleanup(&rt, &shim.images, &pods_made.iter().collect::<Vec<_>>(), &[&image.id]).await;

    println!("{n} pods, one container each; p50 / p99 over {CALLS} calls (stats: fewer)");
    println!(
        "{:<20} {:>10} {:>10}   {:<42} {:>10} {:>10}  {:>7}",
        "pinshim RPC", "p50", "p99", "raw Docker API", "p50", "p99", "p50 ratio"
    );
    for (ours, (p50, p99), theirs, (d50, d99)) in rows {
        let ratio = p50.as_secs_f64() / d50.as_secs_f64();
        // Ratios far below 1 read better as "1/N".
        let ratio = if ratio < 0.05 { format!("1/{:.0}", 1.0 / ratio) } else { format!("{ratio:.2}") };
        println!("{ours:<20} {p50:>10.2?} {p99:>10.2?}   {theirs:<42} {d50:>10.2?} {d99:>10.2?}  {ratio:>7}");
    }
    println!("pinshim peak RSS: {} MiB", rss.map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)));
}

async fn measure<F, Fut>(call: F) -> (Duration, Duration)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    measure_n(CALLS, call).await
}

async fn measure_n<F, Fut>(calls: usize, call: F) -> (Duration, Duration)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    call().await; // warm-up
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        call().await;
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[(times.len() * 99 / 100).min(times.len() - 1)])
}
