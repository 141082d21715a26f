//! kubelet retries removals and garbage-collects at the same time: every
//! removal of something already being removed, or gone, answers OK.

mod common;

use common::Shim;
use common::pods::{self, IDLE};
use pinshim::api;

const CALLS: usize = 20;

#[tokio::test]
async fn concurrent_container_removals_all_succeed() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "rmrace").await;
    let pod = pods::run_pod(rt, "rmrace").await;
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;

    let removals = (0..CALLS).map(|_| {
        let mut rt = rt.clone();
        let request = api::RemoveContainerRequest { container_id: id.clone() };
        async move { rt.remove_container(request).await }
    });
    for result in futures::future::join_all(removals).await {
        result.expect("every concurrent RemoveContainer succeeds");
    }
    assert!(pods::try_status(rt, &id, false).await.is_err(), "container gone");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn concurrent_sandbox_removals_all_succeed() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "rmprace").await;
    let pod = pods::run_pod(rt, "rmprace").await;
    let member = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, IDLE)).await;

    let removals = (0..CALLS).map(|_| {
        let mut rt = rt.clone();
        let request = api::RemovePodSandboxRequest { pod_sandbox_id: pod.id.clone() };
        async move { rt.remove_pod_sandbox(request).await }
    });
    for result in futures::future::join_all(removals).await {
        result.expect("every concurrent RemovePodSandbox succeeds");
    }
    assert!(pods::list_pods(rt, None).await.iter().all(|p| p.id != pod.id), "sandbox gone");
    assert!(pods::try_status(rt, &member, false).await.is_err(), "its container gone");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
