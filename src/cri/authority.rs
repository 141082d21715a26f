//! Lets gRPC C-core clients (Python grpcio and the like) call over the Unix
//! socket. They send the socket path, raw or percent-encoded, as the
//! `:authority` pseudo-header; h2 rejects that as no URI authority and resets
//! every stream with PROTOCOL_ERROR (hyperium/h2#487, unmerged). Go clients
//! (kubelet, crictl) send `localhost`.
//!
//! [`AuthorityRewrite`] wraps an accepted connection and reads the client's
//! HTTP/2 frames. If the first request's `:authority` is absent or valid, it
//! steps aside for good and h2 reads the socket directly. Otherwise it
//! re-encodes every header block of that connection with `:authority:
//! localhost`; all other frames pass unchanged.
//!
//! Why the HPACK state stays consistent on both sides of the rewrite: the
//! client's encoder and our decoder see the same header blocks in the same
//! order, so our decoder's dynamic table mirrors the client's. h2 only sees
//! our re-encoding, made of literals without indexing (and no table size
//! updates): its dynamic table is never written, so stays empty, and nothing
//! we send refers to it. h2 demands a size update only after lowering
//! SETTINGS_HEADER_TABLE_SIZE, which this server never does. The choice is
//! made before any byte of the first header block is forwarded, so h2 sees
//! either every original block or none.
//!
//! A field the client marked never-indexed loses the mark: h2 only records
//! it, and the re-encoding indexes nothing anyway.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use loona_hpack::Decoder;
use loona_hpack::decoder::DecoderError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD_LEN: usize = 9;
/// The SETTINGS_MAX_FRAME_SIZE the server advertises: hyper's default,
/// which `server.rs` keeps. No frame we write is larger.
const MAX_FRAME_SIZE: usize = 16 * 1024;
/// hyper's default SETTINGS_MAX_HEADER_LIST_SIZE, kept by `server.rs`. h2
/// refuses a longer header list, so a decoded list is cut there; a longer
/// compressed block is refused, or ends a rewritten connection.
const MAX_HEADER_LIST_SIZE: usize = 16 * 1024;
/// h2's SETTINGS_HEADER_TABLE_SIZE, the most the client may give its table.
const HEADER_TABLE_SIZE: usize = 4096;
const READ_CHUNK: usize = 8 * 1024;

const AUTHORITY: &[u8] = b":authority";
const REPLACEMENT: &[u8] = b"localhost";

const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A server-side connection whose client→server bytes get a valid
/// `:authority` where the client sent an invalid one.
pub struct AuthorityRewrite<S> {
    inner: S,
    /// `None` once the connection passes through untouched.
    filter: Option<Box<Filter>>,
    /// Filtered bytes not yet read by the server.
    ready: BytesMut,
}

impl<S> AuthorityRewrite<S> {
    /// Wraps a connection just accepted, before any byte is read from it.
    pub fn new(inner: S) -> Self {
        AuthorityRewrite { inner, filter: Some(Box::default()), ready: BytesMut::new() }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityRewrite<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            let Some(filter) = this.filter.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            let mut chunk = [0; READ_CHUNK];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            let flow = match chunk.filled() {
                [] => filter.finish(&mut this.ready),
                bytes => filter.feed(bytes, &mut this.ready)?,
            };
            if flow == Flow::PassThrough {
                this.filter = None;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityRewrite<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityRewrite<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Everything held was handed on; the rest needs no looking at.
    PassThrough,
}

/// Where in the client's byte stream the filter is.
enum At {
    /// This many bytes of the connection preface seen.
    Preface(usize),
    FrameHead,
    /// This many bytes left of a frame that passes unchanged.
    Payload(usize),
}

enum Mode {
    /// Until the first header block ends, its frames are held back as sent.
    Deciding {
        held: Vec<u8>,
    },
    Rewriting,
}

/// A header block being gathered from HEADERS and CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(bytes: &[u8]) -> Option<FrameHead> {
        let head: &[u8; FRAME_HEAD_LEN] = bytes.get(..FRAME_HEAD_LEN)?.try_into().ok()?;
        Some(FrameHead {
            len: usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]),
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        })
    }
}

/// The sans-IO core: client bytes in, bytes for h2 out.
struct Filter {
    input: BytesMut,
    at: At,
    mode: Mode,
    block: Option<Block>,
    decoder: Decoder<'static>,
}

