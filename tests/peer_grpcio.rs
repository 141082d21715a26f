//! A gRPC C-core client against the real binary: Python grpcio with its
//! default channel options, which sends the socket path as `:authority`.
//! hack/lib.sh (`ensure_python_peers`) installs grpcio and grpcio-tools; a
//! machine without them fails this test rather than skipping it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Shim;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/grpcio_client.py");
const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
/// Generating the stubs plus three calls; seconds when healthy.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn grpcio_client_with_default_options_calls_unary_and_streaming_rpcs() {
    let shim = Shim::start().await;
    let child = tokio::process::Command::new("python3")
        .arg(CLIENT)
        .arg(PROTO_DIR)
        .arg(shim.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 is needed for this test (hack/lib.sh ensure_python_peers installs grpcio)");
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("the grpcio client did not finish in time")
        .expect("grpcio client output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "grpcio client failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("version runtime_name=docker runtime_api_version=v1"), "{stdout}");
    assert!(stdout.contains("list_containers containers="), "{stdout}");
    assert!(stdout.contains("container_events events=") && stdout.contains("status=CANCELLED"), "{stdout}");
}
