//! The SPDY/3.1 wire codec: turns bytes into [`Frame`]s and back, incrementally,
//! as a `tokio_util` `Decoder`/`Encoder`, checking lengths before buffering.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{
    FLAG_CLEAR_SETTINGS, FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, GoAwayStatus, HEADER_LEN, MAX_PAYLOAD, MAX_STREAM_ID,
    RstStatus, Setting, SynStream, VERSION, is_known, kind, kind_name,
};

/// Default largest frame payload accepted: 16 MiB, i.e. anything the 24-bit
/// length field can say; lower it to bound per-frame memory further.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// A frame that cannot be decoded or encoded. Any decode error is fatal to
/// the session: framing is lost, so the peer gets a GOAWAY.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported spdy version {0}")]
    UnsupportedVersion(u16),
    #[error("frame payload of {length} bytes exceeds the limit of {max}")]
    TooLarge { length: usize, max: usize },
    #[error("{kind} frame has invalid length {length}")]
    BadLength { kind: &'static str, length: usize },
    #[error("settings frame declares {count} entries in {length} bytes")]
    SettingsCount { count: u32, length: usize },
    #[error("{0} frame on stream 0")]
    ZeroStreamId(&'static str),
    #[error("{kind} frame field {value} does not fit in 31 bits")]
    Overflow { kind: &'static str, value: u32 },
    #[error("spdy connection i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes and encodes SPDY/3.1 frames. Unknown control frame types (and the
/// SPDY/3 CREDENTIAL frame) are skipped without buffering, as the spec asks
/// of receivers; undefined flag bits and reserved bits are ignored.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_size: usize,
    /// Payload bytes of a skipped frame still to discard.
    skipping: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

/// The first eight bytes of a frame.
#[derive(Debug, Clone, Copy)]
enum Head {
    Control { kind: u16, flags: u8, length: usize },
    Data { stream_id: u32, flags: u8, length: usize },
}

impl FrameCodec {
    /// A codec refusing frames whose payload exceeds `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> Self {
        FrameCodec { max_frame_size, skipping: 0 }
    }

    /// Discards what is left of a skipped frame; true once nothing is left.
    fn skip(&mut self, src: &mut BytesMut) -> bool {
        let n = self.skipping.min(src.len());
        src.advance(n);
        self.skipping -= n;
        self.skipping == 0
    }

    /// Reads and checks a frame head without consuming it.
    fn head(&self, src: &[u8]) -> Result<Option<Head>, FrameError> {
        let Some(bytes) = src.get(..HEADER_LEN) else { return Ok(None) };
        let mut b = bytes;
        let (first, second) = (b.get_u32(), b.get_u32());
        let (flags, length) = ((second >> 24) as u8, (second & 0x00ff_ffff) as usize);
        if length > self.max_frame_size {
            return Err(FrameError::TooLarge { length, max: self.max_frame_size });
        }
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Head::Data { stream_id: first, flags, length }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let kind = (first & 0xffff) as u16;
        check_length(kind, length)?;
        Ok(Some(Head::Control { kind, flags, length }))
    }
}

/// Rejects a control frame whose length cannot fit its type's fixed fields.
fn check_length(code: u16, length: usize) -> Result<(), FrameError> {
    let ok = match code {
        kind::SYN_STREAM => length >= 10,
        kind::SYN_REPLY | kind::HEADERS => length >= 4,
        kind::RST_STREAM | kind::GOAWAY | kind::WINDOW_UPDATE => length == 8,
        kind::SETTINGS => length >= 4 && (length - 4).is_multiple_of(8),
        kind::PING => length == 4,
        _ => true,
    };
    if ok { Ok(()) } else { Err(FrameError::BadLength { kind: kind_name(code), length }) }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if !self.skip(src) {
                return Ok(None);
            }
            let Some(head) = self.head(src)? else { return Ok(None) };
            let (length, known) = match head {
                Head::Control { kind, length, .. } => (length, is_known(kind)),
                Head::Data { length, .. } => (length, true),
            };
            if !known {
                src.advance(HEADER_LEN);
                self.skipping = length;
                continue;
            }
            if src.len() < HEADER_LEN + length {
                // `length` was checked against the limit above, so this is bounded.
                src.reserve(HEADER_LEN + length - src.len());
                return Ok(None);
            }
            src.advance(HEADER_LEN);
            let payload = src.split_to(length).freeze();
            return parse(head, payload).map(Some);
        }
    }
}

