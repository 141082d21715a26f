//! SPDY/3.1 frames as plain values: the control and data frame layouts of the
//! draft spec, with header blocks still compressed (see `headers` for those).

use bytes::Bytes;

/// The only protocol version spoken here; control frames carry it in their first word.
pub const VERSION: u16 = 3;
/// DATA and control flag: the sender's half of the stream ends with this frame.
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM flag: the recipient must not send on the new stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS flag: forget previously persisted settings.
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;
/// The largest payload the 24-bit length field can describe.
pub const MAX_PAYLOAD: usize = 0x00ff_ffff;
/// The largest stream id, and the largest window delta: both are 31-bit fields.
pub const MAX_STREAM_ID: u32 = 0x7fff_ffff;
/// Bytes before the payload of every frame, control or data.
pub const HEADER_LEN: usize = 8;

/// Control frame type codes (the low 16 bits of a control frame's first word).
pub(crate) mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// SETTINGS ids this implementation looks at.
pub mod setting {
    /// How many streams the sender lets its peer open at once.
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    /// The send window every stream starts with, in bytes (SPDY/3.1 default 64 KiB).
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

/// One decoded SPDY frame. Header blocks stay compressed: their zlib context
/// spans the whole session, so only the session can inflate them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A peer opens a stream.
    SynStream(SynStream),
    /// The answer to a SYN_STREAM, carrying response headers.
    SynReply { stream_id: u32, fin: bool, header_block: Bytes },
    /// Abnormal end of a stream, in both directions.
    RstStream { stream_id: u32, status: RstStatus },
    /// Connection parameters such as the initial stream window.
    Settings { clear: bool, entries: Vec<Setting> },
    /// Liveness probe: the recipient echoes a ping it did not originate.
    Ping { id: u32 },
    /// The sender accepts no new streams after `last_good_stream_id`.
    GoAway { last_good_stream_id: u32, status: GoAwayStatus },
    /// Extra headers for an open stream.
    Headers { stream_id: u32, fin: bool, header_block: Bytes },
    /// The sender can take `delta` more bytes on the stream (or the session, for stream 0).
    WindowUpdate { stream_id: u32, delta: u32 },
    /// Stream payload.
    Data { stream_id: u32, fin: bool, data: Bytes },
}

/// The fields of a SYN_STREAM frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SynStream {
    pub stream_id: u32,
    /// A stream this one belongs to (server push); 0 for none.
    pub associated_to: u32,
    /// 0 (highest) to 7, the top three bits of its byte on the wire.
    pub priority: u8,
    /// Index into the (SPDY/3 only) client certificate vector; 0 for none.
    pub slot: u8,
    pub fin: bool,
    pub unidirectional: bool,
    pub header_block: Bytes,
}

/// One id/value entry of a SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// PERSIST_VALUE (0x1) or PERSISTED (0x2).
    pub flags: u8,
    /// A 24-bit id, e.g. [`setting::INITIAL_WINDOW_SIZE`].
    pub id: u32,
    pub value: u32,
}

/// Why a stream was reset (RST_STREAM status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RstStatus {
    ProtocolError,
    InvalidStream,
    RefusedStream,
    UnsupportedVersion,
    Cancel,
    InternalError,
    FlowControlError,
    StreamInUse,
    StreamAlreadyClosed,
    FrameTooLarge,
    /// A code this implementation has no name for; kept so it round-trips.
    Other(u32),
}

const RST_CODES: [(RstStatus, u32); 10] = [
    (RstStatus::ProtocolError, 1),
    (RstStatus::InvalidStream, 2),
    (RstStatus::RefusedStream, 3),
    (RstStatus::UnsupportedVersion, 4),
    (RstStatus::Cancel, 5),
    (RstStatus::InternalError, 6),
    (RstStatus::FlowControlError, 7),
    (RstStatus::StreamInUse, 8),
    (RstStatus::StreamAlreadyClosed, 9),
    (RstStatus::FrameTooLarge, 11),
];

impl RstStatus {
    /// The wire value of this status.
    pub fn code(self) -> u32 {
        match self {
            RstStatus::Other(code) => code,
            named => RST_CODES.iter().find(|(s, _)| *s == named).map_or(0, |(_, c)| *c),
        }
    }

    /// The status for a wire value.
    pub fn from_code(code: u32) -> Self {
        RST_CODES.iter().find(|(_, c)| *c == code).map_or(RstStatus::Other(code), |(s, _)| *s)
    }
}

/// Why a session is going away (GOAWAY status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoAwayStatus {
    Ok,
    ProtocolError,
    InternalError,
    /// A code this implementation has no name for; kept so it round-trips.
    Other(u32),
}

impl GoAwayStatus {
    /// The wire value of this status.
    pub fn code(self) -> u32 {
        match self {
            GoAwayStatus::Ok => 0,
            GoAwayStatus::ProtocolError => 1,
            GoAwayStatus::InternalError => 2,
            GoAwayStatus::Other(code) => code,
        }
    }

    /// The status for a wire value.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => GoAwayStatus::Ok,
            1 => GoAwayStatus::ProtocolError,
            2 => GoAwayStatus::InternalError,
            other => GoAwayStatus::Other(other),
        }
    }
}

impl Frame {
    /// The frame's name as the spec writes it, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::SynStream(_) => "SYN_STREAM",
            Frame::SynReply { .. } => "SYN_REPLY",
            Frame::RstStream { .. } => "RST_STREAM",
            Frame::Settings { .. } => "SETTINGS",
            Frame::Ping { .. } => "PING",
            Frame::GoAway { .. } => "GOAWAY",
            Frame::Headers { .. } => "HEADERS",
            Frame::WindowUpdate { .. } => "WINDOW_UPDATE",
            Frame::Data { .. } => "DATA",
        }
    }
}

/// The name of a control frame type code, for errors.
pub(crate) fn kind_name(code: u16) -> &'static str {
    match code {
        kind::SYN_STREAM => "SYN_STREAM",
        kind::SYN_REPLY => "SYN_REPLY",
        kind::RST_STREAM => "RST_STREAM",
        kind::SETTINGS => "SETTINGS",
        kind::PING => "PING",
        kind::GOAWAY => "GOAWAY",
        kind::HEADERS => "HEADERS",
        kind::WINDOW_UPDATE => "WINDOW_UPDATE",
        _ => "unknown control",
    }
}

/// Whether a control frame type code is one this codec decodes (others are skipped).
pub(crate) fn is_known(code: u16) -> bool {
    matches!(
        code,
        kind::SYN_STREAM
            | kind::SYN_REPLY
            | kind::RST_STREAM
            | kind::SETTINGS
            | kind::PING
            | kind::GOAWAY
            | kind::HEADERS
            | kind::WINDOW_UPDATE
    )
}
