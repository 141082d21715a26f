//! A hand-written SPDY client for session tests: frames over an in-memory
//! duplex pipe, with its own header compression contexts.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use super::super::codec::FrameCodec;
use super::super::compress::{DEFAULT_MAX_HEADER_BLOCK, HeaderCompressor, HeaderDecompressor};
use super::super::frame::{Frame, SynStream};
use super::super::headers::Headers;
use super::super::stream::IncomingStream;
use super::{Session, SessionConfig};

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub struct Client {
    pub frames: Framed<DuplexStream, FrameCodec>,
    deflate: HeaderCompressor,
    inflate: HeaderDecompressor,
}

/// A session on one end of a pipe with `buffer` bytes per direction, and a client on the other.
pub fn connect(config: SessionConfig, buffer: usize) -> (Client, Session, mpsc::Receiver<IncomingStream>) {
    let (client_io, server_io) = tokio::io::duplex(buffer);
    let (session, incoming) = Session::with_config(server_io, config);
    let client = Client {
        frames: Framed::new(client_io, FrameCodec::default()),
        deflate: HeaderCompressor::new().expect("deflater"),
        inflate: HeaderDecompressor::new(DEFAULT_MAX_HEADER_BLOCK),
    };
    (client, session, incoming)
}

pub fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

impl Client {
    pub async fn send(&mut self, frame: Frame) {
        self.frames.send(frame).await.expect("client sends");
    }

    /// A header block from the client's deflate context.
    pub fn compress(&mut self, headers: &Headers) -> Bytes {
        self.deflate.compress(headers).expect("compresses")
    }

    /// Opens stream `id` with SYN_STREAM.
    pub async fn open(&mut self, id: u32, pairs: &[(&str, &str)], fin: bool) {
        let header_block = self.compress(&headers(pairs));
        let syn = SynStream { stream_id: id, fin, header_block, ..SynStream::default() };
        self.send(Frame::SynStream(syn)).await;
    }

    pub async fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        self.send(Frame::Data { stream_id: id, fin, data: Bytes::copy_from_slice(data) }).await;
    }

    /// The next frame from the server, or `None` at end of connection.
    pub async fn next(&mut self) -> Option<Frame> {
        let next = tokio::time::timeout(PATIENCE, self.frames.next()).await.expect("server answers in time");
        next.map(|frame| frame.expect("server sends valid frames"))
    }

    /// The next frame other than a session-level WINDOW_UPDATE.
    pub async fn next_skipping_session_credit(&mut self) -> Option<Frame> {
        loop {
            match self.next().await {
                Some(Frame::WindowUpdate { stream_id: 0, .. }) => continue,
                other => return other,
            }
        }
    }

    /// Expects a SYN_REPLY for `id` and returns its inflated headers and FIN flag.
    pub async fn expect_reply(&mut self, id: u32) -> (Headers, bool) {
        match self.next_skipping_session_credit().await {
            Some(Frame::SynReply { stream_id, fin, header_block }) if stream_id == id => {
                (self.inflate.decompress(&header_block).expect("inflates"), fin)
            }
            other => panic!("expected SYN_REPLY for stream {id}, got {other:?}"),
        }
    }

    /// True if the server sends nothing (but session credit) for a moment.
    pub async fn is_quiet(&mut self) -> bool {
        let wait = Duration::from_millis(200);
        loop {
            match tokio::time::timeout(wait, self.frames.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Frame::WindowUpdate { stream_id: 0, .. }))) => continue,
                Ok(_) => return false,
            }
        }
    }
}

/// The next stream the session hands out.
pub async fn accept(incoming: &mut mpsc::Receiver<IncomingStream>) -> IncomingStream {
    let next = tokio::time::timeout(PATIENCE, incoming.recv()).await.expect("stream arrives in time");
    next.expect("session still accepting")
}

/// Reads from `stream` until FIN, returning everything read.
pub async fn read_to_end(stream: &mut IncomingStream) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let chunk = tokio::time::timeout(PATIENCE, stream.read()).await.expect("data in time");
        match chunk.expect("stream readable") {
            Some(chunk) => all.extend_from_slice(&chunk),
            None => return all,
        }
    }
}
