//! CheckpointContainer, as kubelet's forensic checkpoint calls it: on an
//! engine with experimental features and CRIU, the archive checkpointctl
//! reads (CRIU images, config.dump, spec.dump, rootfs-diff.tar,
//! deleted.files) and a container that keeps running; elsewhere a
//! FailedPrecondition that says what the engine lacks.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use common::Shim;
use common::pods::{self, Rt};
use pinshim::api::{CheckpointContainerRequest, ContainerState};
use tonic::Code;

/// Counts into a file, after writing one file and deleting one of the
/// image's, so the writable layer has both to show.
const BUSY: &[&str] = &[
    "sh",
    "-c",
    "echo written > /data.txt; rm /bin/true; i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done",
];

async fn checkpoint(rt: &Rt, id: &str, location: &str) -> Result<(), tonic::Status> {
    let request =
        CheckpointContainerRequest { container_id: id.to_string(), location: location.to_string(), timeout: 60 };
    rt.clone().checkpoint_container(request).await.map(drop)
}

async fn engine_checkpoints() -> bool {
    common::docker().info().await.expect("docker info").experimental_build.unwrap_or(false)
}

/// The archive's entries by name, with their contents.
fn entries(path: &std::path::Path) -> HashMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).expect("archive"));
    let mut out = HashMap::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry.path().expect("entry path").display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("entry contents");
        out.insert(name.trim_end_matches('/').to_string(), bytes);
    }
    out
}

#[tokio::test]
async fn a_running_container_is_checkpointed_into_an_archive() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "ckpt").await;
    let pod = pods::run_pod(rt, "ckpt").await;
    let id = pods::create_and_start(rt, &pod, pods::container_config(&pod, "app", &image, BUSY)).await;
    pods::wait_for("the container to start counting", pods::WAIT, || async {
        pods::exec(rt, &id, &["cat", "/tmp/count"], 5).await.ok().filter(|o| o.exit_code == 0).map(drop)
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let location = dir.path().join("checkpoint.tar");

    if !engine_checkpoints().await {
        let err = checkpoint(rt, &id, &location.display().to_string()).await.expect_err("no experimental engine");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(err.message().contains("experimental"), "says what the engine lacks: {err}");
        assert!(!location.exists());
        pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
        return;
    }

    checkpoint(rt, &id, &location.display().to_string()).await.expect("checkpoint");
    let mode = std::fs::metadata(&location).expect("the archive").permissions().mode();
    assert_eq!(mode & 0o077, 0, "the archive holds the process's memory: readable by its owner only");
    let files = entries(&location);
    assert!(files.contains_key("checkpoint/inventory.img"), "CRIU's images: {:?}", files.keys());
    assert!(files.keys().any(|n| n.starts_with("checkpoint/pages-")), "the memory pages");

    let config: serde_json::Value = serde_json::from_slice(&files["config.dump"]).expect("config.dump JSON");
    assert_eq!(config["id"], id.as_str());
    assert_eq!(config["name"], "app");
    assert_eq!(config["rootfsImageRef"], image.id.as_str());
    assert_eq!(config["rootfsImageName"], image.canonical(), "the image by its digest");
    let spec: serde_json::Value = serde_json::from_slice(&files["spec.dump"]).expect("spec.dump JSON");
    assert!(spec["ociVersion"].is_string() && spec["process"]["args"][0] == "sh", "the OCI spec: {spec}");

    let mut diff = tar::Archive::new(files["rootfs-diff.tar"].as_slice());
    let changed: Vec<String> =
        diff.entries().expect("diff").map(|e| e.expect("entry").path().expect("path").display().to_string()).collect();
    assert!(changed.iter().any(|p| p == "data.txt"), "the written file: {changed:?}");
    let deleted: Vec<String> = serde_json::from_slice(&files["deleted.files"]).expect("deleted.files JSON");
    assert_eq!(deleted, ["bin/true"]);

    // Forensic: the container keeps running.
    let before = pods::exec_ok(rt, &id, &["cat", "/tmp/count"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_ne!(pods::exec_ok(rt, &id, &["cat", "/tmp/count"]).await, before, "it still counts");
    assert_eq!(pods::status(rt, &id).await.state, ContainerState::ContainerRunning as i32);
    let left = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(left, 1, "only the archive is written next to it");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn bad_checkpoint_requests_are_refused() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "ckpt-bad").await;
    let pod = pods::run_pod(rt, "ckpt-bad").await;
    let id = pods::create(rt, &pod, pods::container_config(&pod, "app", &image, BUSY)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let location = dir.path().join("c.tar").display().to_string();

    let err = checkpoint(rt, &id, "relative.tar").await.expect_err("relative location");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = checkpoint(rt, &id, "/nonexistent/pinshim/c.tar").await.expect_err("no such directory");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = checkpoint(rt, &id, &location).await.expect_err("not running");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    let err = checkpoint(rt, &pods::unknown_id(), &location).await.expect_err("unknown container");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "nothing written");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
