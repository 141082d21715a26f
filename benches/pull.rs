//! PullImage of an image Docker already holds, through pinshim, against a
//! plain Docker API pull of the same tag in the same run. Prints medians
//! and the ratio. Run with `hack/bench.sh` (it brings up the registries).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::registry::push_variant;
use common::{Shim, env, unique};
use futures::StreamExt;
use oci_client::secrets::RegistryAuth;

const ROUNDS: usize = 30;

#[tokio::main]
async fn main() {
    let mut shim = Shim::start().await;
    let name = unique("bench-pull");
    let reference = format!("{}/pinshim-test/{name}:v1", env("PINSHIM_TEST_REGISTRY"));
    let repo = reference.rsplit_once(':').map(|(r, _)| r.to_string()).unwrap_or_default();
    push_variant(&env("PINSHIM_TEST_BUSYBOX"), &reference, &name, &RegistryAuth::Anonymous).await;
    let image_id = shim.pull(&reference).await.expect("warm-up pull");

    let docker = common::docker();
    let mut shim_times = Vec::with_capacity(ROUNDS);
    let mut docker_times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        shim.pull(&reference).await.expect("pinshim pull");
        shim_times.push(start.elapsed());

        let start = Instant::now();
        let options =
            bollard::query_parameters::CreateImageOptionsBuilder::default().from_image(&repo).tag("v1").build();
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            item.expect("docker pull");
        }
        docker_times.push(start.elapsed());
    }
    shim.remove(&image_id).await;

    let (shim_median, docker_median) = (median(&mut shim_times), median(&mut docker_times));
    println!("PullImage of a present image, {ROUNDS} rounds each:");
    println!("  pinshim PullImage (resolve tag + inspect + tag): median {shim_median:?}");
    println!("  docker API pull of the same tag:                 median {docker_median:?}");
    println!("  ratio pinshim/docker: {:.2}", shim_median.as_secs_f64() / docker_median.as_secs_f64());
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
