//! Pod start latency: RunPodSandbox + CreateContainer + StartContainer
//! through pinshim, against the same work done with plain Docker API calls
//! (create and start a pause container, then an app container joining its
//! namespaces) in the same run. Prints medians and the ratio.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use common::pods::{self, IDLE};
use common::{Shim, ShimOptions, env, unique};

const ROUNDS: usize = 15;

#[tokio::main]
async fn main() {
    let shim = Shim::start().await;
    let docker_mode = Shim::start_with(ShimOptions {
        args: vec!["--network-plugin".to_string(), "docker".to_string()],
        env: Vec::new(),
    })
    .await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "bench-pod").await;
    let pause_id = pods::pull(&shim.images, &env("PINSHIM_TEST_PAUSE")).await;
    let docker = common::docker();

    let mut shim_times = Vec::with_capacity(ROUNDS);
    let mut bridge_times = Vec::with_capacity(ROUNDS);
    let mut docker_times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        for (runtime, times) in [(rt, &mut shim_times), (&docker_mode.runtime, &mut bridge_times)] {
            let start = Instant::now();
            let pod = pods::run_pod(runtime, "bench").await;
            pods::create_and_start(runtime, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;
            times.push(start.elapsed());
            pods::stop_pod(runtime, &pod.id).await;
            pods::remove_pod(runtime, &pod.id).await;
        }

        let name = unique("bench-raw");
        let start = Instant::now();
        let pause = create(
            &docker,
            &format!("{name}-pod"),
            &pause_id,
            None,
            HostConfig { ipc_mode: Some("shareable".into()), ..Default::default() },
        )
        .await;
        docker.start_container(&pause, None).await.expect("start pause");
        let joined = format!("container:{pause}");
        let cmd = IDLE.iter().map(|s| s.to_string()).collect();
        let app = create(
            &docker,
            &format!("{name}-app"),
            &image.id,
            Some(cmd),
            HostConfig { network_mode: Some(joined.clone()), ipc_mode: Some(joined), ..Default::default() },
        )
        .await;
        docker.start_container(&app, None).await.expect("start app");
        docker_times.push(start.elapsed());
        for id in [app, pause] {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            docker.remove_container(&id, Some(options)).await.expect("remove");
        }
    }
    pods::remove_image(&shim.images, &image.id).await;

    let (cni, bridge, raw) = (median(&mut shim_times), median(&mut bridge_times), median(&mut docker_times));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("Pod start (sandbox + one container, created and started), {ROUNDS} rounds each:");
    println!("  pinshim, CNI network (bridge, firewall, portmap):   median {cni:?}");
    println!("  pinshim, --network-plugin=docker (Docker bridge):   median {bridge:?}");
    println!("  docker API create/start pause + create/start app:   median {raw:?}");
    println!("  ratio pinshim docker-mode/raw docker: {:.2}", ratio(bridge, raw));
    println!("  ratio pinshim CNI/docker-mode: {:.2}", ratio(cni, bridge));
}

async fn create(
    docker: &bollard::Docker,
    name: &str,
    image: &str,
    cmd: Option<Vec<String>>,
    host: HostConfig,
) -> String {
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let body =
        ContainerCreateBody { image: Some(image.to_string()), cmd, host_config: Some(host), ..Default::default() };
    docker.create_container(Some(options), body).await.expect("create").id
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
