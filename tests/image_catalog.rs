//! ListImages, RemoveImage and ImageFsInfo against the real dockerd.

mod common;

use common::registry::push_variant;
use common::{Shim, ShimOptions, env, unique};
use oci_client::secrets::RegistryAuth;
use pinshim::api::{ImageFilter, ImageFsInfoRequest, ListImagesRequest, RemoveImageRequest};

async fn fresh(tag: &str) -> (String, String) {
    let reference = format!("{}/pinshim-test/{}:{tag}", env("PINSHIM_TEST_REGISTRY"), unique("catalog"));
    let pushed = push_variant(&env("PINSHIM_TEST_BUSYBOX"), &reference, &unique("n"), &RegistryAuth::Anonymous).await;
    (reference, pushed.image_id().await)
}

#[tokio::test]
async fn list_reports_qualified_names_and_config_user() {
    let mut shim = Shim::start().await;
    let (reference, id) = fresh("v1").await;
    shim.pull(&reference).await.expect("pull");

    let all = shim.images.list_images(ListImagesRequest::default()).await.expect("list").into_inner().images;
    let mine = all.iter().find(|i| i.id == id).expect("listed");
    assert_eq!(mine.repo_tags, vec![reference.clone()]);
    assert!(mine.size > 0);
    assert!(mine.uid.is_none() && mine.username.is_empty(), "busybox test image sets no user");
    for image in &all {
        assert!(!image.id.is_empty());
        assert!(image.repo_tags.iter().chain(&image.repo_digests).all(|n| !n.contains("<none>")));
        assert!(image.repo_tags.iter().all(|t| t.contains('/')), "fully qualified: {:?}", image.repo_tags);
    }

    let filter = Some(ImageFilter { image: Some(common::spec(&reference)) });
    let filtered = shim.images.list_images(ListImagesRequest { filter }).await.expect("list").into_inner().images;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].id, id);
    let status = shim.status(&reference).await.expect("status");
    assert_eq!((status.size, filtered[0].size), (mine.size, mine.size), "status, filter and listing agree on the size");
    assert!(mine.repo_tags.iter().all(|t| !t.contains('@')), "digests are not tags: {:?}", mine.repo_tags);
    shim.remove(&reference).await;
}

#[tokio::test]
async fn remove_takes_every_name_and_is_idempotent() {
    let mut shim = Shim::start().await;
    let (reference, id) = fresh("one").await;
    shim.pull(&reference).await.expect("pull");
    let second_tag = format!("{}:two", reference.rsplit_once(':').expect("tag").0);
    let options = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(second_tag.split(":two").next().unwrap_or_default())
        .tag("two")
        .build();
    common::docker().tag_image(&id, Some(options)).await.expect("second tag");
    assert_eq!(shim.status(&second_tag).await.expect("second tag visible").id, id);

    shim.remove(&reference).await;
    assert!(shim.status(&id).await.is_none(), "image gone with all its tags");
    assert!(shim.status(&second_tag).await.is_none());
    shim.remove(&reference).await;
    shim.remove(&id).await;
}

/// Removals racing each other all succeed: whichever loses finds the image
/// already gone, however Docker reports that mid-deletion.
#[tokio::test]
async fn concurrent_removals_all_succeed() {
    let mut shim = Shim::start().await;
    let (reference, id) = fresh("race").await;
    shim.pull(&reference).await.expect("pull");
    let removals = (0..8).map(|i| {
        let mut images = shim.images.clone();
        let image = if i % 2 == 0 { reference.clone() } else { id.clone() };
        async move { images.remove_image(RemoveImageRequest { image: Some(common::spec(&image)) }).await }
    });
    for result in futures::future::join_all(removals).await {
        result.expect("every concurrent removal succeeds");
    }
    assert!(shim.status(&id).await.is_none(), "image gone");
}

#[tokio::test]
async fn absent_image_status_is_empty_not_an_error() {
    let mut shim = Shim::start().await;
    let absent = format!("{}/pinshim-test/{}:nope", env("PINSHIM_TEST_REGISTRY"), unique("absent"));
    assert!(shim.status(&absent).await.is_none());
    assert!(shim.status(&format!("sha256:{}", "0".repeat(64))).await.is_none());
}

#[tokio::test]
async fn image_fs_info_reports_docker_store_usage() {
    let mut shim = Shim::start().await;
    let info = shim.images.image_fs_info(ImageFsInfoRequest {}).await.expect("fs info").into_inner();
    let fs = info.image_filesystems.first().expect("one image filesystem");
    assert!(fs.timestamp > 0);
    assert!(fs.fs_id.as_ref().is_some_and(|id| !id.mountpoint.is_empty()));
    assert!(fs.used_bytes.as_ref().is_some_and(|b| b.value > 0));
    assert!(fs.inodes_used.as_ref().is_some_and(|i| i.value > 0));
}

/// A containerd that has stored nothing yet has no content or snapshot
/// directory: its store is empty, not unmeasurable. A root that does not
/// exist is still refused, naming the flag.
#[tokio::test]
async fn image_fs_info_of_a_containerd_that_stored_nothing_yet() {
    if !common::containerd_store().await {
        return println!("this engine keeps images in the graph driver: nothing to check");
    }
    let data_root = common::docker().info().await.expect("docker info").docker_root_dir.unwrap_or_default();
    if std::path::Path::new(&data_root).join("containerd/daemon").is_dir() {
        return println!("dockerd runs its own containerd here: --containerd-root is not used");
    }
    let fresh = tempfile::tempdir().expect("temp dir");
    let root = fresh.path().display().to_string();
    let mut shim =
        Shim::start_with(ShimOptions { args: vec!["--containerd-root".into(), root.clone()], env: vec![] }).await;
    let info = shim.images.image_fs_info(ImageFsInfoRequest {}).await.expect("an empty store").into_inner();
    let fs = info.image_filesystems.first().expect("one image filesystem");
    assert_eq!(fs.fs_id.as_ref().map(|id| id.mountpoint.as_str()), Some(root.as_str()));

    let missing = fresh.path().join("not-there").display().to_string();
    let mut shim = Shim::start_with(ShimOptions { args: vec!["--containerd-root".into(), missing], env: vec![] }).await;
    let err = shim.images.image_fs_info(ImageFsInfoRequest {}).await.expect_err("no such root");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    assert!(err.message().contains("--containerd-root"), "{err}");
}
