//! Pulls from the registry that demands basic auth: credentials from the
//! CRI request and from Docker's config.json, and never in the logs.

mod common;

use base64::Engine;
use common::registry::push_variant;
use common::{Shim, ShimOptions, env, unique};
use oci_client::secrets::RegistryAuth;
use pinshim::api::AuthConfig;
use tonic::Code;

fn basic() -> RegistryAuth {
    RegistryAuth::Basic(env("PINSHIM_TEST_AUTH_USER"), env("PINSHIM_TEST_AUTH_PASSWORD"))
}

async fn fresh_private_image() -> (String, String) {
    let reference = format!("{}/pinshim-test/{}:v1", env("PINSHIM_TEST_AUTH_REGISTRY"), unique("private"));
    let pushed = push_variant(&env("PINSHIM_TEST_AUTH_BUSYBOX"), &reference, &unique("nonce"), &basic()).await;
    (reference, pushed.image_id().await)
}

fn auth(username: &str, password: &str) -> AuthConfig {
    AuthConfig { username: username.into(), password: password.into(), ..Default::default() }
}

#[tokio::test]
async fn wrong_or_missing_credentials_fail_clearly_and_pull_nothing() {
    let mut shim = Shim::start().await;
    let (reference, _) = fresh_private_image().await;

    let wrong = "definitely-wrong-password";
    let err = shim.pull_with(&reference, Some(auth("pinshim", wrong))).await.expect_err("wrong password");
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    assert!(err.message().contains(&env("PINSHIM_TEST_AUTH_REGISTRY")), "names the registry: {err}");

    let err = shim.pull(&reference).await.expect_err("no credentials");
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    assert!(shim.status(&reference).await.is_none(), "nothing pulled or tagged");
    assert!(!shim.logs().contains(wrong), "the password never reaches the log");
}

#[tokio::test]
async fn credentials_from_auth_config_work_and_stay_out_of_logs() {
    let mut shim = Shim::start().await;
    let (reference, image_id) = fresh_private_image().await;
    let password = env("PINSHIM_TEST_AUTH_PASSWORD");

    let got = shim.pull_with(&reference, Some(auth(&env("PINSHIM_TEST_AUTH_USER"), &password))).await.expect("pull");
    assert_eq!(got, image_id);

    // The same credentials given as base64 `auth`, as kubelet sends from pull secrets.
    let (second, second_id) = fresh_private_image().await;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", env("PINSHIM_TEST_AUTH_USER")));
    let config = AuthConfig { auth: encoded.clone(), ..Default::default() };
    assert_eq!(shim.pull_with(&second, Some(config)).await.expect("pull with auth field"), second_id);

    let logs = shim.logs();
    assert!(logs.contains("pulling by digest"), "debug logging was captured");
    assert!(!logs.contains(&password) && !logs.contains(&encoded), "no secret in the log");
    shim.remove(&reference).await;
    shim.remove(&second).await;
}

#[tokio::test]
async fn credentials_from_docker_config_json_work() {
    let config_dir = tempfile::tempdir().expect("temp dir");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        env("PINSHIM_TEST_AUTH_USER"),
        env("PINSHIM_TEST_AUTH_PASSWORD")
    ));
    let config = serde_json::json!({ "auths": { env("PINSHIM_TEST_AUTH_REGISTRY"): { "auth": encoded } } });
    std::fs::write(config_dir.path().join("config.json"), config.to_string()).expect("write config.json");

    let env_vars = vec![("DOCKER_CONFIG".to_string(), config_dir.path().display().to_string())];
    let mut shim = Shim::start_with(ShimOptions { args: Vec::new(), env: env_vars }).await;
    let (reference, image_id) = fresh_private_image().await;
    assert_eq!(shim.pull(&reference).await.expect("pull with config.json"), image_id);
    assert!(!shim.logs().contains(&env("PINSHIM_TEST_AUTH_PASSWORD")));
    shim.remove(&reference).await;
}

/// A pull by digest of an image Docker already holds still asks the
/// registry: without the right credentials it is refused, as by tag, so a
/// pod without the pull secret cannot use what another pod pulled.
#[tokio::test]
async fn held_digest_is_refused_without_the_right_credentials() {
    let mut shim = Shim::start().await;
    let (reference, image_id) = fresh_private_image().await;
    let good = auth(&env("PINSHIM_TEST_AUTH_USER"), &env("PINSHIM_TEST_AUTH_PASSWORD"));
    assert_eq!(shim.pull_with(&reference, Some(good.clone())).await.expect("pull by tag"), image_id);
    let (held, _) = shim.status_verbose(&reference).await;
    let by_digest = held.expect("held").repo_digests.first().cloned().expect("a registry digest");

    let err = shim.pull_with(&by_digest, Some(auth("pinshim", "wrong"))).await.expect_err("wrong password");
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    let err = shim.pull(&by_digest).await.expect_err("no credentials");
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    assert_eq!(shim.pull_with(&by_digest, Some(good)).await.expect("right credentials"), image_id);

    shim.remove(&reference).await;
}
