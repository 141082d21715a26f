//! Registry access as hosts.toml configures it, against real registries:
//! a TLS registry with a private CA, one that demands client certificates,
//! mirrors in front of an unreachable upstream, and a credential helper.

mod common;

use std::path::{Path, PathBuf};

use common::pods::{self, IDLE};
use common::{Shim, ShimOptions, env, unique};
use oci_client::secrets::RegistryAuth;
use pinshim::api;
use tonic::Code;

const DOCKER_CERTS: &str = "/etc/docker/certs.d";

/// A pinshim with its own registry config dir.
async fn shim_with_hosts(config_dir: &Path, extra_env: Vec<(String, String)>) -> Shim {
    let args = vec!["--registry-config-dir".to_string(), config_dir.display().to_string()];
    Shim::start_with(ShimOptions { args, env: extra_env }).await
}

fn write_hosts(config_dir: &Path, registry: &str, body: &str) {
    let dir = config_dir.join(registry);
    std::fs::create_dir_all(&dir).expect("hosts dir");
    // Different lengths each time: the change is seen within one mtime tick.
    let padding = "#".repeat(body.len() % 7 + 1);
    std::fs::write(dir.join("hosts.toml"), format!("{body}\n{padding}\n")).expect("write hosts.toml");
}

async fn try_pull(shim: &Shim, reference: &str) -> Result<String, tonic::Status> {
    let request = api::PullImageRequest { image: Some(common::spec(reference)), ..Default::default() };
    Ok(shim.images.clone().pull_image(request).await?.into_inner().image_ref)
}

/// Drops this test's names for a shared image without touching its other names.
async fn untag(names: &[String]) {
    for name in names {
        common::docker_rmi(name).await;
    }
}

/// The manifest digest a registry serves for `repo:tag`, read with curl
/// and the given TLS options.
fn served_digest(registry: &str, repo: &str, tag: &str, tls: &[&str]) -> String {
    let accept = "application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,\
                  application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json";
    let out = std::process::Command::new("curl")
        .args(["-sfI", "-H", &format!("Accept: {accept}")])
        .args(tls)
        .arg(format!("https://{registry}/v2/{repo}/manifests/{tag}"))
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&out.stdout).to_string();
    headers
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("docker-content-digest:").map(|d| d.trim().to_string()))
        .unwrap_or_else(|| panic!("no digest for {registry}/{repo}:{tag}: {headers}"))
}

fn owned_trust_files(registry: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(DOCKER_CERTS).join(registry))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| n.starts_with("pinshim-"));
    names.sort();
    names
}

fn remove_owned_trust(registry: &str) {
    for name in owned_trust_files(registry) {
        let _ = std::fs::remove_file(Path::new(DOCKER_CERTS).join(registry).join(name));
    }
}

