//! Image volumes (KEP-4639) pinned by digest (KEP-5365): a mount naming a
//! pulled image shows that image's files read-only (all of it, or a sub
//! path), ContainerStatus reports the canonical digest fixed at create,
//! RemoveImage refuses an image a container mounts, and a restart keeps
//! it all. Docker 28 mounts the image itself; older engines get the
//! image's layers mounted by pinshim.

mod common;

use common::pods::{self, CrashableShim, IDLE, Pod, Rt, TestImage, container_config};
use pinshim::api;
use tonic::Code;

/// Two layers: the upper one replaces `data/hello.txt`.
const LOWER: &[(&str, &str)] =
    &[("data/hello.txt", "layer one\n"), ("data/sub/inner.txt", "inner\n"), ("keep.txt", "base\n")];
const UPPER: &[(&str, &str)] = &[("data/hello.txt", "layer two\n"), ("top.txt", "top\n")];

fn volume(image: &TestImage, container_path: &str, sub_path: &str) -> api::Mount {
    api::Mount {
        container_path: container_path.to_string(),
        image: Some(image.spec()),
        image_sub_path: sub_path.to_string(),
        ..Default::default()
    }
}

async fn with_volume(rt: &Rt, pod: &Pod, app: &TestImage, mount: api::Mount) -> Result<String, tonic::Status> {
    let mut config = container_config(pod, "app", app, IDLE);
    config.mounts = vec![mount];
    let id = pods::try_create(rt, pod, config).await?;
    pods::start(rt, &id).await;
    Ok(id)
}

async fn cat(rt: &Rt, id: &str, path: &str) -> Option<String> {
    let out = pods::exec(rt, id, &["cat", path], 10).await.expect("exec");
    (out.exit_code == 0).then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn remove_image(images: &pods::Images, id: &str) -> Result<(), tonic::Status> {
    let request = api::RemoveImageRequest { image: Some(common::spec(id)) };
    images.clone().remove_image(request).await.map(drop)
}

#[tokio::test]
async fn an_image_volume_shows_the_image_read_only_and_reports_its_digest() {
    let mut shim = CrashableShim::start().await;
    let app = pods::fresh_image(&shim.images, "imgvol-app").await;
    let vol = pods::files_image(&shim.images, "imgvol", &[LOWER, UPPER]).await;
    let pod = pods::run_pod(&shim.runtime, "imgvol").await;
    let rt = shim.runtime.clone();
    let id = with_volume(&rt, &pod, &app, volume(&vol, "/vol", "")).await.expect("create with an image volume");

    assert_eq!(cat(&rt, &id, "/vol/data/hello.txt").await.as_deref(), Some("layer two\n"), "the upper layer wins");
    assert_eq!(cat(&rt, &id, "/vol/keep.txt").await.as_deref(), Some("base\n"), "the lower layer shows through");
    let write = pods::exec(&rt, &id, &["touch", "/vol/new"], 10).await.expect("exec");
    assert_ne!(write.exit_code, 0, "an image volume is read-only");

    let status = pods::status(&rt, &id).await;
    let mount = status.mounts.iter().find(|m| m.container_path == "/vol").expect("/vol in status");
    let image = mount.image.as_ref().expect("the mount names its image");
    assert_eq!(image.image_ref, vol.canonical(), "the volume's canonical digest (KEP-5365)");
    assert_eq!(image.image, vol.id, "the image as kubelet asked for it");
    assert!(mount.readonly && mount.host_path.is_empty(), "{mount:?}");
    let info = pods::status_info(&rt, &id).await;
    assert_eq!(info["imageVolumes"][0]["canonical"], vol.canonical(), "{info}");
    assert_eq!(info["imageVolumes"][0]["imageId"], vol.id, "{info}");

    let err = remove_image(&shim.images, &vol.id).await.expect_err("the image is in use as a volume");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    // A restart, after a reboot took pinshim's own mounts.
    shim.kill_hard();
    pods::unmount_prepared(&shim.root_dir());
    let before = pods::prepared_mounts(&shim.root_dir()).len();
    shim.restart().await;
    let rt = shim.runtime.clone();
    assert_eq!(before, 0);
    let layered = !common::engine_mounts_images().await;
    assert_eq!(pods::prepared_mounts(&shim.root_dir()).len(), usize::from(layered), "the layers are mounted again");
    let status = pods::status(&rt, &id).await;
    let mount = status.mounts.iter().find(|m| m.container_path == "/vol").expect("/vol after a restart");
    assert_eq!(mount.image.as_ref().map(|i| i.image_ref.clone()), Some(vol.canonical()));
    assert_eq!(cat(&rt, &id, "/vol/top.txt").await.as_deref(), Some("top\n"));

    pods::stop(&rt, &id, 0).await;
    pods::remove(&rt, &id).await;
    assert!(pods::prepared_mounts(&shim.root_dir()).is_empty(), "removal unmounts the image's layers");
    remove_image(&shim.images, &vol.id).await.expect("no container uses the image any more");
    pods::cleanup(&rt, &shim.images, &[&pod], &[&app.id]).await;
}

#[tokio::test]
async fn a_sub_path_mounts_only_that_directory() {
    let shim = CrashableShim::start().await;
    let rt = &shim.runtime;
    let app = pods::fresh_image(&shim.images, "imgvol-sub-app").await;
    let vol = pods::files_image(&shim.images, "imgvol-sub", &[LOWER, UPPER]).await;
    let pod = pods::run_pod(rt, "imgvol-sub").await;
    let id = with_volume(rt, &pod, &app, volume(&vol, "/vol", "data/sub")).await.expect("create with a sub path");

    assert_eq!(cat(rt, &id, "/vol/inner.txt").await.as_deref(), Some("inner\n"));
    assert_eq!(cat(rt, &id, "/vol/hello.txt").await, None, "only the sub path is mounted");
    let status = pods::status(rt, &id).await;
    let mount = status.mounts.iter().find(|m| m.container_path == "/vol").expect("/vol in status");
    assert_eq!(mount.image_sub_path, "data/sub");
    assert_eq!(mount.image.as_ref().map(|i| i.image_ref.clone()), Some(vol.canonical()));

    // The audit lists the volume's image beside the container's own, and
    // flags its digest when denied.
    let endpoint = format!("unix://{}", shim.socket().display());
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_pinshim"))
        .args(["audit", "--container-runtime-endpoint", &endpoint, "--output", "json", "--deny", &vol.digest])
        .output()
        .expect("run pinshim audit");
    assert_eq!(audit.status.code(), Some(1), "a denied volume digest makes audit exit 1");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).expect("audit JSON");
    let ours: Vec<&serde_json::Value> = rows.iter().filter(|r| r["container_id"] == id.as_str()).collect();
    assert_eq!(ours.len(), 2, "one row for the container's image, one for the volume: {ours:?}");
    let volume_row = ours.iter().find(|r| r["mount"] == "/vol").expect("the volume's row");
    assert_eq!(volume_row["canonical_image_id"], vol.canonical());
    assert_eq!(volume_row["denied"], true);
    let own = ours.iter().find(|r| r["mount"] == "").expect("the container's own row");
    assert_eq!((own["canonical_image_id"].clone(), own["denied"].clone()), (app.canonical().into(), false.into()));

    pods::stop(rt, &id, 0).await;
    pods::remove(rt, &id).await;
    pods::cleanup(rt, &shim.images, &[&pod], &[&app.id, &vol.id]).await;
}