impl Default for Filter {
    fn default() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Filter {
            input: BytesMut::new(),
            at: At::Preface(0),
            mode: Mode::Deciding { held: Vec::new() },
            block: None,
            decoder,
        }
    }
}

impl Filter {
    /// Takes bytes the client sent; appends what h2 should read to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> io::Result<Flow> {
        self.input.extend_from_slice(bytes);
        loop {
            match self.at {
                At::Preface(seen) => {
                    let n = (PREFACE.len() - seen).min(self.input.len());
                    if n == 0 {
                        return Ok(Flow::Continue);
                    }
                    if self.input[..n] != PREFACE[seen..seen + n] {
                        return Ok(self.pass_through(out));
                    }
                    out.extend_from_slice(&self.input.split_to(n));
                    self.at = if seen + n == PREFACE.len() { At::FrameHead } else { At::Preface(seen + n) };
                }
                At::Payload(0) => self.at = At::FrameHead,
                At::Payload(left) => {
                    let n = left.min(self.input.len());
                    if n == 0 {
                        return Ok(Flow::Continue);
                    }
                    out.extend_from_slice(&self.input.split_to(n));
                    self.at = At::Payload(left - n);
                }
                At::FrameHead => {
                    let Some(head) = FrameHead::parse(&self.input) else { return Ok(Flow::Continue) };
                    let continues_block =
                        self.block.as_ref().map(|b| head.kind == CONTINUATION && head.stream == b.stream);
                    if continues_block == Some(false) {
                        // RFC 9113 §6.10: nothing may come between a block's frames.
                        return self.malformed(out);
                    }
                    if head.kind != HEADERS && head.kind != CONTINUATION {
                        out.extend_from_slice(&self.input.split_to(FRAME_HEAD_LEN));
                        self.at = At::Payload(head.len);
                        continue;
                    }
                    if head.len > MAX_FRAME_SIZE {
                        return self.malformed(out);
                    }
                    if self.input.len() < FRAME_HEAD_LEN + head.len {
                        return Ok(Flow::Continue);
                    }
                    let frame = self.input.split_to(FRAME_HEAD_LEN + head.len);
                    if self.header_frame(&head, &frame, out)? == Flow::PassThrough {
                        return Ok(Flow::PassThrough);
                    }
                }
            }
        }
    }

    /// The client closed its side: hand on whatever is held.
    fn finish(&mut self, out: &mut BytesMut) -> Flow {
        self.pass_through(out)
    }

    fn header_frame(&mut self, head: &FrameHead, frame: &[u8], out: &mut BytesMut) -> io::Result<Flow> {
        if let Mode::Deciding { held } = &mut self.mode {
            held.extend_from_slice(frame);
        }
        let payload = &frame[FRAME_HEAD_LEN..];
        let fragment = if head.kind == HEADERS {
            let Some((priority, fragment)) = split_headers_payload(head.flags, payload) else {
                return self.malformed(out);
            };
            let end_stream = head.flags & END_STREAM != 0;
            self.block = Some(Block { stream: head.stream, end_stream, priority, fragment: Vec::new() });
            fragment
        } else {
            payload
        };
        let Some(block) = self.block.as_mut() else {
            // A CONTINUATION with no block open.
            return self.malformed(out);
        };
        if block.fragment.len() + fragment.len() > MAX_HEADER_LIST_SIZE {
            return self.malformed(out);
        }
        block.fragment.extend_from_slice(fragment);
        match self.block.take_if(|_| head.flags & END_HEADERS != 0) {
            Some(block) => self.end_block(block, out),
            None => Ok(Flow::Continue),
        }
    }

    fn end_block(&mut self, block: Block, out: &mut BytesMut) -> io::Result<Flow> {
        let fields = decode(&mut self.decoder, &block.fragment);
        match (&self.mode, fields) {
            (Mode::Deciding { .. }, Err(_)) => Ok(self.pass_through(out)),
            (Mode::Deciding { .. }, Ok(fields)) if authority_is_valid(&fields) => Ok(self.pass_through(out)),
            (Mode::Deciding { .. }, Ok(fields)) => {
                tracing::debug!("client sent an invalid :authority; rewriting it to localhost on this connection");
                self.mode = Mode::Rewriting;
                write_block(out, &block, &encode(&fields));
                Ok(Flow::Continue)
            }
            (Mode::Rewriting, Ok(fields)) => {
                write_block(out, &block, &encode(&fields));
                Ok(Flow::Continue)
            }
            (Mode::Rewriting, Err(e)) => Err(invalid(format!("cannot decode a client header block: {e}"))),
        }
    }

    /// Before the first block is decided h2 gets the bytes as sent, and
    /// answers them as it would have; afterwards the HPACK state is past
    /// saving, so the connection ends.
    fn malformed(&mut self, out: &mut BytesMut) -> io::Result<Flow> {
        match self.mode {
            Mode::Deciding { .. } => Ok(self.pass_through(out)),
            Mode::Rewriting => Err(invalid("malformed HTTP/2 header frames from the client".to_string())),
        }
    }

    fn pass_through(&mut self, out: &mut BytesMut) -> Flow {
        if let Mode::Deciding { held } = &mut self.mode {
            out.extend_from_slice(held);
            held.clear();
        }
        out.extend_from_slice(&self.input.split());
        Flow::PassThrough
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A HEADERS payload without its padding: the priority fields and the
/// block fragment, or `None` if the padding claims more than there is.
fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let (pad, rest) = match flags & PADDED {
        0 => (0, payload),
        _ => (usize::from(*payload.first()?), &payload[1..]),
    };
    let (priority, rest) = match flags & PRIORITY {
        0 => (None, rest),
        _ => (Some(rest.get(..5)?.try_into().ok()?), &rest[5..]),
    };
    Some((priority, rest.get(..rest.len().checked_sub(pad)?)?))
}

