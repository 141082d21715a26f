//! Running one plugin binary: finding it on the plugin path, the `CNI_*`
//! environment, config on stdin and result on stdout, a time limit that
//! kills the plugin's whole process group, and plugin failures as errors.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Child;

use super::error::CniError;

/// How often a plugin binary that is being written ("text file busy") is retried.
const BUSY_RETRIES: u32 = 5;
/// How much of a plugin's unstructured output goes into an error message.
const MAX_OUTPUT_IN_ERROR: usize = 2048;

/// The CNI operations this runtime performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Add,
    Del,
    Check,
    Status,
}

impl Command {
    /// The value of `CNI_COMMAND`.
    fn env_value(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
        }
    }

    /// The lowercase word used in messages.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Del => "del",
            Self::Check => "check",
            Self::Status => "status",
        }
    }
}

/// One call of one plugin: the protocol parameters besides stdin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Invocation<'a> {
    pub(crate) command: Command,
    pub(crate) network: &'a str,
    pub(crate) plugin: &'a str,
    pub(crate) container_id: &'a str,
    pub(crate) netns: &'a str,
    pub(crate) ifname: &'a str,
    pub(crate) cni_args: &'a str,
}

/// Finds and runs plugin binaries from a list of directories.
#[derive(Debug, Clone)]
pub(crate) struct PluginRunner {
    bin_dirs: Vec<PathBuf>,
    timeout: Duration,
}

impl PluginRunner {
    pub(crate) fn new(bin_dirs: Vec<PathBuf>, timeout: Duration) -> Self {
        Self { bin_dirs, timeout }
    }

    /// The plugin path, `:`-joined, as plugins receive it in `CNI_PATH`.
    fn cni_path(&self) -> String {
        let dirs: Vec<String> = self.bin_dirs.iter().map(|d| d.display().to_string()).collect();
        dirs.join(":")
    }

    /// The first regular file named `plugin` in the plugin directories.
    pub(crate) async fn find(&self, network: &str, plugin: &str) -> Result<PathBuf, CniError> {
        for dir in &self.bin_dirs {
            let candidate = dir.join(plugin);
            if tokio::fs::metadata(&candidate).await.is_ok_and(|m| m.is_file()) {
                return Ok(candidate);
            }
        }
        Err(CniError::PluginNotFound { network: network.into(), plugin: plugin.into(), dirs: self.cni_path() })
    }

    /// The `CNI_*` variables for one invocation; the rest of the
    /// environment (notably `PATH`) is inherited, as libcni does.
    pub(crate) fn env(&self, inv: &Invocation<'_>) -> [(&'static str, String); 6] {
        [
            ("CNI_COMMAND", inv.command.env_value().to_string()),
            ("CNI_CONTAINERID", inv.container_id.to_string()),
            ("CNI_NETNS", inv.netns.to_string()),
            ("CNI_IFNAME", inv.ifname.to_string()),
            ("CNI_ARGS", inv.cni_args.to_string()),
            ("CNI_PATH", self.cni_path()),
        ]
    }

    /// Runs the plugin with `stdin` and returns its stdout on success.
    pub(crate) async fn run(&self, inv: &Invocation<'_>, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
        let path = self.find(inv.network, inv.plugin).await?;
        let started = Instant::now();
        let child = self.spawn(&path, inv).await.map_err(|e| exec_error(inv, e))?;
        let pid = child.id();
        let work = communicate(child, stdin);
        tokio::pin!(work);
        let output = tokio::select! {
            output = &mut work => output.map_err(|e| exec_error(inv, e))?,
            () = tokio::time::sleep(self.timeout) => {
                kill_process_group(pid);
                return Err(timeout_error(inv, self.timeout));
            }
        };
        log_finished(inv, &output, started);
        if output.status.success() { Ok(output.stdout) } else { Err(plugin_error(inv, &output)) }
    }

    async fn spawn(&self, path: &Path, inv: &Invocation<'_>) -> std::io::Result<Child> {
        let mut attempt = 0;
        loop {
            let mut command = tokio::process::Command::new(path);
            command.envs(self.env(inv)).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            // Own process group, so a timeout also kills what the plugin started (e.g. its IPAM plugin).
            command.process_group(0).kill_on_drop(true);
            match command.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < BUSY_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                result => return result,
            }
        }
    }
}

/// Feeds stdin while collecting stdout and stderr, so neither side can block the other.
async fn communicate(mut child: Child, stdin: &[u8]) -> std::io::Result<Output> {
    let pipe = child.stdin.take();
    let write = async move {
        let Some(mut pipe) = pipe else { return Ok(()) };
        match pipe.write_all(stdin).await {
            // A plugin may exit without reading its config; its exit status tells the story.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    };
    let (written, output) = tokio::join!(write, child.wait_with_output());
    written?;
    output
}

fn kill_process_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else { return };
    let group = nix::unistd::Pid::from_raw(pid);
    if let Err(errno) = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL) {
        tracing::debug!(pid, %errno, "could not kill cni plugin process group");
    }
}

fn log_finished(inv: &Invocation<'_>, output: &Output, started: Instant) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    tracing::debug!(
        plugin = inv.plugin,
        command = inv.command.verb(),
        container_id = inv.container_id,
        status = %output.status,
        elapsed_us = started.elapsed().as_micros() as u64,
        stderr = %stderr.trim(),
        "cni plugin finished"
    );
}

fn exec_error(inv: &Invocation<'_>, source: std::io::Error) -> CniError {
    CniError::PluginExec { network: inv.network.into(), plugin: inv.plugin.into(), command: inv.command.verb(), source }
}

