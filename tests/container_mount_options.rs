//! `Mount.mount_options`: a Docker bind cannot carry noexec, nosuid or
//! nodev, so pinshim prepares the bind on the host with them under its
//! root dir and Docker binds that. Status shows the host path and options
//! asked for; removal, a restart and a remount after a reboot keep the host
//! clean and the container's view right.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::Shim;
use common::pods::{self, CrashableShim, IDLE, Pod, Rt, TestImage, container_config};
use pinshim::api;
use tonic::Code;

/// A host directory holding an executable script.
fn host_dir_with_script() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn with_options(mut config: api::ContainerConfig, host: &Path, options: &[&str]) -> api::ContainerConfig {
    config.mounts = vec![api::Mount {
        host_path: host.display().to_string(),
        container_path: "/data".to_string(),
        mount_options: options.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    }];
    config
}

/// The mount options the container sees at `/data`.
async fn options_inside(rt: &Rt, id: &str) -> Vec<String> {
    let line = pods::exec_ok(rt, id, &["sh", "-c", "grep ' /data ' /proc/mounts"]).await;
    line.split_whitespace().nth(3).unwrap_or_default().split(',').map(str::to_string).collect()
}

/// What is left under the root dir's `mounts/`.
fn prepared_dirs(root: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(root.join("mounts")) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

async fn start_with_options(rt: &Rt, pod: &Pod, image: &TestImage, host: &Path, options: &[&str]) -> String {
    let config = with_options(container_config(pod, "app", image, IDLE), host, options);
    pods::create_and_start(rt, pod, config).await
}

#[tokio::test]
async fn noexec_nosuid_nodev_reach_the_container() {
    let mut shim = CrashableShim::start().await;
    let image = pods::fresh_image(&shim.images, "mntopt").await;
    let pod = pods::run_pod(&shim.runtime, "mntopt").await;
    let host = host_dir_with_script();
    let id = start_with_options(&shim.runtime, &pod, &image, host.path(), &["noexec", "nosuid", "nodev"]).await;
    let rt = shim.runtime.clone();

    let seen = options_inside(&rt, &id).await;
    for flag in ["noexec", "nosuid", "nodev"] {
        assert!(seen.iter().any(|o| o == flag), "/data inside has {flag}: {seen:?}");
    }
    let run = pods::exec(&rt, &id, &["/data/run.sh"], 10).await.expect("exec");
    assert_ne!(run.exit_code, 0, "a noexec mount refuses to execute: {run:?}");
    let read = pods::exec_ok(&rt, &id, &["cat", "/data/run.sh"]).await;
    assert!(read.contains("echo ran"), "the files are there: {read:?}");
    // What the container writes reaches the host directory.
    pods::exec_ok(&rt, &id, &["sh", "-c", "echo hello > /data/out"]).await;
    assert_eq!(std::fs::read_to_string(host.path().join("out")).expect("host file"), "hello\n");

    let status = pods::status(&rt, &id).await;
    let data = status.mounts.iter().find(|m| m.container_path == "/data").expect("/data in status");
    assert_eq!(data.host_path, host.path().display().to_string(), "status shows the host path asked for");
    assert_eq!(data.mount_options, vec!["noexec", "nosuid", "nodev"]);
    let root = shim.root_dir();
    assert_eq!(
        pods::prepared_mounts(&root).len(),
        1,
        "one bind prepared on the host: {:?}",
        pods::prepared_mounts(&root)
    );

    // A reboot takes the host's mounts; the next start makes them again.
    shim.kill_hard();
    pods::unmount_prepared(&root);
    shim.restart().await;
    let rt = shim.runtime.clone();
    assert_eq!(pods::prepared_mounts(&root).len(), 1, "the prepared bind is made again after a restart");

    pods::stop(&rt, &id, 0).await;
    pods::remove(&rt, &id).await;
    assert!(pods::prepared_mounts(&root).is_empty(), "removal unmounts the prepared bind");
    assert!(prepared_dirs(&root).is_empty(), "removal removes its directory: {:?}", prepared_dirs(&root));
    pods::cleanup(&rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn without_options_the_mount_executes_and_nothing_is_prepared() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "mntopt-none").await;
    let pod = pods::run_pod(rt, "mntopt-none").await;
    let host = host_dir_with_script();
    let id = start_with_options(rt, &pod, &image, host.path(), &[]).await;

    let run = pods::exec(rt, &id, &["/data/run.sh"], 10).await.expect("exec");
    assert_eq!((run.exit_code, String::from_utf8_lossy(&run.stdout).trim()), (0, "ran"), "{run:?}");
    let status = pods::status(rt, &id).await;
    let data = status.mounts.iter().find(|m| m.container_path == "/data").expect("/data in status");
    assert_eq!(data.host_path, host.path().display().to_string(), "Docker binds the host path itself");
    assert!(data.mount_options.is_empty());
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn removing_the_pod_releases_its_containers_prepared_binds() {
    let shim = CrashableShim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "mntopt-pod").await;
    let pod = pods::run_pod(rt, "mntopt-pod").await;
    let host = host_dir_with_script();
    start_with_options(rt, &pod, &image, host.path(), &["noexec"]).await;
    assert_eq!(pods::prepared_mounts(&shim.root_dir()).len(), 1);

    pods::stop_pod(rt, &pod.id).await;
    pods::remove_pod(rt, &pod.id).await;
    assert!(pods::prepared_mounts(&shim.root_dir()).is_empty(), "RemovePodSandbox unmounts its containers' binds");
    assert!(prepared_dirs(&shim.root_dir()).is_empty());
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn unknown_options_are_refused_and_leave_nothing() {
    let shim = CrashableShim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "mntopt-bad").await;
    let pod = pods::run_pod(rt, "mntopt-bad").await;
    let host = host_dir_with_script();
    for (options, says) in [(&["noexec", "sync"][..], "\"sync\""), (&["rshared"][..], "propagation")] {
        let config = with_options(container_config(&pod, "bad", &image, IDLE), host.path(), options);
        let err = pods::try_create(rt, &pod, config).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.message().contains(says), "{err}");
    }
    assert!(pods::containers_of(rt, &pod.id).await.is_empty(), "no container was made");
    assert!(prepared_dirs(&shim.root_dir()).is_empty(), "nothing was prepared");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn a_restart_removes_binds_no_container_records() {
    let mut shim = CrashableShim::start().await;
    // As if pinshim died between preparing a bind and creating the container.
    let root = shim.root_dir();
    let orphan = root.join("mounts").join("0123456789abcdef").join("0");
    std::fs::create_dir_all(&orphan).expect("orphan dir");
    let host = host_dir_with_script();
    let bound = std::process::Command::new("mount").arg("--bind").arg(host.path()).arg(&orphan).status();
    assert!(bound.expect("run mount").success());
    // Older than the next start's listing.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    shim.kill_hard();
    shim.restart().await;
    pods::wait_for("the orphan bind to be removed", pods::WAIT, || async {
        (pods::prepared_mounts(&root).is_empty() && prepared_dirs(&root).is_empty()).then_some(())
    })
    .await;
    assert!(host.path().join("run.sh").exists(), "the host directory itself is untouched");
}

#[tokio::test]
async fn status_says_mount_options_are_supported() {
    let shim = Shim::start().await;
    let status = shim.runtime.clone().status(api::StatusRequest::default()).await.expect("status").into_inner();
    assert!(status.features.is_some_and(|f| f.mount_options));
}
