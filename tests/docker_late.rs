//! dockerd down when pinshim starts: it serves anyway, says why it is not
//! ready, and becomes ready once dockerd appears, without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{Shim, ShimOptions};
use pinshim::api::{StatusRequest, VersionRequest};

async fn runtime_ready(shim: &mut Shim) -> (bool, String) {
    let status = shim.runtime.status(StatusRequest::default()).await.expect("status").into_inner();
    let conditions = status.status.expect("conditions").conditions;
    let runtime = conditions.into_iter().find(|c| c.r#type == "RuntimeReady").expect("RuntimeReady");
    (runtime.status, format!("{}: {}", runtime.reason, runtime.message))
}

#[tokio::test]
async fn becomes_ready_when_dockerd_appears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("docker.sock");
    let endpoint = format!("unix://{}", socket.display());
    let mut shim =
        Shim::start_with(ShimOptions { args: vec!["--docker-endpoint".into(), endpoint], env: Vec::new() }).await;

    let (ready, why) = runtime_ready(&mut shim).await;
    assert!(!ready);
    assert!(why.starts_with("DockerDaemonNotReady: ") && why.contains(&socket.display().to_string()), "{why}");

    let real = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let real = real.strip_prefix("unix://").expect("dockerd on a unix socket").to_string();
    std::os::unix::fs::symlink(&real, &socket).expect("symlink to dockerd");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ready, why) = runtime_ready(&mut shim).await;
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "not ready 10 s after dockerd appeared: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let version = shim.runtime.version(VersionRequest::default()).await.expect("version").into_inner();
    assert_eq!(version.runtime_name, "docker");
}
