//! PullImage against a real dockerd and real registries: tags resolve to
//! the registry's digest, Docker pulls by digest, identities stay stable.

mod common;

use common::registry::{push_variant, served_digest};
use common::{Shim, env, unique};
use oci_client::secrets::RegistryAuth;
use tonic::Code;

/// Pushes a fresh variant of the busybox test image to `registry/pinshim-test/<name>:<tag>`.
async fn fresh_image(name: &str, tag: &str) -> (String, common::registry::Pushed) {
    let registry = env("PINSHIM_TEST_REGISTRY");
    let reference = format!("{registry}/pinshim-test/{name}:{tag}");
    let pushed =
        push_variant(&env("PINSHIM_TEST_BUSYBOX"), &reference, &unique("nonce"), &RegistryAuth::Anonymous).await;
    (reference, pushed)
}

fn repo_of(reference: &str) -> &str {
    reference.rsplit_once(':').map(|(repo, _)| repo).unwrap_or(reference)
}

#[tokio::test]
async fn pull_by_tag_reports_docker_id_and_registry_digest() {
    let mut shim = Shim::start().await;
    let (reference, pushed) = fresh_image(&unique("bytag"), "v1").await;
    let repo = repo_of(&reference).to_string();

    let image_ref = shim.pull(&reference).await.expect("pull");
    assert_eq!(image_ref, pushed.image_id().await, "image_ref is Docker's image ID");

    let image = shim.status(&reference).await.expect("image present");
    assert_eq!(image.id, image_ref);
    assert_eq!(image.repo_tags, vec![reference.clone()]);
    assert_eq!(image.repo_digests, vec![format!("{repo}@{}", pushed.digest)]);
    assert!(image.size > 0);
    let spec = image.spec.clone().expect("spec");
    assert_eq!((spec.image.as_str(), spec.runtime_handler.as_str()), (image.id.as_str(), ""));

    let by_digest = shim.status(&format!("{repo}@{}", pushed.digest)).await.expect("by digest");
    let by_id = shim.status(&image.id).await.expect("by id");
    let by_short_id = shim.status(&image.id["sha256:".len().."sha256:".len() + 12]).await.expect("by id prefix");
    assert_eq!(by_digest, image);
    assert_eq!(by_id, image);
    assert_eq!(by_short_id, image);

    let (_, info) = shim.status_verbose(&reference).await;
    assert_eq!(info["canonicalImageId"], format!("{repo}@{}", pushed.digest));
    assert_eq!(info["configDigest"], pushed.reported_config_digest().await);

    shim.remove(&reference).await;
    assert!(shim.status(&image.id).await.is_none());
}

#[tokio::test]
async fn moved_tag_gets_new_digest_and_old_digest_still_resolves() {
    let mut shim = Shim::start().await;
    let name = unique("moving");
    let (reference, first) = fresh_image(&name, "stable").await;
    let repo = repo_of(&reference).to_string();
    let first_id = shim.pull(&reference).await.expect("first pull");

    let (_, second) = fresh_image(&name, "stable").await;
    assert_ne!(first.digest, second.digest);
    let second_id = shim.pull(&reference).await.expect("second pull");
    assert_eq!(second_id, second.image_id().await);
    assert_ne!(first_id, second_id);

    let (current, info) = shim.status_verbose(&reference).await;
    assert_eq!(current.expect("tag present").id, second_id);
    assert_eq!(info["canonicalImageId"], format!("{repo}@{}", second.digest));

    let old = shim.status(&format!("{repo}@{}", first.digest)).await.expect("old digest resolves locally");
    assert_eq!(old.id, first_id);
    assert!(old.repo_tags.is_empty(), "the tag moved away from the old image");

    shim.remove(&first_id).await;
    shim.remove(&second_id).await;
}

#[tokio::test]
async fn multi_arch_tag_records_the_index_digest() {
    let mut shim = Shim::start().await;
    let reference = env("PINSHIM_TEST_MULTIARCH");
    let repo = repo_of(&reference).to_string();
    let index_digest = served_digest(&reference, &RegistryAuth::Anonymous).await;

    let id = shim.pull(&reference).await.expect("pull multi-arch");
    let (image, info) = shim.status_verbose(&reference).await;
    let image = image.expect("present");
    assert_eq!(image.id, id);
    assert_eq!(info["canonicalImageId"], format!("{repo}@{index_digest}"));
    assert!(image.repo_digests.contains(&format!("{repo}@{index_digest}")), "{:?}", image.repo_digests);

    let arch = common::docker().inspect_image(&id).await.expect("inspect").architecture.unwrap_or_default();
    assert_eq!(arch, docker_arch(), "Docker holds the image for this platform");
    // By name only: the ID is the shared busybox image's.
    common::docker_rmi(&reference).await;
    common::docker_rmi(&format!("{repo}@{index_digest}")).await;
}

fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[tokio::test]
async fn ten_concurrent_pulls_make_one_docker_pull() {
    let shim = Shim::start().await;
    let (reference, pushed) = fresh_image(&unique("flight"), "v1").await;
    let repo = repo_of(&reference).to_string();
    let since = chrono_now();

    let pulls = (0..10).map(|_| {
        let mut images = shim.images.clone();
        let request = pinshim::api::PullImageRequest { image: Some(common::spec(&reference)), ..Default::default() };
        async move { images.pull_image(request).await.map(|r| r.into_inner().image_ref) }
    });
    for result in futures::future::join_all(pulls).await {
        assert_eq!(result.expect("pull"), pushed.image_id().await);
    }

    let pulls_seen = docker_pull_events(&repo, since).await;
    assert_eq!(pulls_seen, 1, "exactly one Docker pull for ten identical PullImage calls");
    let mut shim = shim;
    shim.remove(&pushed.image_id().await).await;
}