#[tokio::test]
async fn bad_image_volumes_are_refused_and_leave_nothing() {
    let shim = CrashableShim::start().await;
    let rt = &shim.runtime;
    let app = pods::fresh_image(&shim.images, "imgvol-bad-app").await;
    let vol = pods::files_image(&shim.images, "imgvol-bad", &[LOWER]).await;
    let pod = pods::run_pod(rt, "imgvol-bad").await;

    let err = with_volume(rt, &pod, &app, volume(&vol, "/vol", "nope")).await.expect_err("missing sub path");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(err.message().contains("nope"), "{err}");
    let err = with_volume(rt, &pod, &app, volume(&vol, "/vol", "../etc")).await.expect_err("escaping sub path");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let mut both = volume(&vol, "/vol", "");
    both.host_path = "/tmp".to_string();
    let err = with_volume(rt, &pod, &app, both).await.expect_err("host path and image");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let mut absent = volume(&vol, "/vol", "");
    absent.image = Some(common::spec(&pods::unknown_id()));
    let err = with_volume(rt, &pod, &app, absent).await.expect_err("image not pulled");
    assert_eq!(err.code(), Code::NotFound, "{err}");

    assert!(pods::containers_of(rt, &pod.id).await.is_empty(), "no container was made");
    assert!(pods::prepared_mounts(&shim.root_dir()).is_empty(), "nothing is left mounted");
    let left = std::fs::read_dir(shim.root_dir().join("mounts")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no prepared directory is left");
    pods::cleanup(rt, &shim.images, &[&pod], &[&app.id, &vol.id]).await;
}
