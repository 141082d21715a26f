//! SPDY/3.1 carried in WebSocket binary messages: how client-go forwards
//! ports over WebSocket (KEP-4006). The client offers the SPDY protocol
//! name behind a `SPDY/3.1+` prefix; after the handshake, the messages'
//! payloads, joined, are a plain SPDY session, and a normal closure ends it.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::websocket::Socket;

/// The WebSocket subprotocol of a tunnelled SPDY port forward.
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// Whether the client's `Sec-WebSocket-Protocol` offer asks for the tunnel.
pub fn offered(offer: &str) -> bool {
    offer.split(',').map(str::trim).any(|o| o == PORT_FORWARD_TUNNEL)
}

/// How many bytes of SPDY one message carries at most, and the pipe holds.
const CHUNK: usize = 32 * 1024;
/// How long a client may take to answer our close.
const CLOSE_REPLY: std::time::Duration = std::time::Duration::from_secs(1);

/// A byte stream over `ws`: what is written to it goes out as binary
/// messages, and what the client sends comes out of it. It ends when
/// either side closes.
pub fn bytes_over(ws: Socket) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(CHUNK);
    tokio::spawn(pump(ws, theirs));
    ours
}

async fn pump(ws: Socket, pipe: DuplexStream) {
    let (mut sink, mut messages) = ws.split();
    let (mut from_session, mut to_session) = tokio::io::split(pipe);
    let mut inbound = tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            match message {
                Message::Binary(data) if to_session.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                // Pings are answered by the library; text has no meaning here.
                _ => {}
            }
        }
        let _ = to_session.shutdown().await;
    });
    let outbound = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        let _ = sink.send(Message::Close(Some(close))).await;
    };
    // The client closing shuts the pipe, which ends the session and so the
    // outbound half; the session ending closes the connection, and the
    // client has a moment to answer the close before its half is dropped.
    outbound.await;
    if tokio::time::timeout(CLOSE_REPLY, &mut inbound).await.is_err() {
        inbound.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_is_recognised_among_other_offers() {
        assert!(offered("v4.channel.k8s.io, SPDY/3.1+portforward.k8s.io"));
        assert!(!offered("portforward.k8s.io"));
        assert!(!offered(""));
    }
}
