//! Running under systemd, with the test standing in for it: a socket passed
//! as fd 3 (socket activation) and state notifications on NOTIFY_SOCKET.

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pinshim::api::VersionRequest;
use pinshim::api::runtime_service_client::RuntimeServiceClient;

/// How systemd starts an activated service, in shell: the socket (given to
/// the shell as stdin) moves to fd 3, and LISTEN_PID names the shell's
/// PID, which `exec` hands on to pinshim. A test cannot set the PID any
/// other way without `unsafe` (a pre_exec hook).
const ACTIVATE: &str = r#"export LISTEN_PID=${PID_OVERRIDE:-$$} LISTEN_FDS=1 LISTEN_FDNAMES=cri
exec "$@" 3<&0 </dev/null"#;

struct Process {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Process {
    fn log(&self) -> PathBuf {
        self.dir.path().join("pinshim.log")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill").success());
    }

    /// Waits for the process to exit; returns its exit code.
    async fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "pinshim did not exit; log:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn base_args(dir: &Path) -> Vec<String> {
    vec![
        "--root-dir".into(),
        dir.join("root").display().to_string(),
        "--log-level".into(),
        "debug".into(),
        "--log-format".into(),
        "json".into(),
    ]
}

/// Starts pinshim the way systemd does for a socket unit.
fn activated(listener: UnixListener, endpoint: &str, pid_override: Option<&str>) -> Process {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = std::fs::File::create(dir.path().join("pinshim.log")).expect("log file");
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", ACTIVATE, "sh", env!("CARGO_BIN_EXE_pinshim"), "--container-runtime-endpoint", endpoint])
        .args(base_args(dir.path()))
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(pid) = pid_override {
        command.env("PID_OVERRIDE", pid);
    }
    let child = command.spawn().expect("start pinshim");
    Process { dir, child: Some(child) }
}

/// Starts pinshim on its own socket with NOTIFY_SOCKET pointing at `notify`.
fn notified(notify: &Path, extra: &[&str]) -> Process {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = std::fs::File::create(dir.path().join("pinshim.log")).expect("log file");
    let endpoint = format!("unix://{}", dir.path().join("pinshim.sock").display());
    // dockerd is deliberately absent: readiness must not wait for it.
    let docker = format!("unix://{}", dir.path().join("no-docker.sock").display());
    let child = Command::new(env!("CARGO_BIN_EXE_pinshim"))
        .args(["--container-runtime-endpoint", &endpoint, "--docker-endpoint", &docker])
        .args(base_args(dir.path()))
        .args(extra)
        .env("NOTIFY_SOCKET", notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start pinshim");
    Process { dir, child: Some(child) }
}

/// The next notification, waiting at most `timeout`.
async fn next_notification(socket: &UnixDatagram, timeout: Duration, process: &Process) -> String {
    let socket = tokio::net::UnixDatagram::from_std(socket.try_clone().expect("clone")).expect("tokio socket");
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Ok(Err(e)) => panic!("notify socket: {e}"),
        Err(_) => panic!("no notification within {timeout:?}; log:\n{}", process.logs()),
    }
}

fn notify_socket(dir: &Path) -> UnixDatagram {
    let socket = UnixDatagram::bind(dir.join("notify")).expect("bind notify socket");
    socket.set_nonblocking(true).expect("nonblocking");
    socket
}

#[tokio::test]
async fn serves_on_the_socket_systemd_passes_and_leaves_it_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cri.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let inode = std::fs::metadata(&path).expect("socket").ino();
    let mut process = activated(listener, "fd://cri", None);

    let channel = common::connect(&path).await;
    let mut runtime = RuntimeServiceClient::new(channel);
    let version = runtime.version(VersionRequest::default()).await.expect("version").into_inner();
    assert_eq!(version.runtime_name, "docker");
    assert_eq!(version.runtime_api_version, "v1");
    assert_eq!(std::fs::metadata(&path).expect("socket").ino(), inode, "socket not replaced");

    process.signal("TERM");
    assert_eq!(process.wait().await, Some(0), "clean exit; log:\n{}", process.logs());
    assert_eq!(std::fs::metadata(&path).expect("socket kept").ino(), inode, "systemd's socket left in place");
}

#[tokio::test]
async fn takes_the_passed_socket_by_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cri.sock");
    let mut process = activated(UnixListener::bind(&path).expect("bind"), "fd://3", None);
    let mut runtime = RuntimeServiceClient::new(common::connect(&path).await);
    runtime.version(VersionRequest::default()).await.expect("version");
    process.signal("TERM");
    assert_eq!(process.wait().await, Some(0));
}

#[tokio::test]
async fn refuses_sockets_meant_for_another_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = UnixListener::bind(dir.path().join("cri.sock")).expect("bind");
    let mut process = activated(listener, "fd://", Some("1"));
    assert_eq!(process.wait().await, Some(1));
    assert!(process.logs().contains("LISTEN_PID=1 is not this process"), "{}", process.logs());
}

#[tokio::test]
async fn fd_endpoint_without_a_passed_socket_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_pinshim"))
        .args(["--container-runtime-endpoint", "fd://"])
        .args(base_args(dir.path()))
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .output()
        .expect("run pinshim");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no sockets were passed"));
}

#[tokio::test]
async fn notifies_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = notify_socket(dir.path());
    let mut process = notified(&dir.path().join("notify"), &[]);

    let ready = next_notification(&notify, Duration::from_secs(15), &process).await;
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");

    process.signal("HUP");
    let reloading = next_notification(&notify, Duration::from_secs(10), &process).await;
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading:?}");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
    let ready = next_notification(&notify, Duration::from_secs(10), &process).await;
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");

    process.signal("TERM");
    let stopping = next_notification(&notify, Duration::from_secs(10), &process).await;
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert_eq!(process.wait().await, Some(0));
}
