//! The Kubernetes channel protocols over WebSocket: each message carries a
//! channel number and its data, in binary or base64 text form.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::remotecommand::{self, CHANNEL_DEPTH, Channels, TermSize};
use super::status::{Outcome, status_json, status_text};
use super::tokens::StreamRequest;
use crate::docker::Docker;

pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: the client closed the stream named in the next byte.
const CLOSE: u8 = 255;

/// A negotiated channel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    pub name: &'static str,
    pub base64: bool,
    /// 1 for the unversioned protocols; 4 or 5 otherwise.
    pub version: u8,
}

const REMOTE_COMMAND: &[Protocol] = &[
    Protocol { name: "v5.channel.k8s.io", base64: false, version: 5 },
    Protocol { name: "v4.channel.k8s.io", base64: false, version: 4 },
    Protocol { name: "v4.base64.channel.k8s.io", base64: true, version: 4 },
    Protocol { name: "channel.k8s.io", base64: false, version: 1 },
    Protocol { name: "base64.channel.k8s.io", base64: true, version: 1 },
];
const PORT_FORWARD: &[Protocol] = &[
    Protocol { name: "v4.channel.k8s.io", base64: false, version: 4 },
    Protocol { name: "v4.base64.channel.k8s.io", base64: true, version: 4 },
    Protocol { name: "channel.k8s.io", base64: false, version: 1 },
    Protocol { name: "base64.channel.k8s.io", base64: true, version: 1 },
];

/// Picks the first protocol the client offers that we speak; no offer at
/// all means the unversioned binary protocol.
pub fn negotiate(offered: &str, port_forward: bool) -> Option<Protocol> {
    let supported = if port_forward { PORT_FORWARD } else { REMOTE_COMMAND };
    let offers: Vec<&str> = offered.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
    if offers.is_empty() {
        return supported.iter().copied().find(|p| p.name == "channel.k8s.io");
    }
    offers.iter().find_map(|o| supported.iter().copied().find(|p| p.name == *o))
}

pub fn encode(protocol: Protocol, channel: u8, data: &[u8]) -> Message {
    if protocol.base64 {
        Message::text(format!("{}{}", char::from(b'0' + channel), BASE64.encode(data)))
    } else {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(data);
        Message::binary(frame)
    }
}

/// Splits a message into its channel and data; `None` for control
/// messages and malformed frames.
pub fn decode(protocol: Protocol, message: &Message) -> Option<(u8, Vec<u8>)> {
    match message {
        Message::Binary(b) if !protocol.base64 => b.split_first().map(|(c, d)| (*c, d.to_vec())),
        Message::Text(t) if protocol.base64 => {
            let (c, d) = t.as_str().split_at_checked(1)?;
            let channel = c.bytes().next()?.checked_sub(b'0')?;
            Some((channel, BASE64.decode(d).ok()?))
        }
        _ => None,
    }
}

