//! Running a command in a container and collecting its output (ExecSync).

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures::StreamExt;

use super::{Docker, DockerError, timed};

/// What an exec printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the command did not finish within the timeout.
    pub exit_code: Option<i32>,
}

impl Docker {
    /// Runs `cmd` in container `id`, keeping at most `cap` bytes of output
    /// (stdout and stderr together). With a `timeout`, a command still running then is killed
    /// and `exit_code` is `None`.
    pub async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Option<Duration>,
        cap: usize,
    ) -> Result<ExecOutput, DockerError> {
        let client = self.client().await?;
        let options = CreateExecOptions::<String> {
            cmd: Some(cmd),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = timed("exec_create", client.create_exec(id, options)).await.map_err(|e| self.error(e))?;
        let started = timed("exec_start", client.start_exec(&exec.id, Some(StartExecOptions::default())))
            .await
            .map_err(|e| self.error(e))?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(DockerError::Server("exec started detached".to_string()));
        };
        let mut result = ExecOutput::default();
        let collect = async {
            while let Some(item) = output.next().await {
                match item.map_err(|e| self.error(e))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        append(&mut result.stdout, &message, cap)
                    }
                    LogOutput::StdErr { message } => append(&mut result.stderr, &message, cap),
                    LogOutput::StdIn { .. } => {}
                }
            }
            Ok::<(), DockerError>(())
        };
        let finished = match timeout {
            Some(limit) => tokio::time::timeout(limit, collect).await.is_ok_and(|r| r.is_ok()),
            None => collect.await.is_ok(),
        };
        let inspect = timed("exec_inspect", client.inspect_exec(&exec.id)).await.map_err(|e| self.error(e))?;
        if !finished || inspect.running.unwrap_or_default() {
            // Docker has no API to stop an exec: signal its process directly.
            if let Some(pid) = inspect.pid.filter(|p| *p > 0) {
                kill_process(pid);
            }
            return Ok(ExecOutput { exit_code: None, ..result });
        }
        result.exit_code = Some(inspect.exit_code.unwrap_or_default() as i32);
        Ok(result)
    }
}

fn append(buf: &mut Vec<u8>, data: &[u8], room: usize) {
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

fn kill_process(pid: i64) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL) {
        tracing::warn!(pid, error = %e, "cannot kill timed-out exec process");
    }
}