#[tokio::test]
async fn tls_registry_with_a_private_ca() {
    let registry = env("PINSHIM_TLS_REGISTRY");
    let ca = env("PINSHIM_TEST_CA");
    let config = tempfile::tempdir().expect("config dir");
    let shim = shim_with_hosts(config.path(), Vec::new()).await;
    let reference = format!("{registry}/pinshim-test/busybox:latest");
    let digest = served_digest(&registry, "pinshim-test/busybox", "latest", &["--cacert", &ca]);
    let names = vec![reference.clone(), format!("{registry}/pinshim-test/busybox@{digest}")];
    untag(&names).await;
    remove_owned_trust(&registry);

    // Not configured: the private CA is unknown, and the error says so.
    let refused = try_pull(&shim, &reference).await.expect_err("an unknown CA is refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("certificate"), "{refused:?}");

    // `ca` configured: pinshim resolves, and Docker (which checks this
    // non-loopback registry) pulls with the CA pinshim gave it.
    write_hosts(config.path(), &registry, &format!("[host.\"https://{registry}\"]\nca = \"{ca}\""));
    try_pull(&shim, &reference).await.expect("pull with the CA configured");
    assert_eq!(owned_trust_files(&registry), vec!["pinshim-ca-0.crt"]);
    let status = pods::image_status(&shim.images, &reference).await;
    assert!(status.repo_digests.iter().any(|d| d.ends_with(&digest)), "{status:?}");
    untag(&names).await;

    // `skip_verify` alone: Docker gets the presented certificate pinned, the
    // CA copy goes. Another image, so that Docker really fetches from the host.
    let other = format!("{registry}/pinshim-test/multiarch:latest");
    let other_digest = served_digest(&registry, "pinshim-test/multiarch", "latest", &["--cacert", &ca]);
    let other_names = vec![other.clone(), format!("{registry}/pinshim-test/multiarch@{other_digest}")];
    untag(&other_names).await;
    write_hosts(config.path(), &registry, &format!("[host.\"https://{registry}\"]\nskip_verify = true"));
    try_pull(&shim, &other).await.expect("pull with skip_verify");
    assert_eq!(owned_trust_files(&registry), vec!["pinshim-pinned.crt"]);

    untag(&other_names).await;
    remove_owned_trust(&registry);
}

#[tokio::test]
async fn client_certificate_registry() {
    let registry = env("PINSHIM_MTLS_REGISTRY");
    let (ca, cert, key) = (env("PINSHIM_TEST_CA"), env("PINSHIM_TEST_CLIENT_CERT"), env("PINSHIM_TEST_CLIENT_KEY"));
    let config = tempfile::tempdir().expect("config dir");
    let shim = shim_with_hosts(config.path(), Vec::new()).await;
    let reference = format!("{registry}/pinshim-test/busybox:latest");
    let digest =
        served_digest(&registry, "pinshim-test/busybox", "latest", &["--cacert", &ca, "--cert", &cert, "--key", &key]);
    let names = vec![reference.clone(), format!("{registry}/pinshim-test/busybox@{digest}")];
    untag(&names).await;
    remove_owned_trust(&registry);

    write_hosts(config.path(), &registry, &format!("[host.\"https://{registry}\"]\nca = \"{ca}\""));
    let refused = try_pull(&shim, &reference).await.expect_err("no client certificate, no access");
    assert!(refused.message().contains("certificate"), "{refused:?}");

    let body = format!("[host.\"https://{registry}\"]\nca = \"{ca}\"\nclient = [[\"{cert}\", \"{key}\"]]");
    write_hosts(config.path(), &registry, &body);
    try_pull(&shim, &reference).await.expect("pull with the client certificate");
    let want = vec!["pinshim-ca-0.crt", "pinshim-client-0.cert", "pinshim-client-0.key"];
    assert_eq!(owned_trust_files(&registry), want);

    untag(&names).await;
    remove_owned_trust(&registry);
}

#[tokio::test]
async fn mirrors_stand_in_for_an_unreachable_upstream() {
    // Nothing listens on these loopback ports: the upstream and the first mirror are down.
    let (upstream, dead_mirror) = ("127.0.0.1:5999", "127.0.0.1:5998");
    let mirror = env("PINSHIM_TEST_REGISTRY");
    let name = format!("pinshim-test/{}", unique("mirrored"));
    let pushed = common::registry::push_variant(
        &env("PINSHIM_TEST_BUSYBOX"),
        &format!("{mirror}/{name}:v1"),
        &unique("n"),
        &RegistryAuth::Anonymous,
    )
    .await;
    let config = tempfile::tempdir().expect("config dir");
    write_hosts(
        config.path(),
        upstream,
        &format!(
            "[host.\"http://{dead_mirror}\"]\ncapabilities = [\"pull\", \"resolve\"]\n\n[host.\"http://{mirror}\"]"
        ),
    );
    let shim = shim_with_hosts(config.path(), Vec::new()).await;
    let reference = format!("{upstream}/{name}:v1");

    let id = try_pull(&shim, &reference).await.expect("pull through the second mirror");
    assert_eq!(id, pushed.image_id().await);
    // Tagged with the upstream name; the canonical ID names the upstream.
    let status = pods::image_status(&shim.images, &reference).await;
    assert!(status.repo_tags.contains(&reference), "{status:?}");
    let canonical = format!("{upstream}/{name}@{}", pushed.digest);
    let request = api::ImageStatusRequest { image: Some(common::spec(&reference)), verbose: true };
    let info = shim.images.clone().image_status(request).await.expect("status").into_inner().info;
    assert!(info.values().any(|v| v.contains(&canonical)), "{info:?}");
    let logs = shim.logs();
    assert!(
        logs.lines().any(|l| l.contains("image pulled") && l.contains(&format!("http://{mirror}"))),
        "the audit line names the mirror used: {logs}"
    );

    // A container from it reports the upstream digest as its CanonicalImageID.
    let rt = &shim.runtime;
    let pod = pods::run_pod(rt, "mirrored").await;
    // Any image gives the config its shape; the mirrored one replaces it.
    let shape = pods::fresh_image(&shim.images, "mirror-other").await;
    let mut config = pods::container_config(&pod, "app", &shape, IDLE);
    config.image =
        Some(api::ImageSpec { image: id.clone(), user_specified_image: reference.clone(), ..Default::default() });
    let container = pods::create(rt, &pod, config).await;
    assert_eq!(pods::status(rt, &container).await.canonical_image_id, canonical);

    pods::cleanup(rt, &shim.images, &[&pod], &[&id, &shape.id]).await;
}

/// A registry process of this test's own over the plain registry's storage:
/// a mirror that can be taken down. Killed (by its PID) when dropped.
struct OwnRegistry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl OwnRegistry {
    async fn start() -> OwnRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().expect("registry dir");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            env("PINSHIM_TEST_REGISTRY_STORAGE")
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = std::process::Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = OwnRegistry { child, addr, _dir: dir };
        pods::wait_for("the extra registry to answer", pods::WAIT, || async {
            tokio::net::TcpStream::connect(&registry.addr).await.ok().map(|_| ())
        })
        .await;
        registry
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_mirror_that_goes_down_gives_way_to_the_next() {
    let upstream = "127.0.0.1:5997";
    let second = env("PINSHIM_TEST_REGISTRY");
    let mut first = OwnRegistry::start().await;
    let config = tempfile::tempdir().expect("config dir");
    write_hosts(config.path(), upstream, &format!("[host.\"http://{}\"]\n\n[host.\"http://{second}\"]", first.addr));
    let shim = shim_with_hosts(config.path(), Vec::new()).await;
    let push = |name: String| {
        let target = format!("{second}/{name}:v1");
        async move {
            let source = env("PINSHIM_TEST_BUSYBOX");
            common::registry::push_variant(&source, &target, &unique("n"), &RegistryAuth::Anonymous).await
        }
    };
    let used_for = |shim: &Shim, reference: &str| {
        let logs = shim.logs();
        let line = logs.lines().rev().find(|l| l.contains("image pulled") && l.contains(reference)).map(str::to_string);
        line.unwrap_or_else(|| panic!("no audit line for {reference}: {logs}"))
    };

    let name_a = format!("pinshim-test/{}", unique("mirror-up"));
    let a = push(name_a.clone()).await;
    let reference_a = format!("{upstream}/{name_a}:v1");
    assert_eq!(try_pull(&shim, &reference_a).await.expect("pull through the first mirror"), a.image_id().await);
    assert!(used_for(&shim, &reference_a).contains(&format!("http://{}", first.addr)));

    first.stop();
    let name_b = format!("pinshim-test/{}", unique("mirror-down"));
    let b = push(name_b.clone()).await;
    let reference_b = format!("{upstream}/{name_b}:v1");
    assert_eq!(try_pull(&shim, &reference_b).await.expect("pull through the second mirror"), b.image_id().await);
    assert!(used_for(&shim, &reference_b).contains(&format!("http://{second}")));

    pods::remove_image(&shim.images, &a.image_id().await).await;
    pods::remove_image(&shim.images, &b.image_id().await).await;
}

#[tokio::test]
async fn a_credential_helper_supplies_registry_credentials() {
    let bin = tempfile::tempdir().expect("bin dir");
    let helper = bin.path().join("docker-credential-pinshimtest");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"{{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"{}\\\",\\\"Secret\\\":\\\"{}\\\"}}\"\n",
        env("PINSHIM_TEST_AUTH_USER"),
        env("PINSHIM_TEST_AUTH_PASSWORD")
    );
    std::fs::write(&helper, script).expect("write helper");
    std::process::Command::new("chmod").arg("755").arg(&helper).status().expect("chmod");
    let docker_config = tempfile::tempdir().expect("docker config");
    let registry = env("PINSHIM_TEST_AUTH_REGISTRY");
    let config_json = format!("{{\"credHelpers\": {{\"{registry}\": \"pinshimtest\"}}}}");
    std::fs::write(docker_config.path().join("config.json"), config_json).expect("config.json");
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let env_vars =
        vec![("PATH".to_string(), path), ("DOCKER_CONFIG".to_string(), docker_config.path().display().to_string())];
    let hosts = tempfile::tempdir().expect("hosts dir");
    let shim = shim_with_hosts(hosts.path(), env_vars).await;

    let name = format!("{registry}/pinshim-test/{}:v1", unique("helper"));
    let auth = RegistryAuth::Basic(env("PINSHIM_TEST_AUTH_USER"), env("PINSHIM_TEST_AUTH_PASSWORD"));
    let pushed = common::registry::push_variant(&env("PINSHIM_TEST_AUTH_BUSYBOX"), &name, &unique("n"), &auth).await;
    let id = try_pull(&shim, &name).await.expect("pull with the helper's credentials");
    assert_eq!(id, pushed.image_id().await);
    assert!(!shim.logs().contains(&env("PINSHIM_TEST_AUTH_PASSWORD")), "no secret in the log");
    pods::remove_image(&shim.images, &id).await;
    let _: PathBuf = helper;
}
