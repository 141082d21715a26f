//! How an operation on one SPDY stream fails: shared by the stream handles
//! and the session state that decides it.

use super::frame::RstStatus;
use super::headers::HeaderError;

/// Why a stream operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("spdy stream {0} was reset ({1:?})")]
    Reset(u32, RstStatus),
    #[error("spdy stream {0} is closed for sending")]
    Closed(u32),
    #[error("spdy stream {0} was already replied to")]
    AlreadyReplied(u32),
    #[error("invalid reply headers for spdy stream {id}: {source}")]
    Headers { id: u32, source: HeaderError },
    #[error("spdy session is closed")]
    SessionClosed,
}
