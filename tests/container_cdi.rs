//! CDI devices (ContainerConfig.CDI_devices, what DRA drivers and device
//! plugins hand kubelet): passed to Docker as CDI device requests, which
//! the engine resolves from its CDI spec directories. An engine with CDI
//! off refuses with FailedPrecondition; a malformed name is InvalidArgument.

mod common;

use std::path::PathBuf;

use common::pods::{self, IDLE};
use common::{Shim, unique};
use pinshim::api;
use tonic::Code;

/// A CDI spec of this test's own kind in the engine's first spec directory,
/// removed on drop. Its one device mounts a host file (an edit `docker
/// exec` sees too, unlike an environment variable).
struct CdiSpec {
    path: PathBuf,
    kind: String,
    _device: tempfile::NamedTempFile,
}

impl CdiSpec {
    fn write(dir: &str) -> CdiSpec {
        let name = unique("cdi");
        let kind = format!("pinshim.test/{name}");
        std::fs::create_dir_all(dir).expect("CDI spec dir");
        let path = PathBuf::from(dir).join(format!("{name}.json"));
        let device = tempfile::NamedTempFile::new().expect("device file");
        std::fs::write(device.path(), "device one\n").expect("write device file");
        let mount = serde_json::json!({
            "hostPath": device.path(),
            "containerPath": "/dev-one",
            "options": ["ro", "bind"],
        });
        let spec = serde_json::json!({
            "cdiVersion": "0.6.0",
            "kind": kind,
            "devices": [{"name": "one", "containerEdits": {"mounts": [mount]}}],
        });
        std::fs::write(&path, spec.to_string()).expect("write CDI spec");
        CdiSpec { path, kind, _device: device }
    }
}

impl Drop for CdiSpec {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test]
async fn cdi_devices_reach_the_container_or_are_refused() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "cdi").await;
    let pod = pods::run_pod(rt, "cdi").await;
    let dirs = common::docker().info().await.expect("docker info").cdi_spec_dirs.unwrap_or_default();

    let Some(dir) = dirs.first() else {
        let mut config = pods::container_config(&pod, "app", &image, IDLE);
        config.cdi_devices = vec![api::CdiDevice { name: "pinshim.test/none=one".into() }];
        let err = pods::try_create(rt, &pod, config).await.expect_err("an engine without CDI");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(err.message().contains("CDI"), "{err}");
        assert!(pods::containers_of(rt, &pod.id).await.is_empty());
        pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
        return;
    };
    let spec = CdiSpec::write(dir);
    let mut config = pods::container_config(&pod, "app", &image, IDLE);
    config.cdi_devices = vec![api::CdiDevice { name: format!("{}=one", spec.kind) }];
    let id = pods::create_and_start(rt, &pod, config).await;
    let seen = pods::exec_ok(rt, &id, &["cat", "/dev-one"]).await;
    assert_eq!(seen, "device one\n", "the device's edits were applied");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
