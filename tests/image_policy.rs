//! The provenance policy file (denied digests, allowed registries) at pull
//! and at create, its live reload, and `pinshim audit`.

mod common;

use std::path::Path;

use common::pods::{self, IDLE};
use common::{Shim, ShimOptions, env, unique};
use oci_client::secrets::RegistryAuth;
use pinshim::api;
use tonic::Code;

/// Writes the policy; each version differs in length, so a reload is seen
/// even within one mtime tick.
fn write_policy(path: &Path, body: &str, version: usize) {
    std::fs::write(path, format!("{body}\n# version {}\n", "x".repeat(version))).expect("write policy");
}

async fn shim_with_policy(policy: &Path) -> Shim {
    let args = vec!["--image-policy-file".to_string(), policy.display().to_string()];
    Shim::start_with(ShimOptions { args, env: Vec::new() }).await
}

async fn try_pull(shim: &Shim, reference: &str) -> Result<String, tonic::Status> {
    let request = api::PullImageRequest { image: Some(common::spec(reference)), ..Default::default() };
    Ok(shim.images.clone().pull_image(request).await?.into_inner().image_ref)
}

#[tokio::test]
async fn pulls_follow_the_policy_file_as_it_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.toml");
    write_policy(&policy, "", 1);
    let shim = shim_with_policy(&policy).await;
    let reference = format!("{}/pinshim-test/{}:v1", env("PINSHIM_TEST_REGISTRY"), unique("policy-pull"));
    let pushed = common::registry::push_variant(
        &env("PINSHIM_TEST_BUSYBOX"),
        &reference,
        &unique("n"),
        &RegistryAuth::Anonymous,
    )
    .await;

    write_policy(&policy, &format!("[[deny]]\ndigest = \"{}\"\nreason = \"known bad\"", pushed.digest), 2);
    let denied = try_pull(&shim, &reference).await.expect_err("a denied digest is refused");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains(&pushed.digest) && denied.message().contains("known bad"), "{denied:?}");

    write_policy(&policy, "allowed_registries = [\"registry.k8s.io\", \"*.example.com\"]", 3);
    let denied = try_pull(&shim, &reference).await.expect_err("a registry outside the list is refused");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("allowed_registries"), "{denied:?}");

    write_policy(&policy, "allowed_registries = [\"127.0.0.1:*\"]", 4);
    let id = try_pull(&shim, &reference).await.expect("an allowed image pulls");
    assert_eq!(id, pushed.image_id().await);
    pods::remove_image(&shim.images, &id).await;
}

#[tokio::test]
async fn create_refuses_denied_images_and_audit_flags_running_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.toml");
    write_policy(&policy, "", 1);
    let shim = shim_with_policy(&policy).await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "policy-create").await;
    let pod = pods::run_pod(rt, "policy-create").await;
    let running = pods::create_and_start(rt, &pod, pods::container_config(&pod, "early", &image, IDLE)).await;

    write_policy(&policy, &format!("[[deny]]\ndigest = \"{}\"", image.digest), 2);
    let refused = pods::try_create(rt, &pod, pods::container_config(&pod, "late", &image, IDLE)).await;
    let refused = refused.expect_err("a denied image cannot be created from");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(pods::containers_of(rt, &pod.id).await.iter().all(|c| c.id == running), "nothing half-created");

    // Already running: reported, not stopped.
    let info = pods::status_info(rt, &running).await;
    assert!(info["policyViolation"].as_str().is_some_and(|r| r.contains(&image.digest)), "{info}");
    assert_eq!(pods::status(rt, &running).await.state, api::ContainerState::ContainerRunning as i32);

    let endpoint = format!("unix://{}", shim.socket().display());
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_pinshim"))
        .args(["audit", "--container-runtime-endpoint", &endpoint, "--output", "json", "--deny", &image.digest])
        .output()
        .expect("run pinshim audit");
    assert_eq!(audit.status.code(), Some(1), "a denied digest running makes audit exit 1");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).expect("audit JSON");
    let row = rows.iter().find(|r| r["container_id"] == running.as_str()).expect("our container is audited");
    assert_eq!(row["pod_name"], pod.name());
    assert_eq!(row["container"], "early");
    assert_eq!(row["image_id"], image.id.as_str());
    assert_eq!(row["canonical_image_id"], image.canonical().as_str());
    assert_eq!(row["denied"], true);

    let table = std::process::Command::new(env!("CARGO_BIN_EXE_pinshim"))
        .args(["audit", "--container-runtime-endpoint", &endpoint])
        .output()
        .expect("run pinshim audit");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.lines().any(|l| l.contains(pod.name()) && l.contains(&image.canonical())), "{text}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn a_denied_image_is_refused_as_a_volume_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.toml");
    write_policy(&policy, "", 1);
    let shim = shim_with_policy(&policy).await;
    let rt = &shim.runtime;
    let app = pods::fresh_image(&shim.images, "policy-vol-app").await;
    let vol = pods::files_image(&shim.images, "policy-vol", &[&[("data.txt", "x\n")]]).await;
    let pod = pods::run_pod(rt, "policy-vol").await;

    write_policy(&policy, &format!("[[deny]]\ndigest = \"{}\"", vol.digest), 2);
    let mut config = pods::container_config(&pod, "app", &app, IDLE);
    config.mounts = vec![api::Mount { container_path: "/vol".into(), image: Some(vol.spec()), ..Default::default() }];
    let refused = pods::try_create(rt, &pod, config).await.expect_err("a denied image cannot be mounted");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains(&vol.digest), "{refused:?}");
    assert!(pods::containers_of(rt, &pod.id).await.is_empty(), "nothing half-created");

    pods::cleanup(rt, &shim.images, &[&pod], &[&app.id, &vol.id]).await;
}
