//! The identity contract: every container reports Docker's image ID and the
//! registry reference (`repo@sha256:<manifest digest>`) it was created from,
//! in ContainerStatus and ListContainers, and keeps reporting them after the
//! tag has moved to other content and been pulled again.

mod common;

use common::pods::{self, IDLE, Rt, TestImage, container_config};
use common::registry::served_digest;
use common::{Shim, unique};
use oci_client::secrets::RegistryAuth;
use pinshim::api::{self, ContainerFilter};

/// Checks every identity field of one container against the image it was
/// created from and the ImageSpec it was created with.
async fn assert_identity(rt: &Rt, id: &str, image: &TestImage, image_record: &api::Image, asked: &api::ImageSpec) {
    let status = pods::status(rt, id).await;
    assert_eq!(status.image_id, image_record.id, "ContainerStatus.image_id is ImageStatus' Image.id");
    assert_eq!(status.image_id, image.id, "... and PullImage's image_ref");
    assert_eq!(status.image_ref, image.canonical(), "image_ref is the digested reference");
    assert_eq!(status.canonical_image_id, image.canonical());
    assert_eq!(status.image, Some(pods::reported_image_spec(asked)), "the image the user asked for");

    let listed = pods::list_containers(rt, ContainerFilter { id: id.to_string(), ..Default::default() }).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let entry = &listed[0];
    assert_eq!(entry.image_ref, status.image_ref);
    assert_eq!(entry.image_id, status.image_id);
    assert_eq!(entry.canonical_image_id, status.canonical_image_id);
    assert_eq!(entry.image, status.image);

    let info = pods::status_info(rt, id).await;
    assert!(pods::json_has_string(&info, &image.id), "verbose info has the image ID {}: {info}", image.id);
    assert!(pods::json_has_string(&info, &image.canonical()), "verbose info has {}: {info}", image.canonical());
}

#[tokio::test]
async fn containers_keep_their_image_identity_after_the_tag_moves() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let auth = RegistryAuth::Anonymous;
    let name = unique("identity");

    let first = pods::push_and_pull(&shim.images, &name, "stable").await;
    assert_eq!(served_digest(&first.reference, &auth).await, first.digest);
    let first_record = pods::image_status(&shim.images, &first.reference).await;
    assert_eq!(first_record.id, first.id);
    let pod = pods::run_pod(rt, "identity").await;
    let a = pods::create_and_start(rt, &pod, container_config(&pod, "first", &first, IDLE)).await;

    // Same tag, different content; pulled again.
    let second = pods::push_and_pull(&shim.images, &name, "stable").await;
    assert_eq!(served_digest(&second.reference, &auth).await, second.digest);
    assert_ne!(first.digest, second.digest);
    assert_ne!(first.id, second.id);
    let second_record = pods::image_status(&shim.images, &second.reference).await;
    assert_eq!(second_record.id, second.id);
    let b = pods::create_and_start(rt, &pod, container_config(&pod, "second", &second, IDLE)).await;

    assert_identity(rt, &a, &first, &first_record, &first.spec()).await;
    assert_identity(rt, &b, &second, &second_record, &second.spec()).await;
    let still = pods::image_status(&shim.images, &first.id).await;
    assert_eq!((&still.id, &still.repo_digests), (&first.id, &first_record.repo_digests), "the first image stays");
    assert!(still.repo_tags.is_empty(), "the tag moved to the second image: {still:?}");

    // crictl-style: the tag itself as the image, no user_specified_image.
    let by_tag = api::ImageSpec { image: second.reference.clone(), ..Default::default() };
    let mut config = container_config(&pod, "bytag", &second, IDLE);
    config.image = Some(by_tag.clone());
    let c = pods::create(rt, &pod, config).await;
    assert_identity(rt, &c, &second, &second_record, &by_tag).await;

    // ListContainers for the whole pod agrees with the per-container checks.
    let listed = pods::containers_of(rt, &pod.id).await;
    let expected = [(&a, &first), (&b, &second), (&c, &second)];
    assert_eq!(listed.len(), expected.len(), "{listed:?}");
    for (id, image) in expected {
        let entry = listed.iter().find(|e| &e.id == id).unwrap_or_else(|| panic!("{id} listed"));
        assert_eq!((&entry.image_id, &entry.image_ref), (&image.id, &image.canonical()));
        assert_eq!(entry.canonical_image_id, image.canonical());
    }

    pods::cleanup(rt, &shim.images, &[&pod], &[&first.id, &second.id]).await;
}