/// Serves an exec or attach over an upgraded WebSocket.
pub async fn serve_remote_command(ws: Socket, protocol: Protocol, request: StreamRequest, docker: Docker) {
    let flags = remotecommand::wanted(&request);
    let (mut sink, mut source) = ws.split();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (stdout_tx, mut stdout_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (stderr_tx, mut stderr_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (resize_tx, resize_rx) = mpsc::channel::<TermSize>(CHANNEL_DEPTH);
    let channels = Channels {
        stdin: flags.stdin.then_some(stdin_rx),
        stdout: flags.stdout.then_some(stdout_tx),
        stderr: (flags.stderr && !flags.tty).then_some(stderr_tx),
        resize: flags.tty.then_some(resize_rx),
    };

    let reader = tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        while let Some(Ok(message)) = source.next().await {
            if message.is_close() {
                break;
            }
            match decode(protocol, &message) {
                Some((STDIN, data)) => {
                    if let Some(tx) = &stdin
                        && tx.send(Bytes::from(data)).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some((RESIZE, data)) => {
                    if let Ok(size) = serde_json::from_slice::<TermSize>(&data) {
                        let _ = resize_tx.send(size).await;
                    }
                }
                Some((CLOSE, data)) if protocol.version >= 5 && data.first() == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
    });
    let writer = async {
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            let (channel, data) = tokio::select! {
                data = stdout_rx.recv(), if out_open => match data { Some(d) => (STDOUT, d), None => { out_open = false; continue } },
                data = stderr_rx.recv(), if err_open => match data { Some(d) => (STDERR, d), None => { err_open = false; continue } },
            };
            if sink.send(encode(protocol, channel, &data)).await.is_err() {
                break;
            }
        }
        sink
    };
    let (outcome, mut sink) = tokio::join!(remotecommand::run(&docker, request, channels), writer);
    reader.abort();
    let status = if protocol.version >= 4 { status_json(&outcome) } else { status_text(&outcome) };
    if protocol.version >= 4 || !status.is_empty() {
        let _ = sink.send(encode(protocol, ERROR, &status)).await;
    }
    close_normally(&mut sink).await;
    if let Outcome::Failed(why) = outcome {
        tracing::debug!(reason = %why, "remote command ended with a failure");
    }
}

/// Ends the session with a Close frame carrying 1000 (normal closure):
/// client-go treats a close without a status code (1005) as a failed
/// stream, discarding the output it buffered and the exit status.
async fn close_normally(sink: &mut futures::stream::SplitSink<Socket, Message>) {
    let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// Serves a port forward over an upgraded WebSocket: for the i-th port,
/// channel 2i carries data and 2i+1 errors; each starts with the port number.
pub async fn serve_port_forward(ws: Socket, protocol: Protocol, pid: i64, ports: Vec<u16>) {
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(CHANNEL_DEPTH);
    let mut writers = Vec::new();
    let mut pumps = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        for channel in [data, error] {
            let _ = out_tx.send(encode(protocol, channel, &port.to_le_bytes())).await;
        }
        match super::portforward::dial(pid, *port).await {
            Ok(conn) => {
                let (mut read, write) = conn.into_split();
                writers.push(Some(write));
                let out = out_tx.clone();
                pumps.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = read.read(&mut buf).await {
                        if n == 0 || out.send(encode(protocol, data, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }));
            }
            Err(e) => {
                writers.push(None);
                let message = format!("failed to connect to localhost:{port} in the pod: {e}");
                let _ = out_tx.send(encode(protocol, error, message.as_bytes())).await;
            }
        }
    }
    drop(out_tx);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        close_normally(&mut sink).await;
    });
    while let Some(Ok(message)) = source.next().await {
        if message.is_close() {
            break;
        }
        let Some((channel, data)) = decode(protocol, &message) else { continue };
        let index = usize::from(channel / 2);
        if channel % 2 == 0
            && let Some(Some(conn)) = writers.get_mut(index)
            && conn.write_all(&data).await.is_err()
        {
            writers[index] = None;
        }
    }
    for pump in pumps {
        pump.abort();
    }
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_newest_offered() {
        assert_eq!(negotiate("v5.channel.k8s.io, v4.channel.k8s.io", false).unwrap().version, 5);
        assert!(negotiate("base64.channel.k8s.io", false).unwrap().base64);
        assert_eq!(negotiate("", false).unwrap().name, "channel.k8s.io");
        assert!(negotiate("v5.channel.k8s.io", true).is_none(), "v5 is not a port-forward protocol");
        assert!(negotiate("bogus", false).is_none());
    }

    #[test]
    fn frames_round_trip() {
        for protocol in REMOTE_COMMAND {
            let message = encode(*protocol, STDOUT, b"hello\0world");
            assert_eq!(decode(*protocol, &message), Some((STDOUT, b"hello\0world".to_vec())));
        }
        let b64 = REMOTE_COMMAND[2];
        assert_eq!(decode(b64, &Message::text("0aGk=")), Some((STDIN, b"hi".to_vec())));
        assert_eq!(decode(b64, &Message::text("0!!!")), None);
        assert_eq!(decode(REMOTE_COMMAND[0], &Message::binary(Vec::<u8>::new())), None);
    }
}
