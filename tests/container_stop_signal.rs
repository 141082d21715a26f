//! Stop signals (KEP-4960): the container's own, else its image's
//! STOPSIGNAL, else SIGTERM. ContainerStatus reports the one in force and
//! StopContainer sends it.

mod common;

use common::Shim;
use common::pods::{self, Rt, TestImage, container_config};
use pinshim::api::{ContainerState, Signal};

/// Says which signal arrived, then exits 0; SIGTERM without a trap of its
/// own would end it with another code.
const REPORTS_SIGNALS: &[&str] = &[
    "sh",
    "-c",
    "for s in USR1 USR2 TERM; do trap \"echo got-$s; exit 0\" $s; done; echo ready; while :; do sleep 0.2; done",
];

/// Stops the container and gives the signal its log says it got.
async fn stop_and_read_signal(rt: &Rt, id: &str) -> String {
    pods::stop(rt, id, 20).await;
    let status = pods::wait_for_state(rt, id, ContainerState::ContainerExited).await;
    assert_eq!(status.exit_code, 0, "the trap ran and exited 0: {status:?}");
    let log = std::fs::read_to_string(&status.log_path).expect("container log");
    let lines = pods::parse_cri_log(&log);
    let got = lines.iter().find_map(|l| l.text.strip_prefix("got-")).unwrap_or_else(|| panic!("no signal in {log:?}"));
    got.to_string()
}

async fn run(shim: &Shim, image: &TestImage, name: &str, signal: Signal) -> (pods::Pod, String) {
    let rt = &shim.runtime;
    let pod = pods::run_pod(rt, name).await;
    let mut config = container_config(&pod, "app", image, REPORTS_SIGNALS);
    config.stop_signal = signal as i32;
    let id = pods::create_and_start(rt, &pod, config).await;
    let log_path = pods::status(rt, &id).await.log_path;
    pods::wait_for("the shell to set its traps", pods::WAIT, || async {
        std::fs::read_to_string(&log_path).ok().filter(|log| log.contains("ready")).map(drop)
    })
    .await;
    (pod, id)
}

#[tokio::test]
async fn the_configured_stop_signal_is_reported_and_sent() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "stopsig").await;
    let (pod, id) = run(&shim, &image, "stopsig", Signal::Sigusr1).await;

    assert_eq!(pods::status(rt, &id).await.stop_signal, Signal::Sigusr1 as i32);
    assert_eq!(stop_and_read_signal(rt, &id).await, "USR1", "StopContainer sent the configured signal");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn the_images_stopsignal_applies_when_the_config_names_none() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let name = common::unique("stopsig-image");
    let image = pods::push_and_pull_with(&shim.images, &name, "v1", |config| {
        config["config"]["StopSignal"] = serde_json::json!("SIGUSR2");
    })
    .await;
    let (pod, id) = run(&shim, &image, "stopsig-image", Signal::RuntimeDefault).await;

    assert_eq!(pods::status(rt, &id).await.stop_signal, Signal::Sigusr2 as i32, "the image's STOPSIGNAL");
    assert_eq!(stop_and_read_signal(rt, &id).await, "USR2", "StopContainer sent the image's signal");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn without_either_the_stop_signal_is_sigterm() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "stopsig-default").await;
    let (pod, id) = run(&shim, &image, "stopsig-default", Signal::RuntimeDefault).await;

    assert_eq!(pods::status(rt, &id).await.stop_signal, Signal::Sigterm as i32);
    assert_eq!(stop_and_read_signal(rt, &id).await, "TERM");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