/// Now, as Docker's event filters take it: seconds with nanoseconds.
fn chrono_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

/// Counts Docker `pull` events for `repo` since `since` (epoch seconds).
async fn docker_pull_events(repo: &str, since: String) -> usize {
    use futures::StreamExt;
    let until = chrono_now();
    let mut filters = std::collections::HashMap::new();
    filters.insert("type".to_string(), vec!["image".to_string()]);
    filters.insert("event".to_string(), vec!["pull".to_string()]);
    let options = bollard::query_parameters::EventsOptionsBuilder::default()
        .since(&since)
        .until(&until)
        .filters(&filters)
        .build();
    let events: Vec<_> = common::docker().events(Some(options)).collect().await;
    events
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.actor.as_ref().and_then(|a| a.id.as_deref()).is_some_and(|id| id.starts_with(repo)))
        .count()
}

#[tokio::test]
async fn bad_references_are_invalid_argument() {
    let mut shim = Shim::start().await;
    let long = format!("{}:1", "a".repeat(5000));
    for bad in ["UPPER/case:1", "repo@sha256:short", "", "../../etc", long.as_str()] {
        let err = shim.pull(bad).await.expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:.40}: {err}");
    }
    assert!(!shim.logs().contains("pulling by digest"), "no pull was attempted");
}

/// Docker keeps one image store for all its runtimes: a pull for a handler
/// dockerd runs is the same pull, one for a handler it lacks is refused.
#[tokio::test]
async fn pulls_name_a_runtime_handler_dockerd_knows() {
    let shim = Shim::start().await;
    let (reference, _) = fresh_image(&unique("handler"), "v1").await;
    let pull = |handler: &str| {
        let image = pinshim::api::ImageSpec {
            image: reference.clone(),
            runtime_handler: handler.to_string(),
            ..Default::default()
        };
        let request = pinshim::api::PullImageRequest { image: Some(image), ..Default::default() };
        let mut images = shim.images.clone();
        async move { images.pull_image(request).await.map(|r| r.into_inner().image_ref) }
    };
    let err = pull("no-such-handler").await.expect_err("unknown handler");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("no-such-handler") && err.message().contains("runc"), "{err}");
    let by_runc = pull("runc").await.expect("runc is dockerd's");
    assert_eq!(pull("").await.expect("default"), by_runc);
    let mut images = shim.images.clone();
    let spec = pinshim::api::ImageSpec { image: reference.clone(), ..Default::default() };
    images.remove_image(pinshim::api::RemoveImageRequest { image: Some(spec) }).await.expect("remove");
}

#[tokio::test]
async fn unreachable_registry_is_unavailable_and_leaves_nothing() {
    let mut shim = Shim::start().await;
    let port = free_port();
    let reference = format!("127.0.0.1:{port}/pinshim-test/{}:v1", unique("down"));
    let err = shim.pull(&reference).await.expect_err("registry is down");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains(&format!("127.0.0.1:{port}")), "names the registry: {err}");
    assert!(shim.status(&reference).await.is_none(), "nothing tagged");
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn restart_keeps_ids_and_canonical_references() {
    let mut shim = Shim::start().await;
    let (reference, pushed) = fresh_image(&unique("restart"), "v1").await;
    let repo = repo_of(&reference).to_string();
    shim.pull(&reference).await.expect("pull");
    let (before, before_info) = shim.status_verbose(&reference).await;

    shim.restart().await;
    let (after, after_info) = shim.status_verbose(&reference).await;
    assert_eq!(before, after);
    assert_eq!(before_info, after_info);
    assert_eq!(after_info["canonicalImageId"], format!("{repo}@{}", pushed.digest));
    let (_, by_id) = shim.status_verbose(&pushed.image_id().await).await;
    assert_eq!(by_id["canonicalImageId"], format!("{repo}@{}", pushed.digest));
    shim.remove(&reference).await;
}

#[tokio::test]
async fn pull_of_present_digest_only_tags() {
    let mut shim = Shim::start().await;
    let name = unique("retag");
    let (reference, pushed) = fresh_image(&name, "v1").await;
    let repo = repo_of(&reference).to_string();
    shim.pull(&format!("{repo}@{}", pushed.digest)).await.expect("pull by digest");
    let since = chrono_now();
    shim.pull(&reference).await.expect("pull by tag");
    assert_eq!(docker_pull_events(&repo, since).await, 0, "Docker already had the digest");
    let image = shim.status(&reference).await.expect("tagged");
    assert_eq!(image.repo_tags, vec![reference.clone()]);
    shim.remove(&reference).await;
}

#[tokio::test]
async fn missing_tag_is_not_found() {
    let mut shim = Shim::start().await;
    let registry = env("PINSHIM_TEST_REGISTRY");
    let err = shim.pull(&format!("{registry}/pinshim-test/{}:nope", unique("absent"))).await.expect_err("absent");
    assert_eq!(err.code(), Code::NotFound, "{err}");
}