fn timeout_error(inv: &Invocation<'_>, timeout: Duration) -> CniError {
    CniError::PluginTimeout {
        network: inv.network.into(),
        plugin: inv.plugin.into(),
        command: inv.command.verb(),
        timeout,
    }
}

/// The CNI error object plugins print on stdout when they fail.
#[derive(Debug, Deserialize)]
struct ErrorReply {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// Turns a failed run into an error: the CNI error object from stdout when
/// there is one, else the raw output (stderr first, as libcni does).
pub(crate) fn plugin_error(inv: &Invocation<'_>, output: &Output) -> CniError {
    let (network, plugin, command) = (inv.network.to_string(), inv.plugin.to_string(), inv.command.verb());
    if let Ok(reply) = serde_json::from_slice::<ErrorReply>(&output.stdout)
        && (reply.code != 0 || !reply.msg.is_empty())
    {
        return CniError::PluginFailed {
            network,
            plugin,
            command,
            code: reply.code,
            msg: reply.msg,
            details: reply.details,
        };
    }
    let raw = if output.stdout.iter().all(u8::is_ascii_whitespace) { &output.stderr } else { &output.stdout };
    let mut text = String::from_utf8_lossy(raw).trim().to_string();
    if text.is_empty() {
        text = "no error message".to_string();
    }
    truncate(&mut text, MAX_OUTPUT_IN_ERROR);
    CniError::PluginExited { network, plugin, command, status: output.status.to_string(), output: text }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn inv(plugin: &str) -> Invocation<'_> {
        Invocation {
            command: Command::Add,
            network: "podnet",
            plugin,
            container_id: "c1",
            netns: "/proc/1/ns/net",
            ifname: "eth0",
            cni_args: "IgnoreUnknown=1",
        }
    }

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output { status: ExitStatus::from_raw(code << 8), stdout: stdout.into(), stderr: stderr.into() }
    }

    /// Writes an executable shell script plugin named `name` into `dir`.
    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn environment_carries_every_cni_parameter() {
        let runner = PluginRunner::new(vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()], Duration::from_secs(1));
        let env = runner.env(&inv("bridge"));
        assert_eq!(
            env.map(|(k, v)| format!("{k}={v}")),
            [
                "CNI_COMMAND=ADD",
                "CNI_CONTAINERID=c1",
                "CNI_NETNS=/proc/1/ns/net",
                "CNI_IFNAME=eth0",
                "CNI_ARGS=IgnoreUnknown=1",
                "CNI_PATH=/opt/cni/bin:/usr/lib/cni",
            ]
        );
    }

    #[test]
    fn error_object_on_stdout_becomes_plugin_failed() {
        let out = output(1, r#"{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no subnet"}"#, "log");
        let err = plugin_error(&inv("bridge"), &out);
        assert!(
            matches!(&err, CniError::PluginFailed { code: 7, msg, details, .. } if msg == "bad config" && details == "no subnet"),
            "{err:?}"
        );
    }

    #[test]
    fn unstructured_failures_keep_the_raw_output() {
        let err = plugin_error(&inv("bridge"), &output(2, "", "  panic: boom\n"));
        assert_eq!(
            err.to_string(),
            "cni plugin \"bridge\" (network podnet) failed to add: exit status: 2: panic: boom"
        );
        let err = plugin_error(&inv("bridge"), &output(1, "not json", "ignored"));
        assert!(err.to_string().ends_with("exit status: 1: not json"), "{err}");
        let err = plugin_error(&inv("bridge"), &output(1, "", ""));
        assert!(err.to_string().ends_with("exit status: 1: no error message"), "{err}");
        let long = "x".repeat(5000);
        let err = plugin_error(&inv("bridge"), &output(1, "", &long));
        assert!(err.to_string().len() < 2200, "{}", err.to_string().len());
    }

    #[tokio::test]
    async fn missing_binary_names_plugin_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let runner = PluginRunner::new(vec![dir.path().into()], Duration::from_secs(1));
        let err = runner.run(&inv("no-such-plugin"), b"{}").await.unwrap_err();
        assert!(matches!(err, CniError::PluginNotFound { ref plugin, .. } if plugin == "no-such-plugin"), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
    }

    #[tokio::test]
    async fn plugin_reads_stdin_and_env_and_its_stdout_is_returned() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        script(second.path(), "echoer", r#"read -r line; echo "$CNI_COMMAND $CNI_IFNAME $line""#);
        let runner = PluginRunner::new(vec![first.path().into(), second.path().into()], Duration::from_secs(10));
        let stdout = runner.run(&inv("echoer"), b"{\"hello\":1}\n").await.unwrap();
        assert_eq!(String::from_utf8(stdout).unwrap(), "ADD eth0 {\"hello\":1}\n");
    }

    #[tokio::test]
    async fn failing_plugin_reports_its_error_object() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "failer", r#"echo '{"code":11,"msg":"try again later"}'; exit 1"#);
        let runner = PluginRunner::new(vec![dir.path().into()], Duration::from_secs(10));
        let err = runner.run(&inv("failer"), b"{}").await.unwrap_err();
        assert!(matches!(err, CniError::PluginFailed { code: 11, .. }), "{err}");
    }

    #[tokio::test]
    async fn hung_plugin_is_killed_with_its_children_on_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        script(dir.path(), "hang", &format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
        let runner = PluginRunner::new(vec![dir.path().into()], Duration::from_millis(500));
        let started = Instant::now();
        let err = runner.run(&inv("hang"), b"{}").await.unwrap_err();
        assert!(matches!(err, CniError::PluginTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
        let gone = || std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "));
        for _ in 0..50 {
            if gone() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the plugin's child {pid} survived the timeout");
    }
}
