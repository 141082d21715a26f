//! Interactive sessions: exec and attach with live stdin, output and resize.

use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{AttachContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWrite;

use super::{Docker, DockerError, LogChunk, OutputStream, timed};

/// A live connection to a process's stdio. With a TTY, all output arrives
/// as stdout.
pub struct Session {
    pub output: BoxStream<'static, Result<LogChunk, DockerError>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// What to connect for an exec or attach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StdioFlags {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Docker {
    /// Starts `cmd` in container `id` attached to the caller; returns the exec ID.
    pub async fn exec_session(
        &self,
        id: &str,
        cmd: Vec<String>,
        flags: StdioFlags,
    ) -> Result<(String, Session), DockerError> {
        let client = self.client().await?;
        let options = CreateExecOptions::<String> {
            cmd: Some(cmd),
            attach_stdin: Some(flags.stdin),
            attach_stdout: Some(flags.stdout),
            attach_stderr: Some(flags.stderr),
            tty: Some(flags.tty),
            ..Default::default()
        };
        let exec = timed("exec_create", client.create_exec(id, options)).await.map_err(|e| self.error(e))?;
        let start = StartExecOptions { tty: flags.tty, ..Default::default() };
        let started = timed("exec_start", client.start_exec(&exec.id, Some(start))).await.map_err(|e| self.error(e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(DockerError::Server("exec started detached".to_string()));
        };
        Ok((exec.id, Session { output: self.chunks(output), input }))
    }

    /// The exit code of a finished exec; `None` while it still runs.
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, DockerError> {
        let client = self.client().await?;
        let inspect = timed("exec_inspect", client.inspect_exec(exec_id)).await.map_err(|e| self.error(e))?;
        Ok(if inspect.running.unwrap_or_default() { None } else { inspect.exit_code })
    }

    pub async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> Result<(), DockerError> {
        let client = self.client().await?;
        timed("exec_resize", client.resize_exec(exec_id, ResizeExecOptions { width, height }))
            .await
            .map_err(|e| self.error(e))
    }

    /// Attaches to the main process of container `id`.
    pub async fn attach_session(&self, id: &str, flags: StdioFlags) -> Result<Session, DockerError> {
        let client = self.client().await?;
        let options = AttachContainerOptionsBuilder::default()
            .stream(true)
            .logs(false)
            .stdin(flags.stdin)
            .stdout(flags.stdout)
            .stderr(flags.stderr)
            .build();
        let attached =
            timed("container_attach", client.attach_container(id, Some(options))).await.map_err(|e| self.error(e))?;
        Ok(Session { output: self.chunks(attached.output), input: attached.input })
    }

    pub async fn resize_container(&self, id: &str, width: u16, height: u16) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = ResizeContainerTTYOptionsBuilder::default().w(i32::from(width)).h(i32::from(height)).build();
        timed("container_resize", client.resize_container_tty(id, options)).await.map_err(|e| self.error(e))
    }

    fn chunks(
        &self,
        output: Pin<Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    ) -> BoxStream<'static, Result<LogChunk, DockerError>> {
        let this = self.clone();
        output
            .map_err(move |e| this.error(e))
            .try_filter_map(|item| {
                std::future::ready(Ok(match item {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        Some(LogChunk { stream: OutputStream::Stdout, data: message })
                    }
                    LogOutput::StdErr { message } => Some(LogChunk { stream: OutputStream::Stderr, data: message }),
                    LogOutput::StdIn { .. } => None,
                }))
            })
            .boxed()
    }
}
