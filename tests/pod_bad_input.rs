//! Requests kubelet should never send, or sends about things that are gone:
//! the right gRPC code, nothing left behind in Docker, and idempotent stop
//! and remove of unknown ids.

mod common;

use common::pods::{self, IDLE, Pod, Rt, TestImage, container_config};
use common::{Shim, unique};
use pinshim::api::{self, ContainerState, PodSandboxFilter};
use tonic::Code;

/// A container config carrying a unique label value, so anything it left in
/// Docker can be found even when it has no usable name.
fn traced_config(pod: &Pod, name: &str, image: &TestImage) -> (api::ContainerConfig, String) {
    let token = unique("trace");
    let mut config = container_config(pod, name, image, IDLE);
    config.labels.insert("pinshim.test/trace".to_string(), token.clone());
    (config, token)
}

async fn create_raw(rt: &Rt, request: api::CreateContainerRequest) -> Result<String, tonic::Status> {
    if let (Some(sandbox), Some(config)) = (&request.sandbox_config, &request.config) {
        pods::make_log_dir(sandbox, config);
    }
    Ok(rt.clone().create_container(request).await?.into_inner().container_id)
}

/// After a failed CreateContainer: the pod lists no container and Docker
/// holds none made from the config.
async fn assert_nothing_created(rt: &Rt, pod: &Pod, tokens: &[&str]) {
    assert!(pods::containers_of(rt, &pod.id).await.is_empty(), "ListContainers shows nothing");
    for token in tokens {
        assert_eq!(pods::docker_leftovers(token).await, Vec::<String>::new(), "Docker holds nothing for {token}");
    }
}

#[tokio::test]
async fn create_container_in_an_unknown_or_removed_sandbox_is_not_found() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "nosandbox").await;
    let pod = pods::run_pod(rt, "nosandbox").await;
    let name = unique("orphan");

    let (config, token) = traced_config(&pod, &name, &image);
    let mut request = pods::create_request(&pod, config);
    request.pod_sandbox_id = pods::unknown_id();
    let err = create_raw(rt, request).await.expect_err("unknown sandbox");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert_nothing_created(rt, &pod, &[&name, &token]).await;

    let gone = pods::run_pod(rt, "removedsandbox").await;
    pods::stop_pod(rt, &gone.id).await;
    pods::remove_pod(rt, &gone.id).await;
    let (config, token) = traced_config(&gone, &name, &image);
    let err = create_raw(rt, pods::create_request(&gone, config)).await.expect_err("removed sandbox");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert_nothing_created(rt, &gone, &[&name, &token]).await;

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn create_container_from_an_absent_image_is_not_found() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "noimage").await;
    let pod = pods::run_pod(rt, "noimage").await;
    let never_pulled = format!("{}/pinshim-test/{}:v1", common::env("PINSHIM_TEST_REGISTRY"), unique("absent"));
    let absent = [
        // An image ID Docker does not have, as kubelet would pass it.
        api::ImageSpec {
            image: format!("sha256:{}", pods::unknown_id()),
            user_specified_image: never_pulled.clone(),
            ..Default::default()
        },
        // A reference that was never pulled, as crictl would pass it.
        api::ImageSpec { image: never_pulled.clone(), ..Default::default() },
    ];
    for spec in absent {
        let name = unique("noimage");
        let (mut config, token) = traced_config(&pod, &name, &image);
        config.image = Some(spec.clone());
        let err = pods::try_create(rt, &pod, config).await.expect_err("absent image");
        assert_eq!(err.code(), Code::NotFound, "{spec:?}: {err}");
        assert_nothing_created(rt, &pod, &[&name, &token]).await;
    }

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn create_container_without_metadata_is_invalid_argument() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "nometa").await;
    let pod = pods::run_pod(rt, "nometa").await;

    let (mut config, token) = traced_config(&pod, "nometa", &image);
    config.metadata = None;
    let err = create_raw(rt, pods::create_request(&pod, config)).await.expect_err("no metadata");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_nothing_created(rt, &pod, &[&token]).await;

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn run_as_group_without_a_user_is_invalid_argument() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "groupnouser").await;
    let pod = pods::run_pod(rt, "groupnouser").await;

    let (mut config, token) = traced_config(&pod, "groupnouser", &image);
    let linux = config.linux.get_or_insert_with(Default::default);
    let security = linux.security_context.get_or_insert_with(Default::default);
    security.run_as_group = Some(api::Int64Value { value: 1000 });
    let err = create_raw(rt, pods::create_request(&pod, config)).await.expect_err("group without user");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("run_as_group"), "names the field: {err}");
    assert_nothing_created(rt, &pod, &[&token]).await;

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn same_container_name_and_attempt_twice_is_already_exists() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "dupname").await;
    let pod = pods::run_pod(rt, "dupname").await;

    let (config, token) = traced_config(&pod, "twice", &image);
    let first = pods::create(rt, &pod, config.clone()).await;
    let err = pods::try_create(rt, &pod, config.clone()).await.expect_err("same name and attempt");
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    let listed: Vec<String> = pods::containers_of(rt, &pod.id).await.into_iter().map(|c| c.id).collect();
    assert_eq!(listed, vec![first.clone()]);
    assert_eq!(pods::docker_leftovers(&token).await.len(), 1, "one Docker container for the config");

    pods::start(rt, &first).await;
    pods::wait_for_state(rt, &first, ContainerState::ContainerRunning).await;

    // kubelet restarting the container: same name, next attempt.
    let mut retry = config;
    retry.metadata = Some(api::ContainerMetadata { name: "twice".to_string(), attempt: 1 });
    retry.log_path = "twice/1.log".to_string();
    let second = pods::create(rt, &pod, retry).await;
    assert_ne!(second, first);
    assert_eq!(pods::containers_of(rt, &pod.id).await.len(), 2);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// After a failed RunPodSandbox: no pod listed under the config's labels,