fn parse(head: Head, payload: Bytes) -> Result<Frame, FrameError> {
    let frame = match head {
        Head::Data { stream_id, flags, .. } => Frame::Data { stream_id, fin: flags & FLAG_FIN != 0, data: payload },
        Head::Control { kind, flags, length } => parse_control(flags, Fields { p: payload, kind, length })?,
    };
    let stream_id = match &frame {
        Frame::SynStream(syn) => syn.stream_id,
        Frame::SynReply { stream_id, .. }
        | Frame::RstStream { stream_id, .. }
        | Frame::Headers { stream_id, .. }
        | Frame::Data { stream_id, .. } => *stream_id,
        _ => return Ok(frame),
    };
    if stream_id == 0 { Err(FrameError::ZeroStreamId(frame.name())) } else { Ok(frame) }
}

/// A control payload being read field by field. Its length already passed
/// `check_length`; the checked reads turn a missed case into an error, not a panic.
struct Fields {
    p: Bytes,
    kind: u16,
    length: usize,
}

impl Fields {
    fn u32(&mut self) -> Result<u32, FrameError> {
        self.p.try_get_u32().map_err(|_| FrameError::BadLength { kind: kind_name(self.kind), length: self.length })
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        self.p.try_get_u8().map_err(|_| FrameError::BadLength { kind: kind_name(self.kind), length: self.length })
    }

    /// A 31-bit field: the top bit is reserved and ignored.
    fn id(&mut self) -> Result<u32, FrameError> {
        Ok(self.u32()? & MAX_STREAM_ID)
    }
}

fn parse_control(flags: u8, mut f: Fields) -> Result<Frame, FrameError> {
    let fin = flags & FLAG_FIN != 0;
    Ok(match f.kind {
        kind::SYN_STREAM => Frame::SynStream(SynStream {
            stream_id: f.id()?,
            associated_to: f.id()?,
            // Priority is the top three bits of its byte; the other five are unused.
            priority: f.u8()? >> 5,
            slot: f.u8()?,
            fin,
            unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
            header_block: f.p,
        }),
        kind::SYN_REPLY => Frame::SynReply { stream_id: f.id()?, fin, header_block: f.p },
        kind::HEADERS => Frame::Headers { stream_id: f.id()?, fin, header_block: f.p },
        kind::RST_STREAM => Frame::RstStream { stream_id: f.id()?, status: RstStatus::from_code(f.u32()?) },
        kind::SETTINGS => return parse_settings(flags, f),
        kind::PING => Frame::Ping { id: f.u32()? },
        kind::GOAWAY => Frame::GoAway { last_good_stream_id: f.id()?, status: GoAwayStatus::from_code(f.u32()?) },
        _ => Frame::WindowUpdate { stream_id: f.id()?, delta: f.id()? },
    })
}

fn parse_settings(flags: u8, mut f: Fields) -> Result<Frame, FrameError> {
    let count = f.u32()?;
    if count as usize != f.p.remaining() / 8 {
        return Err(FrameError::SettingsCount { count, length: f.length });
    }
    let mut entries = Vec::with_capacity(f.p.remaining() / 8);
    while f.p.has_remaining() {
        let flag_id = f.u32()?;
        entries.push(Setting { flags: (flag_id >> 24) as u8, id: flag_id & 0x00ff_ffff, value: f.u32()? });
    }
    Ok(Frame::Settings { clear: flags & FLAG_CLEAR_SETTINGS != 0, entries })
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        check_ids(&frame)?;
        let length = payload_len(&frame);
        if length > MAX_PAYLOAD {
            return Err(FrameError::TooLarge { length, max: MAX_PAYLOAD });
        }
        dst.reserve(HEADER_LEN + length);
        put_frame(frame, length as u32, dst);
        Ok(())
    }
}

