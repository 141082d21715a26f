//! ExecSync (output, exit code, timeout) and container logs: the CRI log
//! format at log_directory/log_path, rotation through ReopenContainerLog, and
//! no lost line across a restart of pinshim.

mod common;

use std::path::{Path, PathBuf};

use common::Shim;
use common::pods::{self, IDLE, LogLine, Pod, Rt, container_config};
use pinshim::api::{self, ContainerState};
use tonic::Code;

/// Prints `line 0`, `line 1`, … five times a second until SIGTERM.
const COUNTER: &[&str] =
    &["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"];

#[tokio::test]
async fn exec_sync_returns_stdout_stderr_and_exit_code() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "exec").await;
    let pod = pods::run_pod(rt, "exec").await;
    let id = pods::create_and_start(rt, &pod, container_config(&pod, "main", &image, IDLE)).await;

    let out = pods::exec(rt, &id, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10).await.expect("exec");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(out.exit_code, 3);

    let env = pods::exec_ok(rt, &id, &["sh", "-c", "echo \"$GREETING\""]).await;
    assert_eq!(env, "hello world\n", "the container's environment applies to exec");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn exec_sync_timeout_is_deadline_exceeded_and_kills_the_command() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "exectimeout").await;
    let pod = pods::run_pod(rt, "exectimeout").await;
    let id = pods::create_and_start(rt, &pod, container_config(&pod, "main", &image, IDLE)).await;

    let err = pods::exec(rt, &id, &["sleep", "30"], 1).await.expect_err("sleep 30 outlives a 1 s timeout");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");

    pods::wait_for("the timed-out `sleep 30` to be killed", pods::WAIT, || async {
        let ps = pods::exec_ok(rt, &id, &["ps", "-o", "pid,args"]).await;
        (!ps.lines().any(|l| l.trim_end().ends_with("sleep 30"))).then_some(())
    })
    .await;
    let state = pods::status(rt, &id).await.state;
    assert_eq!(state, ContainerState::ContainerRunning as i32, "the container itself keeps running");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

fn log_file(pod: &Pod, config: &api::ContainerConfig) -> PathBuf {
    Path::new(&pod.config.log_directory).join(&config.log_path)
}

/// The complete lines of a CRI log file (none if it does not exist yet),
/// each checked against the format.
fn read_log(path: &Path) -> Vec<LogLine> {
    let content = std::fs::read_to_string(path).unwrap_or_default();
    let complete = content.rfind('\n').map(|end| &content[..=end]).unwrap_or_default();
    pods::parse_cri_log(complete)
}

/// The numbers of the `line N` lines the COUNTER container wrote.
fn counted(lines: &[LogLine]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            assert_eq!((l.stream.as_str(), l.tag.as_str()), ("stdout", "F"), "{l:?}");
            let n = l.text.strip_prefix("line ").and_then(|n| n.parse().ok());
            n.unwrap_or_else(|| panic!("unexpected log line {l:?}"))
        })
        .collect()
}

async fn wait_for_lines(path: &Path, at_least: usize) -> Vec<LogLine> {
    let what = format!("{at_least} lines in {}", path.display());
    pods::wait_for(&what, pods::WAIT, || async {
        let lines = read_log(path);
        (lines.len() >= at_least).then_some(lines)
    })
    .await
}

/// The COUNTER's lines must be `line <first>`, `line <first+1>`, … with none
/// lost or repeated.
fn assert_consecutive(lines: &[LogLine], first: u64, what: &str) {
    let numbers = counted(lines);
    let expected: Vec<u64> = (first..first + numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "{what}: every line once, in order, none lost: {lines:#?}");
}

