//! Remote commands and port forwarding over SPDY/3.1, as kubelet, kubectl
//! and crictl speak them: the client opens one stream per channel, named
//! by its `streamType` header.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::remotecommand::{self, CHANNEL_DEPTH, Channels, TermSize};
use super::spdy::{Headers, IncomingStream, Session, StreamReader, StreamWriter};
use super::status::{status_json, status_text};
use super::tokens::StreamRequest;
use crate::docker::Docker;

/// Remote-command protocols, newest first; v5 exists only for WebSocket.
const REMOTE_COMMAND: &[(&str, u8)] =
    &[("v4.channel.k8s.io", 4), ("v3.channel.k8s.io", 3), ("v2.channel.k8s.io", 2), ("channel.k8s.io", 1)];
pub const PORT_FORWARD: &str = "portforward.k8s.io";
/// How long a client may take to open every stream a session needs.
const STREAM_SETUP_TIMEOUT: Duration = Duration::from_secs(30);
const STREAM_TYPE: &str = "streamtype";

/// Picks the first protocol the client offers (in its order of preference)
/// that we speak; no offer at all means the original protocol.
pub fn negotiate(offered: &[String], port_forward: bool) -> Option<&'static str> {
    if port_forward {
        return (offered.is_empty() || offered.iter().any(|o| o == PORT_FORWARD)).then_some(PORT_FORWARD);
    }
    if offered.is_empty() {
        return Some("channel.k8s.io");
    }
    offered.iter().find_map(|o| REMOTE_COMMAND.iter().find(|(name, _)| name == o).map(|(name, _)| *name))
}

fn version_of(protocol: &str) -> u8 {
    REMOTE_COMMAND.iter().find(|(name, _)| *name == protocol).map_or(1, |(_, v)| *v)
}

/// The streams of one remote command, gathered as the client opens them.
#[derive(Default)]
struct CommandStreams {
    error: Option<IncomingStream>,
    stdin: Option<IncomingStream>,
    stdout: Option<IncomingStream>,
    stderr: Option<IncomingStream>,
    resize: Option<IncomingStream>,
}

impl CommandStreams {
    fn complete(&self, flags: crate::docker::StdioFlags, version: u8) -> bool {
        self.error.is_some()
            && (!flags.stdin || self.stdin.is_some())
            && (!flags.stdout || self.stdout.is_some())
            && (!flags.stderr || flags.tty || self.stderr.is_some())
            && (!flags.tty || version < 3 || self.resize.is_some())
    }
}

