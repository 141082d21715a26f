//! The `--config` file: precedence against flags and environment, errors
//! that point at the line, SIGHUP reloads; and `--version`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Process {
    dir: tempfile::TempDir,
    child: Child,
}

impl Process {
    /// pinshim with `config` as its file, dockerd deliberately unreachable
    /// (nothing here needs it), extra flags and variables.
    fn start(config: &str, args: &[&str], vars: &[(&str, &str)]) -> Process {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pinshim.toml");
        std::fs::write(&file, config.replace("$DIR", &dir.path().display().to_string())).expect("config file");
        let log = std::fs::File::create(dir.path().join("pinshim.log")).expect("log file");
        let docker = format!("unix://{}", dir.path().join("no-docker.sock").display());
        let child = Command::new(env!("CARGO_BIN_EXE_pinshim"))
            .arg("--config")
            .arg(&file)
            .args(["--docker-endpoint", &docker, "--log-format", "json"])
            .arg("--root-dir")
            .arg(dir.path().join("root"))
            .args(args)
            .env_remove("PINSHIM_CONTAINER_RUNTIME_ENDPOINT")
            .env_remove("PINSHIM_LOG_LEVEL")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pinshim");
        Process { dir, child }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.path("pinshim.log")).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill").success());
    }

    /// Waits until the process listens on `socket`.
    async fn listening(&self, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::UnixStream::connect(socket).await.is_err() {
            assert!(Instant::now() < deadline, "not listening on {}; log:\n{}", socket.display(), self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn flag_beats_environment_beats_file() {
    let file = "container-runtime-endpoint = \"unix://$DIR/file.sock\"\n";
    let from_file = Process::start(file, &[], &[]);
    from_file.listening(&from_file.path("file.sock")).await;

    // The process's own dir is only known once it starts: the variable and
    // the flag name sockets in dirs made here.
    let vars_dir = tempfile::tempdir().expect("temp dir");
    let env_endpoint = format!("unix://{}", vars_dir.path().join("env.sock").display());
    let from_env = Process::start(file, &[], &[("PINSHIM_CONTAINER_RUNTIME_ENDPOINT", &env_endpoint)]);
    from_env.listening(&vars_dir.path().join("env.sock")).await;
    assert!(!from_env.path("file.sock").exists());

    let flag_dir = tempfile::tempdir().expect("temp dir");
    let flag_endpoint = format!("unix://{}", flag_dir.path().join("flag.sock").display());
    let from_flag = Process::start(
        file,
        &["--container-runtime-endpoint", &flag_endpoint],
        &[("PINSHIM_CONTAINER_RUNTIME_ENDPOINT", &env_endpoint)],
    );
    from_flag.listening(&flag_dir.path().join("flag.sock")).await;
    assert!(!from_flag.path("file.sock").exists());
}

#[tokio::test]
async fn unknown_key_stops_startup_naming_key_and_line() {
    let mut process = Process::start("log-level = \"info\"\n\nmetrics-port = 9100\n", &[], &[]);
    let status = process.child.wait().expect("wait");
    assert_eq!(status.code(), Some(2));
    let logs = process.logs();
    assert!(logs.contains("line 3: unknown key \"metrics-port\""), "{logs}");
}

#[tokio::test]
async fn sighup_applies_log_level_and_names_keys_that_need_a_restart() {
    let config = "container-runtime-endpoint = \"unix://$DIR/cri.sock\"\nlog-level = \"info\"\n";
    let process = Process::start(config, &[], &[]);
    process.listening(&process.path("cri.sock")).await;
    assert!(!process.logs().contains("\"level\":\"DEBUG\""), "info level at start");

    let changed = "container-runtime-endpoint = \"unix://$DIR/cri.sock\"\nlog-level = \"debug\"\n\
                   streaming-bind-addr = \"127.0.0.1:1\"\n";
    std::fs::write(process.path("pinshim.toml"), changed.replace("$DIR", &process.dir.path().display().to_string()))
        .expect("rewrite config");
    process.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = process.logs();
        if logs.contains("settings reloaded") {
            assert!(logs.contains("needs a restart") && logs.contains("\"key\":\"streaming-bind-addr\""), "{logs}");
            assert!(logs.contains("\"applied\":\"[\\\"log-level\\\"]\""), "{logs}");
            break;
        }
        assert!(Instant::now() < deadline, "no reload logged:\n{logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Debug lines appear from now on, e.g. for a CRI call.
    let mut runtime = pinshim::api::runtime_service_client::RuntimeServiceClient::new(
        common::connect(&process.path("cri.sock")).await,
    );
    let _ = runtime.status(pinshim::api::StatusRequest::default()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.logs().contains("\"level\":\"DEBUG\"") {
        assert!(Instant::now() < deadline, "no debug logs after the reload:\n{}", process.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken file is refused and the running settings stay.
    std::fs::write(process.path("pinshim.toml"), "log-level = 5\n").expect("rewrite config");
    process.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.logs().contains("cannot reload settings") {
        assert!(Instant::now() < deadline, "bad file not reported:\n{}", process.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(process.logs().contains("line 1: log-level: expected a string"), "{}", process.logs());
}

#[test]
fn version_names_commit_and_cri_api() {
    let output = Command::new(env!("CARGO_BIN_EXE_pinshim")).arg("--version").output().expect("run pinshim");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let expected_start = format!("pinshim {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected_start), "{text}");
    assert!(text.trim_end().ends_with(", CRI API v1)"), "{text}");
    let commit = &text[expected_start.len()..text.find(',').expect("comma")];
    assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
}
