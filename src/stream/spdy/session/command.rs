//! What the writer task is asked to do: the one queue between a session's
//! callers (streams, the reader) and the wire.

use super::super::frame::Frame;
use super::super::headers::Headers;

/// What the writer task can be asked to do, in wire order.
#[derive(Debug)]
pub enum Command {
    /// Send a frame as is.
    Frame(Frame),
    /// Compress `headers` and send them as a SYN_REPLY.
    Reply { stream_id: u32, headers: Headers, fin: bool },
    /// Send everything queued before this, close the connection's write
    /// side and end the session.
    Close,
}
