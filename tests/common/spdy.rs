//! A small SPDY/3.1 client for the streaming tests, speaking as kubectl's
//! does: HTTP upgrade, then one client-opened stream per channel.
#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use pinshim::stream::spdy::frame::SynStream;
use pinshim::stream::spdy::{Frame, FrameCodec, HeaderCompressor, HeaderDecompressor, Headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub struct SpdyClient {
    frames: Framed<TcpStream, FrameCodec>,
    deflate: HeaderCompressor,
    inflate: HeaderDecompressor,
    next_id: u32,
    /// The protocol the server confirmed.
    pub protocol: String,
}

impl SpdyClient {
    /// Upgrades `url` to SPDY/3.1 offering `protocols`; `Err` carries the
    /// server's status line when it refuses.
    pub async fn connect(url: &str, protocols: &[&str]) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or("not an http url")?;
        let (authority, path) = rest.split_once('/').ok_or("no path")?;
        let mut conn = TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
        let mut request = format!(
            "POST /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n"
        );
        for protocol in protocols {
            request.push_str(&format!("X-Stream-Protocol-Version: {protocol}\r\n"));
        }
        request.push_str("\r\n");
        conn.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let head = read_head(&mut conn).await?;
        let status = head.lines().next().unwrap_or_default().to_string();
        if !status.contains(" 101 ") {
            return Err(status);
        }
        let protocol = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("x-stream-protocol-version")))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        Ok(SpdyClient {
            frames: Framed::new(conn, FrameCodec::default()),
            deflate: HeaderCompressor::new().map_err(|e| e.to_string())?,
            inflate: HeaderDecompressor::new(1 << 20),
            next_id: 1,
            protocol,
        })
    }

    /// Opens a stream with `headers` and waits for the server's reply.
    pub async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let block = self.deflate.compress(&headers.iter().copied().collect::<Headers>()).expect("compress");
        let syn = SynStream { stream_id: id, header_block: block, ..SynStream::default() };
        self.frames.send(Frame::SynStream(syn)).await.expect("send syn");
        match self.next().await.expect("reply before the end") {
            Frame::SynReply { stream_id, header_block, .. } if stream_id == id => {
                self.inflate.decompress(&header_block).expect("reply headers");
                id
            }
            other => panic!("unexpected frame while opening stream {id}: {other:?}"),
        }
    }

    pub async fn send(&mut self, stream_id: u32, data: &[u8], fin: bool) {
        let frame = Frame::Data { stream_id, fin, data: Bytes::copy_from_slice(data) };
        self.frames.send(frame).await.expect("send data");
    }

    /// The next frame, answering pings on the way; `None` at the end.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            let frame = self.frames.next().await?.ok()?;
            match frame {
                Frame::Ping { id } => self.frames.send(Frame::Ping { id }).await.ok()?,
                Frame::Headers { header_block, .. } => {
                    self.inflate.decompress(&header_block).ok()?;
                }
                other => return Some(other),
            }
        }
    }

    /// Collects data per stream until `until` has finished (or the session ends).
    pub async fn collect(&mut self, until: u32) -> HashMap<u32, Vec<u8>> {
        let mut data: HashMap<u32, Vec<u8>> = HashMap::new();
        while let Some(frame) = self.next().await {
            if let Frame::Data { stream_id, fin, data: bytes } = frame {
                data.entry(stream_id).or_default().extend_from_slice(&bytes);
                if fin && stream_id == until {
                    break;
                }
            }
        }
        data
    }
}

async fn read_head(conn: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed after {:?}", String::from_utf8_lossy(&head)));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).to_string())
}