#[tokio::test]
async fn logs_are_written_in_cri_format_at_the_log_path() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "logs").await;
    let pod = pods::run_pod(rt, "logs").await;
    let script = "echo first out; echo only err >&2; echo second out";
    let config = container_config(&pod, "printer", &image, &["sh", "-c", script]);
    let path = log_file(&pod, &config);
    let id = pods::create_and_start(rt, &pod, config).await;
    pods::wait_for_state(rt, &id, ContainerState::ContainerExited).await;

    let lines = wait_for_lines(&path, 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    let of = |stream: &str| -> Vec<(String, String)> {
        lines.iter().filter(|l| l.stream == stream).map(|l| (l.tag.clone(), l.text.clone())).collect()
    };
    let full = |text: &str| ("F".to_string(), text.to_string());
    assert_eq!(of("stdout"), vec![full("first out"), full("second out")]);
    assert_eq!(of("stderr"), vec![full("only err")]);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// kubelet opens the file as soon as StartContainer returns and reads it as
/// soon as the container is reported exited, as the CRI validation suite
/// does: both must hold every time, not just usually. Twelve short-lived
/// containers side by side make a lagging copy likely to show.
#[tokio::test]
async fn log_file_exists_at_start_and_is_complete_at_exit() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "lograce").await;
    let pod = pods::run_pod(rt, "lograce").await;
    let runs = (0..12).map(|i| {
        let (pod, image) = (&pod, &image);
        async move {
            let script = format!("echo out-{i}; echo err-{i} >&2");
            let config = container_config(pod, &format!("quick-{i}"), image, &["sh", "-c", &script]);
            let path = log_file(pod, &config);
            let id = pods::create_and_start(rt, pod, config).await;
            assert!(path.exists(), "{} exists when StartContainer returns", path.display());
            pods::wait_for_state(rt, &id, ContainerState::ContainerExited).await;
            let texts: Vec<String> = read_log(&path).into_iter().map(|l| l.text).collect();
            assert!(
                texts.contains(&format!("out-{i}")) && texts.contains(&format!("err-{i}")),
                "complete at exit: {texts:?}"
            );
        }
    });
    futures::future::join_all(runs).await;

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn reopen_container_log_starts_a_new_file_after_rotation() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "rotate").await;
    let pod = pods::run_pod(rt, "rotate").await;
    let config = container_config(&pod, "counter", &image, COUNTER);
    let path = log_file(&pod, &config);
    let id = pods::create_and_start(rt, &pod, config).await;
    wait_for_lines(&path, 3).await;

    // kubelet's rotation: rename the file away, then ask for a reopen.
    let rotated = path.with_file_name("0.log.20250101-000000");
    std::fs::rename(&path, &rotated).expect("rotate");
    reopen(rt, &id).await;
    let fresh = wait_for_lines(&path, 3).await;

    let old = read_log(&rotated);
    assert_consecutive(&old, 0, "rotated file");
    assert_consecutive(&fresh, old.len() as u64, "new file continues where the rotated one stops");

    // Once the new file is in use, the rotated one gets nothing more.
    wait_for_lines(&path, fresh.len() + 3).await;
    assert_eq!(read_log(&rotated), old);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

async fn reopen(rt: &Rt, id: &str) {
    let request = api::ReopenContainerLogRequest { container_id: id.to_string() };
    rt.clone().reopen_container_log(request).await.unwrap_or_else(|e| panic!("reopen container log {id}: {e}"));
}

#[tokio::test]
async fn restarting_pinshim_loses_no_log_line() {
    let mut shim = Shim::start().await;
    let image = pods::fresh_image(&shim.images, "logrestart").await;
    let pod = pods::run_pod(&shim.runtime, "logrestart").await;
    let config = container_config(&pod, "counter", &image, COUNTER);
    let path = log_file(&pod, &config);
    pods::create_and_start(&shim.runtime, &pod, config).await;
    let before = wait_for_lines(&path, 3).await;

    shim.restart().await;
    // Ten more lines than before the restart: written partly while pinshim was down.
    let after = wait_for_lines(&path, before.len() + 10).await;
    assert_consecutive(&after, 0, "log across a restart");

    pods::cleanup(&shim.runtime, &shim.images, &[&pod], &[&image.id]).await;
}
