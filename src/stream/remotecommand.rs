//! Exec and attach, independent of the transport: a Docker session wired
//! to bounded channels that a SPDY or WebSocket connection fills and drains.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::status::Outcome;
use super::tokens::StreamRequest;
use crate::docker::{Docker, OutputStream, Session, StdioFlags};

/// Messages buffered per direction before the sender waits: a slow reader
/// slows the process down instead of growing pinshim's memory.
pub const CHANNEL_DEPTH: usize = 16;
/// How long to wait for Docker to record an exec's exit code after its output ended.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(5);

/// A terminal size as clients send it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TermSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The transport's side of a remote command. A closed `stdin` sender means
/// end of input; dropping an output receiver means the client went away.
pub struct Channels {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<mpsc::Sender<Bytes>>,
    pub stderr: Option<mpsc::Sender<Bytes>>,
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// Runs an exec or attach request to its end and says how it ended.
pub async fn run(docker: &Docker, request: StreamRequest, channels: Channels) -> Outcome {
    let (target, session, exec_id) = match request {
        StreamRequest::Exec { container_id, cmd, flags } => {
            match docker.exec_session(&container_id, cmd, flags).await {
                Ok((exec_id, session)) => (container_id, session, Some(exec_id)),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
        StreamRequest::Attach { container_id, flags } => match docker.attach_session(&container_id, flags).await {
            Ok(session) => (container_id, session, None),
            Err(e) => return Outcome::Failed(e.to_string()),
        },
        StreamRequest::PortForward { .. } => return Outcome::Failed("not a remote command".to_string()),
    };
    let Session { mut output, mut input } = session;
    let Channels { stdin, stdout, stderr, resize } = channels;

    let stdin_pump = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            while let Some(data) = stdin.recv().await {
                if input.write_all(&data).await.is_err() {
                    return;
                }
            }
        }
        // End of input reaches the process as EOF on its stdin.
        let _ = input.shutdown().await;
    });
    let resize_pump = resize.map(|mut resize| {
        let (docker, target, exec_id) = (docker.clone(), target.clone(), exec_id.clone());
        tokio::spawn(async move {
            while let Some(size) = resize.recv().await {
                let result = match &exec_id {
                    Some(exec) => docker.resize_exec(exec, size.width, size.height).await,
                    None => docker.resize_container(&target, size.width, size.height).await,
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "terminal resize failed");
                }
            }
        })
    });

    while let Some(chunk) = output.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return finish(Outcome::Failed(e.to_string()), stdin_pump, resize_pump),
        };
        let sink = match chunk.stream {
            OutputStream::Stdout => stdout.as_ref(),
            OutputStream::Stderr => stderr.as_ref().or(stdout.as_ref()),
        };
        if let Some(sink) = sink
            && sink.send(chunk.data).await.is_err()
        {
            // The client went away: stop; Docker ends the session when we drop it.
            return finish(Outcome::Failed("client disconnected".to_string()), stdin_pump, resize_pump);
        }
    }
    let outcome = match exec_id {
        Some(exec) => exit_code(docker, &exec).await,
        None => Outcome::Exited(0),
    };
    finish(outcome, stdin_pump, resize_pump)
}

fn finish(
    outcome: Outcome,
    stdin_pump: tokio::task::JoinHandle<()>,
    resize_pump: Option<tokio::task::JoinHandle<()>>,
) -> Outcome {
    stdin_pump.abort();
    if let Some(pump) = resize_pump {
        pump.abort();
    }
    outcome
}

/// Docker records the exit code a moment after the output closes.
async fn exit_code(docker: &Docker, exec_id: &str) -> Outcome {
    let deadline = tokio::time::Instant::now() + EXIT_CODE_WAIT;
    loop {
        match docker.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return Outcome::Exited(code),
            Ok(None) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(None) => return Outcome::Failed("exec output ended but the process still runs".to_string()),
            Err(e) => return Outcome::Failed(e.to_string()),
        }
    }
}

/// Which channels a request asks for, as the transports open them.
pub fn wanted(request: &StreamRequest) -> StdioFlags {
    match request {
        StreamRequest::Exec { flags, .. } | StreamRequest::Attach { flags, .. } => *flags,
        StreamRequest::PortForward { .. } => StdioFlags::default(),
    }
}