/// Serves an exec or attach over an upgraded SPDY connection.
pub async fn serve_remote_command(
    io: TokioIo<Upgraded>,
    protocol: &'static str,
    request: StreamRequest,
    docker: Docker,
) {
    let (session, mut incoming) = Session::new(io);
    let flags = remotecommand::wanted(&request);
    let version = version_of(protocol);
    let mut streams = CommandStreams::default();
    let setup = async {
        while !streams.complete(flags, version) {
            let Some(stream) = incoming.recv().await else { return false };
            // Clients wait for each reply before opening the next stream.
            if stream.reply(Headers::new()).await.is_err() {
                return false;
            }
            let slot = match stream.headers().get(STREAM_TYPE) {
                Some("error") => &mut streams.error,
                Some("stdin") => &mut streams.stdin,
                Some("stdout") => &mut streams.stdout,
                Some("stderr") => &mut streams.stderr,
                Some("resize") => &mut streams.resize,
                _ => {
                    let _ = stream.reset().await;
                    continue;
                }
            };
            *slot = Some(stream);
        }
        true
    };
    if !tokio::time::timeout(STREAM_SETUP_TIMEOUT, setup).await.unwrap_or(false) {
        tracing::debug!("spdy client did not open the streams it asked for");
        return;
    }

    let (stdout_tx, stdout_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (stderr_tx, stderr_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let mut pumps = Vec::new();
    // Our write halves of the client's input streams stay open for the whole
    // session: client-go closes its stdin as soon as it reads our FIN there,
    // which Docker turns into the end of a TTY session.
    let mut held = Vec::new();
    let stdin = streams.stdin.take().map(|s| {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let (reader, writer) = s.into_split();
        held.push(writer);
        pumps.push(tokio::spawn(pump_in(reader, tx)));
        rx
    });
    let resize = streams.resize.take().map(|s| {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let (reader, writer) = s.into_split();
        held.push(writer);
        pumps.push(tokio::spawn(pump_resize(reader, tx)));
        rx
    });
    let outputs = [(streams.stdout.take(), stdout_rx), (streams.stderr.take(), stderr_rx)];
    let mut writers = Vec::new();
    for (stream, rx) in outputs {
        if let Some(stream) = stream {
            writers.push(tokio::spawn(pump_out(rx, stream.into_split().1)));
        }
    }
    let channels = Channels {
        stdin,
        stdout: flags.stdout.then_some(stdout_tx),
        stderr: (flags.stderr && !flags.tty).then_some(stderr_tx),
        resize,
    };
    let outcome = remotecommand::run(&docker, request, channels).await;
    for writer in writers {
        let _ = writer.await;
    }
    if let Some(error) = streams.error.take() {
        let status = if version >= 4 { status_json(&outcome) } else { status_text(&outcome) };
        if !status.is_empty() {
            let _ = error.write(Bytes::from(status)).await;
        }
        let _ = error.close().await;
    }
    for pump in pumps {
        pump.abort();
    }
    for writer in held {
        let _ = writer.close().await;
    }
    session.close().await;
}

/// Client data → a channel; the client's FIN closes the channel (EOF).
async fn pump_in(mut reader: StreamReader, tx: mpsc::Sender<Bytes>) {
    while let Ok(Some(data)) = reader.read().await {
        if tx.send(data).await.is_err() {
            return;
        }
    }
}

/// Terminal sizes arrive as consecutive JSON objects.
async fn pump_resize(mut reader: StreamReader, tx: mpsc::Sender<TermSize>) {
    let mut pending = Vec::new();
    while let Ok(Some(data)) = reader.read().await {
        pending.extend_from_slice(&data);
        let mut sizes = serde_json::Deserializer::from_slice(&pending).into_iter::<TermSize>();
        let mut consumed = 0;
        while let Some(Ok(size)) = sizes.next() {
            consumed = sizes.byte_offset();
            if tx.send(size).await.is_err() {
                return;
            }
        }
        pending.drain(..consumed);
    }
}

/// A channel → the client's stream, closed (FIN) when the channel ends.
async fn pump_out(mut rx: mpsc::Receiver<Bytes>, writer: StreamWriter) {
    while let Some(data) = rx.recv().await {
        if writer.write(data).await.is_err() {
            return;
        }
    }
    let _ = writer.close().await;
}

/// Serves a port forward: the client opens a data and an error stream per
/// request (matched by `requestID`), each naming the `port`.
pub async fn serve_port_forward<T>(io: T, pid: i64, granted: Vec<u16>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (session, mut incoming) = Session::new(io);
    let mut pending: HashMap<String, (Option<IncomingStream>, Option<IncomingStream>)> = HashMap::new();
    let mut forwards = Vec::new();
    while let Some(stream) = incoming.recv().await {
        if stream.reply(Headers::new()).await.is_err() {
            continue;
        }
        let request_id = stream.headers().get("requestid").unwrap_or_default().to_string();
        let entry = pending.entry(request_id.clone()).or_default();
        match stream.headers().get(STREAM_TYPE) {
            Some("data") => entry.0 = Some(stream),
            Some("error") => entry.1 = Some(stream),
            _ => {
                let _ = stream.reset().await;
                continue;
            }
        }
        if matches!(pending.get(&request_id), Some((Some(_), Some(_))))
            && let Some((Some(data), Some(error))) = pending.remove(&request_id)
        {
            forwards.push(tokio::spawn(forward(pid, data, error, granted.clone())));
        }
        forwards.retain(|f| !f.is_finished());
    }
    for forward in forwards {
        forward.abort();
    }
    session.close().await;
}

async fn forward(pid: i64, data: IncomingStream, error: IncomingStream, granted: Vec<u16>) {
    let port = data.headers().get("port").and_then(|p| p.parse::<u16>().ok());
    let conn = match port {
        Some(port) => match super::portforward::check_granted(port, &granted) {
            Ok(()) => {
                super::portforward::dial(pid, port).await.map_err(|e| format!("localhost:{port} in the pod: {e}"))
            }
            Err(e) => Err(e),
        },
        None => Err("missing or invalid port header".to_string()),
    };
    let conn = match conn {
        Ok(conn) => conn,
        Err(message) => {
            let _ = error.write(Bytes::from(format!("failed to forward: {message}"))).await;
            let _ = error.close().await;
            let _ = data.close().await;
            return;
        }
    };
    let _ = error.close().await;
    let (mut from_client, to_client) = data.into_split();
    let (mut tcp_read, mut tcp_write) = conn.into_split();
    let upstream = async {
        while let Ok(Some(bytes)) = from_client.read().await {
            if tcp_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = tcp_write.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = tcp_read.read(&mut buf).await {
            if n == 0 || to_client.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                break;
            }
        }
        let _ = to_client.close().await;
    };
    tokio::join!(upstream, downstream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_client_preference() {
        let offered = vec!["v4.channel.k8s.io".to_string(), "v3.channel.k8s.io".to_string()];
        assert_eq!(negotiate(&offered, false), Some("v4.channel.k8s.io"));
        assert_eq!(negotiate(&["bogus".to_string()], false), None);
        assert_eq!(negotiate(&[], false), Some("channel.k8s.io"));
        assert_eq!(negotiate(&[PORT_FORWARD.to_string()], true), Some(PORT_FORWARD));
        assert_eq!(version_of("v3.channel.k8s.io"), 3);
    }
}