type Field = (Vec<u8>, Vec<u8>);

/// Decodes a block with the client's table. Once the list reaches h2's size
/// limit the request is refused whatever follows, so the rest is dropped:
/// h2 still sees a list over its limit and refuses the stream.
fn decode(decoder: &mut Decoder<'static>, fragment: &[u8]) -> Result<Vec<Field>, DecoderError> {
    let mut fields = Vec::new();
    let mut size = 0;
    decoder.decode_with_cb(fragment, |name, value| {
        if size < MAX_HEADER_LIST_SIZE {
            let value_len = if *name == *AUTHORITY { REPLACEMENT.len() } else { value.len() };
            size += name.len() + value_len + 32;
            fields.push((name.into_owned(), value.into_owned()));
        }
    })?;
    Ok(fields)
}

/// What h2 requires of `:authority`, when there is one.
fn authority_is_valid(fields: &[Field]) -> bool {
    fields
        .iter()
        .filter(|(name, _)| name == AUTHORITY)
        .all(|(_, value)| http::uri::Authority::try_from(&value[..]).is_ok())
}

/// The fields as literals without indexing, leaving h2's table alone. No
/// Huffman coding or static-table names: size does not matter on a local socket.
fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        let value = if name == AUTHORITY { REPLACEMENT } else { &value[..] };
        out.push(0x00);
        put_string(&mut out, name);
        put_string(&mut out, value);
    }
    out
}

/// An HPACK string literal, not Huffman-coded (RFC 7541 §5.2).
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    const PREFIX_MAX: usize = 0x7f;
    if s.len() < PREFIX_MAX {
        out.push(s.len() as u8);
    } else {
        out.push(PREFIX_MAX as u8);
        let mut rest = s.len() - PREFIX_MAX;
        while rest >= 0x80 {
            out.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(s);
}

/// The block as HEADERS and CONTINUATION frames within the frame size limit,
/// unpadded, with the client's stream, END_STREAM and priority.
fn write_block(out: &mut BytesMut, block: &Block, hpack: &[u8]) {
    let priority = block.priority.as_ref().map_or(&[][..], |p| &p[..]);
    let (first, mut rest) = hpack.split_at(hpack.len().min(MAX_FRAME_SIZE - priority.len()));
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    put_frame_head(out, priority.len() + first.len(), HEADERS, flags, block.stream);
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_SIZE));
        put_frame_head(out, chunk.len(), CONTINUATION, if tail.is_empty() { END_HEADERS } else { 0 }, block.stream);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn put_frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    // `len` is at most MAX_FRAME_SIZE, so fits the 24-bit field.
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