/// nothing in Docker naming or labelled with the pod name.
async fn assert_no_pod(rt: &Rt, name: &str) {
    let label_selector = [("app".to_string(), name.to_string())].into();
    let listed = pods::list_pods(rt, Some(PodSandboxFilter { label_selector, ..Default::default() })).await;
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(pods::docker_leftovers(name).await, Vec::<String>::new(), "Docker holds nothing for {name}");
}

#[tokio::test]
async fn run_pod_sandbox_without_metadata_is_invalid_argument() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let dir = pods::log_dir();
    let name = unique("nometa");
    let mut config = pods::sandbox_config(&name, dir.path());
    config.metadata = None;
    let request = api::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
    let err = rt.clone().run_pod_sandbox(request).await.expect_err("no metadata");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_no_pod(rt, &name).await;
}

#[tokio::test]
async fn run_pod_sandbox_with_an_unknown_runtime_handler_is_invalid_argument() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let dir = pods::log_dir();
    let name = unique("handler");
    let config = pods::sandbox_config(&name, dir.path());
    let request = api::RunPodSandboxRequest { config: Some(config), runtime_handler: "no-such-handler".to_string() };
    let err = rt.clone().run_pod_sandbox(request).await.expect_err("unknown handler");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_no_pod(rt, &name).await;
}

#[tokio::test]
async fn unknown_ids_are_not_found_for_status_and_fine_to_stop_and_remove() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime.clone();
    let id = pods::unknown_id();

    let err = pods::try_status(&rt, &id, false).await.expect_err("unknown container");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let request = api::PodSandboxStatusRequest { pod_sandbox_id: id.clone(), verbose: false };
    let err = rt.pod_sandbox_status(request).await.expect_err("unknown pod");
    assert_eq!(err.code(), Code::NotFound, "{err}");

    // kubelet retries these until they succeed: they must be idempotent.
    pods::stop(&rt, &id, 0).await;
    pods::remove(&rt, &id).await;
    pods::stop_pod(&rt, &id).await;
    pods::remove_pod(&rt, &id).await;
}