/// Refuses ids and deltas that would spill into the reserved top bit.
fn check_ids(frame: &Frame) -> Result<(), FrameError> {
    let fields: &[u32] = match frame {
        Frame::SynStream(syn) => &[syn.stream_id, syn.associated_to],
        Frame::SynReply { stream_id, .. }
        | Frame::RstStream { stream_id, .. }
        | Frame::Headers { stream_id, .. }
        | Frame::Data { stream_id, .. } => &[*stream_id],
        Frame::GoAway { last_good_stream_id, .. } => &[*last_good_stream_id],
        Frame::WindowUpdate { stream_id, delta } => &[*stream_id, *delta],
        Frame::Settings { .. } | Frame::Ping { .. } => &[],
    };
    match fields.iter().find(|v| **v > MAX_STREAM_ID) {
        Some(value) => Err(FrameError::Overflow { kind: frame.name(), value: *value }),
        None => Ok(()),
    }
}

fn payload_len(frame: &Frame) -> usize {
    match frame {
        Frame::SynStream(syn) => 10 + syn.header_block.len(),
        Frame::SynReply { header_block, .. } | Frame::Headers { header_block, .. } => 4 + header_block.len(),
        Frame::Settings { entries, .. } => 4 + 8 * entries.len(),
        Frame::Ping { .. } => 4,
        Frame::RstStream { .. } | Frame::GoAway { .. } | Frame::WindowUpdate { .. } => 8,
        Frame::Data { data, .. } => data.len(),
    }
}

fn put_control(dst: &mut BytesMut, code: u16, flags: u8, length: u32) {
    dst.put_u32(0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(code));
    dst.put_u32((u32::from(flags) << 24) | length);
}

fn fin_flag(fin: bool) -> u8 {
    if fin { FLAG_FIN } else { 0 }
}

fn put_frame(frame: Frame, length: u32, dst: &mut BytesMut) {
    match frame {
        Frame::SynStream(syn) => {
            let flags = fin_flag(syn.fin) | if syn.unidirectional { FLAG_UNIDIRECTIONAL } else { 0 };
            put_control(dst, kind::SYN_STREAM, flags, length);
            dst.put_u32(syn.stream_id);
            dst.put_u32(syn.associated_to);
            dst.put_u8((syn.priority & 0x07) << 5);
            dst.put_u8(syn.slot);
            dst.put(syn.header_block);
        }
        Frame::SynReply { stream_id, fin, header_block } => {
            put_control(dst, kind::SYN_REPLY, fin_flag(fin), length);
            dst.put_u32(stream_id);
            dst.put(header_block);
        }
        Frame::Headers { stream_id, fin, header_block } => {
            put_control(dst, kind::HEADERS, fin_flag(fin), length);
            dst.put_u32(stream_id);
            dst.put(header_block);
        }
        Frame::RstStream { stream_id, status } => put_pair(dst, kind::RST_STREAM, stream_id, status.code()),
        Frame::Settings { clear, entries } => {
            put_control(dst, kind::SETTINGS, if clear { FLAG_CLEAR_SETTINGS } else { 0 }, length);
            dst.put_u32(entries.len() as u32);
            for entry in entries {
                dst.put_u32((u32::from(entry.flags) << 24) | (entry.id & 0x00ff_ffff));
                dst.put_u32(entry.value);
            }
        }
        Frame::Ping { id } => {
            put_control(dst, kind::PING, 0, length);
            dst.put_u32(id);
        }
        Frame::GoAway { last_good_stream_id, status } => {
            put_pair(dst, kind::GOAWAY, last_good_stream_id, status.code())
        }
        Frame::WindowUpdate { stream_id, delta } => put_pair(dst, kind::WINDOW_UPDATE, stream_id, delta),
        Frame::Data { stream_id, fin, data } => {
            dst.put_u32(stream_id);
            dst.put_u32((u32::from(fin_flag(fin)) << 24) | length);
            dst.put(data);
        }
    }
}

/// The three control frames whose payload is exactly two 32-bit words.
fn put_pair(dst: &mut BytesMut, code: u16, first: u32, second: u32) {
    put_control(dst, code, 0, 8);
    dst.put_u32(first);
    dst.put_u32(second);
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
