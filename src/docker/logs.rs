//! Following a container's output as Docker keeps it.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::{Docker, DockerError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One entry of Docker's log, still prefixed by Docker's RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct LogChunk {
    pub stream: OutputStream,
    pub data: Bytes,
}

impl Docker {
    /// Streams the container's output from `since_secs` on (0: from the
    /// start), following it until the container stops.
    pub async fn follow_logs(
        &self,
        id: &str,
        since_secs: i64,
    ) -> Result<impl Stream<Item = Result<LogChunk, DockerError>> + Send + 'static, DockerError> {
        let client = self.client().await?;
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(i32::try_from(since_secs).unwrap_or(0))
            .build();
        let this = self.clone();
        Ok(client.logs(id, Some(options)).filter_map(move |item| {
            let chunk = match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(LogChunk { stream: OutputStream::Stdout, data: message }))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(LogChunk { stream: OutputStream::Stderr, data: message })),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(this.error(e))),
            };
            std::future::ready(chunk)
        }))
    }
}
